"""The schema of `sweep.json`: typed models of what `analysis.sweep.aggregate` computes from a
sweep's run folders (and `analysis.report.sweep` renders, from their JSON alone)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from analysis.folder.results import Estimate
from analysis.sweep.spec import Value

CHANGE = "trigger_rate_change"  # after a safety stage minus the backdoored model
PERSISTENCE_METRICS = ("trigger_rate", CHANGE)


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


class CurvePoint(_Model):
    """One size of one line: the mean over seeds and its 95% interval (see `method`)."""

    size: str  # the preset (or base) label
    n_params: int
    value: float | None
    low: float | None
    high: float | None
    n_seeds: int
    method: str
    seeds: list[SeedValue]


class Curve(_Model):
    """One metric at one stage for one group, points sorted by parameter count."""

    group: str
    group_settings: dict[str, Value]
    metric: str
    stage: str
    points: list[CurvePoint]


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
