"""The aggregate's views of a sweep besides the curves over size: each metric against each factor,
each group's means per stage, and the SFT learning-rate view. Every number is a mean over seeds
with its 95% interval (`analysis.sweep.means`).

- Factor curves: for each factor, the points are split into lines by their other non-seed
  settings; a line with two values of the factor or more gives, at each stage and for each
  metric, one curve point per value (in the factor's order).
- Groups: the points that share every non-seed setting, at each stage, each metric's mean.
- Learning rate: for each group, the backdoor rate with the trigger (and its change from the
  backdoored model) after `sft` and after `sft_high_lr` (SFT at a higher learning rate, beside
  it), with each stage's learning rate as x; only runs with both stages count.

Example:
    >>> curves = factor_curves(points, factors, dims, stages)   # doctest: +SKIP
"""

from __future__ import annotations

from analysis.sweep.factors import Dimension, dimension_settings, split_by, value_label
from analysis.sweep.means import rows_of, seed_mean
from analysis.sweep.results import (
    METRICS,
    PERSISTENCE_METRICS,
    Factor,
    FactorCurve,
    FactorPoint,
    GroupStage,
    LearningRateLine,
    LearningRatePoint,
    PointResult,
)
from analysis.sweep.stage_metrics import SFT, SFT_HIGH_LR

__all__ = ["factor_curves", "group_stages", "learning_rate_lines"]


def factor_curves(
    points: list[PointResult], factors: list[Factor], dims: list[Dimension], stages: list[str]
) -> list[FactorCurve]:
    """Every metric at every stage against each factor, one curve per line of other settings
    (`dims`: the factors and the other varying non-seed keys, as `dimensions` gives them)."""
    curves = []
    for factor in factors:
        others = [d for d in dims if d[0] != factor.name]
        for line, members in split_by(points, others).items():
            by_x: dict[str, list[PointResult]] = {}
            for p in members:
                by_x.setdefault(value_label(factor.keys, p.settings), []).append(p)
            if len(by_x) < 2:
                continue
            xs = [x for x in factor.values if x in by_x]
            for stage in stages:
                for metric in METRICS:
                    line_points = [
                        FactorPoint(x=x, **dict(seed_mean(rows, metric)))
                        for x in xs
                        if (rows := rows_of(by_x[x], stage, metric))
                    ]
                    if line_points:
                        curves.append(
                            FactorCurve(
                                factor=factor.name,
                                line=line,
                                line_settings=dimension_settings(members[0], others),
                                metric=metric,
                                stage=stage,
                                points=line_points,
                            )
                        )
    return curves


def group_stages(
    points: list[PointResult], dims: list[Dimension], stages: list[str]
) -> list[GroupStage]:
    """Each group of points (every non-seed setting in `dims` the same) at each stage it has:
    each metric's mean over the group's seeds."""
    out = []
    for group, members in split_by(points, dims).items():
        for stage in stages:
            means = {
                metric: seed_mean(rows, metric)
                for metric in METRICS
                if (rows := rows_of(members, stage, metric))
            }
            if means:
                out.append(
                    GroupStage(
                        group=group,
                        settings=dimension_settings(members[0], dims),
                        stage=stage,
                        metrics=means,
                    )
                )
    return out


def learning_rate_lines(points: list[PointResult], dims: list[Dimension]) -> list[LearningRateLine]:
    """For each group whose runs have both `sft` and `sft_high_lr`, the backdoor rate with the
    trigger and its change from the backdoored model after each, against the learning rate."""
    lines = []
    for group, members in split_by(points, dims).items():
        both = [
            p
            for p in members
            if all(s in p.stages and s in p.learning_rates for s in (SFT, SFT_HIGH_LR))
        ]
        if not both:
            continue
        for metric in PERSISTENCE_METRICS:
            by_lr: dict[tuple[float, str], list[PointResult]] = {}
            for p in both:
                for stage in (SFT, SFT_HIGH_LR):
                    by_lr.setdefault((p.learning_rates[stage], stage), []).append(p)
            line_points = [
                LearningRatePoint(stage=stage, lr=lr, **dict(seed_mean(rows, metric)))
                for (lr, stage), runs in sorted(by_lr.items())
                if (rows := rows_of(runs, stage, metric))
            ]
            if line_points:
                lines.append(
                    LearningRateLine(
                        group=group,
                        settings=dimension_settings(both[0], dims),
                        metric=metric,
                        points=line_points,
                    )
                )
    return lines
