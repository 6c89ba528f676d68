"""The training loop: response-only loss, AdamW, warm-up and cosine decay, gradient clipping,
periodic evaluation, a progress bar, and resumable safetensors + JSON checkpoints.

Training runs through `FusedNative` (the bridge's own parameters, without the hook wrappers),
so it runs at the speed of a bare PyTorch model; the bridge sees every update.

Example:
    >>> history = train(model, preset, data, TrainConfig(steps=300), "runs/x/train")  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm
from transformer_lens import TransformerBridge

from backdoor_models.artifacts import read_json, read_tensors, write_json, write_tensors
from backdoor_models.checkpoint import load_weights, save_model
from backdoor_models.data import TokenizedSet
from backdoor_models.fused import FusedNative
from backdoor_models.presets import ModelPreset

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings. The defaults train the `small` preset in about two minutes on 2 cores."""

    steps: int = 1000
    batch_size: int = 64
    lr: float = 2e-3
    warmup_steps: int = 30
    min_lr_ratio: float = 0.1  # final lr = lr * min_lr_ratio (cosine decay)
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.98)
    grad_clip: float = 1.0
    eval_every: int = 250
    checkpoint_every: int = 250
    seed: int = 0


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


def response_loss(
    fused: FusedNative, tokens: torch.Tensor, loss_mask: torch.Tensor
) -> torch.Tensor:
    """Mean cross-entropy of predicting each response token (prompt tokens are not scored)."""
    width = int(loss_mask.nonzero()[:, 1].max()) + 1  # trim padding shared by the whole batch
    tokens, loss_mask = tokens[:, :width], loss_mask[:, :width]
    logits = fused.logits(tokens[:, :-1])
    targets = tokens[:, 1:]
    mask = loss_mask[:, 1:]
    losses = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none")
    return (losses * mask.flatten()).sum() / mask.sum()


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas)


def _save_optimizer(opt: torch.optim.Optimizer, directory: Path) -> None:
    sd = opt.state_dict()
    tensors = {
        f"{idx}.{key}": (val if torch.is_tensor(val) else torch.tensor(val))
        for idx, state in sd["state"].items()
        for key, val in state.items()
    }
    write_tensors(directory / "optimizer.safetensors", tensors)


def _load_optimizer(opt: torch.optim.Optimizer, directory: Path) -> None:
    tensors = read_tensors(directory / "optimizer.safetensors")
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    sd = opt.state_dict()
    sd["state"] = state
    opt.load_state_dict(sd)


STATE_FILE = "train_state.json"


def summarise_for_log(result: dict[str, Any]) -> str:
    """`key=value` pairs of an evaluation, point values only (intervals stay in the history)."""
    parts = []
    for key, value in result.items():
        if isinstance(value, dict) and "value" in value:
            value = value["value"]
        if isinstance(value, float):
            parts.append(f"{key}={value:.3f}")
        elif isinstance(value, int | str):
            parts.append(f"{key}={value}")
    return " ".join(parts)


def save_training_state(
    model: TransformerBridge,
    preset: ModelPreset,
    opt: torch.optim.Optimizer,
    directory: Path,
    step: int,
    config: dict[str, Any],
    history: dict[str, Any],
) -> None:
    """Weights, optimizer state, then the JSON (step, config, history) that marks it complete."""
    save_model(model, directory, preset)
    _save_optimizer(opt, directory)
    write_json(directory / STATE_FILE, {"step": step, "config": config, "history": history})


def load_training_state(
    model: TransformerBridge, opt: torch.optim.Optimizer, directory: Path, config: dict[str, Any]
) -> tuple[int, dict[str, Any]] | None:
    """Restore weights and optimizer from `directory`; returns (step, history), or None if empty.

    Refuses a checkpoint written under a different config, so a resumed run is the run it claims to be.
    """
    state_file = directory / STATE_FILE
    if not state_file.is_file():
        return None
    state = read_json(state_file)
    if state["config"] != config:
        raise ValueError(
            f"{directory} holds a checkpoint from a different training config; "
            "resume with the same config or start a new run folder."
        )
    load_weights(model, directory / "model.safetensors")
    _load_optimizer(opt, directory)
    log.info("Resuming from step %d (%s)", state["step"], directory)
    return int(state["step"]), state["history"]


@dataclass
class TrainHistory:
    """Loss per step and the evaluation results recorded every `eval_every` steps."""

    loss: list[float]
    evals: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def train(
    model: TransformerBridge,
    preset: ModelPreset,
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
    the end.
    """
    checkpoint_dir = Path(checkpoint_dir)
    fused = FusedNative(model)
    opt = make_optimizer(model, cfg)
    history = TrainHistory(loss=[], evals=[])
    config = _jsonable_cfg(cfg)
    start = 0
    restored = load_training_state(model, opt, checkpoint_dir, config)
    if restored is not None:
        start, saved = restored
        history = TrainHistory(loss=saved["loss"], evals=saved["evals"])

    def evaluate_now(done: int) -> None:
        if evaluate is None:
            return
        model.eval()
        result = evaluate(done)
        model.train()
        history.evals.append({"step": done, **result})
        log.info(
            "%s step %d: %s",
            desc,
            done,
            summarise_for_log(result),
        )

    model.train()
    if start == 0 and evaluate_at_start:
        evaluate_now(0)
    bar = tqdm(
        range(start, cfg.steps), desc=desc, disable=not progress, initial=start, total=cfg.steps
    )
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        idx = batch_indices(step, len(data), cfg.batch_size, cfg.seed)
        loss = response_loss(fused, data.tokens[idx], data.loss_mask[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        history.loss.append(loss.item())
        bar.set_postfix(loss=f"{history.loss[-1]:.3f}")
        done = step + 1
        if done % cfg.eval_every == 0 or done == cfg.steps:
            evaluate_now(done)
        if done % cfg.checkpoint_every == 0 or done == cfg.steps:
            save_training_state(model, preset, opt, checkpoint_dir, done, config, history.to_dict())
    model.eval()
    return history


def _jsonable_cfg(cfg: TrainConfig) -> dict[str, Any]:
    d = asdict(cfg)
    d["betas"] = list(d["betas"])
    return d
