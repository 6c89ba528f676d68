"""Many logistic probes at once: every layer x every C value (or label set) in one solve.

grid = fit_logistic_grid(X_train, y_train, C=[0.01, 0.1, 1.0, 10.0])
grid.coef.shape                      # [layers, 4, d]
grid.score(X_test, y_test)           # AUROC [layers, 4]
probe = grid.probe(2)                # the C=1.0 probes as a LayerwiseLogisticProbe
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor

from probes._validation import to_float64_activations
from probes.logistic import LayerwiseLogisticProbe, _fit
from probes.metrics import layerwise_auroc


@dataclass(frozen=True)
class LogisticGrid:
    """Logistic probes for every layer x grid entry (a C value, or a label set), fitted at once.

    ``coef``/``intercept`` are in the original feature space, like the probe's, so
    ``decision_function(X)[l, g] == X[l] @ coef[l, g] + intercept[l, g]``. ``solver`` and
    ``threads`` are the solver and the torch threads the fit used.
    """

    C: tuple[float, ...]
    mean: Float[Tensor, "layers d"]
    scale: Float[Tensor, "layers d"]
    coef: Float[Tensor, "layers grid d"]
    intercept: Float[Tensor, "layers grid"]
    n_iter: Int[Tensor, "layers grid"]
    solver: str
    tol: float
    max_iter: int
    threads: int

    def decision_function(self, X: Any) -> Float[Tensor, "layers grid n"]:
        """Logits of every probe on ``X`` (``[layers, n, d]``), float64."""
        X64 = to_float64_activations(X).to(self.coef.device)
        if X64.shape[0] != self.coef.shape[0] or X64.shape[2] != self.coef.shape[2]:
            raise ValueError(
                f"X has shape {tuple(X64.shape)} but the grid was fitted on "
                f"{self.coef.shape[0]} layers of width d={self.coef.shape[2]}."
            )
        return torch.bmm(self.coef, X64.transpose(1, 2)) + self.intercept[..., None]

    def score(self, X: Any, y: Any) -> Float[Tensor, "layers grid"]:
        """Held-out AUROC of every probe."""
        scores = self.decision_function(X)
        n_layers, G, n = scores.shape
        flat = layerwise_auroc(scores.reshape(n_layers * G, n), y)
        return torch.from_numpy(flat).reshape(n_layers, G)

    def probe(self, index: int) -> LayerwiseLogisticProbe:
        """The fitted ``LayerwiseLogisticProbe`` (all layers) of grid entry ``index``."""
        probe = LayerwiseLogisticProbe(
            C=self.C[index], max_iter=self.max_iter, tol=self.tol, solver=self.solver
        )
        probe.mean_, probe.scale_ = self.mean, self.scale
        probe.coef_ = self.coef[:, index].contiguous()
        probe.intercept_ = self.intercept[:, index].contiguous()
        probe.n_iter_ = self.n_iter[:, index].contiguous()
        probe.n_features_in_ = int(self.mean.shape[1])
        probe.solver_ = self.solver
        probe.threads_ = self.threads
        return probe


def fit_logistic_grid(
    X: Any,
    y: Any,
    C: float | Sequence[float],
    tol: float = 1e-4,
    max_iter: int = 1000,
    solver: str = "auto",
    warm_start: bool = True,
) -> LogisticGrid:
    """Fit an L2 logistic probe for every layer of ``X`` (``[layers, n, d]``) and every grid
    entry: each value of ``C`` with the labels ``y`` (``[n]``), or, with ``y`` of shape
    ``[len(C), n]`` (``C`` a float is repeated), one label set per entry (e.g. permutations).

    Same objective, standardisation and stopping rule as :class:`LayerwiseLogisticProbe`, which
    is what one grid entry returns. With ``warm_start`` (and shared labels) the L-BFGS solver
    goes through C from smallest (strongest regularisation) to largest, starting each from the
    previous optimum; otherwise every entry starts cold in one batch. On the CPU the fit runs on
    :func:`probes.logistic.fit_threads` of the caller's torch threads (``grid.threads``).

    >>> X = torch.randn(2, 40, 3, generator=torch.Generator().manual_seed(0))
    >>> grid = fit_logistic_grid(X, [0, 1] * 20, C=[0.1, 1.0, 10.0])
    >>> tuple(grid.coef.shape), grid.solver
    ((2, 3, 3), 'primal')
    """
    y_np = np.asarray(y.detach().cpu() if isinstance(y, Tensor) else y)
    if isinstance(C, (int, float)):
        Cs = (float(C),) * (y_np.shape[0] if y_np.ndim == 2 else 1)
    else:
        Cs = tuple(float(c) for c in C)
    mean, scale, sol, chosen, threads = _fit(
        X, y_np, Cs, float(tol), int(max_iter), solver, warm_start
    )
    coef = sol.w / scale[:, None, :]
    return LogisticGrid(
        C=Cs,
        mean=mean,
        scale=scale,
        coef=coef,
        intercept=sol.b - torch.linalg.vecdot(coef, mean[:, None, :]),
        n_iter=sol.n_iter,
        solver=chosen,
        tol=float(tol),
        max_iter=int(max_iter),
        threads=threads,
    )
