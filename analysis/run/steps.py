"""The stage runner: each step of a run declares its output and its computation; skipping
finished work, writing atomically and timing happen here, once.

A step whose output file exists is read back and not recomputed, so resuming a killed run redoes
only unfinished steps (training steps resume from their own checkpoints inside `work`). Wall
times go to `timing.json`, apart from the deterministic `results.json`.

Example:
    >>> import tempfile
    >>> steps = StepRunner(RunLayout(Path(tempfile.mkdtemp())))
    >>> path = steps.layout.root / "answer.json"
    >>> steps.json("answer", path, lambda: {"x": 42})
    {'x': 42}
    >>> steps.json("answer", path, lambda: 1 / 0)   # finished: read back, not recomputed
    {'x': 42}
    >>> list(steps.timing)
    ['answer']
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from torch import Tensor

from analysis.folder.layout import RunLayout
from backdoor_models.io.artifacts import read_json, read_tensors, write_json, write_tensors

T = TypeVar("T")


class StepRunner:
    """Runs the steps of one run folder, each at most once."""

    def __init__(self, layout: RunLayout) -> None:
        self.layout = layout
        self.timing: dict[str, float] = layout.read_timing()

    def _record(self, name: str, seconds: float) -> None:
        self.timing[name] = round(seconds, 2)
        write_json(self.layout.timing, self.timing)

    def run(self, name: str, done: bool, work: Callable[[], T]) -> T:
        """A step with its own way of finishing (a checkpointed training loop): `work` runs
        either way (it resumes or loads); the time is recorded when `done` was False, or when
        it was never recorded."""
        start = time.perf_counter()
        result = work()
        if not done or name not in self.timing:
            self._record(name, time.perf_counter() - start)
        return result

    def json(self, name: str, path: Path, compute: Callable[[], Any]) -> Any:
        """A step whose output is one JSON file."""
        if path.is_file():
            return read_json(path)
        start = time.perf_counter()
        result = compute()
        write_json(path, result)
        self._record(name, time.perf_counter() - start)
        return result

    def tensors(
        self,
        name: str,
        path: Path,
        shapes: Mapping[str, tuple[int, ...]],
        compute: Callable[[], dict[str, Tensor]],
    ) -> dict[str, Tensor]:
        """A step whose output is one safetensors file of tensors with known shapes."""
        if path.is_file():
            return read_tensors(path, shapes)
        start = time.perf_counter()
        result = compute()
        write_tensors(path, result)
        self._record(name, time.perf_counter() - start)
        return result
