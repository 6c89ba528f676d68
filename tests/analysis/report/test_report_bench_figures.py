"""The benchmark report's figures (`analysis.report.bench_figures`) draw bench.json's numbers: the
behaviour rates and best AUROCs per stage, each detector's AUROC per site, its ROC curve at its
best site, and the held-out scores split by test set with the calibrated threshold."""

from __future__ import annotations

from analysis.bench.tables import behaviour_vs_representation, leaderboard
from analysis.folder.bench_records import BenchRecord
from analysis.report.bench_figures import (
    RATE_LABELS,
    histogram_figure,
    layer_figure,
    representation_figure,
    roc_figure,
)
from tests.analysis.bench.stage_rows import DETECTORS, ROWS, SITES

BENCH: BenchRecord = {
    "settings": {
        "runs": ["small"],
        "positions": ["last", "-2"],
        "detectors": list(DETECTORS),
        "fpr": 0.01,
        "n_boot": 50,
        "n_directions": 20,
        "n_permutations": 0,
    },  # fmt: skip
    "runs": [],
    "stages": ROWS,
    "leaderboard": leaderboard(ROWS),
    "behaviour_vs_representation": behaviour_vs_representation(ROWS),
    "shuffle_controls": [],
    "transfer": [],
}


def _trace(fig, name: str):  # type: ignore[no-untyped-def]
    return next(t for t in fig.data if t.name == name)


def test_behaviour_above_the_best_auroc_of_each_detector() -> None:
    fig = representation_figure(BENCH)
    assert list(_trace(fig, RATE_LABELS["trigger_rate"]).x) == ["small/sft", "small/rl"]
    for key, label in RATE_LABELS.items():
        want = [ROWS[0]["behaviour"][key]["value"], ROWS[2]["behaviour"][key]["value"]]
        assert list(_trace(fig, label).y) == want
    lda = _trace(fig, "lda")
    best = [r["best_auroc"]["lda"]["auroc"] for r in BENCH["behaviour_vs_representation"]]
    assert list(lda.y) == [b["value"] for b in best]
    assert list(lda.error_y.array) == [b["high"] - b["value"] for b in best]
    p95 = _trace(fig, "random directions p95")
    assert list(p95.y) == [r["random_p95_max"] for r in BENCH["behaviour_vs_representation"]]


def test_one_panel_per_stage_and_a_line_per_detector_and_position() -> None:
    fig = layer_figure(BENCH)
    assert [a.text for a in fig.layout.annotations] == ["sft", "rl"]
    assert len(fig.data) == len(ROWS) * (len(DETECTORS) + 1)
    line = _trace(fig, "lda (small, -2)")
    assert list(line.x) == ["embed", "L0", "L1"]
    assert list(line.y) == [c["auroc"]["value"] for c in ROWS[1]["detectors"]["lda"]["cells"]]
    assert list(_trace(fig, "random p95 (small, -2)").y) == ROWS[1]["random_directions"]["p95"]


def test_each_panel_draws_the_roc_curve_of_each_detectors_best_site() -> None:
    fig = roc_figure(BENCH)
    assert len(fig.layout.annotations) == len(ROWS)
    best = ROWS[0]["detectors"]["lda"]
    assert best["best_site"] == SITES[2]
    curve = next(t for t in fig.data if t.name == "lda (L1)")
    assert list(curve.x) == best["best_roc"]["fpr"] and list(curve.y) == best["best_roc"]["tpr"]


def test_the_histograms_split_held_out_scores_by_test_set_at_the_threshold() -> None:
    fig = histogram_figure(BENCH)
    panel = [t for t in fig.data if t.xaxis == "x"]  # the first row's panel
    counts = {t.name: len(t.x) for t in panel}
    labels = ROWS[0]["test_labels"]
    assert counts == {
        "triggered": sum(labels),
        "no trigger: arithmetic": ROWS[0]["test_families"].count("arithmetic") // 2,
        "no trigger: facts": ROWS[0]["test_families"].count("facts") // 2,
    }
    cell = ROWS[0]["detectors"]["lda"]["cells"][2]
    assert fig.layout.shapes[0].x0 == cell["threshold"]
    assert "calibrated on trigger-free training rows" in fig.layout.title.text
