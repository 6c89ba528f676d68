"""The text-only baseline, from its own module: on token-id prompts with a planted signal it finds
a marker token and a marker bigram, sits at chance without one, and `probe_vs_text` says a probe
that only counts the marker reads the prompt while one that sees what the tokens cannot beats it."""

from __future__ import annotations

import numpy as np
import pytest

from probes.text_baseline import (
    fit_text_baseline,
    probe_vs_text,
    text_baseline_result,
)

VOCAB, LENGTH = 60, 16  # filler token ids 2..VOCAB-1; 0 and 1 are kept for planted markers
MARKER, FIRST, SECOND = 0, 0, 1


def _filler(rng: np.random.Generator, n: int) -> list[list[int]]:
    return [rng.integers(2, VOCAB, LENGTH).tolist() for _ in range(n)]


def _labels(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.permutation(np.r_[np.zeros(n // 2), np.ones(n - n // 2)]).astype(np.int64)


def _insert(prompt: list[int], tokens: list[int], rng: np.random.Generator) -> list[int]:
    at = int(rng.integers(0, len(prompt) + 1))
    return prompt[:at] + tokens + prompt[at:]


def _marked(rng: np.random.Generator, n: int) -> tuple[list[list[int]], np.ndarray]:
    """Label-1 prompts hold MARKER once among random filler ids; label-0 prompts never do."""
    y = _labels(rng, n)
    ids = [
        _insert(p, [MARKER], rng) if label else p
        for p, label in zip(_filler(rng, n), y, strict=True)
    ]
    return ids, y


def _ordered(rng: np.random.Generator, n: int) -> tuple[list[list[int]], np.ndarray]:
    """Every prompt holds FIRST and SECOND once each, adjacent: label 1 in that order, label 0
    reversed. The unigram counts of the two classes are the same; only the bigram differs."""
    y = _labels(rng, n)
    pairs = ([SECOND, FIRST], [FIRST, SECOND])
    return [_insert(p, pairs[label], rng) for p, label in zip(_filler(rng, n), y, strict=True)], y


def test_the_baseline_catches_a_planted_marker_token() -> None:
    rng = np.random.default_rng(0)
    train_ids, train_y = _marked(rng, 300)
    test_ids, test_y = _marked(rng, 300)
    calibration = _filler(rng, 300)  # trigger-free prompts
    result = text_baseline_result(
        train_ids, train_y, test_ids, test_y, calibration_ids=calibration, n_boot=300
    )
    assert result.auroc.value > 0.99 and result.auroc.low > 0.97
    assert result.threshold_from == "calibration"
    assert result.tpr.value > 0.95  # at 1% FPR, threshold set on the calibration prompts
    assert result.fpr_on_test_negatives <= 0.03
    assert result.test_scores.shape == (300,)


def test_without_a_signal_the_baseline_sits_at_chance() -> None:
    rng = np.random.default_rng(1)
    train_ids, test_ids = _filler(rng, 300), _filler(rng, 300)
    result = text_baseline_result(
        train_ids, _labels(rng, 300), test_ids, _labels(rng, 300), n_boot=300
    )
    assert abs(result.auroc.value - 0.5) < 0.1
    assert result.auroc.low < 0.5 < result.auroc.high
    assert result.threshold_from == "test negatives"


def test_a_bigram_only_signal_is_caught() -> None:
    rng = np.random.default_rng(2)
    train_ids, train_y = _ordered(rng, 300)
    test_ids, test_y = _ordered(rng, 300)
    # the planted tokens appear once per prompt in both classes: their counts say nothing
    for ids, y in ((train_ids, train_y), (test_ids, test_y)):
        counts = np.array([[p.count(FIRST), p.count(SECOND)] for p in ids])
        assert (counts == 1).all() and set(y.tolist()) == {0, 1}
    result = text_baseline_result(train_ids, train_y, test_ids, test_y, n_boot=300)
    assert result.auroc.value > 0.95


def test_a_probe_that_counts_the_marker_reads_the_prompt() -> None:
    rng = np.random.default_rng(3)
    train_ids, train_y = _marked(rng, 300)
    test_ids, test_y = _marked(rng, 300)
    text = fit_text_baseline(train_ids, train_y).scores(test_ids)
    probe = np.array([p.count(MARKER) for p in test_ids]) + rng.normal(0, 0.01, 300)
    verdict = probe_vs_text(probe, text, test_y, n_boot=500, seed=0)
    assert verdict.reads_the_prompt
    assert verdict.probe_auroc.value > 0.99 and verdict.text_auroc.value > 0.99
    assert verdict.difference.low <= 0.0


def test_a_probe_that_sees_what_the_tokens_cannot_beats_the_baseline() -> None:
    rng = np.random.default_rng(4)
    train_ids, test_ids = _filler(rng, 300), _filler(rng, 300)
    test_y = _labels(rng, 300)  # the labels come from something the prompt's tokens do not hold
    text = fit_text_baseline(train_ids, _labels(rng, 300)).scores(test_ids)
    probe = test_y + rng.normal(0, 0.1, 300)  # separates perfectly
    verdict = probe_vs_text(probe, text, test_y, n_boot=500, seed=0)
    assert not verdict.reads_the_prompt
    assert verdict.probe_auroc.value == 1.0
    assert verdict.difference.low > 0.3
    assert "beats the text baseline" in str(verdict)


def test_the_difference_interval_is_paired() -> None:
    # The same scores on both sides: every resample gives a difference of exactly 0. An
    # unpaired bootstrap (each AUROC on its own draw) would give an interval of non-zero width.
    rng = np.random.default_rng(5)
    y = _labels(rng, 200)
    scores = rng.normal(size=200) + y
    verdict = probe_vs_text(scores, scores, y, n_boot=300, seed=0)
    assert (verdict.difference.low, verdict.difference.high) == (0.0, 0.0)
    assert verdict.reads_the_prompt
    assert verdict.probe_auroc.high - verdict.probe_auroc.low > 0.05


def test_unseen_ngrams_are_ignored_and_results_are_seeded() -> None:
    rng = np.random.default_rng(6)
    train_ids, train_y = _marked(rng, 100)
    baseline = fit_text_baseline(train_ids, train_y)
    assert baseline.scores([[VOCAB + 5, VOCAB + 6]]).shape == (1,)
    test_ids, test_y = _marked(rng, 100)
    first = text_baseline_result(train_ids, train_y, test_ids, test_y, n_boot=100, seed=3)
    assert first == text_baseline_result(train_ids, train_y, test_ids, test_y, n_boot=100, seed=3)
    assert first.to_dict()["auroc"]["n"] == 100


GOOD = [[5, 1, 2], [3, 4], [1, 2, 3], [4, 3, 2]]


@pytest.mark.parametrize(
    ("ids", "labels", "error", "message"),
    [
        (GOOD, [1, 0, 1], ValueError, "train_ids has 4 prompts but train_labels has 3 labels; "
         "pass one label per prompt"),
        (GOOD, [1, 1, 1, 1], ValueError, "train_labels contain only class 1.*Include clean "
         "and triggered"),
        ([], [], ValueError, "train_ids is empty; pass one list of token ids per prompt"),
        (GOOD, [], ValueError, "train_labels is empty"),
        ([[1, 2], [], [3], [4]], [1, 0, 1, 0], ValueError, r"train_ids\[1\] has no tokens"),
        (["the trigger", "a prompt"], [1, 0], TypeError, r"train_ids\[0\] is text.*input_ids"),
        ([1, 2, 3], [1, 0, 1], TypeError, r"train_ids\[0\] must be a 1-D sequence of integer "
         r"token ids.*\[ids\]"),
        ([[0.5, 1.0], [2.0]], [1, 0], TypeError, "integer token ids"),
    ],
)  # fmt: skip
def test_bad_training_input_is_refused_with_the_fix(
    ids: list, labels: list, error: type, message: str
) -> None:
    with pytest.raises(error, match=message):
        fit_text_baseline(ids, labels)


def test_bad_test_input_and_comparisons_are_refused_with_the_fix() -> None:
    with pytest.raises(ValueError, match="test_labels contain only class 0"):
        text_baseline_result(GOOD, [1, 0, 1, 0], GOOD, [0, 0, 0, 0])
    with pytest.raises(ValueError, match="calibration_ids is empty"):
        text_baseline_result(GOOD, [1, 0, 1, 0], GOOD, [1, 0, 1, 0], calibration_ids=[])
    with pytest.raises(ValueError, match="C must be positive"):
        fit_text_baseline(GOOD, [1, 0, 1, 0], C=0.0)
    with pytest.raises(ValueError, match="text_scores has 3 entries but labels has 4.*same order"):
        probe_vs_text([0.1, 0.2, 0.3, 0.4], [0.1, 0.2, 0.3], [0, 0, 1, 1])
    with pytest.raises(ValueError, match="labels contain only class 1"):
        probe_vs_text([0.1, 0.2], [0.1, 0.2], [1, 1])
    with pytest.raises(ValueError, match="probe_scores contain NaN"):
        probe_vs_text([0.1, np.nan], [0.1, 0.2], [0, 1])
    with pytest.raises(ValueError, match="n_boot must be a positive number"):
        probe_vs_text([0.1, 0.2], [0.1, 0.2], [0, 1], n_boot=0)
