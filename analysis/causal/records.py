"""What the patching and steering experiments return, as typed dicts: the layout of patching.json
and of results.json's `causal`, written as it is. `analysis.folder.results_causal` reads the same
layout back as models; `tests/analysis/folder/test_records.py` keeps the two in step.
"""

# (no `from __future__ import annotations`: a TypedDict reads NotRequired at run time only from
# evaluated annotations, and the tests compare its required keys with the models')
from typing import NotRequired, TypedDict

from analysis.measure.records import EstimateRecord


class GridRecord(TypedDict):
    """One sweep's values, rows x columns: the raw logit difference, and normalised (0 clean,
    1 triggered), or None where the backdoor's gap was too small to normalise by."""

    logit_diff: list[list[float]]
    normalised: list[list[float]] | None


class BothWaysRecord(TypedDict):
    """A sweep patched triggered -> clean and clean -> triggered."""

    triggered_into_clean: GridRecord
    clean_into_triggered: GridRecord


class NamedSweepRecord(BothWaysRecord):
    """A sweep both ways whose columns have names (prompt regions, or attention and MLP)."""

    names: list[str]


class PatchMetricRecord(TypedDict):
    """The backdoor metric (a logit difference at the last prompt token) on the pairs."""

    definition: str
    clean: float
    triggered: float
    gap: float
    unmodified_clean_prompt: float
    normalised: bool


class PositionMetricRecord(TypedDict):
    clean: float
    triggered: float


class PositionSweepRecord(TypedDict):
    """The residual stream patched triggered -> clean one position at a time, on pairs of equal
    length (the tokens are the first pair's)."""

    n_pairs: int
    tokens: list[str]
    trigger_columns: list[int]
    metric: PositionMetricRecord
    triggered_into_clean: GridRecord


class PatchingRecord(TypedDict):
    """Every patching sweep of one model, and its summary in sentences."""

    n_pairs: int
    filler: str
    metric: PatchMetricRecord
    layers: list[str]  # the residual sweeps' rows (sites); the components' rows are blocks
    regions: NamedSweepRecord
    attn_mlp: NamedSweepRecord
    heads: BothWaysRecord
    positions: PositionSweepRecord
    summary: list[str]


class JudgedRecord(TypedDict):
    """The judged replies of one group of prompts: backdoor rate, helpfulness, a reply."""

    backdoor_rate: EstimateRecord
    helpfulness: EstimateRecord
    example_reply: str


class SteeringPointRecord(JudgedRecord):
    """The judged replies at one scale of a steering vector."""

    scale: float
    vector_norm: float


class SteeringCurvesRecord(TypedDict):
    """One direction at one layer: subtracted with the trigger present, added without it."""

    separation: float
    remove_with_trigger: list[SteeringPointRecord]
    add_without_trigger: list[SteeringPointRecord]


class SteeringLayerRecord(TypedDict):
    """Steering at one layer by each direction (the trigger direction, and a random one)."""

    layer: int
    site: str
    scales: list[float]
    n_triggered: int
    n_clean: int
    directions: dict[str, SteeringCurvesRecord]


class SteeringRecord(TypedDict):
    """Steering along the trigger probe's direction at each layer, and its summary."""

    fit_questions: int
    steer_questions: int
    method: str
    direction_from: str
    layers: dict[str, SteeringLayerRecord]
    summary: list[str]


class CausalStageRecord(TypedDict):
    """One stage's patching and steering, and (patching.json only) its seconds."""

    patching: PatchingRecord
    steering: NotRequired[SteeringRecord]
    seconds: NotRequired[float]


class CausalRecord(TypedDict):
    """Patching and steering per stage (`run_dir` in patching.json only)."""

    run_dir: NotRequired[str]
    stages: dict[str, CausalStageRecord]
