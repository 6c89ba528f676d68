"""An L2 logistic-regression probe fitted on every layer at once (batched Newton / IRLS).

Per layer the objective is scikit-learn's ``LogisticRegression(C=C)`` (L2, intercept not
penalised) on features standardised with the training data's mean and std:

    sum_i logloss(y_i, x̃_i·w + b) + ||w||² / (2C)

It is minimised for all layers together with Newton's method: one batched
``torch.linalg.solve`` of ``X̃ᵀWX̃ + I/C`` per iteration, a per-layer backtracking line search
so no layer can diverge, and a stop once every layer's gradient max-norm is below ``tol``.
Memory is dominated by the Hessians, ``layers x (d+1)²`` float64 values.
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

from probes._validation import to_float64_activations, to_label_tensor
from probes.metrics import layerwise_auroc

_ARMIJO = 1e-4  # sufficient-decrease constant of the line search
_MAX_HALVINGS = 60  # step halvings tried per iteration before a layer gives up on this step


def _objective(
    Xa: Float[Tensor, "layers n k"],
    y: Float[Tensor, "1 n"],
    beta: Float[Tensor, "layers k"],
    penalty: Float[Tensor, " k"],
) -> Float[Tensor, " layers"]:
    """Penalised log-loss per layer; ``beta`` and ``Xa`` carry the intercept as last column."""
    z = torch.einsum("lnk,lk->ln", Xa, beta)
    loss = torch.logaddexp(torch.zeros_like(z), z) - y * z
    return loss.sum(-1) + 0.5 * (penalty * beta * beta).sum(-1)


class LayerwiseLogisticProbe(BaseEstimator):  # type: ignore[misc]
    """L2 logistic probe per layer, all layers fitted in one batched Newton solve.

    Learned attributes: ``mean_``/``scale_`` (training standardisation, ``[layers, d]``),
    ``coef_`` (``[layers, d]``) and ``intercept_`` (``[layers]``) in the original feature
    space, so ``decision_function(X) == X @ coef_ + intercept_``, and ``n_iter_``
    (``[layers]``, Newton steps each layer needed).

    Example (``X_*``: ``[layers, n, d]`` activations, ``y_*``: ``[n]`` 0/1 labels)::

        probe = LayerwiseLogisticProbe(C=1.0).fit(X_train, y_train)
        auroc_per_layer = probe.score(X_test, y_test)  # Tensor [layers]
        logits = probe.decision_function(X_test)  # Tensor [layers, n]
    """

    def __init__(self, C: float = 1.0, max_iter: int = 50, tol: float = 1e-6) -> None:
        self.C = C
        self.max_iter = max_iter
        self.tol = tol

    def _check_hyperparameters(self) -> None:
        if not self.C > 0:
            raise ValueError(f"C must be positive (inverse L2 strength), got {self.C}.")
        if int(self.max_iter) < 1:
            raise ValueError(f"max_iter must be at least 1, got {self.max_iter}.")
        if not self.tol > 0:
            raise ValueError(f"tol must be positive, got {self.tol}.")

    def fit(self, X: Any, y: Any) -> LayerwiseLogisticProbe:
        """Fit one probe per layer on ``X`` (``[layers, n, d]``, torch or numpy) and 0/1 ``y``."""
        self._check_hyperparameters()
        X64 = to_float64_activations(X)
        n_layers, n, d = X64.shape
        labels = to_label_tensor(y, n, X64.device).to(torch.float64)[None, :]

        mean = X64.mean(dim=1)
        std = X64.std(dim=1, correction=0)
        eps = torch.finfo(torch.float64).eps
        scale = torch.where(std < 10 * eps * mean.abs().clamp(min=1.0), torch.ones_like(std), std)
        ones = torch.ones(n_layers, n, 1, dtype=torch.float64, device=X64.device)
        Xa = torch.cat([(X64 - mean[:, None, :]) / scale[:, None, :], ones], dim=-1)

        beta, n_iter, converged = self._newton(Xa, labels)
        if not bool(converged.all()):
            bad = torch.nonzero(~converged).flatten().tolist()
            warnings.warn(
                f"LayerwiseLogisticProbe did not reach tol={self.tol} within "
                f"max_iter={self.max_iter} Newton steps on layers {bad}; increase max_iter "
                f"or decrease C.",
                ConvergenceWarning,
                stacklevel=2,
            )

        w_std, b_std = beta[:, :d], beta[:, d]
        self.mean_: Float[Tensor, "layers d"] = mean
        self.scale_: Float[Tensor, "layers d"] = scale
        self.coef_: Float[Tensor, "layers d"] = w_std / scale
        self.intercept_: Float[Tensor, " layers"] = b_std - (self.coef_ * mean).sum(-1)
        self.n_iter_: Int[Tensor, " layers"] = n_iter
        self.n_features_in_: int = d
        return self

    def _newton(
        self, Xa: Float[Tensor, "layers n k"], y: Float[Tensor, "1 n"]
    ) -> tuple[Float[Tensor, "layers k"], Int[Tensor, " layers"], Tensor]:
        """Damped Newton on all layers; returns (coefficients, steps per layer, converged)."""
        n_layers, _, k = Xa.shape
        device = Xa.device
        penalty = torch.full((k,), 1.0 / float(self.C), dtype=torch.float64, device=device)
        penalty[-1] = 0.0  # intercept is not penalised
        beta = torch.zeros(n_layers, k, dtype=torch.float64, device=device)
        n_iter = torch.zeros(n_layers, dtype=torch.int64, device=device)
        converged = torch.zeros(n_layers, dtype=torch.bool, device=device)
        eps = torch.finfo(torch.float64).eps
        Xa32 = Xa.float()

        for step_index in range(int(self.max_iter) + 1):
            z = torch.einsum("lnk,lk->ln", Xa, beta)
            p = torch.sigmoid(z)
            grad = torch.einsum("lnk,ln->lk", Xa, p - y) + penalty * beta
            converged = grad.abs().amax(dim=-1) < self.tol
            if bool(converged.all()) or step_index == int(self.max_iter):
                break

            active = torch.nonzero(~converged).flatten()
            X_act = Xa[active]
            weights = (p * (1.0 - p))[active]
            # The Hessian only steers the step; the gradient and the convergence test stay in
            # float64, so the fit converges to the same optimum. Building it in float32 halves
            # the dominant cost (L x n x k^2 multiply-adds per step).
            X32 = Xa32[active]
            hessian = ((X32 * weights.float()[..., None]).transpose(1, 2) @ X32).double()
            hessian = hessian + torch.diag(penalty)
            direction = -torch.linalg.solve(hessian, grad[active])

            f_old = _objective(X_act, y, beta[active], penalty)
            slope = (grad[active] * direction).sum(-1)
            slack = 16 * eps * (1.0 + f_old.abs())  # tolerate rounding near the optimum
            step = torch.ones(active.shape[0], dtype=torch.float64, device=device)
            accepted = torch.zeros(active.shape[0], dtype=torch.bool, device=device)
            new_beta = beta[active].clone()
            for _ in range(_MAX_HALVINGS):
                candidate = beta[active] + step[:, None] * direction
                f_new = _objective(X_act, y, candidate, penalty)
                ok = (f_new <= f_old + _ARMIJO * step * slope + slack) & ~accepted
                new_beta = torch.where(ok[:, None], candidate, new_beta)
                accepted |= ok
                if bool(accepted.all()):
                    break
                step = torch.where(accepted, step, step / 2)
            beta[active] = new_beta
            n_iter[active] += 1
        return beta, n_iter, converged

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
