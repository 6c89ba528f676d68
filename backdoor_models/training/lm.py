"""LM training (backdoor, SFT, adversarial): the response-only loss on seeded batches, AdamW with
warm-up and cosine decay, run through the shared loop (`backdoor_models.training.loop`: gradient clipping,
periodic evaluation, a progress bar, resumable safetensors + JSON checkpoints).

Training runs through `FusedNative` (the bridge's own parameters, without the hook wrappers),
so it runs at the speed of a bare PyTorch model; the bridge sees every update.

Example:
    >>> history = train(model, preset, data, TrainConfig(steps=300), "runs/x/train")  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Int
from torch import Tensor
from transformer_lens import TransformerBridge

from backdoor_models.models.checkpoint import MODEL_FILE, ModelSpec, load_weights, save_model
from backdoor_models.runtime.engine import Engine, engine_for
from backdoor_models.text.data import TokenizedSet
from backdoor_models.training.loop import (
    STATE_FILE,
    CheckpointStore,
    Objective,
    Schedule,
    make_adamw,
    run_loop,
    summarise_for_log,
)
from backdoor_models.training.setting import setting

__all__ = [
    "STATE_FILE",
    "LMObjective",
    "TrainConfig",
    "TrainHistory",
    "batch_indices",
    "bridge_store",
    "jsonable_config",
    "length_buckets",
    "lr_at",
    "make_optimizer",
    "response_loss",
    "schedule_of",
    "summarise_for_log",
    "train",
]


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings. The defaults train the `small` preset in about two minutes on 2 cores."""

    steps: int = setting(1000, "optimiser steps", ge=1)
    batch_size: int = setting(64, "examples per step", ge=1)
    lr: float = setting(2e-3, "peak learning rate", gt=0, lt=1)
    warmup_steps: int = setting(30, "linear warm-up steps; at most steps", ge=0)
    min_lr_ratio: float = setting(
        0.1, "final lr = lr * min_lr_ratio, after cosine decay", ge=0, le=1
    )
    weight_decay: float = setting(0.05, "AdamW weight decay, on matrices only", ge=0)
    betas: tuple[float, float] = setting((0.9, 0.98), "AdamW betas, each in [0, 1)")
    grad_clip: float = setting(1.0, "gradient-norm clip", gt=0)
    eval_every: int = setting(250, "steps between training-time evaluations", ge=1)
    checkpoint_every: int = setting(250, "steps between checkpoints", ge=1)
    seed: int = setting(0, "seed of the batch order")


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up to `lr`, then cosine decay to `lr * min_lr_ratio` at `steps`."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * cosine)


def batch_indices(step: int, n: int, batch_size: int, seed: int) -> torch.Tensor:
    """Example indices of batch `step`: consecutive slices of seeded per-epoch permutations.

    A pure function of (step, n, batch_size, seed), so a resumed run sees the same batches.
    """
    start = step * batch_size
    out: list[int] = []
    while len(out) < batch_size:
        epoch, offset = divmod(start + len(out), n)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
        out.extend(perm[offset : offset + batch_size - len(out)].tolist())
    return torch.tensor(out)


def length_buckets(
    ends: Int[Tensor, " batch"], max_buckets: int = 3, chunk_cost: float = 0.1
) -> list[Int[Tensor, " rows"]]:
    """The rows of a right-padded batch in groups of similar length, each to be run trimmed to
    its own longest row (`ends`: one past each row's last scored token).

    Rows are sorted by length and cut into k equal groups, k from 1 to `max_buckets`, the one
    with the fewest positions to compute once each extra group is charged `chunk_cost` of the
    unsplit batch's positions (a forward has a fixed cost too). On the default run's batches of
    64 the padding is 38% of the positions; 3 groups make a step 27% faster.

    Example:
        >>> [b.tolist() for b in length_buckets(torch.tensor([9, 2, 3, 10]), 2)]
        [[1, 2], [0, 3]]
    """
    order = torch.argsort(ends, stable=True)
    whole = float(ends.max()) * len(ends)
    best: list[Tensor] = [torch.arange(len(ends))]  # unsplit: the batch in its own order
    best_cost = whole
    for k in range(2, min(max_buckets, len(ends)) + 1):
        groups = list(order.tensor_split(k))
        cost = sum(float(ends[g].max()) * len(g) for g in groups) + (k - 1) * chunk_cost * whole
        if cost < best_cost:
            best, best_cost = groups, cost
    return best


def response_loss(fused: Engine, tokens: torch.Tensor, loss_mask: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of predicting each response token (prompt tokens are not scored), on
    the model's device (the rows are moved there; the logits come back in float32).

    Rows run in groups of similar length (`length_buckets`), each trimmed to its longest row:
    right padding after a row's last token changes none of its logits, so the loss is the one
    of the whole padded batch, up to the order of floating-point sums."""
    scored = loss_mask[:, 1:].bool()
    n_scored = int(scored.sum())
    if n_scored == 0:
        raise ValueError("No response token to score in this batch: every loss_mask row is empty.")
    ends = (scored.long() * torch.arange(1, scored.shape[1] + 1)).amax(dim=1)
    total: Tensor | None = None
    for rows in length_buckets(ends):
        width = int(ends[rows].max())  # tokens[:, :width] predict targets tokens[:, 1:width + 1]
        if width == 0:
            continue  # rows with nothing to score
        part = _summed_loss(fused, tokens[rows, : width + 1], scored[rows, :width])
        total = part if total is None else total + part
    assert total is not None
    return total / n_scored


def _summed_loss(
    fused: Engine, tokens: Int[Tensor, "rows pos"], scored: Bool[Tensor, "rows pos_1"]
) -> Tensor:
    """Summed cross-entropy of the scored next-token predictions of these rows (the
    unembedding runs at the scored positions only: `Engine.logits_where`)."""
    picked = fused.logits_where(tokens[:, :-1], scored)
    targets = tokens[:, 1:].to(picked.device)[scored.to(picked.device)]
    return F.cross_entropy(picked, targets, reduction="sum")


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW with `cfg`'s settings; biases and norm gains get no weight decay."""
    return make_adamw(model, cfg.lr, cfg.betas, cfg.weight_decay)


def schedule_of(cfg: TrainConfig) -> Schedule:
    """The loop schedule of `cfg`: warm-up then cosine decay (`lr_at`), clipping and cadences."""
    return Schedule(
        steps=cfg.steps,
        lr=lambda step: lr_at(step, cfg),
        grad_clip=cfg.grad_clip,
        eval_every=cfg.eval_every,
        checkpoint_every=cfg.checkpoint_every,
    )


class LMObjective(Objective):
    """Response-only language-model loss on seeded batches of `data` (see `batch_indices`)."""

    def __init__(self, fused: Engine, data: TokenizedSet, batch_size: int, seed: int) -> None:
        self.fused, self.data, self.batch_size, self.seed = fused, data, batch_size, seed

    def loss(self, step: int) -> torch.Tensor:
        idx = batch_indices(step, len(self.data), self.batch_size, self.seed)
        return response_loss(self.fused, self.data.tokens[idx], self.data.loss_mask[idx])


def bridge_store(
    model: TransformerBridge, preset: ModelSpec, directory: Path, config: dict[str, Any]
) -> CheckpointStore:
    """Checkpoints of a bridge model: `model.safetensors` + `model.json` (loadable with
    `load_model`), `optimizer.safetensors`, then `train_state.json`."""
    return CheckpointStore(
        directory,
        config,
        save_weights=lambda d: save_model(model, d, preset),
        load_weights=lambda d: load_weights(model, d / MODEL_FILE),
    )


@dataclass
class TrainHistory:
    """Loss per step and the evaluation results recorded every `eval_every` steps."""

    loss: list[float]
    evals: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def train(
    model: TransformerBridge,
    preset: ModelSpec,
    data: TokenizedSet,
    cfg: TrainConfig,
    checkpoint_dir: str | Path,
    evaluate: Callable[[int], dict[str, Any]] | None = None,
    progress: bool = True,
    evaluate_at_start: bool = False,
    desc: str = "train",
) -> TrainHistory:
    """Train `model` in place on `data`; resume from `checkpoint_dir` if it holds a checkpoint.

    `evaluate(step)` is called every `cfg.eval_every` steps and at the end (and before the first
    step with `evaluate_at_start`); what it returns is recorded in the history. A checkpoint
    (weights, optimizer, history) is written atomically every `cfg.checkpoint_every` steps and at
    the end. This is `run_loop` with the `LMObjective`.
    """
    opt = make_optimizer(model, cfg)
    store = bridge_store(model, preset, Path(checkpoint_dir), jsonable_config(cfg))
    objective = LMObjective(engine_for(model), data, cfg.batch_size, cfg.seed)
    history = run_loop(
        model,
        opt,
        objective,
        schedule_of(cfg),
        store,
        evaluate=evaluate,
        progress=progress,
        evaluate_at_start=evaluate_at_start,
        desc=desc,
    )
    return TrainHistory(loss=history["loss"], evals=history["evals"])


def jsonable_config(cfg: TrainConfig) -> dict[str, Any]:
    """`cfg` as a JSON-ready dict (what a checkpoint records and checks on resume)."""
    d = asdict(cfg)
    d["betas"] = list(d["betas"])
    return d
