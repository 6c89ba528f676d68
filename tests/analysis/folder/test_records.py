"""The typed dicts the measurements and the causal experiments return are the layouts the
results models read back: the same keys, the same ones required."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from analysis.causal import records as causal
from analysis.folder import results, results_base, results_causal, results_training
from analysis.measure import records
from analysis.measure.behaviour import summarise_behaviour
from backdoor_models.behaviour.evaluation import JudgedReply


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
