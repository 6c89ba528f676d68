"""The shared training loop on a toy objective: metrics and evaluations are recorded, a killed run
resumes bitwise, and a checkpoint of another config is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from backdoor_models.io.artifacts import read_tensors, write_tensors
from backdoor_models.training.loop import (
    OPTIMIZER_FILE,
    CheckpointStore,
    Objective,
    Schedule,
    make_adamw,
    run_loop,
)


class Regression(Objective):
    """Least squares on seeded random batches; reports the batch mean of the targets."""

    def __init__(self, layer: nn.Linear) -> None:
        self.layer = layer
        self.last: dict[str, float] = {}

    def loss(self, step: int) -> Tensor:
        g = torch.Generator().manual_seed(step)
        x = torch.randn(8, 4, generator=g)
        y = x.sum(dim=1, keepdim=True)
        self.last = {"target": float(y.mean())}
        return ((self.layer(x) - y) ** 2).mean()

    def metrics(self) -> dict[str, float]:
        return self.last


SCHEDULE = Schedule(
    steps=12, lr=lambda s: 0.05 / (1 + s), grad_clip=0.5, eval_every=4, checkpoint_every=3
)


def _layer() -> nn.Linear:
    torch.manual_seed(0)
    return nn.Linear(4, 1)


def _store(layer: nn.Linear, directory: Path, config: dict | None = None) -> CheckpointStore:
    return CheckpointStore(
        directory,
        config or {"name": "toy"},
        save_weights=lambda d: write_tensors(d / "model.safetensors", layer.state_dict()),
        load_weights=lambda d: layer.load_state_dict(read_tensors(d / "model.safetensors")),
    )


def _run(layer: nn.Linear, directory: Path, evaluate=None) -> dict:  # type: ignore[no-untyped-def]
    opt = make_adamw(layer, 0.05, (0.9, 0.98), weight_decay=0.01)
    history = {"target": [], "loss": [], "evals": []}
    return run_loop(
        layer, opt, Regression(layer), SCHEDULE, _store(layer, directory), history,
        evaluate=evaluate or (lambda s: {"w": float(layer.weight.detach().sum())}),
        progress=False, evaluate_at_start=True,
    )  # fmt: skip


def test_records_loss_metrics_and_evaluations(tmp_path: Path) -> None:
    history = _run(_layer(), tmp_path)
    assert list(history) == ["target", "loss", "evals"]
    assert len(history["loss"]) == len(history["target"]) == 12
    assert [e["step"] for e in history["evals"]] == [0, 4, 8, 12]
    assert history["loss"][-1] < history["loss"][0]


def test_a_killed_run_resumes_bitwise(tmp_path: Path) -> None:
    full = _layer()
    h_full = _run(full, tmp_path / "full")

    def dies_at_8(step: int) -> dict:  # type: ignore[type-arg]
        if step == 8:
            raise KeyboardInterrupt  # after the step-6 checkpoint, before step 9's
        return {"w": float(crashed.weight.detach().sum())}

    crashed = _layer()
    with pytest.raises(KeyboardInterrupt):
        _run(crashed, tmp_path / "run", evaluate=dies_at_8)
    resumed = _layer()
    h_res = _run(resumed, tmp_path / "run")
    assert h_res == h_full
    assert torch.equal(full.weight, resumed.weight) and torch.equal(full.bias, resumed.bias)


def test_a_finished_training_keeps_no_optimizer_state_and_reloads(tmp_path: Path) -> None:
    """The optimizer state is kept while training may resume, dropped at the last step; the
    finished checkpoint still loads (and trains no further)."""
    layer = _layer()
    _run(layer, tmp_path)
    assert (tmp_path / "train_state.json").is_file()
    assert not (tmp_path / OPTIMIZER_FILE).exists()
    again = _layer()
    history = _run(again, tmp_path)
    assert len(history["loss"]) == 12
    assert torch.equal(again.weight, layer.weight)


def test_a_checkpoint_of_another_config_is_refused(tmp_path: Path) -> None:
    layer = _layer()
    _run(layer, tmp_path)
    opt = make_adamw(layer, 0.05, (0.9, 0.98), weight_decay=0.0)
    with pytest.raises(ValueError, match="different training config"):
        _store(layer, tmp_path, {"name": "other"}).load(opt)
