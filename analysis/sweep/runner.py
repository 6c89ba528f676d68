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
import os
import re
import socket
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal

import yaml

from analysis.config import RunConfig, config_from_dict
from analysis.errors import InputError, RunExistsError
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
    body of a Ray task, and of the in-process loop; called again on a partial folder (a retried
    task, a restarted sweep), it resumes the run from its last finished step."""
    import torch

    from analysis.run.experiment import run_experiment

    folder = Path(run_dir)
    if not folder.parent.is_dir():  # the driver made runs/ before submitting anything
        raise InputError(
            f"the sweep folder {folder.parent.parent} is not visible on {socket.gethostname()}: "
            "on a Ray cluster, put the sweep folder on a file system every node mounts at the "
            "same path."
        )
    start = time.perf_counter()
    with _point_lock(folder):
        if run_finished(folder):  # finished by another process while this one waited
            return 0.0
        resume = RunLayout(folder).config.is_file()
        if not resume and folder.is_dir():
            _clear_unstarted(folder)
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            run_experiment(config_from_dict(cfg_dict), folder, resume=resume, progress=False)
        finally:
            torch.set_num_threads(before)  # the in-process executor leaves this process as it was
    return time.perf_counter() - start


def _clear_unstarted(folder: Path) -> None:
    """A run killed before its config was written leaves at most an empty folder and the
    temporary file of that first write: clear them so the run starts again. A folder holding
    anything else is not this point's run, and is left as it is."""
    for leftover in folder.glob(".*.tmp"):
        leftover.unlink(missing_ok=True)
    others = sorted(p.name for p in folder.iterdir())
    if others:
        raise RunExistsError(
            f"{folder} holds files that are not this point's run ({', '.join(others[:3])}"
            f"{', ...' if len(others) > 3 else ''}): move them away, then run the sweep again."
        )
    folder.rmdir()


@contextmanager
def _point_lock(folder: Path) -> Iterator[None]:
    """Hold `runs/.<point>.lock` while the point runs (waiting for another holder); the lock
    goes with its process, however that process ends."""
    try:
        import fcntl
    except ImportError:  # not on POSIX: no lock
        yield
        return
    with open(folder.parent / f".{folder.name}.lock", "a") as handle:
        waited = locked = False
        while not locked:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                locked = True
            except BlockingIOError:
                if not waited:
                    log.warning("sweep: %s is running in another process; waiting", folder.name)
                    waited = True
                time.sleep(0.5)
            except OSError as err:  # a file system without locks
                log.warning("sweep: cannot lock %s (%s); running unlocked", folder.name, err)
                break
        try:
            yield
        finally:
            if locked:
                fcntl.flock(handle, fcntl.LOCK_UN)


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
            _check_same_config(folder, configs[point.name], point.name)
            todo.append(point)
    (layout.root / "runs").mkdir(parents=True, exist_ok=True)
    write_text(layout.spec, yaml.safe_dump(spec.model_dump(), sort_keys=False))
    status = _Status(layout, points)
    for name in outcome.skipped:
        status.states[name]["state"] = "done"
    write_json(layout.status, status.states)
    jobs = {
        p.name: (configs[p.name].to_dict(), str(layout.run(p.name)), spec.resources.cpus)
        for p in todo
    }
    if jobs:
        runner = _run_on_ray if use_ray else _run_here
        runner(jobs, spec, status, outcome, ray_address)
    order = {p.name: i for i, p in enumerate(points)}
    outcome.done.sort(key=order.__getitem__)  # Ray finishes them in any order
    return outcome


def _ray_installed() -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec("ray") is not None
    except ValueError:  # `ray` in sys.modules without a spec (a stand-in, a half import)
        return False


Jobs = dict[str, tuple[dict[str, Any], str, int]]
Explain = Callable[[Exception], tuple[str, str]]


def _run_here(
    jobs: Jobs, spec: SweepSpec, status: _Status, outcome: SweepOutcome, _: str | None
) -> None:
    for name, args in jobs.items():
        status.set(name, "running")
        _finish(name, partial(run_point, *args), status, outcome)


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
        status.set(name, "failed", error=message, traceback=trace)
        return
    outcome.done.append(name)
    outcome.seconds[name] = round(seconds, 1)
    status.set(name, "done", seconds=round(seconds, 1))


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _ray_explainer(retries: int) -> Explain:
    """A failed task as (message, traceback): the run's own error as if it had run here (Ray
    wraps it in a RayTaskError whose text is the worker's traceback), or the worker's death."""
    from ray import exceptions

    def explain(err: Exception) -> tuple[str, str]:
        if isinstance(err, exceptions.RayTaskError) and err.cause is not None:
            cause = err.cause
            return f"{type(cause).__name__}: {cause}", _ANSI.sub("", str(err))
        if isinstance(err, exceptions.WorkerCrashedError | exceptions.NodeDiedError):
            return (
                f"the Ray worker running it died {retries + 1} time(s) (killed, out of memory, "
                "or crashed; its log is in Ray's session folder, /tmp/ray/session_latest/logs). "
                "Run the sweep again to resume it, or raise resources.retries.",
                _ANSI.sub("", str(err)),
            )
        return _explain_here(err)

    return explain


def _run_on_ray(
    jobs: Jobs, spec: SweepSpec, status: _Status, outcome: SweepOutcome, address: str | None
) -> None:
    import ray

    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    try:
        _check_fits(_largest_node(ray.nodes()), spec, address)
        task = ray.remote(run_point)
        options = {
            "num_cpus": spec.resources.cpus,
            "num_gpus": spec.resources.gpus,
            "max_retries": spec.resources.retries,  # a worker that died: the retry resumes the run
            "retry_exceptions": False,  # a run's own error (a bad base, a full disk) is not retried
        }
        refs = {  # the name is the worker's process title while it runs the point
            task.options(name=f"sweep {name}", **options).remote(*args): name
            for name, args in jobs.items()
        }
        for name in jobs:  # Ray starts each when its resources are free
            status.set(name, "submitted")
        explain = _ray_explainer(spec.resources.retries)
        waiting = list(refs)
        while waiting:
            ready, waiting = ray.wait(waiting, num_returns=1)
            _finish(refs[ready[0]], partial(_task_seconds, ready[0]), status, outcome, explain)
    finally:
        if started_here:
            ray.shutdown()


def _task_seconds(ref: Any) -> float:
    """A finished task's seconds (or its error, raised)."""
    import ray

    return float(ray.get(ref))


def _largest_node(nodes: list[dict[str, Any]]) -> dict[str, float]:
    """The most of each resource one live node of the Ray cluster has (a task runs on one)."""
    most: dict[str, float] = {}
    for node in nodes:
        if node.get("Alive"):
            for resource, amount in node.get("Resources", {}).items():
                most[resource] = max(most.get(resource, 0.0), amount)
    return most


def _check_fits(available: dict[str, float], spec: SweepSpec, address: str | None) -> None:
    """A run asking for more than any node of the Ray cluster has would wait forever: say so
    now."""
    short = [
        f"resources.{key}={wanted:g} but no Ray node has more than {available.get(resource, 0):g}"
        for key, resource, wanted in (
            ("cpus", "CPU", spec.resources.cpus),
            ("gpus", "GPU", spec.resources.gpus),
        )
        if wanted > available.get(resource, 0)
    ]
    if short and address is None and not os.environ.get("RAY_ADDRESS"):
        # an instance on this machine (started here, or by `ray start`): it has what it has
        raise InputError(
            f"{'; '.join(short)} (this machine). Lower resources in the sweep file, or give "
            "the address of a cluster that has them."
        )
    if short:  # a cluster may grow (an autoscaler); it may also never have them
        log.warning("sweep: %s; runs wait until nodes with them join", "; ".join(short))


def read_status(sweep_dir: str | Path) -> dict[str, dict[str, Any]]:
    """status.json of a sweep folder."""
    return dict(read_json(SweepLayout(Path(sweep_dir)).status))
