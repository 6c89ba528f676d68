"""A condition table's rows (`analysis.bench.ranking`): the threshold rule is probes', a strong
detector and a weak one get non-overlapping TPR intervals and distinct ranks, overlapping rows
share a rank, and a threshold held on several clean sets at once keeps each at the target FPR."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.bench.ranking import monitor_row, overlap, rank_rows, separation, threshold_rows
from analysis.folder.bench_records import PROMPT_TOKENS, TEXT_BASELINE, ConditionRow
from probes import calibrate_threshold

RNG = np.random.default_rng(0)
CLEAN = {"calibration": RNG.normal(size=300)}


def _row(detector: str, shift: float, site: str = "L1", seed: int = 1) -> ConditionRow:
    rng = np.random.default_rng(seed)
    return monitor_row(
        detector,
        site,
        rng.normal(shift, 1, 80),
        {"test": rng.normal(size=80)},
        CLEAN,
        fpr=0.01,
        n_boot=300,
        seed=seed,
    )


@pytest.mark.parametrize(("n", "fpr"), [(5, 0.2), (100, 0.01), (150, 0.07), (37, 0.0)])
def test_the_threshold_rule_is_probes_calibrate_threshold(n: int, fpr: float) -> None:
    scores = np.random.default_rng(n).normal(size=(3, n))
    expected = [calibrate_threshold(row, fpr) for row in scores]
    assert threshold_rows(scores, fpr).tolist() == expected


def test_a_separable_and_an_inseparable_detector_get_apart_intervals_and_distinct_ranks() -> None:
    strong, weak = _row("strong", 5.0), _row("weak", 0.0)
    assert strong["tpr_at_fpr"]["low"] > weak["tpr_at_fpr"]["high"]
    ranked = rank_rows([weak, strong])
    assert [(r["detector"], r["rank"]) for r in ranked] == [("strong", "1"), ("weak", "2")]
    assert separation(ranked)[0] == [["strong", "weak"]]


def test_rows_whose_intervals_overlap_the_first_share_its_rank() -> None:
    a, b, c = _row("a", 5.0, seed=1), _row("b", 5.0, seed=2), _row("c", 0.0, seed=3)
    assert overlap(a["tpr_at_fpr"], b["tpr_at_fpr"])
    ranked = rank_rows([c, b, a])
    assert [r["rank"] for r in ranked] == ["=1", "=1", "3"]
    assert {r["detector"] for r in ranked[:2]} == {"a", "b"}
    best, _, _ = separation(ranked)
    assert ["a", "b"] not in best and ["b", "a"] not in best


def test_the_text_baseline_verdict_against_the_best_detector() -> None:
    text = {**_row(TEXT_BASELINE, 0.0), "site": PROMPT_TOKENS}
    assert separation(rank_rows([_row("probe", 5.0), text]))[2] == "detectors beat it"
    text_strong = {**_row(TEXT_BASELINE, 5.0), "site": PROMPT_TOKENS}
    assert separation(rank_rows([_row("probe", 0.0), text_strong]))[2] == "it beats every detector"
    assert separation(rank_rows([_row("probe", 5.0, seed=2), text_strong]))[2] == "tied"


def test_one_threshold_keeps_every_clean_set_at_the_target_fpr() -> None:
    """A detector that fires on coding requests: held at 1% on them too, it catches less."""
    rng = np.random.default_rng(5)
    positives, code = rng.normal(3, 1, 200), rng.normal(3, 1, 200)
    calibration = {"chat": rng.normal(size=200)}
    chat_only = monitor_row("d", "L0", positives, {"code": code}, calibration, n_boot=200)
    both = monitor_row(
        "d", "L0", positives, {"code": code}, {**calibration, "code": code}, n_boot=200
    )
    assert chat_only["negatives_fpr_per_set"]["code"] > 0.5
    assert both["negatives_fpr_per_set"]["code"] <= 0.01
    assert both["tpr_at_fpr"]["high"] < chat_only["tpr_at_fpr"]["low"]
    assert both["threshold"] == max(
        calibrate_threshold(calibration["chat"]), calibrate_threshold(code)
    )


def test_empty_or_non_finite_scores_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="positive scores is empty"):
        monitor_row("d", "L0", [], {"n": [0.0]}, CLEAN)
    with pytest.raises(ValueError, match="negatives 'n' holds non-finite"):
        monitor_row("d", "L0", [1.0], {"n": [np.nan]}, CLEAN)
