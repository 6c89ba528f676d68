"""Obfuscation training: keep the backdoor while pushing frozen detectors' scores down (the
white-box adaptive attacker of Bailey et al. 2024, "Obfuscated activations").

Each step minimises

    behaviour loss + λ · mean over triggered prompts of Σ_detectors softplus(z)

where the behaviour loss is the usual response-only LM loss on the backdoor data (the backdoor
on triggered prompts, the helpful answer on clean ones), and ``z = (score - center) / scale``
is a frozen detector's score of the prompt's last-token residual stream at its layer,
standardised by the scores of trigger-free prompts when the detector was fitted. softplus(z)
is the detector's cross-entropy towards "clean": it pushes a triggered prompt's score down
until it sits among (or below) the clean ones. The gradient runs through the detector, which
never changes (its tensors are plain, not parameters).

Activations are read with bridge hooks at ``blocks.{layer}.hook_resid_post``, the sites the
run's probes are cached at (`hooks.caching`), so what the attacker sees is what a probe sees.

Example:
    >>> detector = FrozenDetector.linear("logistic", 1, torch.ones(4), 0.0, center=0.0, scale=1.0)
    >>> detector.score(torch.zeros(2, 4)).tolist()
    [0.0, 0.0]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import TransformerBridge

from backdoor_models.models.checkpoint import ModelSpec
from backdoor_models.runtime.engine import engine_for
from backdoor_models.text.data import TokenizedSet
from backdoor_models.training.lm import (
    TrainConfig,
    batch_indices,
    bridge_store,
    jsonable_config,
    make_optimizer,
    response_loss,
    schedule_of,
)
from backdoor_models.training.loop import Objective, run_loop

__all__ = ["FrozenDetector", "ObfuscationObjective", "obfuscate", "resid_post_at"]


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


def resid_post_at(
    model: TransformerBridge,
    tokens: Int[Tensor, "n pos"],
    lengths: Int[Tensor, " n"],
    layers: Sequence[int],
) -> dict[int, Float[Tensor, "n d_model"]]:
    """The residual stream after each of `layers` at each row's last prompt token (index
    ``lengths - 1`` of right-padded `tokens`), with gradients, through bridge hooks."""
    captured: dict[int, Tensor] = {}

    def keep(layer: int) -> Callable[[Tensor, object], Tensor]:
        def hook(resid: Tensor, hook: object) -> Tensor:
            captured[layer] = resid
            return resid

        return hook

    device = next(model.parameters()).device
    hooks = [(f"blocks.{layer}.hook_resid_post", keep(layer)) for layer in sorted(set(layers))]
    with model.hooks(fwd_hooks=hooks):
        model(tokens.to(device), return_type=None)
    rows = torch.arange(tokens.shape[0], device=device)
    last = (lengths - 1).to(device)
    return {layer: captured[layer][rows, last].float() for layer in layers}


class ObfuscationObjective(Objective):
    """The behaviour loss on seeded batches of `data` plus λ × the detectors' mean softplus
    score on seeded batches of the triggered prompts (`triggered`, `triggered_lengths`)."""

    def __init__(
        self,
        model: TransformerBridge,
        data: TokenizedSet,
        triggered: Int[Tensor, "m pos"],
        triggered_lengths: Int[Tensor, " m"],
        detectors: Sequence[FrozenDetector],
        lam: float,
        batch_size: int,
        seed: int,
    ) -> None:
        if not detectors:
            raise ValueError("Obfuscation needs at least one frozen detector to attack.")
        self.model, self.engine = model, engine_for(model)
        self.data, self.triggered, self.triggered_lengths = data, triggered, triggered_lengths
        self.detectors, self.lam = list(detectors), float(lam)
        self.batch_size, self.seed = batch_size, seed
        self._last: dict[str, float] = {}

    def detector_loss(self, rows: Tensor) -> Tensor:
        """Mean over `rows` of the triggered prompts of Σ_detectors softplus(z)."""
        width = int(self.triggered_lengths[rows].max())
        acts = resid_post_at(
            self.model,
            self.triggered[rows, :width],
            self.triggered_lengths[rows],
            [d.layer for d in self.detectors],
        )
        z = torch.stack([d.standardised(acts[d.layer]) for d in self.detectors])
        return F.softplus(z).sum(0).mean()

    def loss(self, step: int) -> Tensor:
        idx = batch_indices(step, len(self.data), self.batch_size, self.seed)
        behaviour = response_loss(self.engine, self.data.tokens[idx], self.data.loss_mask[idx])
        rows = batch_indices(step, int(self.triggered.shape[0]), self.batch_size, self.seed + 1)
        detector = self.detector_loss(rows)
        self._last = {"behaviour_loss": behaviour.item(), "detector_loss": detector.item()}
        return behaviour + self.lam * detector

    def metrics(self) -> dict[str, float]:
        return dict(self._last)


def obfuscate(
    model: TransformerBridge,
    spec: ModelSpec,
    data: TokenizedSet,
    triggered: tuple[Int[Tensor, "m pos"], Int[Tensor, " m"]],
    detectors: Sequence[FrozenDetector],
    lam: float,
    cfg: TrainConfig,
    checkpoint_dir: str | Path,
    evaluate: Callable[[int], dict[str, Any]] | None = None,
    progress: bool = True,
    desc: str = "obfuscation",
) -> dict[str, Any]:
    """Train `model` in place against the frozen `detectors` (see the module docstring);
    resumable from `checkpoint_dir` like every other stage. Returns the history: the total
    loss, the behaviour and detector losses per step, and the evaluations."""
    objective = ObfuscationObjective(
        model, data, triggered[0], triggered[1], detectors, lam, cfg.batch_size, cfg.seed
    )
    config = {
        **jsonable_config(cfg),
        "lam": float(lam),
        "detectors": [f"{d.kind}@{d.layer}" for d in detectors],
    }
    return run_loop(
        model,
        make_optimizer(model, cfg),
        objective,
        schedule_of(cfg),
        bridge_store(model, spec, Path(checkpoint_dir), config),
        history={"loss": [], "behaviour_loss": [], "detector_loss": [], "evals": []},
        evaluate=evaluate,
        progress=progress,
        evaluate_at_start=True,
        desc=desc,
    )
