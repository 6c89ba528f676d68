"""Bootstrap intervals of the detection metrics, from their own module: on planted Gaussian
scores whose true TPR at a fixed FPR, average precision and worst-case FPR are known, the 95%
intervals cover the truth in most of many independent samples, and bad settings are refused."""

from __future__ import annotations

import math

import numpy as np
import pytest

from probes.detection_intervals import (
    bootstrap_average_precision,
    bootstrap_tpr_at_fpr,
    bootstrap_worst_case_fpr,
    operating_point,
)
from probes.detection_metrics import average_precision

SHIFT = 1.5  # positives ~ N(SHIFT, 1), negatives ~ N(0, 1)
REPLICATES, N = 40, 300


def _phi(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


Z_90, Z_95 = 1.2815516, 1.6448536  # standard normal quantiles


def _sample(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    y = np.r_[np.zeros(N), np.ones(N)]
    return rng.normal(size=2 * N) + SHIFT * y, y


def _covered(estimates: list, truth: float) -> int:
    return sum(e.low <= truth <= e.high for e in estimates)


def test_tpr_and_average_precision_intervals_cover_the_truth() -> None:
    rng = np.random.default_rng(0)
    true_tpr = 1.0 - _phi(Z_90 - SHIFT)  # TPR at FPR 0.1
    big, big_y = (np.r_[rng.normal(size=200_000), rng.normal(SHIFT, 1.0, 200_000)],
                  np.r_[np.zeros(200_000), np.ones(200_000)])  # fmt: skip
    true_ap = average_precision(big, big_y)
    tprs, aps = [], []
    for k in range(REPLICATES):
        s, y = _sample(rng)
        tprs.append(bootstrap_tpr_at_fpr(s, y, fpr=0.1, n_boot=300, seed=k))
        aps.append(bootstrap_average_precision(s, y, n_boot=300, seed=k))
    # nominal 95%: 38 of 40; fewer than 34 would be a broken interval
    assert _covered(tprs, true_tpr) >= 34
    assert _covered(aps, true_ap) >= 34
    # and not by being trivially wide (about 0.18 at 300 per class)
    assert np.mean([e.high - e.low for e in tprs]) < 0.3


def test_worst_case_fpr_interval_covers_the_shifted_sets_true_fpr() -> None:
    rng = np.random.default_rng(1)
    true_fpr = 1.0 - _phi(Z_95 - 0.5)  # a set shifted by 0.5, threshold at clean 95th pct
    estimates = []
    for k in range(REPLICATES):
        sets = {"clean": rng.normal(size=N), "shifted": rng.normal(0.5, 1.0, N)}
        point, interval = bootstrap_worst_case_fpr(
            rng.normal(size=2 * N), sets, fpr=0.05, n_boot=300, seed=k
        )
        assert interval.low <= point.fpr <= interval.high
        estimates.append(interval)
    assert _covered(estimates, true_fpr) >= 34


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_boot": 0}, "n_boot must be a positive number of resamples, got 0"),
        ({"level": 1.0}, "level must lie strictly between 0 and 1"),
        ({"fpr": 1.0}, r"fpr must lie in \[0, 1\)"),
    ],
)
def test_bad_bootstrap_settings_are_refused(kwargs: dict, message: str) -> None:
    s, y = _sample(np.random.default_rng(2))
    with pytest.raises(ValueError, match=message):
        bootstrap_tpr_at_fpr(s, y, **kwargs)
    with pytest.raises(ValueError, match=message):
        operating_point(s[y == 1], {"clean": s[y == 0]}, s[y == 0], **kwargs)
