"""The typed dicts the measurements, the causal experiments and the contrast probe return are the
layouts the results models read back: the same keys, the same ones required; and the rows the
benchmark builds are bench.json's typed dicts, key for key."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel

from analysis.bench.tables import behaviour_vs_representation, leaderboard
from analysis.causal import records as causal
from analysis.contrast import records as contrast
from analysis.folder import bench_records as bench
from analysis.folder import results, results_base, results_causal, results_probes, results_training
from analysis.measure import records
from analysis.measure.behaviour import summarise_behaviour
from backdoor_models.behaviour.evaluation import JudgedReply
from tests.analysis.bench.stage_rows import ROWS
from tests.analysis.real_results import PATH


def _keys(typed: Any) -> tuple[set[str], set[str]]:
    """(all keys, required keys) of a TypedDict."""
    return set(typed.__annotations__), set(typed.__required_keys__)


def _fields(model: type[BaseModel]) -> tuple[set[str], set[str]]:
    """(all fields, required fields) of a model."""
    fields = model.model_fields
    return set(fields), {k for k, f in fields.items() if f.is_required()}


SAME = [
    (records.EstimateRecord, results_base.Estimate),
    (records.WorstCaseFPRRecord, results.WorstCaseFPR),
    (records.OperatingPointRecord, results.OperatingPoint),
    (records.ScratchpadRecord, results.ScratchpadRates),
    (records.BehaviourRecord, results.Behaviour),
    (records.RepresentationRecord, results_training.RepresentationEval),
    (records.TextBaselineRecord, results_probes.TextBaseline),
    (records.ProbeVsTextRecord, results_probes.ProbeVsText),
    (causal.GridRecord, results_causal.Grid),
    (causal.BothWaysRecord, results_causal.BothWays),
    (causal.NamedSweepRecord, results_causal.NamedSweep),
    (causal.PatchMetricRecord, results_causal.PatchMetric),
    (causal.PositionMetricRecord, results_causal.PositionMetric),
    (causal.PositionSweepRecord, results_causal.PositionSweep),
    (causal.PatchingRecord, results_causal.Patching),
    (causal.SteeringPointRecord, results_causal.SteeringPoint),
    (causal.SteeringCurvesRecord, results_causal.SteeringCurves),
    (causal.SteeringLayerRecord, results_causal.SteeringLayer),
    (causal.SteeringRecord, results_causal.Steering),
    (causal.CausalStageRecord, results_causal.CausalStage),
    (causal.CausalRecord, results_causal.Causal),
    (contrast.ContrastResult, results.Contrast),
    (contrast.RandomDirections, results.RandomDirections),
    (contrast.AskModel, results.AskModel),
]


@pytest.mark.parametrize(("typed", "model"), SAME, ids=lambda x: x.__name__)
def test_a_record_has_its_models_keys(typed: Any, model: type[BaseModel]) -> None:
    assert _keys(typed) == _fields(model)


def test_the_tracked_evaluation_is_a_stage_eval_less_its_step() -> None:
    keys, required = _keys(records.TrackedRecord)
    fields, _ = _fields(results_training.StageEval)
    assert keys == fields - {"step"}
    assert required == {"trigger_rate", "false_trigger_rate", "helpfulness"}


def test_the_probe_record_is_the_trigger_probe_less_what_the_run_adds() -> None:
    keys, required = _keys(records.TriggerProbeRecord)
    fields, model_required = _fields(results.TriggerProbe)
    assert keys <= fields
    assert model_required - required == {"position"}  # the run adds where the probe reads


def test_a_behaviour_summary_reads_back_as_behaviour() -> None:
    judged = [
        JudgedReply(f"q{i}", "r", "fam", i % 2 == 0, i % 3 == 0, i % 4 == 0, reasoning="training")
        for i in range(12)
    ]
    summary = summarise_behaviour(judged, n_boot=50)
    assert results.Behaviour.model_validate(summary).scratchpad is not None


def test_the_contrast_probes_records_are_the_direction_models_keys() -> None:
    fields, _ = _fields(results.ContrastDirection)
    assert _keys(contrast.ProbeRecord)[0] | {"name"} == fields  # the model reads the control too
    assert _keys(contrast.ControlProbe)[0] == fields


def test_keys_that_are_not_always_written_are_optional() -> None:
    assert contrast.ProbeRecord.__optional_keys__ == {
        "cosine_with_contrast",
        "operating_points",
        "best_operating_point",
    }
    assert bench.StageRow.__optional_keys__ == {"results_json_max_abs_diff"}


def test_a_real_contrast_json_has_the_records_keys() -> None:
    """The small run's contrast results (written by `contrast_probe_analysis`), stage by stage:
    no key the records lack, none the results models require missing."""
    stages = json.loads(PATH.read_text())["stages"]
    parts = {
        "contrast": (contrast.ProbeRecord, results.ContrastDirection),
        "obvious_truth": (contrast.ProbeRecord, results.ContrastDirection),
        "control": (contrast.ControlProbe, results.ContrastDirection),
        "random": (contrast.RandomDirections, results.RandomDirections),
        "ask_model": (contrast.AskModel, results.AskModel),
    }
    seen = set()
    for stage in stages.values():
        record = stage["contrast"]
        assert set(record) == _keys(contrast.ContrastResult)[0]
        for name, (typed, model) in parts.items():
            if record[name] is None:
                continue
            assert _fields(model)[1] <= set(record[name]) <= _keys(typed)[0], name
            seen.add(name)
    assert seen == set(parts)  # the backdoored stage has the control
    assert "cosine_with_contrast" in stages["backdoored"]["contrast"]["obvious_truth"]


def test_the_benchmarks_rows_are_bench_jsons_records() -> None:
    """Rows built by the benchmark's own `_stage_row`, and the tables made from them."""
    row = ROWS[0]  # no logistic detector: nothing to check against results.json
    assert set(row) == _keys(bench.StageRow)[0] - {"results_json_max_abs_diff"}
    assert set(row["random_directions"]) == _keys(bench.RandomDirections)[0]
    detector = row["detectors"]["lda"]
    assert set(detector) == _keys(bench.DetectorRecord)[0]
    assert set(detector["best_roc"]) == _keys(bench.RocCurve)[0]
    cell = detector["cells"][0]
    assert set(cell) == _keys(bench.CellRecord)[0]
    assert set(cell["calibration"]) == _keys(bench.Calibration)[0]
    assert set(cell["worst_case_fpr"]) == _keys(bench.WorstCaseFpr)[0]
    assert set(leaderboard(ROWS)[0]) == _keys(bench.LeaderboardCell)[0]
    summary = behaviour_vs_representation(ROWS)[0]
    assert set(summary) == _keys(bench.BehaviourVsRepresentation)[0]
    assert set(summary["best_auroc"]["lda"]) == _keys(bench.BestAuroc)[0]
