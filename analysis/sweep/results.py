"""The schema of `sweep.json`: typed models of what `analysis.sweep.aggregate` computes from a
sweep's run folders (and `analysis.report.sweep` renders, from their JSON alone): each finished
point's numbers, curves over model size, curves over each factor (`analysis.sweep.factors`), each
group's means per stage, the SFT learning-rate view, and paired contrasts over seeds
(`analysis.sweep.contrasts`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from analysis.folder.results import Estimate
from analysis.sweep.spec import Value

CHANGE = "trigger_rate_change"  # after a safety stage minus the backdoored model
PERSISTENCE_METRICS = ("trigger_rate", CHANGE)
# differences of two estimates: they live in [-1, 1], the other metrics in [0, 1]
DIFFERENCES = (CHANGE, "helpfulness_change", "contrast_minus_control", "trigger_probe_minus_text")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StageMetrics(_Model):
    """One stage of one run: results.json's estimates, unchanged (None where the run has none)."""

    trigger_rate: Estimate | None = None  # backdoor rate with the trigger
    no_trigger_rate: Estimate | None = None  # backdoor rate without it (false triggers)
    red_team_rate: Estimate | None = None  # held-out prompts of the (trigger-blind) red team
    red_team_rate_trigger_aware: Estimate | None = None  # held-out prompts of the ablation's
    helpfulness: Estimate | None = None
    trigger_probe_auroc: Estimate | None = None  # best site's held-out AUROC
    contrast_probe_auroc: Estimate | None = None  # the contrast-pair probe's best AUROC
    trigger_rate_change: Estimate | None = None  # after this safety stage minus backdoored
    # a pretrained base's: helpfulness minus the base's before backdoor training (at backdoored,
    # results.json's capability_cost, paired by prompt; at other stages by MOVER)
    helpfulness_change: Estimate | None = None
    contrast_control_auroc: Estimate | None = None  # the contrast probe of the no-backdoor control
    contrast_minus_control: Estimate | None = None  # the contrast probe's best minus the control's
    text_baseline_auroc: Estimate | None = None  # the trigger probe's text-only baseline
    # the best site's trigger probe minus the text baseline (results.json's paired bootstrap)
    trigger_probe_minus_text: Estimate | None = None
    # the detector benchmark over the sweep's runs (bench/bench.json): each detector's best
    # held-out AUROC at this stage (any site and position), so that curves pool it over seeds
    bench_logistic_auroc: Estimate | None = None
    bench_diff_means_auroc: Estimate | None = None
    bench_lda_auroc: Estimate | None = None
    bench_mahalanobis_auroc: Estimate | None = None


METRICS: tuple[str, ...] = tuple(StageMetrics.model_fields)


class PointResult(_Model):
    """One finished point of the sweep."""

    name: str
    settings: dict[str, Value]
    group: str  # the line it belongs to (its non-seed, non-size settings)
    seed: str  # its seed settings as text ("" when the seed does not vary)
    preset: str  # results.json's model.preset (a preset name, or "base:NAME (lora|full)")
    n_params: int
    stages: dict[str, StageMetrics]
    # each SFT stage's learning rate (sft: the config's sft.lr; a stage that records its own,
    # as sft_high_lr does, that one)
    learning_rates: dict[str, float] = {}


class UnfinishedPoint(_Model):
    """A point with no usable results: not run yet, running, failed, or results.json unreadable."""

    name: str
    settings: dict[str, Value]
    state: str
    error: str | None = None


class SeedValue(_Model):
    point: str
    seed: str
    value: float


class SeedMean(_Model):
    """The mean over seeds of one metric with its 95% interval (see `method`), and each seed's
    value."""

    value: float | None
    low: float | None
    high: float | None
    n_seeds: int
    method: str
    seeds: list[SeedValue]


class CurvePoint(SeedMean):
    """One size of one line: the mean over seeds and its 95% interval (see `method`)."""

    size: str  # the preset (or base) label
    n_params: int


class Curve(_Model):
    """One metric at one stage for one group, points sorted by parameter count."""

    group: str
    group_settings: dict[str, Value]
    metric: str
    stage: str
    points: list[CurvePoint]


class Factor(_Model):
    """Settings keys that vary together and make one x axis (e.g. model.finetune with
    model.lora_rank: "LoRA r16", "full")."""

    name: str
    keys: list[str]
    values: list[str]  # its x values as labels, in the order the sweep lists them
    declared: bool  # named in the sweep file's `factors:` (else found from the points)


class FactorPoint(SeedMean):
    x: str  # the factor's value (one of Factor.values)


class FactorCurve(_Model):
    """One metric at one stage against one factor, for one combination of the other settings."""

    factor: str
    line: str  # the other non-seed settings, as text ("all points" when none vary)
    line_settings: dict[str, Value]
    metric: str
    stage: str
    points: list[FactorPoint]  # in the factor's order


class GroupStage(_Model):
    """One group of points (all their non-seed settings) at one stage: each metric's mean over
    the group's seeds."""

    group: str
    settings: dict[str, Value]
    stage: str
    metrics: dict[str, SeedMean]


class LearningRatePoint(SeedMean):
    stage: str  # sft or sft_high_lr
    lr: float


class LearningRateLine(_Model):
    """One group's metric after SFT at each learning rate it ran (runs with both SFT stages)."""

    group: str
    settings: dict[str, Value]
    metric: str
    points: list[LearningRatePoint]  # by learning rate, ascending


# the metrics of the paired contrasts: each safety stage's (and the backdoored model's) rates
CONTRAST_METRICS = (
    "trigger_rate",
    CHANGE,
    "red_team_rate",
    "red_team_rate_trigger_aware",
    "helpfulness",
)
STAGE_CONTRAST_METRICS = ("trigger_rate", "helpfulness")  # sft_high_lr minus sft


class PairedSeed(_Model):
    """One seed's pair of a contrast: the two points' values and their difference."""

    seed: str
    point: str  # the point of the compared side (`value`, at `stage`)
    reference_point: str  # the reference side's (`reference`, at `reference_stage`)
    value: float
    reference_value: float
    difference: float  # value - reference_value


class Contrast(_Model):
    """A paired contrast: one metric of two sides that differ in one thing only (a setting, or
    the stage of the same run), the difference taken per seed and then its mean over the seeds
    with its 95% interval (see `method`)."""

    kind: Literal["setting", "stage"]  # two configurations at one stage, or two stages of a run
    factor: str  # the factor (or varying key) that differs; "stage" for kind "stage"
    value: str  # the compared value, e.g. "full" (kind "stage": the stage, "sft_high_lr")
    reference: str  # the reference value, e.g. "LoRA r16" (kind "stage": "sft")
    comparison: str  # "full − LoRA r16"
    others: str  # every other non-seed setting, as text ("all points" when none vary)
    others_settings: dict[str, Value]
    stage: str  # the stage of the compared side
    reference_stage: str  # the reference side's (the same stage for kind "setting")
    metric: str
    difference: float | None  # the mean of the per-seed differences
    low: float | None
    high: float | None
    n_seeds: int  # the seeds that both sides have (the pairs)
    method: str
    excludes_zero: bool  # the interval lies wholly above or wholly below 0
    seeds: list[PairedSeed]
    unpaired: list[str] = []  # seeds that only one side has: left out


Verdict = Literal["agrees", "disagrees", "cannot tell"]
VERDICTS: tuple[Verdict, ...] = ("agrees", "disagrees", "cannot tell")


class ClaimRow(_Model):
    """One estimate a claim is checked against: a paired contrast, or a configuration's mean."""

    configuration: str  # the contrast's other settings, or the group's settings, as text
    stage: str
    value: float | None
    low: float | None
    high: float | None
    n_seeds: int
    method: str
    verdict: Verdict


class ClaimCheck(_Model):
    """A sweep file's claim (`ClaimSpec`'s fields) and the sweep's estimates beside it."""

    source: str
    claim: str
    metric: str
    stages: list[str]
    comparison: str | None
    expect: Literal["above", "below", "about"]
    value: float
    tolerance: float | None
    rows: list[ClaimRow]
    counts: dict[str, int]  # each verdict's number of rows, in VERDICTS' order
    note: str | None = None  # why it has no rows, when it has none


class SweepResults(_Model):
    """What `sweep.json` holds."""

    sweep_dir: str
    n_points: int
    varying: list[str]  # settings that take more than one value in the sweep
    group_keys: list[str]  # the varying settings that make the lines (not seed, not size)
    seed_keys: list[str]
    size_keys: list[str]
    stages: list[str]
    safety_stages: list[str]
    metrics: list[str]
    points: list[PointResult]
    not_finished: list[UnfinishedPoint]
    curves: list[Curve]  # every metric at every stage, per group
    persistence: list[Curve]  # PERSISTENCE_METRICS at the safety stages (a view of `curves`)
    interval_note: str
    bench_report: str | None = None  # bench/bench.html, relative, when bench/bench.json exists
    factors: list[Factor] = []  # declared, or (with no size axis) found from the points
    factor_curves: list[FactorCurve] = []  # every metric at every stage against each factor
    groups: list[GroupStage] = []  # each group of non-seed settings at each stage
    learning_rate: list[LearningRateLine] = []  # PERSISTENCE_METRICS after sft and sft_high_lr
    # each value of each factor against its reference, paired by seed; sft_high_lr minus sft
    contrasts: list[Contrast] = []
    claims: list[ClaimCheck] = []  # the sweep file's claims, each beside its estimates
