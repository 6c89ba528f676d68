"""Running a sweep: every point's run, in this process or as Ray tasks, resumable.

A point whose run folder finished (its report written) is skipped; one with a partial folder is
resumed from its last finished step (the run's own kill-and-resume); the rest start fresh. So a
sweep killed at any moment and started again finishes with the same results. A run that fails
is recorded with its error and the others go on; `status.json` says what happened to each.

With Ray (`pip install "sleeper-lens[ray]"`), each run is a Ray task named `sweep <point>` (the
name `ps` shows for its worker) asking for the sweep's `resources` (CPUs, GPUs). A task whose
worker dies (killed, out of memory, a lost node) is retried up to `resources.retries` times, and
the retry resumes the run, so a dead worker costs at most that run's unfinished step; a run's own
error (a bad base, a full disk) is not retried. Without Ray, runs go one after another here.
Either way each run uses `resources.cpus` torch threads, so both give the same numbers.

Two processes never run one point at once: each run holds a lock (`runs/.<point>.lock`) while it
works, so a sweep restarted while a killed sweep's worker is still exiting, or the same sweep
started twice, waits for that run instead of writing into it.

On a Ray cluster (`ray_address`): every node needs Sleeper Lens installed, the same version as
here (`pip install "sleeper-lens[ray]"`, or this checkout installed with `pip install -e .`; the
tasks import it, no code is shipped with them), and the sweep folder on a file system every node
sees at the same path (the runs write there and this process reads their state from there). A
task that cannot see the sweep folder fails with an error naming its host. Workers' logs are in
Ray's session folder (`/tmp/ray/session_latest/logs` on each node).

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
from functools import partial
from pathlib import Path
from typing import Literal

import yaml

from analysis.errors import InputError
from analysis.sweep.point import (
    PointStatus,
    SweepLayout,
    check_same_config,
    read_status,
    run_finished,
    run_point,
)
from analysis.sweep.spec import SweepPoint, SweepSpec, expand, validate_points
from backdoor_models.io.atomic import write_json, write_text

__all__ = [
    "Executor",
    "SweepLayout",
    "SweepOutcome",
    "read_status",
    "run_finished",
    "run_point",
    "run_sweep",
]
log = logging.getLogger(__name__)
Executor = Literal["auto", "ray", "local"]


@dataclass
class SweepOutcome:
    """What happened to each point: done (this time or before), failed (with the error)."""

    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # finished before this invocation
    failed: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


class _Status:
    """status.json: each point's state (pending, running, done, failed), seconds, error."""

    def __init__(self, layout: SweepLayout, points: list[SweepPoint]) -> None:
        self.path = layout.status
        self.states: dict[str, PointStatus] = {
            p.name: {"state": "pending", "settings": p.settings} for p in points
        }
        self.earlier = read_status(layout.root) if self.path.is_file() else {}
        self.started = time.perf_counter()

    def set(
        self,
        name: str,
        state: str,
        *,
        error: str | None = None,
        trace: str | None = None,
        seconds: float | None = None,
    ) -> None:
        entry: PointStatus = {**self.states[name], "state": state}
        if error is not None:
            entry["error"] = error
        if trace is not None:
            entry["traceback"] = trace
        if seconds is not None:
            entry["seconds"] = seconds
        self.states[name] = entry
        write_json(self.path, self.states)
        counts = {s: sum(v["state"] == s for v in self.states.values()) for s in _STATES}
        took = f" in {seconds:.0f} s" if seconds is not None else ""
        log.info(
            "sweep: %d done, %d running or queued, %d failed, %d not yet submitted (%.1f min); %s %s%s",
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
    """Validate every point, then run the unfinished ones (see the module docstring).
    `executor`: "ray" (Ray tasks; a local Ray instance unless `ray_address` names a cluster),
    "local" (one after another in this process), "auto" (Ray when it is installed)."""
    if executor == "local" and ray_address is not None:
        raise InputError(
            f"a Ray address ({ray_address}) needs the Ray executor: drop the address, or run the "
            "sweep with --executor ray."
        )
    use_ray = executor == "ray" or (executor == "auto" and _ray_installed())
    if use_ray and not _ray_installed():
        raise InputError(
            'The Ray executor needs Ray, which is not installed: pip install "sleeper-lens[ray]", '
            "or run the sweep in this process with --executor local."
        )
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
            check_same_config(folder, configs[point.name], point.name)
            todo.append(point)
    (layout.root / "runs").mkdir(parents=True, exist_ok=True)
    write_text(layout.spec, yaml.safe_dump(spec.model_dump(), sort_keys=False))
    status = _Status(layout, points)
    for name in outcome.skipped:  # keep a finished run's seconds from an earlier sitting
        earlier = status.earlier.get(name)
        if earlier is not None:
            status.states[name] = {**earlier, **status.states[name]}
        status.states[name]["state"] = "done"
    write_json(layout.status, status.states)
    jobs = {p.name: (configs[p.name], str(layout.run(p.name)), spec.resources.cpus) for p in todo}
    if use_ray and jobs:
        from analysis.sweep.on_ray import run_on_ray

        run_on_ray(
            jobs,
            spec.resources,
            ray_address,
            submitted=lambda name: status.set(name, "submitted"),
            finish=lambda name, work, explain: _finish(name, work, status, outcome, explain),
        )
    elif jobs:
        for name, args in jobs.items():
            status.set(name, "running")
            _finish(name, partial(run_point, *args), status, outcome)
    order = {p.name: i for i, p in enumerate(points)}
    outcome.done.sort(key=order.__getitem__)  # Ray finishes them in any order
    return outcome


def _ray_installed() -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec("ray") is not None
    except ValueError:  # `ray` in sys.modules without a spec (a stand-in, a half import)
        return False


Explain = Callable[[Exception], tuple[str, str]]


def _explain_here(err: Exception) -> tuple[str, str]:
    return f"{type(err).__name__}: {err}", traceback.format_exc(limit=8)


def _finish(
    name: str,
    work: Callable[[], float],
    status: _Status,
    outcome: SweepOutcome,
    explain: Explain = _explain_here,
) -> None:
    try:
        seconds = work()
    except Exception as err:  # one run's failure is recorded; the sweep goes on
        message, trace = explain(err)
        log.error("sweep: %s failed: %s", name, message)
        outcome.failed[name] = message
        status.set(name, "failed", error=message, trace=trace)
        return
    outcome.done.append(name)
    outcome.seconds[name] = round(seconds, 1)
    status.set(name, "done", seconds=round(seconds, 1))
