"""An L2 logistic-regression probe fitted on every layer at once (batched Newton / IRLS).

Per layer the objective is scikit-learn's ``LogisticRegression(C=C)`` (L2, intercept not
penalised) on features standardised with the training data's mean and std:

    sum_i logloss(y_i, x̃_i·w + b) + ||w||² / (2C)

It is minimised for all layers together with damped Newton's method (``probes._newton``), with
a per-layer backtracking line search so no layer can diverge, and a stop once every layer's
gradient max-norm is below ``tol``. ``solver="primal"`` solves a ``(d+1) x (d+1)`` system per
step (best when n > d); ``solver="dual"`` solves an ``n x n`` one built from the kernel ``X̃X̃ᵀ``
(best when n < d); ``"auto"`` picks by shape. Both reach the same optimum.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from jaxtyping import Float, Int
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted
from torch import Tensor

from probes._newton import dual_newton, primal_newton
from probes._validation import to_float64_activations, to_label_tensor
from probes.metrics import layerwise_auroc

SOLVERS = ("auto", "primal", "dual")


class LayerwiseLogisticProbe(BaseEstimator):  # type: ignore[misc]
    """L2 logistic probe per layer, all layers fitted in one batched Newton solve.

    Learned attributes: ``mean_``/``scale_`` (training standardisation, ``[layers, d]``),
    ``coef_`` (``[layers, d]``) and ``intercept_`` (``[layers]``) in the original feature
    space, so ``decision_function(X) == X @ coef_ + intercept_``, and ``n_iter_``
    (``[layers]``, Newton steps each layer needed).

    ``solver``: ``"auto"`` (default), ``"primal"`` or ``"dual"``; see the module docstring.

    Example (``X_*``: ``[layers, n, d]`` activations, ``y_*``: ``[n]`` 0/1 labels)::

        probe = LayerwiseLogisticProbe(C=1.0).fit(X_train, y_train)
        auroc_per_layer = probe.score(X_test, y_test)  # Tensor [layers]
        logits = probe.decision_function(X_test)  # Tensor [layers, n]
    """

    def __init__(
        self, C: float = 1.0, max_iter: int = 50, tol: float = 1e-6, solver: str = "auto"
    ) -> None:
        self.C = C
        self.max_iter = max_iter
        self.tol = tol
        self.solver = solver

    def _check_hyperparameters(self) -> None:
        if not self.C > 0:
            raise ValueError(f"C must be positive (inverse L2 strength), got {self.C}.")
        if int(self.max_iter) < 1:
            raise ValueError(f"max_iter must be at least 1, got {self.max_iter}.")
        if not self.tol > 0:
            raise ValueError(f"tol must be positive, got {self.tol}.")
        if self.solver not in SOLVERS:
            raise ValueError(
                f"solver must be one of {SOLVERS}, got {self.solver!r}; 'auto' picks 'dual' "
                f"when there are fewer training examples than features, else 'primal'."
            )

    def fit(self, X: Any, y: Any) -> LayerwiseLogisticProbe:
        """Fit one probe per layer on ``X`` (``[layers, n, d]``, torch or numpy) and 0/1 ``y``."""
        self._check_hyperparameters()
        X64 = to_float64_activations(X)
        n_layers, n, d = X64.shape
        labels = to_label_tensor(y, n, X64.device).to(torch.float64)[None, :]

        # Two passes (mean, then the centred data) rather than torch.std_mean, which is ~3x
        # slower here; the centred copy is reused for the standardised features.
        mean = X64.mean(dim=1)
        centred = X64 - mean[:, None, :]
        std = centred.square().mean(dim=1).sqrt()
        eps = torch.finfo(torch.float64).eps
        scale = torch.where(std < 10 * eps * mean.abs().clamp(min=1.0), torch.ones_like(std), std)
        solver = self.solver
        if solver == "auto":
            solver = "dual" if n < d else "primal"
        if solver == "dual":
            X_std = centred.div_(scale[:, None, :])
            w_std, b_std, n_iter, converged = dual_newton(
                X_std, labels, float(self.C), int(self.max_iter), float(self.tol)
            )
        else:
            Xa = torch.empty(n_layers, n, d + 1, dtype=torch.float64, device=X64.device)
            torch.div(centred, scale[:, None, :], out=Xa[..., :d])
            del centred
            Xa[..., d] = 1.0
            penalty = torch.full((d + 1,), 1.0 / float(self.C), dtype=torch.float64)
            penalty[-1] = 0.0  # intercept is not penalised
            beta, n_iter, converged = primal_newton(
                Xa, labels, penalty.to(X64.device), int(self.max_iter), float(self.tol)
            )
            w_std, b_std = beta[:, :d], beta[:, d]
        if not bool(converged.all()):
            bad = torch.nonzero(~converged).flatten().tolist()
            warnings.warn(
                f"LayerwiseLogisticProbe did not reach tol={self.tol} within "
                f"max_iter={self.max_iter} Newton steps on layers {bad}; increase max_iter "
                f"or decrease C.",
                ConvergenceWarning,
                stacklevel=2,
            )

        self.mean_: Float[Tensor, "layers d"] = mean
        self.scale_: Float[Tensor, "layers d"] = scale
        self.coef_: Float[Tensor, "layers d"] = w_std / scale
        self.intercept_: Float[Tensor, " layers"] = b_std - (self.coef_ * mean).sum(-1)
        self.n_iter_: Int[Tensor, " layers"] = n_iter
        self.n_features_in_: int = d
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
