"""The one training loop, shared by backdoor training, SFT, adversarial training, the preference
model and RL: a per-step learning rate, gradient clipping, a progress bar, periodic evaluation,
and safetensors + JSON checkpoints that a killed run resumes from bitwise.

What a step minimises is an :class:`Objective`: ``loss(step)`` returns the loss of step ``step``
(a pure function of the step and the current weights, so a resumed run repeats it exactly), and
``metrics()`` any extra per-step values to record beside it (RL's reward and KL).

Example:
    >>> class Quadratic(Objective):
    ...     def __init__(self, w: torch.nn.Parameter) -> None:
    ...         self.w = w
    ...     def loss(self, step: int) -> torch.Tensor:
    ...         return (self.w**2).sum()
    >>> layer = torch.nn.Linear(2, 1)
    >>> opt = make_adamw(layer, lr=0.1, betas=(0.9, 0.98), weight_decay=0.0)
    >>> schedule = Schedule(steps=5, lr=lambda s: 0.1, grad_clip=1.0, eval_every=5, checkpoint_every=5)
    >>> history = run_loop(layer, opt, Quadratic(layer.weight), schedule, None, progress=False)
    >>> len(history["loss"])
    5
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from backdoor_models.io.artifacts import read_json, read_tensors, write_json, write_tensors

log = logging.getLogger(__name__)

STATE_FILE = "train_state.json"
OPTIMIZER_FILE = "optimizer.safetensors"


class Objective(ABC):
    """What one training step minimises."""

    @abstractmethod
    def loss(self, step: int) -> Tensor:
        """The (differentiable) loss of step ``step``; depends only on the step and the weights."""

    def metrics(self) -> dict[str, float]:
        """Extra values of the last ``loss`` call, each recorded per step under its key."""
        return {}


@dataclass(frozen=True)
class Schedule:
    """How long to train, the learning rate of each step, and how often to evaluate and save."""

    steps: int
    lr: Callable[[int], float]
    grad_clip: float
    eval_every: int
    checkpoint_every: int


def make_adamw(
    model: nn.Module,
    lr: float,
    betas: tuple[float, float],
    weight_decay: float,
    exempt_1d: bool = True,
) -> torch.optim.AdamW:
    """AdamW over ``model``'s trainable parameters.

    With ``exempt_1d``, tensors of fewer than 2 dimensions (biases, norm gains) get no weight
    decay (a second parameter group); without it, one group in ``model.parameters()`` order.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if not exempt_1d:
        return torch.optim.AdamW(params, lr=lr, betas=betas, weight_decay=weight_decay)
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=lr, betas=betas)


def save_optimizer(opt: torch.optim.Optimizer, directory: Path) -> None:
    """The optimizer's per-parameter state as safetensors (``<param index>.<key>``)."""
    sd = opt.state_dict()
    tensors = {
        f"{idx}.{key}": (val if torch.is_tensor(val) else torch.tensor(val))
        for idx, state in sd["state"].items()
        for key, val in state.items()
    }
    write_tensors(directory / OPTIMIZER_FILE, tensors)


def load_optimizer(opt: torch.optim.Optimizer, directory: Path) -> None:
    """Restore what :func:`save_optimizer` wrote (the param groups come from ``opt`` itself)."""
    tensors = read_tensors(directory / OPTIMIZER_FILE)
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    sd = opt.state_dict()
    sd["state"] = state
    opt.load_state_dict(sd)


@dataclass(frozen=True)
class CheckpointStore:
    """Where and how a run checkpoints: weights (``save_weights``/``load_weights`` given the
    folder), the optimizer, then ``train_state.json`` (step, config, history), written last so it
    marks a complete checkpoint. ``config`` must match on resume."""

    directory: Path
    config: dict[str, Any]
    save_weights: Callable[[Path], None]
    load_weights: Callable[[Path], None]

    def save(
        self, opt: torch.optim.Optimizer, step: int, history: dict[str, Any], final: bool = False
    ) -> None:
        """Weights, optimizer, state. The `final` checkpoint keeps no optimizer state: nothing
        resumes a finished training (a longer one is another config, refused by `load`), and a
        fully fine-tuned base's would be twice its weights on disk."""
        self.save_weights(self.directory)
        if not final:
            save_optimizer(opt, self.directory)
        write_json(
            self.directory / STATE_FILE, {"step": step, "config": self.config, "history": history}
        )
        if final:
            (self.directory / OPTIMIZER_FILE).unlink(missing_ok=True)

    def load(
        self, opt: torch.optim.Optimizer, steps: int | None = None
    ) -> tuple[int, dict[str, Any]] | None:
        """Restore weights and optimizer; returns (step, history), or None if there is none.

        Refuses a checkpoint written under a different config, so a resumed run is the run it
        claims to be. A finished checkpoint (at least `steps`) has no optimizer state to load.
        """
        state_file = self.directory / STATE_FILE
        if not state_file.is_file():
            return None
        state = read_json(state_file)
        if state["config"] != self.config:
            raise ValueError(
                f"{self.directory} holds a checkpoint from a different training config; "
                "resume with the same config or start a new run folder."
            )
        self.load_weights(self.directory)
        if steps is None or int(state["step"]) < steps:
            load_optimizer(opt, self.directory)
        log.info("Resuming from step %d (%s)", state["step"], self.directory)
        return int(state["step"]), state["history"]


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


def run_loop(
    model: nn.Module,
    opt: torch.optim.Optimizer,
    objective: Objective,
    schedule: Schedule,
    store: CheckpointStore | None,
    history: dict[str, Any] | None = None,
    evaluate: Callable[[int], dict[str, Any]] | None = None,
    progress: bool = True,
    evaluate_at_start: bool = False,
    desc: str = "train",
) -> dict[str, Any]:
    """Train ``model`` in place for ``schedule.steps`` steps; resume from ``store`` if it holds a
    checkpoint. Returns the history: ``loss`` per step, the objective's metrics per step, and
    ``evals``.

    Each step sets the learning rate, computes ``objective.loss(step)``, back-propagates, clips
    the gradient norm of ``model``'s parameters and steps ``opt``. ``evaluate(step)`` (in eval
    mode) is called every ``eval_every`` steps and at the end (and before the first step with
    ``evaluate_at_start``); its results go to ``history["evals"]``. ``store`` is saved every
    ``checkpoint_every`` steps and at the end. ``history`` gives the key order of a fresh run
    (default ``{"loss": [], "evals": []}``).
    """
    history = history if history is not None else {"loss": [], "evals": []}
    start = 0
    restored = store.load(opt, schedule.steps) if store is not None else None
    if restored is not None:
        start, history = restored

    def evaluate_now(done: int) -> None:
        if evaluate is None:
            return
        model.eval()
        result = evaluate(done)
        model.train()
        history["evals"].append({"step": done, **result})
        log.info("%s step %d: %s", desc, done, summarise_for_log(result))

    model.train()
    if start == 0 and evaluate_at_start:
        evaluate_now(0)
    steps = schedule.steps
    bar = tqdm(range(start, steps), desc=desc, disable=not progress, initial=start, total=steps)
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = schedule.lr(step)
        loss = objective.loss(step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), schedule.grad_clip)
        opt.step()
        metrics = objective.metrics()
        for key, value in metrics.items():
            history[key].append(value)
        history["loss"].append(loss.item())
        shown = {**metrics, "loss": history["loss"][-1]}
        bar.set_postfix({k: f"{v:.3f}" for k, v in shown.items()})
        done = step + 1
        if done % schedule.eval_every == 0 or done == steps:
            evaluate_now(done)
        if store is not None and (done % schedule.checkpoint_every == 0 or done == steps):
            store.save(opt, done, history, final=done == steps)
    model.eval()
    return history
