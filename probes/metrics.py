"""Detection metrics: rank-based AUROC (single and per layer) and bootstrap confidence intervals.

All randomness goes through ``np.random.default_rng(seed)``; the global RNG is never touched.
Sign convention: a higher score means "trigger present" (label 1).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from jaxtyping import Float

from probes._validation import check_binary_labels, check_finite_scores, to_numpy, to_numpy_1d

# Bootstrap AUROC resamples are scored in chunks holding at most this many values.
_CHUNK_VALUES = 4_000_000


@dataclass(frozen=True)
class Estimate:
    """A point estimate with a confidence interval over ``n`` examples.

    >>> str(Estimate(value=0.9731, low=0.9512, high=0.9899, n=200))
    '0.973 [0.951, 0.990]'
    """

    value: float
    low: float
    high: float
    n: int
    method: str = "bootstrap"

    def __str__(self) -> str:
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}]"

    def to_dict(self) -> dict[str, float | int]:
        """Return the fields as a plain dict (JSON-serialisable)."""
        return asdict(self)


def _average_ranks(values: Float[np.ndarray, "... n"]) -> Float[np.ndarray, "... n"]:
    """1-based ranks along the last axis, ties given the mean of the ranks they span."""
    n = values.shape[-1]
    order = np.argsort(values, axis=-1, kind="stable")
    ordered = np.take_along_axis(values, order, axis=-1)
    position = np.broadcast_to(np.arange(n), values.shape)
    differs = ordered[..., 1:] != ordered[..., :-1]
    edge = np.ones(values.shape[:-1] + (1,), dtype=bool)
    starts_group = np.concatenate([edge, differs], axis=-1)
    ends_group = np.concatenate([differs, edge], axis=-1)
    group_start = np.maximum.accumulate(np.where(starts_group, position, 0), axis=-1)
    group_end = np.flip(
        np.minimum.accumulate(np.flip(np.where(ends_group, position, n), axis=-1), axis=-1),
        axis=-1,
    )
    ranks = np.empty(values.shape, dtype=np.float64)
    np.put_along_axis(ranks, order, (group_start + group_end) / 2.0 + 1.0, axis=-1)
    return ranks


def _auroc_rows(
    scores: Float[np.ndarray, "rows n"], labels: np.ndarray
) -> Float[np.ndarray, " rows"]:
    """Mann-Whitney AUROC of each row of ``scores`` against checked 0/1 ``labels``."""
    positive = labels == 1
    n_pos = int(positive.sum())
    n_neg = labels.shape[0] - n_pos
    rank_sum = _average_ranks(scores)[:, positive].sum(axis=-1)
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def auroc(scores: Any, labels: Any) -> float:
    """Area under the ROC curve of 1-D ``scores`` for 0/1 ``labels`` (ties count one half).

    Rank-based (Mann-Whitney U), equal to ``sklearn.metrics.roc_auc_score``.

    >>> auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
    0.75
    """
    score_array = to_numpy_1d(scores, "scores").astype(np.float64)
    label_array = check_binary_labels(labels)
    if score_array.shape[0] != label_array.shape[0]:
        raise ValueError(
            f"scores has {score_array.shape[0]} entries but labels has {label_array.shape[0]}; "
            f"pass one score per labelled example."
        )
    check_finite_scores(score_array)
    return float(_auroc_rows(score_array[None, :], label_array)[0])


def layerwise_auroc(scores: Any, labels: Any) -> Float[np.ndarray, " layers"]:
    """AUROC of every layer's scores (``[layers, n]``) against shared labels (``[n]``).

    >>> layerwise_auroc(np.array([[0.0, 1.0], [1.0, 0.0]]), [0, 1])
    array([1., 0.])
    """
    score_array = to_numpy(scores).astype(np.float64)
    if score_array.ndim != 2:
        raise ValueError(
            f"scores must have shape [layers, n], got shape {tuple(score_array.shape)}; "
            f"use auroc() for a single 1-D score vector."
        )
    label_array = check_binary_labels(labels)
    if score_array.shape[1] != label_array.shape[0]:
        raise ValueError(
            f"scores has {score_array.shape[1]} examples per layer (axis 1) but labels has "
            f"{label_array.shape[0]}; pass one label per example."
        )
    check_finite_scores(score_array)
    return _auroc_rows(score_array, label_array)


def _interval(samples: np.ndarray, level: float) -> tuple[float, float]:
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(samples, [alpha, 1.0 - alpha])
    return float(low), float(high)


def _check_bootstrap_args(n_boot: int, level: float) -> None:
    if n_boot < 1:
        raise ValueError(f"n_boot must be a positive number of resamples, got {n_boot}.")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie strictly between 0 and 1 (e.g. 0.95), got {level}.")


def bootstrap_rate(
    outcomes: Any, n_boot: int = 2000, seed: int = 0, level: float = 0.95
) -> Estimate:
    """Observed rate of a 0/1 (or bool) array with a percentile-bootstrap interval.

    Resampling n outcomes with replacement and averaging is exactly a Binomial(n, rate) / n
    draw, so that is what is sampled (same distribution, no [n_boot, n] index matrix).

    For all-0 or all-1 data every resample equals the observed value, so the percentile
    bootstrap collapses to a zero-width interval that understates the uncertainty (0 of 300
    is compatible with a true rate of 1%). There the exact Clopper-Pearson interval is
    returned instead, with ``method="clopper-pearson"``: for 0 of 300, [0, 0.0122].

    >>> str(bootstrap_rate([1, 1, 1, 0] * 25))
    '0.750 [0.660, 0.840]'
    """
    _check_bootstrap_args(n_boot, level)
    array = to_numpy_1d(outcomes, "outcomes")
    if array.size == 0:
        raise ValueError("outcomes is empty; a rate needs at least one outcome.")
    if not np.isin(array, (0, 1)).all():
        raise ValueError("outcomes must be bool or 0/1 (1 = event happened, e.g. backdoor fired).")
    n = int(array.size)
    rate = float(array.astype(np.float64).mean())
    if rate in (0.0, 1.0):
        return _clopper_pearson(int(array.sum()), n, level)
    rng = np.random.default_rng(seed)
    resampled = rng.binomial(n, rate, size=n_boot) / n
    low, high = _interval(resampled, level)
    return Estimate(value=rate, low=low, high=high, n=n)


def bootstrap_mean(values: Any, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> Estimate:
    """Mean of a 1-D array of real values with a percentile-bootstrap interval.

    >>> est = bootstrap_mean(np.arange(100.0))
    >>> est.low < 49.5 < est.high
    True
    """
    _check_bootstrap_args(n_boot, level)
    array = to_numpy_1d(values, "values").astype(np.float64)
    if array.size == 0:
        raise ValueError("values is empty; a mean needs at least one value.")
    if not np.isfinite(array).all():
        raise ValueError("values contain NaN or inf; drop or fix them before averaging.")
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    for start in range(0, n_boot, 256):  # chunks bound the [chunk, n] index matrix
        stop = min(n_boot, start + 256)
        idx = rng.integers(0, array.size, size=(stop - start, array.size))
        means[start:stop] = array[idx].mean(axis=1)
    low, high = _interval(means, level)
    return Estimate(value=float(array.mean()), low=low, high=high, n=int(array.size))


def t_interval(
    values: Any,
    bounds: tuple[float, float] = (-np.inf, np.inf),
    level: float = 0.95,
    what: str = "values",
) -> Estimate:
    """Mean of a few replicate values (e.g. one per seed; two or more) with its Student t
    interval, clipped to ``bounds`` (e.g. (0, 1) for an AUROC); the method reads
    "t over {n} {what}".

    >>> e = t_interval([0.2, 0.4, 0.6], bounds=(0.0, 1.0), what="seeds")
    >>> round(e.value, 3), round(e.low, 3), round(e.high, 3), e.n, e.method
    (0.4, 0.0, 0.897, 3, 't over 3 seeds')
    """
    from scipy.stats import t

    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie strictly between 0 and 1 (e.g. 0.95), got {level}.")
    array = to_numpy_1d(values, "values").astype(np.float64)
    n = int(array.size)
    if n < 2:
        raise ValueError(f"a t interval needs two values or more, got {n}.")
    if not np.isfinite(array).all():
        raise ValueError("values contain NaN or inf; drop or fix them before averaging.")
    mean = float(array.mean())
    half = float(t.ppf(0.5 + level / 2, n - 1)) * float(array.std(ddof=1)) / np.sqrt(n)
    low, high = max(bounds[0], mean - half), min(bounds[1], mean + half)
    return Estimate(value=mean, low=float(low), high=float(high), n=n, method=f"t over {n} {what}")


def _clopper_pearson(k: int, n: int, level: float) -> Estimate:
    from scipy.stats import beta

    alpha = 1.0 - level
    low = 0.0 if k == 0 else float(beta.ppf(alpha / 2, k, n - k + 1))
    high = 1.0 if k == n else float(beta.ppf(1 - alpha / 2, k + 1, n - k))
    return Estimate(value=k / n, low=low, high=high, n=n, method="clopper-pearson")


def bootstrap_auroc(
    scores: Any, labels: Any, n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> Estimate:
    """AUROC with a stratified percentile-bootstrap interval.

    Positives and negatives are resampled separately (keeping their counts), so every
    resample contains both classes.

    >>> rng = np.random.default_rng(0)
    >>> y = np.r_[np.zeros(100), np.ones(100)]
    >>> est = bootstrap_auroc(rng.normal(size=200) + 2 * y, y)
    >>> est.low < est.value < est.high
    True
    """
    _check_bootstrap_args(n_boot, level)
    value = auroc(scores, labels)  # validates shapes, labels and finiteness
    score_array = to_numpy_1d(scores, "scores").astype(np.float64)
    label_array = check_binary_labels(labels)
    positives = score_array[label_array == 1]
    negatives = score_array[label_array == 0]
    n_pos, n_neg = positives.shape[0], negatives.shape[0]
    resample_labels = np.r_[np.ones(n_pos, dtype=np.int64), np.zeros(n_neg, dtype=np.int64)]

    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_VALUES // (n_pos + n_neg))
    # Small samples: each resample's AUROC from how often it drew each example and the table
    # of pairwise wins (ties one half), not by ranking it: the same resamples, the same exact
    # Mann-Whitney count, several times faster; large ones rank (the table would not fit).
    wins = _pairwise_wins(positives, negatives) if n_pos * n_neg <= _WINS_TABLE_VALUES else None
    samples = []
    for start in range(0, n_boot, chunk):
        rows = min(chunk, n_boot - start)
        pos_index = rng.integers(0, n_pos, size=(rows, n_pos))
        neg_index = rng.integers(0, n_neg, size=(rows, n_neg))
        if wins is not None:
            u = np.einsum(
                "rp,rp->r", _draw_counts(pos_index, n_pos) @ wins, _draw_counts(neg_index, n_neg)
            )
            samples.append(u / (n_pos * n_neg))
            continue
        pos_draw, neg_draw = positives[pos_index], negatives[neg_index]
        samples.append(_auroc_rows(np.concatenate([pos_draw, neg_draw], axis=1), resample_labels))
    low, high = _interval(np.concatenate(samples), level)
    return Estimate(value=value, low=low, high=high, n=n_pos + n_neg)


# bootstrap_auroc counts wins from a [positives, negatives] table up to this many entries.
_WINS_TABLE_VALUES = 250_000


def _pairwise_wins(
    positives: Float[np.ndarray, " p"], negatives: Float[np.ndarray, " q"]
) -> Float[np.ndarray, "p q"]:
    """1 where a positive outscores a negative, 1/2 where they tie, else 0."""
    above = positives[:, None] > negatives[None, :]
    tied = positives[:, None] == negatives[None, :]
    return above + 0.5 * tied


def _draw_counts(index: np.ndarray, n: int) -> Float[np.ndarray, "rows n"]:
    """How many times each of `n` examples was drawn in each row of `index` ([rows, draws])."""
    rows = index.shape[0]
    flat = (index + n * np.arange(rows)[:, None]).ravel()
    return np.bincount(flat, minlength=rows * n).reshape(rows, n).astype(np.float64)
