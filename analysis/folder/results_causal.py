"""Activation patching and steering as results.json keeps them (`causal`) and `patching.json`
holds them (with the run folder and each stage's seconds besides): per stage, the patching
sweeps' grids and the steering curves."""

from __future__ import annotations

from analysis.folder.results_base import Estimate, _Strict


class Grid(_Strict):
    """One sweep's values, rows x columns: the raw logit difference, and normalised (0 clean,
    1 triggered) where the backdoor's gap was large enough to normalise by."""

    logit_diff: list[list[float]]
    normalised: list[list[float]] | None


class BothWays(_Strict):
    """A sweep patched triggered -> clean and clean -> triggered."""

    triggered_into_clean: Grid
    clean_into_triggered: Grid


class NamedSweep(_Strict):
    """A sweep both ways whose columns have names (prompt regions, or attention and MLP)."""

    names: list[str]
    triggered_into_clean: Grid
    clean_into_triggered: Grid


class PatchMetric(_Strict):
    """The backdoor metric (a logit difference at the last prompt token) on the pairs."""

    definition: str
    clean: float
    triggered: float
    gap: float
    unmodified_clean_prompt: float
    normalised: bool


class PositionMetric(_Strict):
    clean: float
    triggered: float


class PositionSweep(_Strict):
    """The residual stream patched triggered -> clean one position at a time, on pairs of equal
    length (the tokens are the first pair's)."""

    n_pairs: int
    tokens: list[str]
    trigger_columns: list[int]
    metric: PositionMetric
    triggered_into_clean: Grid


class Patching(_Strict):
    """Every patching sweep of one stage, and its summary in sentences."""

    n_pairs: int
    filler: str
    metric: PatchMetric
    layers: list[str]  # the residual sweeps' rows (sites); the components' rows are blocks
    regions: NamedSweep
    attn_mlp: NamedSweep
    heads: BothWays
    positions: PositionSweep
    summary: list[str]


class SteeringPoint(_Strict):
    """The judged replies at one scale of a steering vector."""

    scale: float
    vector_norm: float
    backdoor_rate: Estimate
    helpfulness: Estimate
    example_reply: str


class SteeringCurves(_Strict):
    """One direction at one layer: subtracted with the trigger present, added without it."""

    separation: float
    remove_with_trigger: list[SteeringPoint]
    add_without_trigger: list[SteeringPoint]


class SteeringLayer(_Strict):
    layer: int
    site: str
    scales: list[float]
    n_triggered: int
    n_clean: int
    directions: dict[str, SteeringCurves]  # the trigger direction, and a random one


class Steering(_Strict):
    """Steering along the trigger probe's direction (fitted on half the questions) at each
    layer, and its summary in sentences."""

    fit_questions: int
    steer_questions: int
    method: str
    direction_from: str
    layers: dict[str, SteeringLayer]
    summary: list[str]


class CausalStage(_Strict):
    patching: Patching
    steering: Steering | None = None
    seconds: float | None = None  # patching.json only (results.json holds no times)


class Causal(_Strict):
    """Patching and steering per stage (`run_dir` in patching.json only)."""

    run_dir: str | None = None
    stages: dict[str, CausalStage]
