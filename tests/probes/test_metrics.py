"""Behaviour of the metrics: AUROC against scikit-learn, bootstrap intervals."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from probes import Estimate, auroc, bootstrap_auroc, bootstrap_rate, layerwise_auroc


def _scored(seed: int, n: int = 300, ties: bool = True) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=n)
    scores = labels + rng.normal(size=n)
    if ties:
        scores = np.round(scores)  # a handful of distinct values: many ties
    return scores, labels


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("ties", [True, False])
def test_auroc_matches_sklearn(seed: int, ties: bool) -> None:
    scores, labels = _scored(seed, ties=ties)
    assert auroc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert auroc(torch.from_numpy(scores), torch.from_numpy(labels)) == pytest.approx(
        roc_auc_score(labels, scores), abs=1e-12
    )


def test_auroc_extremes_and_all_tied() -> None:
    labels = np.array([0, 0, 1, 1])
    assert auroc([0.1, 0.2, 0.3, 0.4], labels) == 1.0
    assert auroc([0.4, 0.3, 0.2, 0.1], labels) == 0.0
    assert auroc([1.0, 1.0, 1.0, 1.0], labels) == 0.5


def test_auroc_invariant_to_monotone_transform() -> None:
    scores, labels = _scored(seed=7)
    base = auroc(scores, labels)
    assert auroc(np.exp(scores), labels) == pytest.approx(base, abs=1e-12)
    assert auroc(3.0 * scores - 1.0, labels) == pytest.approx(base, abs=1e-12)
    assert auroc(-scores, labels) == pytest.approx(1.0 - base, abs=1e-12)


def test_layerwise_auroc_matches_per_row() -> None:
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, size=200)
    scores = np.round(rng.normal(size=(5, 200)) + np.linspace(-1, 2, 5)[:, None] * labels, 1)
    expected = [roc_auc_score(labels, row) for row in scores]
    np.testing.assert_allclose(layerwise_auroc(scores, labels), expected, atol=1e-12)
    np.testing.assert_allclose(layerwise_auroc(torch.from_numpy(scores), labels), expected)


def test_auroc_rejects_one_class() -> None:
    with pytest.raises(ValueError, match="both classes"):
        auroc([0.1, 0.2, 0.3], [1, 1, 1])
    with pytest.raises(ValueError, match="both classes"):
        layerwise_auroc(np.zeros((2, 3)), [0, 0, 0])


def test_auroc_rejects_bad_inputs() -> None:
    with pytest.raises(ValueError, match="one score per"):
        auroc([0.1, 0.2, 0.3], [0, 1])
    with pytest.raises(ValueError, match="NaN"):
        auroc([0.1, np.nan, 0.3], [0, 1, 1])
    with pytest.raises(ValueError, match="binary"):
        auroc([0.1, 0.2, 0.3], [0, 1, 2])
    with pytest.raises(ValueError, match=r"\[layers, n\]"):
        layerwise_auroc(np.zeros(3), [0, 1, 1])


def test_estimate_formatting_and_dict() -> None:
    estimate = Estimate(value=0.9731, low=0.9512, high=0.9899, n=200)
    assert str(estimate) == "0.973 [0.951, 0.990]"
    assert estimate.to_dict() == {
        "value": 0.9731,
        "low": 0.9512,
        "high": 0.9899,
        "n": 200,
        "method": "bootstrap",
    }
    with pytest.raises(dataclasses.FrozenInstanceError):
        estimate.value = 0.5  # type: ignore[misc]


def test_bootstrap_rate_contains_value_and_narrows_with_n() -> None:
    rng = np.random.default_rng(0)
    small = bootstrap_rate(rng.random(50) < 0.3)
    large = bootstrap_rate(rng.random(5000) < 0.3)
    for estimate in (small, large):
        assert estimate.low <= estimate.value <= estimate.high
    assert small.n == 50 and large.n == 5000
    assert (large.high - large.low) < 0.5 * (small.high - small.low)
    # Close to the normal-approximation width 2 * 1.96 * sqrt(p (1 - p) / n).
    normal_width = 2 * 1.96 * np.sqrt(large.value * (1 - large.value) / large.n)
    assert (large.high - large.low) == pytest.approx(normal_width, rel=0.2)


def test_bootstrap_rate_degenerate_and_invalid() -> None:
    # All outcomes equal: the percentile bootstrap would collapse to zero width; the exact
    # Clopper-Pearson bound is used instead (for k = 0: high = 1 - (alpha/2)^(1/n)).
    none = bootstrap_rate(np.zeros(300, dtype=bool))
    assert (none.value, none.low, none.method) == (0.0, 0.0, "clopper-pearson")
    assert none.high == pytest.approx(1 - 0.025 ** (1 / 300))
    full = bootstrap_rate([1, 1, 1])
    assert (full.value, full.high) == (1.0, 1.0)
    assert full.low == pytest.approx(0.025 ** (1 / 3))
    with pytest.raises(ValueError, match="empty"):
        bootstrap_rate([])
    with pytest.raises(ValueError, match="0/1"):
        bootstrap_rate([0.2, 0.5])
    with pytest.raises(ValueError, match="level"):
        bootstrap_rate([0, 1], level=95)


def test_bootstrap_is_reproducible_and_leaves_global_rng_alone() -> None:
    outcomes = np.random.default_rng(1).random(100) < 0.6
    np.random.seed(123)
    assert bootstrap_rate(outcomes, seed=4) == bootstrap_rate(outcomes, seed=4)
    bootstrap_auroc(outcomes.astype(float), outcomes, n_boot=50)
    after = np.random.random()
    np.random.seed(123)
    assert np.random.random() == after  # the global RNG was never advanced


def test_bootstrap_auroc_reproducible_and_contains_value() -> None:
    scores, labels = _scored(seed=11, ties=False)
    first = bootstrap_auroc(scores, labels, seed=5)
    assert first == bootstrap_auroc(scores, labels, seed=5)
    assert first != bootstrap_auroc(scores, labels, seed=6)
    assert first.value == pytest.approx(roc_auc_score(labels, scores))
    assert first.low < first.value < first.high
    assert first.n == len(labels)


def test_bootstrap_auroc_stratified_handles_rare_positives() -> None:
    rng = np.random.default_rng(2)
    labels = np.r_[np.ones(2), np.zeros(60)].astype(int)
    scores = rng.normal(size=62) + labels
    estimate = bootstrap_auroc(scores, labels, n_boot=200)  # plain resampling would hit 1 class
    assert 0.0 <= estimate.low <= estimate.value <= estimate.high <= 1.0


def test_bootstrap_auroc_rejects_one_class() -> None:
    with pytest.raises(ValueError, match="both classes"):
        bootstrap_auroc([0.1, 0.2], [0, 0])


def test_bootstrap_mean_interval_covers_the_mean_and_narrows() -> None:
    from probes import bootstrap_mean

    rng = np.random.default_rng(0)
    small = bootstrap_mean(rng.normal(1.0, 1.0, size=40), seed=1)
    large = bootstrap_mean(rng.normal(1.0, 1.0, size=4000), seed=1)
    assert small.low < small.value < small.high and large.low < 1.0 < large.high
    assert (large.high - large.low) < 0.2 * (small.high - small.low)
    with pytest.raises(ValueError, match="NaN"):
        bootstrap_mean([1.0, float("nan")])


def test_t_interval_is_the_student_t_interval_by_hand_and_clipped() -> None:
    from probes import t_interval

    values = [0.70, 0.80, 0.95]
    e = t_interval(values, bounds=(0.0, 1.0), what="seeds")
    mean = sum(values) / 3
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / 2)
    half = 4.302652729911275 * sd / math.sqrt(3)  # t(0.975, 2 df)
    assert e.value == pytest.approx(mean) and e.n == 3 and e.method == "t over 3 seeds"
    assert e.low == pytest.approx(mean - half) and e.high == 1.0  # mean + half > 1: clipped
    unclipped = t_interval(values)
    assert unclipped.high == pytest.approx(mean + half)
    with pytest.raises(ValueError, match="two values"):
        t_interval([0.5])


def test_bootstrap_auroc_counts_wins_exactly_as_ranking_the_resamples(monkeypatch) -> None:
    """Small samples take the AUROC of each resample from a table of pairwise wins; it is the
    same resamples' Mann-Whitney count as ranking them (ties, all-tied and uneven classes)."""
    from probes import metrics

    rng = np.random.default_rng(3)
    cases = []
    for n_pos, n_neg in ((3, 5), (50, 50), (40, 160)):
        y = np.r_[np.zeros(n_neg), np.ones(n_pos)]
        cases += [rng.normal(size=y.size) + y, np.round(rng.normal(size=y.size) + y, 1)]
        cases.append(np.ones(y.size))
    labels = [
        np.r_[np.zeros(c.size - k), np.ones(k)]
        for c, k in zip(cases, [3] * 3 + [50] * 3 + [40] * 3, strict=True)
    ]
    fast = [
        bootstrap_auroc(c, y, 300, seed=i)
        for i, (c, y) in enumerate(zip(cases, labels, strict=True))
    ]
    monkeypatch.setattr(metrics, "_WINS_TABLE_VALUES", 0)  # rank every resample instead
    ranked = [
        bootstrap_auroc(c, y, 300, seed=i)
        for i, (c, y) in enumerate(zip(cases, labels, strict=True))
    ]
    assert fast == ranked
    assert ranked[2].low == ranked[2].high == 0.5  # all tied
