"""A fitted detector frozen to tensors, scoring activations differentiably: what an adaptive
attacker trains against (`analysis.obfuscation.attack`), and what a frozen monitor scores with.

Example:
    >>> import torch
    >>> detector = FrozenDetector.linear("logistic", 1, torch.ones(4), 0.0, center=0.0, scale=1.0)
    >>> detector.score(torch.zeros(2, 4)).tolist()
    [0.0, 0.0]
"""

from __future__ import annotations

from dataclasses import dataclass

from jaxtyping import Float
from torch import Tensor

__all__ = ["FrozenDetector"]


@dataclass(frozen=True)
class FrozenDetector:
    """A fitted detector reduced to tensors: a linear score ``x·weight + bias`` or a squared
    Mahalanobis distance ``(x-mean)ᵀ precision (x-mean)``, at one layer's ``resid_post``."""

    kind: str  # the detector's name, e.g. "logistic", "diff_means", "mahalanobis", "contrast"
    layer: int
    center: float  # mean and std of the score on trigger-free prompts at fitting time
    scale: float
    weight: Float[Tensor, " d"] | None = None
    bias: float = 0.0
    mean: Float[Tensor, " d"] | None = None
    precision: Float[Tensor, "d d"] | None = None

    @classmethod
    def linear(
        cls, kind: str, layer: int, weight: Tensor, bias: float, center: float, scale: float
    ) -> FrozenDetector:
        """A linear detector (logistic, difference of means, LDA, the contrast probe)."""
        return cls(kind, layer, center, _positive(scale), weight=weight.detach().float(), bias=bias)

    @classmethod
    def quadratic(
        cls, kind: str, layer: int, mean: Tensor, precision: Tensor, center: float, scale: float
    ) -> FrozenDetector:
        """A squared Mahalanobis distance to the trigger-free activations."""
        return cls(
            kind,
            layer,
            center,
            _positive(scale),
            mean=mean.detach().float(),
            precision=precision.detach().float(),
        )

    def score(self, acts: Float[Tensor, "n d"]) -> Float[Tensor, " n"]:
        """The detector's raw score (higher = trigger / anomaly), differentiable in `acts`."""
        if self.weight is not None:
            return acts @ self.weight.to(acts.device) + self.bias
        assert self.mean is not None and self.precision is not None
        centred = acts - self.mean.to(acts.device)
        return ((centred @ self.precision.to(acts.device)) * centred).sum(-1)

    def standardised(self, acts: Float[Tensor, "n d"]) -> Float[Tensor, " n"]:
        """``(score - center) / scale``: 0 is a typical trigger-free prompt."""
        return (self.score(acts) - self.center) / self.scale


def _positive(scale: float) -> float:
    if not scale > 0:
        raise ValueError(
            f"A detector's clean-score scale must be positive, got {scale}: its scores do not "
            "vary over trigger-free prompts, so it cannot be attacked or thresholded."
        )
    return float(scale)
