"""Batched detectors beyond logistic regression: mass-mean, LDA, Mahalanobis, random baseline.

Every estimator takes activations of shape ``[layers, n, d]`` (torch or numpy) and works on
all layers at once (batched einsum / Cholesky solves, no Python loop over layers).
Scores are float64 tensors of shape ``[layers, n]``; higher = trigger / anomaly (label 1).

- :class:`DiffMeansProbe`: direction = mean(class 1) - mean(class 0).
- :class:`LDAProbe`: Fisher LDA, direction = Σ_s⁻¹ (μ1 - μ0) with a shrunk pooled covariance.
- :class:`MahalanobisDetector`: unsupervised, squared Mahalanobis distance to trusted data.
- :class:`RandomDirectionBaseline`: AUROCs of random unit directions (a chance reference).

Shrinkage everywhere is ``Σ_s = (1 - α) Σ + α (tr(Σ) / d) I`` with ``α = shrinkage``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from jaxtyping import Float, Int
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted
from torch import Tensor

from probes._validation import to_float64_activations, to_label_tensor, to_numpy_1d
from probes.metrics import layerwise_auroc

# Random-direction scores are ranked in chunks holding at most this many values.
_CHUNK_VALUES = 4_000_000


def _check_shrinkage(shrinkage: float) -> float:
    value = float(shrinkage)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"shrinkage must lie in [0, 1] (0 = sample covariance), got {shrinkage}.")
    return value


def _shrunk_covariance(
    centred: Float[Tensor, "layers n d"], dof: int, shrinkage: float
) -> Float[Tensor, "layers d d"]:
    """``(1-α) Σ + α (tr Σ / d) I`` with ``Σ = centredᵀ centred / dof`` per layer.

    A layer whose features are all constant (``tr Σ = 0``: e.g. a rotary model's embedding
    at a prompt's last token, the same token in every prompt) shrinks towards ``I`` instead,
    so that with ``α > 0`` it is invertible and scores every example alike."""
    d = centred.shape[-1]
    cov = torch.einsum("lnd,lne->lde", centred, centred) / dof
    target = torch.diagonal(cov, dim1=-2, dim2=-1).sum(-1) / d
    target = torch.where(target > 0, target, torch.ones_like(target))
    eye = torch.eye(d, dtype=cov.dtype, device=cov.device)
    return (1.0 - shrinkage) * cov + shrinkage * target[:, None, None] * eye


def _solve(
    cov: Float[Tensor, "layers d d"],
    rhs: Float[Tensor, "layers d k"],
    what: str,
    shrinkage: float = 0.0,
) -> Float[Tensor, "layers d k"]:
    """Batched ``cov⁻¹ rhs`` with a clear error when some layer's covariance is singular.

    Singular means an eigenvalue at or below ``d · eps · λ_max`` (rounding makes an exactly
    rank-deficient matrix look invertible to ``solve``, so the spectrum is checked first).
    A covariance shrunk by more than ``2 d² eps`` cannot be: its smallest eigenvalue is at least
    ``α tr(Σ)/d`` and its largest at most ``tr(Σ)``, so that check (an eigendecomposition, half
    of a fit's time) is skipped there, and only Cholesky's own check remains.
    The solve is Cholesky's (the covariance is symmetric positive definite once checked), not
    the batched LU of ``torch.linalg.solve``: on torch 2.13's CPU build with MKL, that returns
    wrong solutions (or fails on its pivots) for a batch of matrices wider than about 128 once
    the process has called ``torch.set_num_threads`` with two threads or more, as the probe
    fits do (``probes._threads``).
    """
    d, eps = cov.shape[-1], torch.finfo(cov.dtype).eps
    if shrinkage <= 2 * d * d * eps:
        eigenvalues = torch.linalg.eigvalsh(cov)
        floor = d * eps * eigenvalues[:, -1].clamp(min=0.0)
        singular = (eigenvalues[:, 0] <= floor) | (eigenvalues[:, -1] <= 0)
        if bool(singular.any()):
            layers = torch.nonzero(singular).flatten().tolist()
            raise ValueError(
                f"The {what} covariance is singular on layers {layers} (constant features or "
                f"n <= d); increase shrinkage (> 0) or pass more examples."
            )
    factor, info = torch.linalg.cholesky_ex(cov)
    if bool((info > 0).any()):
        layers = torch.nonzero(info > 0).flatten().tolist()
        raise ValueError(
            f"The {what} covariance is not positive definite on layers {layers}; increase "
            f"shrinkage (> 0) or pass more examples."
        )
    return torch.cholesky_solve(rhs, factor)


class _LayerwiseDetector(BaseEstimator):  # type: ignore[misc]
    """Shared input check: ``X`` must match the fitted layer count and width."""

    _shape_attribute = "coef_"

    def _check_input(self, X: Any) -> Float[Tensor, "layers n d"]:
        check_is_fitted(self, [self._shape_attribute])
        reference: Tensor = getattr(self, self._shape_attribute)
        X64 = to_float64_activations(X).to(reference.device)
        n_layers, d = reference.shape[0], reference.shape[-1]
        if X64.shape[0] != n_layers or X64.shape[2] != d:
            raise ValueError(
                f"X has shape {tuple(X64.shape)} but the detector was fitted on {n_layers} "
                f"layers of width d={d}; pass X of shape [{n_layers}, n, {d}]."
            )
        return X64


class _LinearProbe(_LayerwiseDetector):
    """A per-layer linear score ``X @ coef_ + intercept_``."""

    coef_: Float[Tensor, "layers d"]
    intercept_: Float[Tensor, " layers"]

    def decision_function(self, X: Any) -> Float[Tensor, "layers n"]:
        """Per-layer scores ``X @ coef_ + intercept_`` (float64); higher = trigger present."""
        X64 = self._check_input(X)
        return torch.einsum("lnd,ld->ln", X64, self.coef_) + self.intercept_[:, None]

    def predict(self, X: Any) -> Int[Tensor, "layers n"]:
        """Per-layer 0/1 predictions (1 where the score is positive)."""
        return (self.decision_function(X) > 0).to(torch.int64)

    def score(self, X: Any, y: Any) -> Float[Tensor, " layers"]:
        """Held-out AUROC per layer (note: AUROC, not accuracy as in scikit-learn)."""
        return torch.from_numpy(layerwise_auroc(self.decision_function(X), y))


def _class_means(
    X: Float[Tensor, "layers n d"], labels: Int[Tensor, " n"]
) -> Float[Tensor, "layers 2 d"]:
    """Per-layer means of class 0 and class 1 (stacked on axis 1)."""
    positive = labels == 1
    return torch.stack([X[:, ~positive].mean(dim=1), X[:, positive].mean(dim=1)], dim=1)


class DiffMeansProbe(_LinearProbe):
    """Mass-mean probe: ``coef_ = mean(class 1) - mean(class 0)`` per layer.

    With ``center=True`` the intercept puts 0 at the midpoint of the two class means (so
    :meth:`predict` is the nearest-mean rule along the direction); with ``center=False`` the
    score is the raw projection ``X @ coef_`` and :meth:`predict` is refused. There is no
    ``predict_proba``: the score's scale is arbitrary, so a sigmoid of it is not a probability.

    Learned attributes: ``means_`` (``[layers, 2, d]``, class 0 then 1), ``coef_``
    (``[layers, d]``), ``intercept_`` (``[layers]``), ``n_features_in_``.
    """

    def __init__(self, center: bool = True) -> None:
        self.center = center

    def fit(self, X: Any, y: Any) -> DiffMeansProbe:
        """Fit on ``X`` (``[layers, n, d]``) and 0/1 labels ``y`` (``[n]``, both classes)."""
        X64 = to_float64_activations(X)
        labels = to_label_tensor(y, X64.shape[1], X64.device)
        means = _class_means(X64, labels)
        coef = means[:, 1] - means[:, 0]
        if self.center:
            intercept = -(coef * means.mean(dim=1)).sum(-1)
        else:
            intercept = torch.zeros(coef.shape[0], dtype=torch.float64, device=coef.device)
        self.means_: Float[Tensor, "layers 2 d"] = means
        self.coef_ = coef
        self.intercept_ = intercept
        self.n_features_in_: int = X64.shape[2]
        return self

    def predict(self, X: Any) -> Int[Tensor, "layers n"]:
        """Per-layer nearest-mean 0/1 predictions (needs ``center=True``)."""
        if not self.center:
            raise ValueError(
                "predict needs center=True: with center=False the score has no threshold at 0."
            )
        return super().predict(X)


class LDAProbe(_LinearProbe):
    """Fisher LDA with a shrunk pooled within-class covariance, all layers in one solve.

    ``coef_ = Σ_s⁻¹ (μ1 - μ0)`` with ``Σ_s = (1-α) Σ + α (tr(Σ)/d) I``, ``Σ`` the pooled
    within-class covariance (``n - 2`` degrees of freedom). The intercept is the Gaussian
    equal-covariance log-odds offset ``-coef_·(μ0 + μ1)/2 + log(n1/n0)``, so
    :meth:`predict_proba` (the sigmoid of the score) is the class-1 posterior under that
    model with the training class prior; it is only as calibrated as the model is right.

    Learned attributes: ``means_`` (``[layers, 2, d]``), ``coef_`` (``[layers, d]``),
    ``intercept_`` (``[layers]``), ``n_features_in_``. Fitting builds ``[layers, d, d]``
    covariances (float64).
    """

    def __init__(self, shrinkage: float = 0.1) -> None:
        self.shrinkage = shrinkage

    def fit(self, X: Any, y: Any) -> LDAProbe:
        """Fit on ``X`` (``[layers, n, d]``) and 0/1 labels ``y`` (``[n]``, both classes)."""
        alpha = _check_shrinkage(self.shrinkage)
        X64 = to_float64_activations(X)
        n = X64.shape[1]
        labels = to_label_tensor(y, n, X64.device)
        if n < 3:
            raise ValueError(f"LDAProbe needs at least 3 examples, got {n}.")
        means = _class_means(X64, labels)
        centred = X64 - means[:, labels]
        cov = _shrunk_covariance(centred, n - 2, alpha)
        gap = means[:, 1] - means[:, 0]
        coef = _solve(cov, gap[..., None], "pooled within-class", alpha)
        coef = coef.squeeze(-1).contiguous()
        n_pos = int(labels.sum())
        log_prior = float(np.log(n_pos / (n - n_pos)))
        self.means_: Float[Tensor, "layers 2 d"] = means
        self.coef_ = coef
        self.intercept_ = -(coef * means.mean(dim=1)).sum(-1) + log_prior
        self.n_features_in_: int = X64.shape[2]
        return self

    def predict_proba(self, X: Any) -> Float[Tensor, "layers n"]:
        """Per-layer class-1 posterior under the shrunk Gaussian LDA model (sigmoid of score)."""
        return torch.sigmoid(self.decision_function(X))


def _trusted_only(y: Any, n: int) -> None:
    """Accept ``y`` that is None or all zeros (trusted); refuse anything else clearly."""
    if y is None:
        return
    labels = to_numpy_1d(y, "y")
    if labels.shape[0] != n:
        raise ValueError(
            f"y has {labels.shape[0]} labels but X has {n} examples (axis 1); "
            f"pass one label per example, or y=None."
        )
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("y must be None or 0/1 labels (0 = trusted/clean).")
    if labels.astype(np.int64).any():
        raise ValueError(
            f"MahalanobisDetector is fitted on trusted (clean) data only, but y marks "
            f"{int(labels.astype(np.int64).sum())} examples as positive; pass only the clean "
            f"examples (X[:, y == 0]) with y=None."
        )


class MahalanobisDetector(_LayerwiseDetector):
    """Anomaly score: squared Mahalanobis distance to the trusted mean, per layer.

    Fitted on trusted (clean) data only. ``decision_function(X)[l, i] =
    (x - mean_)ᵀ precision_ (x - mean_)`` with ``precision_ = Σ_s⁻¹`` and ``Σ_s`` the shrunk
    covariance of the trusted data; higher = more anomalous. No ``predict_proba`` (a distance
    is not a probability).

    Learned attributes: ``mean_`` (``[layers, d]``), ``precision_`` (``[layers, d, d]``,
    float64: ``layers x d²`` values, e.g. 4 GiB for 32 layers of d=4096), ``n_features_in_``.
    """

    _shape_attribute = "mean_"

    def __init__(self, shrinkage: float = 0.1) -> None:
        self.shrinkage = shrinkage

    def fit(self, X: Any, y: Any = None) -> MahalanobisDetector:
        """Fit on trusted ``X`` (``[layers, n, d]``); ``y`` must be None or all zeros."""
        alpha = _check_shrinkage(self.shrinkage)
        X64 = to_float64_activations(X)
        n_layers, n, d = X64.shape
        _trusted_only(y, n)
        if n < 2:
            raise ValueError(f"MahalanobisDetector needs at least 2 trusted examples, got {n}.")
        mean = X64.mean(dim=1)
        cov = _shrunk_covariance(X64 - mean[:, None, :], n - 1, alpha)
        eye = torch.eye(d, dtype=torch.float64, device=X64.device).expand(n_layers, d, d)
        precision = _solve(cov, eye, "trusted", alpha)
        self.mean_: Float[Tensor, "layers d"] = mean
        self.precision_: Float[Tensor, "layers d d"] = (
            0.5 * (precision + precision.mT)
        ).contiguous()
        self.n_features_in_: int = d
        return self

    def decision_function(self, X: Any) -> Float[Tensor, "layers n"]:
        """Squared Mahalanobis distance per layer and example; higher = more anomalous."""
        diff = self._check_input(X) - self.mean_[:, None, :]
        return torch.einsum("lnd,lde,lne->ln", diff, self.precision_, diff)

    def score(self, X: Any, y: Any) -> Float[Tensor, " layers"]:
        """AUROC per layer of the anomaly score against ``y`` (1 = anomalous / triggered)."""
        return torch.from_numpy(layerwise_auroc(self.decision_function(X), y))


class RandomDirectionBaseline(_LayerwiseDetector):
    """Chance reference: AUROC of ``n_directions`` random unit directions per layer.

    :meth:`fit` only reads ``X``'s shape and draws ``directions_`` (``[layers, n_directions,
    d]``, standard normal normalised to unit length, ``torch.Generator`` seeded with
    ``seed``); labels are never used and signs are never oriented, so the AUROC distribution
    is symmetric around 0.5 for any data. There is deliberately no ``decision_function``,
    ``predict`` or ``score``: this is a reference distribution, not a detector.
    """

    _shape_attribute = "directions_"

    def __init__(self, n_directions: int = 1000, seed: int = 0) -> None:
        self.n_directions = n_directions
        self.seed = seed

    def fit(self, X: Any, y: Any = None) -> RandomDirectionBaseline:
        """Draw the random directions for ``X``'s layer count and width (``y`` is ignored)."""
        if int(self.n_directions) < 1:
            raise ValueError(f"n_directions must be at least 1, got {self.n_directions}.")
        X64 = to_float64_activations(X)
        n_layers, _, d = X64.shape
        generator = torch.Generator().manual_seed(int(self.seed))
        draws = torch.randn(
            n_layers, int(self.n_directions), d, generator=generator, dtype=torch.float64
        )
        self.directions_: Float[Tensor, "layers k d"] = draws / draws.norm(dim=-1, keepdim=True)
        self.n_features_in_: int = d
        return self

    def auroc_distribution(self, X: Any, y: Any) -> Float[np.ndarray, "layers k"]:
        """AUROC of every random direction on every layer, ``[layers, n_directions]``."""
        X64 = self._check_input(X)
        directions = self.directions_.to(X64.device)
        n_layers, n, _ = X64.shape
        k = directions.shape[1]
        chunk = max(1, _CHUNK_VALUES // max(1, n_layers * n))
        result = np.empty((n_layers, k), dtype=np.float64)
        for start in range(0, k, chunk):  # chunks over directions bound the [l, k, n] scores
            stop = min(k, start + chunk)
            scores = torch.einsum("lnd,lkd->lkn", X64, directions[:, start:stop])
            flat = layerwise_auroc(scores.reshape(n_layers * (stop - start), n), y)
            result[:, start:stop] = flat.reshape(n_layers, stop - start)
        return result

    def summary(self, X: Any, y: Any) -> dict[str, Float[np.ndarray, " layers"]]:
        """Per-layer ``mean``, ``p95`` (95th percentile) and ``max`` of the random AUROCs."""
        dist = self.auroc_distribution(X, y)
        return {
            "mean": dist.mean(axis=1),
            "p95": np.quantile(dist, 0.95, axis=1),
            "max": dist.max(axis=1),
        }
