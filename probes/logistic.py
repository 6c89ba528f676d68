"""An L2 logistic-regression probe fitted on every layer at once, and on a grid of C values.

Per layer the objective is scikit-learn's ``LogisticRegression(C=C)`` (L2, intercept not
penalised) on features standardised with the training data's mean and std:

    sum_i logloss(y_i, x̃_i·w + b) + ||w||² / (2C)

Three batched solvers minimise it for all layers together and reach the same optimum:

- ``"lbfgs"`` (``probes._lbfgs``): Hessian-free L-BFGS, two passes over ``X`` per iteration
  (``O(n d)``), in ``X``'s own dtype; many problems (layers x C values) in one batch.
- ``"primal"`` (``probes._newton``): damped Newton, a ``(d+1) x (d+1)`` Hessian per step
  (``O(n d²)``), in float64 (float32 Hessian).
- ``"dual"``: damped Newton on an ``n x n`` system from the kernel ``X̃X̃ᵀ`` (``O(n² d)`` once,
  ``O(n³)`` per step).

``"auto"`` (the default) picks by :func:`choose_solver`. Every solver stops when the max-norm of
the gradient of the *mean* objective (the sum above divided by n) falls below ``tol``:
scikit-learn's lbfgs rule, on the same features, so ``tol=1e-4`` (the default) stops where a
default ``LogisticRegression`` does. The fitted probe records the solver it used in ``solver_``.

On the CPU a fit runs on as many of the caller's torch threads as its iterations can use
(:func:`fit_threads`: one for small problems, whose tiny ops only wait on each other's threads)
and restores the caller's thread count afterwards; the probe records the count in ``threads_``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from jaxtyping import Bool, Float, Int
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted
from torch import Tensor

from probes._lbfgs import lbfgs_logistic
from probes._newton import dual_newton, primal_newton
from probes._threads import choose_threads, torch_threads
from probes._validation import (
    check_binary_labels,
    to_float64_activations,
    to_float_activations,
    to_label_tensor,
)
from probes.metrics import layerwise_auroc

SOLVERS = ("auto", "lbfgs", "primal", "dual")
# "auto" uses a Newton solver while its step costs at most this many multiply-adds per layer.
NEWTON_MAX_STEP_WORK = 1_000_000


def choose_solver(n: int, d: int) -> str:
    """The solver ``"auto"`` uses for ``n`` training examples of width ``d``.

    A Newton step costs ``n d²`` multiply-adds per layer (primal, for ``n >= d``) or ``n² d``
    (dual, for ``n < d``); an L-BFGS iteration costs ``2 n d`` but there are about twice as
    many, and each runs about three times as many torch ops. On small problems those ops
    dominate and Newton wins; once a Newton step passes ``NEWTON_MAX_STEP_WORK`` multiply-adds
    per layer L-BFGS wins, by more the larger the problem (measured on one CPU thread, see
    docs/speed.md, "Probe fitting": e.g. 600 x 32 primal 2.4 ms vs L-BFGS 2.6 ms, 600 x 64
    3.7 ms vs 3.2 ms, 2000 x 256 267 ms vs 13 ms).

    >>> choose_solver(600, 32), choose_solver(40, 64), choose_solver(300, 128)
    ('primal', 'dual', 'lbfgs')
    """
    if n >= d:
        return "primal" if n * d * d <= NEWTON_MAX_STEP_WORK else "lbfgs"
    return "dual" if n * n * d <= NEWTON_MAX_STEP_WORK else "lbfgs"


def iteration_work(solver: str, n_layers: int, n: int, d: int, batch: int) -> int:
    """Multiply-adds in one iteration of ``solver`` (``"lbfgs"``, ``"primal"`` or ``"dual"``)
    on ``n_layers`` layers of ``n x d``, ``batch`` problems per layer solved together: L-BFGS's
    two passes over the features, a primal Newton step's Hessian, a dual step's Cholesky and
    kernel products (the Newton solvers take one problem per layer at a time)."""
    if solver == "lbfgs":
        return 2 * n_layers * batch * n * d
    if solver == "primal":
        return n_layers * n * (d + 1) ** 2
    if solver == "dual":
        return n_layers * (n**3 // 3 + 4 * n * n)
    raise ValueError(f"unknown solver {solver!r}; expected 'lbfgs', 'primal' or 'dual'.")


def fit_threads(solver: str, n_layers: int, n: int, d: int, batch: int, available: int) -> int:
    """The torch threads a CPU fit uses, out of ``available`` (the caller's count): one per
    ``probes._threads.WORK_PER_THREAD`` multiply-adds of :func:`iteration_work`, at least one.

    >>> fit_threads("lbfgs", 5, 300, 512, 1, 2), fit_threads("lbfgs", 8, 2000, 256, 1, 2)
    (1, 2)
    """
    return choose_threads(iteration_work(solver, n_layers, n, d, batch), available)


def standardise(
    X: Float[Tensor, "layers n d"],
) -> tuple[Float[Tensor, "layers n d"], Float[Tensor, "layers d"], Float[Tensor, "layers d"]]:
    """``((X - mean) / scale, mean, scale)`` per layer: the standardised copy in ``X``'s dtype,
    the mean and std in float64; a constant feature gets scale 1.

    Column sums are matrix products with a ones vector (a strided ``sum`` over the example axis
    is 10-20x slower here). Raises when ``X`` holds NaN or infinity: they propagate into the
    sums, so no separate pass over ``X`` is needed to find them.
    """
    n_layers, n, d = X.shape
    weights = torch.full((n_layers, 1, n), 1.0 / n, dtype=X.dtype, device=X.device)
    mean = torch.bmm(weights, X)
    centred = X - mean
    # The squares go through a small reused buffer, a few layers at a time: a second copy of X
    # costs more in fresh pages than in arithmetic (measured 10 ms against 1.5 ms at 8 x 2000 x
    # 256 on this CPU).
    var = torch.empty_like(mean)
    chunk = max(1, (1 << 20) // (n * d))
    buffer = torch.empty(min(chunk, n_layers), n, d, dtype=X.dtype, device=X.device)
    for start in range(0, n_layers, chunk):
        part = slice(start, min(start + chunk, n_layers))
        squares = buffer[: part.stop - part.start]
        torch.mul(centred[part], centred[part], out=squares)
        torch.bmm(weights[part], squares, out=var[part])
    mean64, var64 = mean[:, 0].double(), var[:, 0].double()
    if not bool(torch.isfinite(mean64).all() & torch.isfinite(var64).all()):
        raise ValueError("X contains NaN or infinite values; drop or fix those examples first.")
    std = var64.sqrt()
    eps = torch.finfo(X.dtype).eps
    constant = std < 10 * eps * mean64.abs().clamp(min=1.0)
    scale = torch.where(constant, torch.ones_like(std), std)
    return centred.div_(scale[:, None, :].to(X.dtype)), mean64, scale


@dataclass(frozen=True)
class _Solution:
    w: Float[Tensor, "layers grid d"]  # standardised coordinates
    b: Float[Tensor, "layers grid"]
    n_iter: Int[Tensor, "layers grid"]
    converged: Bool[Tensor, "layers grid"]


def _newton(
    X_std: Float[Tensor, "layers n d"],
    y: Float[Tensor, "grid n"],
    C: Sequence[float],
    solver: str,
    tol: float,
    max_iter: int,
) -> _Solution:
    """One Newton solve per grid entry (the Newton solvers take one C and one label set)."""
    n_layers, n, d = X_std.shape
    device = X_std.device
    X_std = X_std.double()
    if solver == "primal":
        Xa = torch.cat([X_std, X_std.new_ones(n_layers, n, 1)], dim=2)
        del X_std
    parts = []
    for g, c in enumerate(C):
        labels = y[min(g, y.shape[0] - 1)][None, :]
        if solver == "dual":
            w, b, n_iter, converged = dual_newton(X_std, labels, c, max_iter, tol * n)
        else:
            penalty = torch.full((d + 1,), 1.0 / c, dtype=torch.float64, device=device)
            penalty[-1] = 0.0  # the intercept is not penalised
            beta, n_iter, converged = primal_newton(Xa, labels, penalty, max_iter, tol * n)
            w, b = beta[:, :d], beta[:, d]
        parts.append((w, b, n_iter, converged))
    return _Solution(*(torch.stack(list(p), dim=1) for p in zip(*parts, strict=True)))


def _sequential(C: Sequence[float], n_label_sets: int, warm_start: bool) -> bool:
    """Whether L-BFGS goes through the grid one C at a time (warm starts on shared labels)."""
    return warm_start and len(C) > 1 and n_label_sets == 1


def _lbfgs(
    X_std: Float[Tensor, "layers n d"],
    y: Float[Tensor, "grid n"],
    C: Sequence[float],
    tol: float,
    max_iter: int,
    warm_start: bool,
) -> _Solution:
    """All grid entries in one batch, or (``warm_start`` with shared labels) one C at a time
    from the strongest regularisation to the weakest, each starting from the previous optimum."""
    Cs = torch.tensor(list(C), dtype=torch.float64, device=X_std.device)
    if not _sequential(C, y.shape[0], warm_start):
        r = lbfgs_logistic(X_std, y, Cs, tol, max_iter)
        return _Solution(r.w, r.b, r.n_iter, r.converged)
    order = sorted(range(len(C)), key=lambda i: C[i])
    results: dict[int, Any] = {}
    init = None
    for i in order:
        r = lbfgs_logistic(X_std, y, Cs[i : i + 1], tol, max_iter, init=init)
        init = (r.w, r.b)
        results[i] = r
    rs = [results[i] for i in range(len(C))]
    return _Solution(
        torch.cat([r.w for r in rs], 1),
        torch.cat([r.b for r in rs], 1),
        torch.cat([r.n_iter for r in rs], 1),
        torch.cat([r.converged for r in rs], 1),
    )


def _check_settings(C: Sequence[float], tol: float, max_iter: int, solver: str) -> None:
    if len(C) == 0 or not all(c > 0 for c in C):
        raise ValueError(f"C must be positive (inverse L2 strength), got {list(C)}.")
    if int(max_iter) < 1:
        raise ValueError(f"max_iter must be at least 1, got {max_iter}.")
    if not tol > 0:
        raise ValueError(f"tol must be positive, got {tol}.")
    if solver not in SOLVERS:
        raise ValueError(
            f"solver must be one of {SOLVERS}, got {solver!r}; 'auto' picks by shape "
            f"(probes.logistic.choose_solver)."
        )


def _fit(
    X: Any,
    y: Any,
    C: Sequence[float],
    tol: float,
    max_iter: int,
    solver: str,
    warm_start: bool = True,
) -> tuple[Tensor, Tensor, _Solution, str, int]:
    """Checks, standardisation and the solve shared by the probe and the grid; returns the
    standardisation, the solution, the solver and the torch threads it ran on.
    ``y``: ``[n]`` labels, or ``[len(C), n]`` (one label set per grid entry)."""
    _check_settings(C, tol, max_iter, solver)
    X = to_float_activations(X)
    n_layers, n, d = X.shape
    y_np = np.asarray(y.detach().cpu() if isinstance(y, Tensor) else y)
    rows = y_np.reshape(1, -1) if y_np.ndim == 1 else y_np
    if rows.ndim != 2 or rows.shape[0] not in (1, len(C)):
        raise ValueError(
            f"y must be [n] labels or one row of labels per C value ([{len(C)}, n]), got "
            f"shape {tuple(y_np.shape)}."
        )
    labels = torch.stack([to_label_tensor(row, n, X.device) for row in rows]).to(torch.float64)
    chosen = choose_solver(n, d) if solver == "auto" else solver
    threads = torch.get_num_threads()
    if X.device.type == "cpu":
        one_at_a_time = chosen != "lbfgs" or _sequential(C, rows.shape[0], warm_start)
        threads = fit_threads(chosen, n_layers, n, d, 1 if one_at_a_time else len(C), threads)
    with torch_threads(threads):
        X_std, mean, scale = standardise(X)
        if chosen == "lbfgs":
            sol = _lbfgs(X_std, labels, C, tol, int(max_iter), warm_start)
        else:
            sol = _newton(X_std, labels, C, chosen, tol, int(max_iter))
    if not bool(sol.converged.all()):
        bad = torch.nonzero(~sol.converged.all(dim=1)).flatten().tolist()
        warnings.warn(
            f"The {chosen} solver did not reach tol={tol} within max_iter={max_iter} "
            f"iterations on layers {bad}; increase max_iter or decrease C.",
            ConvergenceWarning,
            stacklevel=3,
        )
    return mean, scale, sol, chosen, threads


class LayerwiseLogisticProbe(BaseEstimator):  # type: ignore[misc]
    """L2 logistic probe per layer, all layers fitted in one batched solve.

    Learned attributes: ``mean_``/``scale_`` (training standardisation, ``[layers, d]``),
    ``coef_`` (``[layers, d]``) and ``intercept_`` (``[layers]``) in the original feature
    space, so ``decision_function(X) == X @ coef_ + intercept_``; ``n_iter_`` (``[layers]``,
    iterations each layer needed), ``solver_`` (the solver used; see the module docstring) and
    ``threads_`` (the torch threads the fit ran on: :func:`fit_threads` on the CPU).

    ``tol``: stop when the gradient of the mean objective has max-norm below it
    (scikit-learn's rule). ``solver``: ``"auto"`` (default), ``"lbfgs"``, ``"primal"`` or
    ``"dual"``. L-BFGS computes in float32 on float32 input; there a ``tol`` much below 1e-6
    may be out of reach (a ``ConvergenceWarning`` says so): pass float64 for tighter fits.

    Example (``X_*``: ``[layers, n, d]`` activations, ``y_*``: ``[n]`` 0/1 labels)::

        probe = LayerwiseLogisticProbe(C=1.0).fit(X_train, y_train)
        auroc_per_layer = probe.score(X_test, y_test)  # Tensor [layers]
        logits = probe.decision_function(X_test)  # Tensor [layers, n]
    """

    def __init__(
        self, C: float = 1.0, max_iter: int = 1000, tol: float = 1e-4, solver: str = "auto"
    ) -> None:
        self.C = C
        self.max_iter = max_iter
        self.tol = tol
        self.solver = solver

    def fit(self, X: Any, y: Any) -> LayerwiseLogisticProbe:
        """Fit one probe per layer on ``X`` (``[layers, n, d]``, torch or numpy) and 0/1 ``y``."""
        check_binary_labels(y, "y")
        mean, scale, sol, chosen, threads = _fit(
            X, y, [float(self.C)], float(self.tol), int(self.max_iter), self.solver
        )
        self.mean_: Float[Tensor, "layers d"] = mean
        self.scale_: Float[Tensor, "layers d"] = scale
        self.coef_: Float[Tensor, "layers d"] = sol.w[:, 0] / scale
        self.intercept_: Float[Tensor, " layers"] = sol.b[:, 0] - (self.coef_ * mean).sum(-1)
        self.n_iter_: Int[Tensor, " layers"] = sol.n_iter[:, 0]
        self.n_features_in_: int = int(mean.shape[1])
        self.solver_: str = chosen
        self.threads_: int = threads
        return self

    def _check_input(self, X: Any) -> Float[Tensor, "layers n d"]:
        check_is_fitted(self, ["coef_", "intercept_"])
        X64 = to_float64_activations(X).to(self.coef_.device)
        n_layers, d = self.coef_.shape
        if X64.shape[0] != n_layers or X64.shape[2] != d:
            raise ValueError(
                f"X has shape {tuple(X64.shape)} but the probe was fitted on {n_layers} layers "
                f"of width d={d}; pass X of shape [{n_layers}, n, {d}]."
            )
        return X64

    def decision_function(self, X: Any) -> Float[Tensor, "layers n"]:
        """Per-layer logits ``X @ coef_ + intercept_`` (float64); higher = trigger present."""
        X64 = self._check_input(X)
        return torch.einsum("lnd,ld->ln", X64, self.coef_) + self.intercept_[:, None]

    def predict_proba(self, X: Any) -> Float[Tensor, "layers n"]:
        """Per-layer probability of class 1 (trigger present)."""
        return torch.sigmoid(self.decision_function(X))

    def predict(self, X: Any) -> Int[Tensor, "layers n"]:
        """Per-layer 0/1 predictions (1 where the logit is positive)."""
        return (self.decision_function(X) > 0).to(torch.int64)

    def score(self, X: Any, y: Any) -> Float[Tensor, " layers"]:
        """Held-out AUROC per layer (note: AUROC, not accuracy as in scikit-learn)."""
        scores = self.decision_function(X)
        return torch.from_numpy(layerwise_auroc(scores, y))
