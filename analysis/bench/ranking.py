"""The rows of a condition table and their ranking: a detector at one site (or the text-only
baseline) scored as a monitor on a condition's positives and negatives, ranked by TPR at the
target FPR with 95% intervals, ties shown as ties, and which rows' intervals do not overlap.

A row's threshold is calibrated for the target FPR on clean prompts (one or more sets: the
threshold is the highest of each set's calibrated threshold, so no set exceeds the target) by
the rule of :func:`probes.calibrate_threshold`; every bootstrap resample re-calibrates it and
redraws the positives and each negative set.

>>> rng = np.random.default_rng(0)
>>> clean = {"calibration": rng.normal(size=200)}
>>> strong = monitor_row("a", "L1", rng.normal(4, 1, 50), {"n": rng.normal(size=50)}, clean,
...                      n_boot=200)
>>> weak = monitor_row("b", "L1", rng.normal(0.5, 1, 50), {"n": rng.normal(size=50)}, clean,
...                    n_boot=200)
>>> [(r["detector"], r["rank"]) for r in rank_rows([weak, strong])]
[('a', '1'), ('b', '2')]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from analysis.folder.bench_records import (
    TEXT_BASELINE,
    BaselineVerdict,
    ConditionRow,
    EstimateJson,
)
from probes import Estimate, bootstrap_auroc, calibrate_threshold

# Bootstrap resamples are drawn in chunks of at most this many values.
_CHUNK_VALUES = 2_000_000


def threshold_rows(scores: np.ndarray, fpr: float) -> np.ndarray:
    """The calibrated threshold of each row of `scores` ([rows, n]), by the rule of
    :func:`probes.calibrate_threshold`: the (floor(fpr * n) + 1)-th largest score.

    >>> threshold_rows(np.array([[3.0, 1.0, 2.0, 5.0, 4.0]]), 0.2).tolist()
    [4.0]
    """
    n = scores.shape[1]
    k = min(n - 1, int(np.floor(fpr * n + 1e-9)))
    return np.asarray(-np.sort(-scores, axis=1)[:, k])


def _estimate(value: float, samples: np.ndarray, n: int) -> EstimateJson:
    low, high = np.quantile(samples, [0.025, 0.975])
    return Estimate(value=float(value), low=float(low), high=float(high), n=n).to_dict()


def _array(values: Any, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).ravel()
    if array.size == 0:
        raise ValueError(f"{name} is empty; a condition needs at least one score there.")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} holds non-finite scores; check the detector's inputs.")
    return array


def monitor_row(
    detector: str,
    site: str,
    positives: Any,
    negatives: Mapping[str, Any],
    calibration: Mapping[str, Any],
    fpr: float = 0.01,
    n_boot: int = 1000,
    seed: int = 0,
) -> ConditionRow:
    """One row of a condition table (unranked): the TPR of `positives` at the threshold
    calibrated for `fpr` on every set of `calibration` at once, each negative set's FPR there
    (the worst of them with its interval), and the AUROC of the positives against all
    negatives pooled; 95% percentile-bootstrap intervals over `n_boot` resamples."""
    if not calibration or not negatives:
        raise ValueError("A condition row needs at least one calibration set and negative set.")
    pos = _array(positives, f"{detector} at {site}: positive scores")
    neg = {k: _array(v, f"{detector} at {site}: negatives {k!r}") for k, v in negatives.items()}
    cal = [_array(v, f"{detector} at {site}: calibration {k!r}") for k, v in calibration.items()]
    threshold = max(calibrate_threshold(c, fpr) for c in cal)
    per_set = {k: float((v > threshold).mean()) for k, v in neg.items()}
    rng = np.random.default_rng(seed)
    width = pos.size + sum(c.size for c in cal) + sum(v.size for v in neg.values())
    chunk = max(1, _CHUNK_VALUES // width)
    tpr_samples, fpr_samples = [], []
    for start in range(0, n_boot, chunk):
        rows = min(chunk, n_boot - start)
        thresholds = np.max(
            [threshold_rows(c[rng.integers(0, c.size, size=(rows, c.size))], fpr) for c in cal],
            axis=0,
        )[:, None]
        drawn = pos[rng.integers(0, pos.size, size=(rows, pos.size))]
        tpr_samples.append((drawn > thresholds).mean(axis=1))
        worst = np.zeros(rows)
        for values in neg.values():
            resampled = values[rng.integers(0, values.size, size=(rows, values.size))]
            worst = np.maximum(worst, (resampled > thresholds).mean(axis=1))
        fpr_samples.append(worst)
    pooled = np.concatenate(list(neg.values()))
    labels = np.r_[np.ones(pos.size), np.zeros(pooled.size)]
    n_neg = int(pooled.size)
    return {
        "rank": "",
        "detector": detector,
        "site": site,
        "tpr_at_fpr": _estimate((pos > threshold).mean(), np.concatenate(tpr_samples), pos.size),
        "auroc": bootstrap_auroc(np.r_[pos, pooled], labels, n_boot, seed).to_dict(),
        "threshold": float(threshold),
        "negatives_fpr": _estimate(max(per_set.values()), np.concatenate(fpr_samples), n_neg),
        "negatives_fpr_per_set": per_set,
    }


def overlap(a: EstimateJson, b: EstimateJson) -> bool:
    """Whether two intervals share a point.

    >>> overlap({"low": 0.1, "high": 0.5}, {"low": 0.5, "high": 0.9})
    True
    """
    return a["low"] <= b["high"] and b["low"] <= a["high"]


def rank_rows(rows: Sequence[ConditionRow]) -> list[ConditionRow]:
    """`rows` best first (TPR, then AUROC, higher first; stable otherwise), each with its rank:
    a rank's first row takes its place in the order, and every following row whose TPR interval
    overlaps that first row's shares its rank, shown "=k" on every row of a shared rank.

    >>> def row(d, v, lo, hi):
    ...     return {"detector": d, "tpr_at_fpr": {"value": v, "low": lo, "high": hi},
    ...             "auroc": {"value": v}, "rank": ""}
    >>> ranked = rank_rows([row("c", .2, .1, .3), row("a", .9, .8, 1), row("b", .85, .7, .95)])
    >>> [(r["detector"], r["rank"]) for r in ranked]
    [('a', '=1'), ('b', '=1'), ('c', '3')]
    """
    ordered = sorted(rows, key=lambda r: (-r["tpr_at_fpr"]["value"], -r["auroc"]["value"]))
    places: list[int] = []
    head = 0
    for i, row in enumerate(ordered):
        if not overlap(row["tpr_at_fpr"], ordered[head]["tpr_at_fpr"]):
            head = i
        places.append(head + 1)
    return [
        {**row, "rank": f"{'=' if places.count(place) > 1 else ''}{place}"}
        for row, place in zip(ordered, places, strict=True)
    ]


def _above(a: ConditionRow, b: ConditionRow) -> bool:
    return a["tpr_at_fpr"]["low"] > b["tpr_at_fpr"]["high"]


def separation(
    rows: Sequence[ConditionRow],
) -> tuple[list[list[str]], list[list[str]], BaselineVerdict]:
    """Which detectors' TPR intervals do not overlap in one table: pairs [above, below] of
    detector kinds each at its best site (the first of its rows in `rows`, ranked), triples
    [site, above, below] of two kinds at one site, and how the text-only baseline stands against
    the best detector row."""
    detectors = [r for r in rows if r["detector"] != TEXT_BASELINE]
    best: dict[str, ConditionRow] = {}
    for r in detectors:
        best.setdefault(r["detector"], r)
    best_pairs = [[a, b] for a in best for b in best if _above(best[a], best[b])]
    at_site = [
        [a["site"], a["detector"], b["detector"]]
        for a in detectors
        for b in detectors
        if a["site"] == b["site"] and _above(a, b)
    ]
    baseline = [r for r in rows if r["detector"] == TEXT_BASELINE]
    verdict: BaselineVerdict = "tied"
    if baseline and detectors:
        top = max(detectors, key=lambda r: r["tpr_at_fpr"]["value"])
        if _above(top, baseline[0]):
            verdict = "detectors beat it"
        elif all(_above(baseline[0], r) for r in detectors):
            verdict = "it beats every detector"
    return best_pairs, at_site, verdict
