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

Activations are read with bridge hooks at ``blocks.{layer}.hook_resid_post``
(`hooks.residual.resid_post_at`), the sites the run's probes are cached at, so what the attacker
sees is what a probe sees; the detectors are `probes.frozen.FrozenDetector`s.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NotRequired, TypedDict, cast

import torch
import torch.nn.functional as F
from jaxtyping import Int
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
from hooks.residual import resid_post_at
from probes.frozen import FrozenDetector

__all__ = ["ObfuscationObjective", "obfuscate"]


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


class AttackHistory(TypedDict):
    """What an attack records (`obfuscate`): the total loss and its two parts per step, and the
    evaluations (each with its `step`); the obfuscation stage adds how it trained and from
    where (`method`, `started_from`)."""

    loss: list[float]
    behaviour_loss: list[float]
    detector_loss: list[float]
    evals: list[dict[str, float]]
    method: NotRequired[str]
    started_from: NotRequired[str]


def obfuscate(
    model: TransformerBridge,
    spec: ModelSpec,
    data: TokenizedSet,
    triggered: tuple[Int[Tensor, "m pos"], Int[Tensor, " m"]],
    detectors: Sequence[FrozenDetector],
    lam: float,
    cfg: TrainConfig,
    checkpoint_dir: str | Path,
    evaluate: Callable[[int], dict[str, float]] | None = None,
    progress: bool = True,
    desc: str = "obfuscation",
) -> AttackHistory:
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
    history = run_loop(
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
    return cast(AttackHistory, history)
