"""Means over seeds with their 95% intervals, and differences of two estimates: what every curve
point, group mean and learning-rate point of the sweep aggregate is made of.

With two seeds or more: the mean and Student's t interval over the seeds' values, clipped to the
metric's range. With one seed: that run's own interval, saying so. A difference of two estimates
of one run (after minus before) has the MOVER interval of the two.

Example:
    >>> e = seed_interval([0.2, 0.4, 0.6])
    >>> round(e.value, 3), round(e.low, 3), round(e.high, 3), e.n
    (0.4, 0.0, 0.897, 3)
"""

from __future__ import annotations

import math

from analysis.folder.results import Estimate
from analysis.sweep.results import DIFFERENCES, PointResult, SeedMean, SeedValue
from probes import t_interval

__all__ = ["LEVEL", "difference", "metric_range", "rows_of", "seed_interval", "seed_mean"]

LEVEL = 0.95
# a point of the sweep with its value of one metric at one stage
Row = tuple[PointResult, Estimate]


def metric_range(metric: str) -> tuple[float, float]:
    """The range a metric lives in (its t intervals are clipped to it): [-1, 1] for a difference
    of two rates or AUROCs, else [0, 1]."""
    return (-1.0, 1.0) if metric in DIFFERENCES else (0.0, 1.0)


def seed_interval(values: list[float], bounds: tuple[float, float] = (0.0, 1.0)) -> Estimate:
    """The mean of `values` (one per seed, two or more) with its 95% Student t interval, clipped
    to `bounds` (:func:`probes.t_interval`)."""
    e = t_interval(values, bounds=bounds, level=LEVEL, what="seeds")
    return Estimate(value=e.value, low=e.low, high=e.high, n=e.n, method=e.method)


def difference(after: Estimate | None, before: Estimate | None) -> Estimate | None:
    """After minus before, with the MOVER interval (Newcombe 1998) from the two estimates'
    intervals, treated as independent; None when either is missing or has no interval.

    Example:
        >>> e = Estimate(value=0.9, low=0.8, high=1.0, n=10, method="bootstrap")
        >>> d = difference(e, e.model_copy(update={"value": 0.5, "low": 0.4, "high": 0.6}))
        >>> round(d.value, 3), round(d.low, 3), round(d.high, 3)
        (0.4, 0.259, 0.541)
    """
    if after is None or before is None:
        return None
    values = (after.value, after.low, after.high, before.value, before.low, before.high)
    if any(v is None for v in values):
        return None
    a, a_lo, a_hi, b, b_lo, b_hi = (float(v) for v in values)  # type: ignore[arg-type]
    return Estimate(
        value=a - b,
        low=a - b - math.hypot(a - a_lo, b_hi - b),
        high=a - b + math.hypot(a_hi - a, b - b_lo),
        n=after.n,
        method=f"difference of two {after.method} intervals (MOVER)",
    )


def rows_of(points: list[PointResult], stage: str, metric: str) -> list[Row]:
    """The points that have `metric` at `stage`, each with its estimate."""
    return [
        (p, e)
        for p in points
        if stage in p.stages and (e := getattr(p.stages[stage], metric)) is not None
    ]


def seed_mean(rows: list[Row], metric: str) -> SeedMean:
    """The mean over the rows' seeds of `metric`, with its interval (see the module docstring)."""
    seeds = [
        SeedValue(point=p.name, seed=p.seed, value=float(e.value))
        for p, e in rows
        if e.value is not None
    ]
    if len(seeds) >= 2:
        mean = seed_interval([s.value for s in seeds], metric_range(metric))
        value, low, high, method = mean.value, mean.low, mean.high, mean.method
    elif len(seeds) == 1:
        own = next(e for _, e in rows if e.value is not None)
        value, low, high = own.value, own.low, own.high
        method = f"one seed: the run's own {own.method} interval (n={own.n})"
    else:
        value = low = high = None
        method = "no value"
    return SeedMean(value=value, low=low, high=high, n_seeds=len(seeds), method=method, seeds=seeds)
