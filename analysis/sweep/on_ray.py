"""Running a sweep's points as Ray tasks (the `[ray]` extra): resources per task, retries of a
task whose worker died (the retry resumes the run), a run's own error passed on as if it had run
here, and a clear refusal of a run that fits on no node."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from functools import partial
from typing import Any, TypedDict

from analysis.config import RunConfig
from analysis.errors import InputError
from analysis.sweep.point import run_point
from analysis.sweep.spec import Resources

log = logging.getLogger(__name__)
# point -> run_point's arguments: the point's config, its run folder, its torch threads
Jobs = dict[str, tuple[RunConfig, str, int]]
Explain = Callable[[Exception], tuple[str, str]]
# finish(point, work, explain): run `work` (a task's result) and record the point's outcome
Finish = Callable[[str, Callable[[], float], Explain], None]


def _explain_here(err: Exception) -> tuple[str, str]:
    import traceback

    return f"{type(err).__name__}: {err}", traceback.format_exc(limit=8)


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


def run_on_ray(
    jobs: Jobs,
    resources: Resources,
    address: str | None,
    submitted: Callable[[str], None],
    finish: Finish,
) -> None:
    """Each job (point -> run_point's arguments) as a Ray task; `submitted(point)` once all are
    queued, `finish(point, result, explain)` as each ends, in the order they end."""
    import ray

    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    try:
        _check_fits(_largest_node(ray.nodes()), resources, address)
        # a fresh worker process per run: a reused one kept a finished SmolLM2 run's memory
        # (7.2 GB resident when the next run started)
        task = ray.remote(max_calls=1)(run_point)
        options = {
            "num_cpus": resources.cpus,
            "num_gpus": resources.gpus,
            "max_retries": resources.retries,  # a worker that died: the retry resumes the run
            "retry_exceptions": False,  # a run's own error (a bad base, a full disk) is not retried
        }
        refs = {  # the name is the worker's process title while it runs the point
            task.options(name=f"sweep {name}", **options).remote(*args): name
            for name, args in jobs.items()
        }
        for name in jobs:  # Ray starts each when its resources are free
            submitted(name)
        explain = _ray_explainer(resources.retries)
        waiting = list(refs)
        while waiting:
            ready, waiting = ray.wait(waiting, num_returns=1)
            finish(refs[ready[0]], partial(_task_seconds, ready[0]), explain)
    finally:
        if started_here:
            ray.shutdown()


def _task_seconds(ref: Any) -> float:
    """A finished task's seconds (or its error, raised)."""
    import ray

    return float(ray.get(ref))


class RayNode(TypedDict, total=False):
    """What `ray.nodes()` says of a node, as far as the check reads it."""

    Alive: bool
    Resources: dict[str, float]


def _largest_node(nodes: list[RayNode]) -> dict[str, float]:
    """The most of each resource one live node of the Ray cluster has (a task runs on one)."""
    most: dict[str, float] = {}
    for node in nodes:
        if node.get("Alive"):
            for resource, amount in node.get("Resources", {}).items():
                most[resource] = max(most.get(resource, 0.0), amount)
    return most


def _check_fits(available: dict[str, float], resources: Resources, address: str | None) -> None:
    """A run asking for more than any node of the Ray cluster has would wait forever: say so
    now."""
    short = [
        f"resources.{key}={wanted:g} but no Ray node has more than {available.get(resource, 0):g}"
        for key, resource, wanted in (
            ("cpus", "CPU", resources.cpus),
            ("gpus", "GPU", resources.gpus),
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
