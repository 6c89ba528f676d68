"""Bootstrap intervals of the detection metrics, and a detector's operating point: its
threshold calibrated on neutral scores, its TPR there and its worst-case FPR across test sets,
each with an interval (the metrics themselves are in `probes.detection_metrics`).

Each resample draws positives and negatives separately (stratified), so every resample keeps
both classes; a calibrated threshold is re-calibrated inside each resample.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from probes.detection_metrics import (
    _CHUNK_VALUES,
    WorstCaseFPR,
    _average_precision_rows,
    _check_fpr,
    _check_sets,
    _scores,
    _scores_and_labels,
    _thresholds_rows,
    tpr_at_fpr,
    worst_case_fpr,
)
from probes.metrics import Estimate


def _check_bootstrap(n_boot: int, level: float) -> None:
    if n_boot < 1:
        raise ValueError(f"n_boot must be a positive number of resamples, got {n_boot}.")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie strictly between 0 and 1 (e.g. 0.95), got {level}.")


def _interval(samples: np.ndarray, level: float) -> tuple[float, float]:
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(samples, [alpha, 1.0 - alpha])
    return float(low), float(high)


def _stratified_rows(
    score_array: np.ndarray, label_array: np.ndarray, rows: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``rows`` resamples (positives first, then negatives, counts kept) and their labels."""
    positives = score_array[label_array == 1]
    negatives = score_array[label_array == 0]
    pos = positives[rng.integers(0, positives.size, size=(rows, positives.size))]
    neg = negatives[rng.integers(0, negatives.size, size=(rows, negatives.size))]
    labels = np.r_[np.ones(positives.size, dtype=np.int64), np.zeros(negatives.size, np.int64)]
    return np.concatenate([pos, neg], axis=1), labels


def bootstrap_average_precision(
    scores: Any, labels: Any, n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> Estimate:
    """Average precision with a stratified percentile-bootstrap interval (class counts kept).

    >>> y = np.r_[np.zeros(50), np.ones(50)]
    >>> est = bootstrap_average_precision(np.random.default_rng(0).normal(size=100) + y, y)
    >>> est.low < est.value < est.high
    True
    """
    _check_bootstrap(n_boot, level)
    score_array, label_array = _scores_and_labels(scores, labels)
    value = float(_average_precision_rows(score_array[None, :], label_array)[0])
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_VALUES // score_array.size)
    samples = []
    for start in range(0, n_boot, chunk):
        rows, row_labels = _stratified_rows(
            score_array, label_array, min(chunk, n_boot - start), rng
        )
        samples.append(_average_precision_rows(rows, row_labels))
    low, high = _interval(np.concatenate(samples), level)
    return Estimate(value=value, low=low, high=high, n=int(score_array.size))


def bootstrap_tpr_at_fpr(
    scores: Any,
    labels: Any,
    fpr: float = 0.01,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> Estimate:
    """:func:`tpr_at_fpr` with a stratified percentile-bootstrap interval; the threshold is
    re-calibrated in every resample. Where every resample gives the same TPR (e.g. all 1.0) the
    interval has zero width and understates the uncertainty.

    >>> y = np.r_[np.zeros(200), np.ones(200)]
    >>> est = bootstrap_tpr_at_fpr(np.random.default_rng(0).normal(size=400) + 2 * y, y, 0.05)
    >>> est.low < est.value < est.high
    True
    """
    _check_bootstrap(n_boot, level)
    rate = _check_fpr(fpr)
    score_array, label_array = _scores_and_labels(scores, labels)
    value = tpr_at_fpr(score_array, label_array, rate)
    n_pos = int(label_array.sum())
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_VALUES // score_array.size)
    samples = []
    for start in range(0, n_boot, chunk):
        rows, _ = _stratified_rows(score_array, label_array, min(chunk, n_boot - start), rng)
        thresholds = _thresholds_rows(rows[:, n_pos:], rate)
        samples.append((rows[:, :n_pos] > thresholds[:, None]).mean(axis=1))
    low, high = _interval(np.concatenate(samples), level)
    return Estimate(value=value, low=low, high=high, n=int(score_array.size))


def bootstrap_worst_case_fpr(
    calibration_scores: Any,
    negative_sets: Mapping[str, Any],
    fpr: float = 0.01,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[WorstCaseFPR, Estimate]:
    """Worst-case FPR across named test sets at a threshold calibrated on
    ``calibration_scores`` (neutral data) for target ``fpr``, with a percentile-bootstrap
    interval that resamples the calibration scores (re-calibrating) and every test set.

    Returns the point result (worst set, its FPR, the threshold, every set's FPR) and the
    interval of the worst-case FPR.

    >>> rng = np.random.default_rng(0)
    >>> point, est = bootstrap_worst_case_fpr(rng.normal(size=200), {"a": rng.normal(size=100)})
    >>> est.low <= point.fpr <= est.high
    True
    """
    _check_bootstrap(n_boot, level)
    rate = _check_fpr(fpr)
    calibration = _scores(calibration_scores, "calibration_scores")
    sets = _check_sets(negative_sets)
    point = worst_case_fpr(sets, float(_thresholds_rows(calibration[None, :], rate)[0]))
    rng = np.random.default_rng(seed)
    width = calibration.size + sum(values.size for values in sets.values())
    chunk = max(1, _CHUNK_VALUES // width)
    samples = []
    for start in range(0, n_boot, chunk):
        rows = min(chunk, n_boot - start)
        draw = calibration[rng.integers(0, calibration.size, size=(rows, calibration.size))]
        thresholds = _thresholds_rows(draw, rate)[:, None]
        worst = np.zeros(rows)
        for values in sets.values():
            resampled = values[rng.integers(0, values.size, size=(rows, values.size))]
            worst = np.maximum(worst, (resampled > thresholds).mean(axis=1))
        samples.append(worst)
    low, high = _interval(np.concatenate(samples), level)
    n = int(sum(values.size for values in sets.values()))
    return point, Estimate(value=point.fpr, low=low, high=high, n=n)


@dataclass(frozen=True)
class OperatingPoint:
    """A detector used as a monitor: the threshold calibrated on clean prompts for a target FPR,
    the share of positives it catches there (TPR), and the worst FPR over the test sets.

    >>> rng = np.random.default_rng(0)
    >>> op = operating_point(rng.normal(3, 1, 200), {"a": rng.normal(size=100)},
    ...                      rng.normal(size=300), fpr=0.01, n_boot=200)
    >>> op.tpr.value > 0.5, op.worst_case.name
    (True, 'a')
    """

    target_fpr: float
    threshold: float
    tpr: Estimate
    worst_case: WorstCaseFPR
    worst_case_interval: Estimate
    n_calibration: int

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        return {
            "target_fpr": self.target_fpr,
            "threshold": self.threshold,
            "tpr": self.tpr.to_dict(),
            "worst_case_fpr": {
                **self.worst_case.to_dict(),
                "interval": self.worst_case_interval.to_dict(),
            },
            "n_calibration": self.n_calibration,
        }


def operating_point(
    positive_scores: Any,
    negative_sets: Mapping[str, Any],
    calibration_scores: Any,
    fpr: float = 0.01,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> OperatingPoint:
    """TPR at a threshold calibrated on ``calibration_scores`` (held-out clean prompts) for
    target ``fpr``, and the worst-case FPR across ``negative_sets`` at that threshold, as the
    field reports detectors. The TPR's interval resamples the calibration scores (re-calibrating)
    and the positives; the worst-case interval is :func:`bootstrap_worst_case_fpr`'s.
    """
    _check_bootstrap(n_boot, level)
    rate = _check_fpr(fpr)
    positives = _scores(positive_scores, "positive_scores")
    calibration = _scores(calibration_scores, "calibration_scores")
    worst, worst_interval = bootstrap_worst_case_fpr(calibration, negative_sets, rate, n_boot, seed)
    threshold = worst.threshold
    rng = np.random.default_rng(seed + 1)
    chunk = max(1, _CHUNK_VALUES // (positives.size + calibration.size))
    samples = []
    for start in range(0, n_boot, chunk):
        rows = min(chunk, n_boot - start)
        draw = calibration[rng.integers(0, calibration.size, size=(rows, calibration.size))]
        thresholds = _thresholds_rows(draw, rate)[:, None]
        resampled = positives[rng.integers(0, positives.size, size=(rows, positives.size))]
        samples.append((resampled > thresholds).mean(axis=1))
    low, high = _interval(np.concatenate(samples), level)
    tpr = Estimate(
        value=float((positives > threshold).mean()), low=low, high=high, n=int(positives.size)
    )
    return OperatingPoint(rate, threshold, tpr, worst, worst_interval, int(calibration.size))
