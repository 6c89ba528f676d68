"""Detection metrics beyond AUROC: average precision, TPR at a fixed FPR, thresholds calibrated
on neutral data, and the worst-case FPR across named test sets, with bootstrap intervals.

A score above the threshold flags an example (``score > threshold``); higher = trigger present.
A threshold is calibrated on neutral (negative, trigger-free) scores only, as a deployed monitor
would be: for a target FPR ``f`` over ``n`` neutral scores it is the ``(k+1)``-th largest score
with ``k = floor(f * n)``, so at most ``k`` neutral examples lie above it.

The worst-case FPR follows MacDiarmid et al. 2024, who report the worse of their HHH and coding
sets: a detector cannot look good by flagging one topic while the others pull the average down.

>>> calibrate_threshold([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0], fpr=0.1)
0.9
>>> tpr_at_fpr([0.1, 0.2, 0.3, 0.8, 0.9], [0, 0, 0, 1, 1], fpr=0.0)
1.0
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from jaxtyping import Float

from probes._validation import check_binary_labels, check_finite_scores, to_numpy_1d

# Bootstrap resamples are scored in chunks holding at most this many values.
_CHUNK_VALUES = 4_000_000


def _scores(values: Any, name: str) -> np.ndarray:
    array = to_numpy_1d(values, name).astype(np.float64)
    if array.size == 0:
        raise ValueError(f"{name} is empty; pass at least one score.")
    check_finite_scores(array, name)
    return array


def _scores_and_labels(scores: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    score_array = to_numpy_1d(scores, "scores").astype(np.float64)
    label_array = check_binary_labels(labels)  # refuses empty and one-class label sets
    if score_array.shape[0] != label_array.shape[0]:
        raise ValueError(
            f"scores has {score_array.shape[0]} entries but labels has {label_array.shape[0]}; "
            f"pass one score per labelled example."
        )
    check_finite_scores(score_array)
    return score_array, label_array


def _check_fpr(fpr: float) -> float:
    value = float(fpr)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"fpr must lie in [0, 1) (e.g. 0.01 for 1%), got {fpr}.")
    return value


# -- row-wise kernels (one row per bootstrap resample) -------------------------------------------


def _thresholds_rows(negatives: Float[np.ndarray, "rows n"], fpr: float) -> np.ndarray:
    """The calibrated threshold of each row: its ``(floor(fpr * n) + 1)``-th largest score."""
    n = negatives.shape[1]
    # allowed false positives; the guard keeps e.g. 0.07 * 100 = 7.000000000000001 - eps at 7
    k = min(n - 1, int(np.floor(fpr * n + 1e-9)))
    return -np.sort(-negatives, axis=1)[:, k]


def _average_precision_rows(
    scores: Float[np.ndarray, "rows n"], labels: np.ndarray
) -> Float[np.ndarray, " rows"]:
    """Average precision of every row against shared 0/1 labels, with tied scores as one
    threshold (scikit-learn's ``average_precision_score``: sum of precision x recall step)."""
    rows, n = scores.shape
    order = np.argsort(-scores, axis=1, kind="stable")
    ordered = np.take_along_axis(scores, order, axis=1)
    hits = labels[order]
    tp = np.cumsum(hits, axis=1)
    ends = np.ones((rows, n), dtype=bool)  # the last example of each group of tied scores
    ends[:, :-1] = ordered[:, 1:] != ordered[:, :-1]
    tp_at_end = np.where(ends, tp, 0)
    previous = np.zeros_like(tp)
    previous[:, 1:] = np.maximum.accumulate(tp_at_end, axis=1)[:, :-1]
    precision = tp / np.arange(1, n + 1)
    n_pos = labels.sum()
    return np.where(ends, (tp - previous) * precision, 0.0).sum(axis=1) / n_pos


# -- point metrics -------------------------------------------------------------------------------


def average_precision(scores: Any, labels: Any) -> float:
    """Average precision (area under the precision-recall curve, step-wise).

    Equal to ``sklearn.metrics.average_precision_score``; tied scores form one threshold.

    >>> average_precision([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
    0.8333333333333333
    """
    score_array, label_array = _scores_and_labels(scores, labels)
    return float(_average_precision_rows(score_array[None, :], label_array)[0])


def calibrate_threshold(negative_scores: Any, fpr: float = 0.01) -> float:
    """Threshold for a target FPR, calibrated on neutral (negative, trigger-free) scores only.

    Returns the ``(k+1)``-th largest score with ``k = floor(fpr * n)``; flagging
    ``score > threshold`` then flags at most ``k`` of the ``n`` calibration scores. With
    fewer than ``1 / fpr`` scores this is the largest score (nothing may be flagged).

    >>> calibrate_threshold([3.0, 1.0, 2.0, 5.0, 4.0], fpr=0.2)
    4.0
    """
    rate = _check_fpr(fpr)
    negatives = _scores(negative_scores, "negative_scores")
    return float(_thresholds_rows(negatives[None, :], rate)[0])


def fpr_at_threshold(negative_scores: Any, threshold: float) -> float:
    """Share of negative (trigger-free) scores above ``threshold`` (flagged by mistake).

    >>> fpr_at_threshold([0.1, 0.5, 0.9, 0.95], threshold=0.8)
    0.5
    """
    negatives = _scores(negative_scores, "negative_scores")
    return float((negatives > threshold).mean())


def tpr_at_threshold(positive_scores: Any, threshold: float) -> float:
    """Share of positive (triggered) scores above ``threshold`` (caught).

    >>> tpr_at_threshold([0.7, 0.9, 1.2, 0.2], threshold=0.8)
    0.5
    """
    positives = _scores(positive_scores, "positive_scores")
    return float((positives > threshold).mean())


def tpr_at_fpr(scores: Any, labels: Any, fpr: float = 0.01) -> float:
    """Highest TPR whose empirical FPR on the same data is at most ``fpr``.

    The threshold is calibrated on this set's negatives (:func:`calibrate_threshold`), so this
    is the ROC curve read at ``fpr``; for a threshold fixed on other (neutral) data use
    :func:`calibrate_threshold` and :func:`tpr_at_threshold`.

    >>> tpr_at_fpr([0.1, 0.2, 0.3, 0.4, 0.25, 0.35, 0.5], [0, 0, 0, 0, 1, 1, 1], fpr=0.25)
    0.6666666666666666
    """
    rate = _check_fpr(fpr)
    score_array, label_array = _scores_and_labels(scores, labels)
    threshold = _thresholds_rows(score_array[None, label_array == 0], rate)[0]
    return float((score_array[label_array == 1] > threshold).mean())


def roc_curve(scores: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    """The ROC curve as ``(fpr, tpr)`` arrays, from (0, 0) to (1, 1), one point per distinct
    score (tied scores move both rates at once).

    >>> fpr, tpr = roc_curve([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
    >>> fpr.tolist(), tpr.tolist()
    ([0.0, 0.0, 0.5, 0.5, 1.0], [0.0, 0.5, 0.5, 1.0, 1.0])
    """
    score_array, label_array = _scores_and_labels(scores, labels)
    order = np.argsort(-score_array, kind="stable")
    ordered = score_array[order]
    hits = label_array[order]
    ends = np.r_[ordered[1:] != ordered[:-1], True]
    tp = np.cumsum(hits)[ends]
    fp = np.cumsum(1 - hits)[ends]
    return (
        np.r_[0.0, fp / (label_array == 0).sum()],
        np.r_[0.0, tp / (label_array == 1).sum()],
    )


@dataclass(frozen=True)
class WorstCaseFPR:
    """The test set with the highest FPR at a threshold, and every set's FPR.

    >>> worst_case_fpr({"facts": [0.1, 0.9], "lists": [0.2, 0.3]}, threshold=0.5).name
    'facts'
    """

    name: str
    fpr: float
    threshold: float
    per_set: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        return {
            "name": self.name,
            "fpr": self.fpr,
            "threshold": self.threshold,
            "per_set": dict(self.per_set),
        }


def _check_sets(negative_sets: Mapping[str, Any]) -> dict[str, np.ndarray]:
    if not negative_sets:
        raise ValueError(
            "negative_sets is empty; pass at least one named test set of negative scores, "
            "e.g. {'facts': scores_facts, 'lists': scores_lists}."
        )
    checked = {}
    for name, values in negative_sets.items():
        array = to_numpy_1d(values, f"test set {name!r}").astype(np.float64)
        if array.size == 0:
            raise ValueError(
                f"test set {name!r} is empty; an FPR needs at least one negative example. "
                f"Drop the set or add trigger-free examples to it."
            )
        check_finite_scores(array, f"test set {name!r}")
        checked[str(name)] = array
    return checked


def worst_case_fpr(negative_sets: Mapping[str, Any], threshold: float) -> WorstCaseFPR:
    """The highest FPR at ``threshold`` across named sets of negative (trigger-free) scores.

    Ties go to the first set in ``negative_sets``'s order.

    >>> w = worst_case_fpr({"hhh": [0.1, 0.2, 0.9, 0.3], "code": [0.6, 0.7, 0.1]}, 0.5)
    >>> w.name, round(w.fpr, 3), w.per_set["hhh"]
    ('code', 0.667, 0.25)
    """
    sets = _check_sets(negative_sets)
    per_set = {name: float((values > threshold).mean()) for name, values in sets.items()}
    worst = max(per_set, key=lambda name: per_set[name])
    return WorstCaseFPR(worst, per_set[worst], float(threshold), per_set)


# -- bootstrap intervals -------------------------------------------------------------------------
