"""Running a sweep on Ray (`analysis.sweep.on_ray`), the parts that need no cluster: the largest
live node, the refusal of a run no node of a local instance can hold (a warning for a cluster
that may grow), and a failed task told as the run's own error or as the worker's death. Real Ray
sweeps run in `test_sweep_runs.py` (slow tier)."""

from __future__ import annotations

import logging

import pytest

from analysis.errors import InputError
from analysis.sweep.on_ray import RayNode, _check_fits, _largest_node, _ray_explainer
from analysis.sweep.spec import Resources

NODES: list[RayNode] = [
    {"Alive": True, "Resources": {"CPU": 4.0, "memory": 8e9}},
    {"Alive": True, "Resources": {"CPU": 2.0, "GPU": 1.0}},
    {"Alive": False, "Resources": {"CPU": 64.0, "GPU": 8.0}},  # dead: it runs nothing
    {"Alive": True},
]


def test_the_largest_node_is_the_most_of_each_resource_on_a_live_node() -> None:
    assert _largest_node(NODES) == {"CPU": 4.0, "memory": 8e9, "GPU": 1.0}
    assert _largest_node([]) == {}


def test_a_run_no_local_node_can_hold_is_refused_naming_each_resource(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with pytest.raises(InputError) as info:
        _check_fits({"CPU": 4.0}, Resources(cpus=8, gpus=0.5), None)
    assert str(info.value).startswith(
        "resources.cpus=8 but no Ray node has more than 4; "
        "resources.gpus=0.5 but no Ray node has more than 0 (this machine). Lower resources"
    )
    _check_fits(_largest_node(NODES), Resources(cpus=4, gpus=1), None)  # fits: no error


@pytest.mark.parametrize("address", ["ray://head:10001", None])
def test_a_cluster_that_may_grow_gets_a_warning_not_a_refusal(
    address: str | None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("RAY_ADDRESS", "head:6379")  # a cluster, by address or by environment
    with caplog.at_level(logging.WARNING, logger="analysis.sweep.on_ray"):
        _check_fits({"CPU": 4.0}, Resources(cpus=8), address)
    assert "resources.cpus=8 but no Ray node has more than 4; runs wait" in caplog.text


def test_a_failed_task_is_told_as_the_runs_own_error_or_the_workers_death() -> None:
    exceptions = pytest.importorskip("ray.exceptions")  # the `ray` extra
    explain = _ray_explainer(retries=2)
    trace = "Traceback (most recent call last):\n  \x1b[36mFile run.py\x1b[0m\nValueError: bad"
    wrapped = exceptions.RayTaskError(
        "run_point", trace, ValueError("bad base")
    ).as_instanceof_cause()
    message, text = explain(wrapped)
    assert message == "ValueError: bad base"  # as if it had run here
    assert "File run.py" in text and "\x1b[" not in text
    message, _ = explain(exceptions.WorkerCrashedError())
    assert message.startswith("the Ray worker running it died 3 time(s)")
    assert "raise resources.retries" in message
    message, _ = explain(RuntimeError("disk full"))
    assert message == "RuntimeError: disk full"
