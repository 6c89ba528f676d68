"""The stage runner (`analysis.run.steps`): a finished step is read back, not recomputed, and
keeps its recorded time; an unfinished one is computed, written and timed in timing.json, which
a runner on the same folder (a resumed run) reads back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from analysis.folder.layout import RunLayout
from analysis.run.steps import StepRunner


class _Count:
    """A computation that counts its calls."""

    def __init__(self, value: object) -> None:
        self.value, self.calls = value, 0

    def __call__(self) -> object:
        self.calls += 1
        return self.value


def test_a_finished_json_step_is_read_back_and_keeps_its_time(tmp_path: Path) -> None:
    layout = RunLayout(tmp_path)
    steps = StepRunner(layout)
    path = tmp_path / "stage" / "answer.json"
    work = _Count({"x": [1, 2.5]})
    assert steps.json("answer", path, work) == {"x": [1, 2.5]}
    assert json.loads(path.read_text()) == {"x": [1, 2.5]}
    recorded = json.loads(layout.timing.read_text())
    assert set(recorded) == {"answer"} and recorded["answer"] >= 0

    resumed = StepRunner(layout)  # a resumed run: a new runner on the same folder
    assert resumed.timing == recorded
    assert resumed.json("answer", path, _Count({"x": "other"})) == {"x": [1, 2.5]}
    assert work.calls == 1 and json.loads(layout.timing.read_text()) == recorded


def test_a_failed_step_writes_nothing_and_runs_again(tmp_path: Path) -> None:
    steps = StepRunner(RunLayout(tmp_path))
    path = tmp_path / "answer.json"

    def fail() -> object:
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        steps.json("answer", path, fail)
    assert not path.exists() and "answer" not in steps.timing
    assert steps.json("answer", path, lambda: [3]) == [3]


def test_a_tensor_step_is_read_back_with_its_shapes_checked(tmp_path: Path) -> None:
    steps = StepRunner(RunLayout(tmp_path))
    path = tmp_path / "acts.safetensors"
    acts = {"b": torch.arange(6.0).reshape(2, 3), "a": torch.ones(2, 1)}
    work = _Count(acts)
    first = steps.tensors("acts", path, {"b": (2, 3), "a": (2, 1)}, work)  # type: ignore[arg-type]
    again = steps.tensors("acts", path, {"b": (2, 3), "a": (2, 1)}, work)  # type: ignore[arg-type]
    assert work.calls == 1 and list(again) == ["b", "a"]
    assert all(torch.equal(first[k], again[k]) for k in acts)
    with pytest.raises(ValueError, match=r"b has shape \(2, 3\), expected \(3, 2\)"):
        steps.tensors("acts", path, {"b": (3, 2), "a": (2, 1)}, work)  # type: ignore[arg-type]


def test_a_step_that_finishes_itself_is_timed_once(tmp_path: Path) -> None:
    layout = RunLayout(tmp_path)
    steps = StepRunner(layout)
    work = _Count("trained")
    assert steps.run("train", False, work) == "trained"
    assert json.loads(layout.timing.read_text())["train"] == steps.timing["train"] >= 0
    layout.timing.write_text(json.dumps({"train": 123.0}))
    resumed = StepRunner(layout)
    assert resumed.run("train", True, work) == "trained"  # done: loads, keeps its time
    assert resumed.timing["train"] == 123.0 and work.calls == 2
    assert resumed.run("train", False, work) == "trained"  # resumed: the time is new
    assert resumed.timing["train"] < 123.0
    assert StepRunner(layout).run("never timed", True, work) == "trained"
    assert "never timed" in json.loads(layout.timing.read_text())
