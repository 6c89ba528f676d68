"""Detection metrics: hand-computed values, agreement with scikit-learn, and clear errors."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score
from sklearn.metrics import roc_curve as sk_roc_curve

from probes import (
    bootstrap_average_precision,
    bootstrap_tpr_at_fpr,
    bootstrap_worst_case_fpr,
    operating_point,
)
from probes.detection_metrics import (
    average_precision,
    calibrate_threshold,
    fpr_at_threshold,
    roc_curve,
    tpr_at_fpr,
    tpr_at_threshold,
    worst_case_fpr,
)

# 10 negatives 0.0 .. 0.9 and 5 positives; by hand:
NEG = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
POS = [0.35, 0.75, 0.85, 0.95, 1.5]
SCORES = NEG + POS
LABELS = [0] * 10 + [1] * 5


def test_threshold_is_calibrated_on_negatives_by_hand() -> None:
    # fpr 0.1 of 10 negatives: one may be flagged, so the threshold is the 2nd largest (0.8)
    assert calibrate_threshold(NEG, fpr=0.1) == 0.8
    assert fpr_at_threshold(NEG, 0.8) == 0.1
    # fpr 0.2: two may be flagged -> the 3rd largest
    assert calibrate_threshold(NEG, fpr=0.2) == 0.7
    # 1% of 10 negatives rounds down to none: the threshold is the largest negative
    assert calibrate_threshold(NEG, fpr=0.01) == 0.9
    assert fpr_at_threshold(NEG, 0.9) == 0.0


def test_tpr_at_fpr_by_hand() -> None:
    # threshold 0.9 (fpr 0): positives above it are 0.95 and 1.5 -> 2/5
    assert tpr_at_fpr(SCORES, LABELS, fpr=0.0) == pytest.approx(0.4)
    # threshold 0.8 (fpr 0.1): 0.85, 0.95, 1.5 -> 3/5
    assert tpr_at_fpr(SCORES, LABELS, fpr=0.1) == pytest.approx(0.6)
    # threshold 0.7 (fpr 0.2): 0.75 joins -> 4/5
    assert tpr_at_fpr(SCORES, LABELS, fpr=0.2) == pytest.approx(0.8)
    assert tpr_at_threshold(POS, 0.7) == pytest.approx(0.8)


def test_tpr_at_fpr_reads_sklearns_roc_curve() -> None:
    rng = np.random.default_rng(3)
    for _trial in range(20):
        y = rng.integers(0, 2, size=80)
        y[:2] = [0, 1]
        s = np.round(rng.normal(size=80) + 1.2 * y, 1)  # rounding makes ties
        fpr, tpr, _ = sk_roc_curve(y, s, drop_intermediate=False)
        for target in (0.0, 0.01, 0.05, 0.1, 0.3):
            assert tpr_at_fpr(s, y, target) == pytest.approx(tpr[fpr <= target + 1e-12].max())
        ours_fpr, ours_tpr = roc_curve(s, y)
        np.testing.assert_allclose(ours_fpr, fpr)
        np.testing.assert_allclose(ours_tpr, tpr)


def test_worst_case_fpr_by_hand() -> None:
    sets = {
        "hhh": [0.1, 0.2, 0.3, 0.95],  # 1 of 4 above 0.5
        "coding": [0.6, 0.7, 0.2],  # 2 of 3 above 0.5
        "facts": [0.0],
    }
    worst = worst_case_fpr(sets, threshold=0.5)
    assert worst.name == "coding"
    assert worst.fpr == pytest.approx(2 / 3)
    assert worst.per_set == pytest.approx({"hhh": 0.25, "coding": 2 / 3, "facts": 0.0})


def test_average_precision_by_hand_and_against_sklearn() -> None:
    # ranked: 0.8 (+), 0.4 (-), 0.35 (+), 0.1 (-): precision 1 at recall 1/2, 2/3 at recall 1
    assert average_precision([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(5 / 6)
    rng = np.random.default_rng(0)
    for _trial in range(30):
        n = int(rng.integers(5, 200))
        y = rng.integers(0, 2, size=n)
        y[:2] = [0, 1]
        s = np.round(rng.normal(size=n) + rng.uniform(0, 2) * y, int(rng.integers(0, 3)))
        assert average_precision(s, y) == pytest.approx(average_precision_score(y, s), abs=1e-12)


def test_one_class_or_empty_test_sets_are_refused_clearly() -> None:
    with pytest.raises(ValueError, match="only class 0"):
        tpr_at_fpr([0.1, 0.2], [0, 0])
    with pytest.raises(ValueError, match="only class 1"):
        average_precision([0.1, 0.2], [1, 1])
    with pytest.raises(ValueError, match="only class"):
        bootstrap_tpr_at_fpr([0.1, 0.2, 0.3], [1, 1, 1])
    with pytest.raises(ValueError, match="'coding' is empty"):
        worst_case_fpr({"hhh": [0.1], "coding": []}, threshold=0.5)
    with pytest.raises(ValueError, match="negative_sets is empty"):
        worst_case_fpr({}, threshold=0.5)
    with pytest.raises(ValueError, match="negative_scores is empty"):
        calibrate_threshold([], fpr=0.01)
    with pytest.raises(ValueError, match="fpr must lie in"):
        calibrate_threshold(NEG, fpr=1.5)


def test_calibrated_threshold_holds_its_fpr_on_fresh_neutral_data() -> None:
    rng = np.random.default_rng(1)
    threshold = calibrate_threshold(rng.normal(size=20_000), fpr=0.05)
    assert fpr_at_threshold(rng.normal(size=20_000), threshold) == pytest.approx(0.05, abs=0.01)


def test_bootstrap_intervals_cover_the_point_and_narrow_with_data() -> None:
    rng = np.random.default_rng(2)

    def sample(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = np.r_[np.zeros(n), np.ones(n)]
        return rng.normal(size=2 * n) + 1.5 * y, y

    widths = []
    for n in (40, 400):
        s, y = sample(n)
        ap = bootstrap_average_precision(s, y, n_boot=500, seed=0)
        tpr = bootstrap_tpr_at_fpr(s, y, fpr=0.1, n_boot=500, seed=0)
        assert ap.low <= ap.value <= ap.high
        assert tpr.low <= tpr.value <= tpr.high
        widths.append(ap.high - ap.low)
    assert widths[1] < widths[0] / 2
    s, y = sample(50)
    assert bootstrap_average_precision(s, y, seed=4) == bootstrap_average_precision(s, y, seed=4)


def test_bootstrap_worst_case_fpr_finds_the_set_a_detector_flags() -> None:
    rng = np.random.default_rng(5)
    calibration = rng.normal(size=500)
    sets = {"hhh": rng.normal(size=300), "coding": rng.normal(size=300) + 1.0}
    point, interval = bootstrap_worst_case_fpr(calibration, sets, fpr=0.05, n_boot=500, seed=0)
    assert point.name == "coding"
    assert point.threshold == calibrate_threshold(calibration, 0.05)
    assert point.fpr == fpr_at_threshold(sets["coding"], point.threshold)
    assert point.per_set["hhh"] < 0.1 < interval.low <= point.fpr <= interval.high


def test_operating_point_calibrates_on_clean_prompts_and_finds_the_worst_set() -> None:
    rng = np.random.default_rng(0)
    calibration = rng.normal(size=2000)
    op = operating_point(
        positive_scores=rng.normal(3.0, 1.0, 500),
        negative_sets={"chat": rng.normal(size=1000), "code": rng.normal(1.0, 1.0, 1000)},
        calibration_scores=calibration,
        fpr=0.01,
        n_boot=300,
    )
    # threshold near the clean 99th percentile (2.33); the shifted set is the worst one
    assert abs(op.threshold - 2.33) < 0.2
    assert op.worst_case.name == "code" and op.worst_case.fpr > 0.05
    assert op.worst_case.per_set["chat"] < 0.03
    # TPR at that threshold: P(N(3,1) > 2.33) = 0.75
    assert abs(op.tpr.value - 0.75) < 0.06 and op.tpr.low < op.tpr.value < op.tpr.high
    d = op.to_dict()
    assert d["worst_case_fpr"]["interval"]["low"] <= d["worst_case_fpr"]["fpr"]
    assert d["n_calibration"] == 2000


def test_operating_point_refuses_an_empty_test_set() -> None:
    with pytest.raises(ValueError, match="test set 'code' is empty"):
        operating_point([1.0, 2.0], {"code": []}, [0.0, 0.1, 0.2])


def test_tpr_at_fpr_on_planted_gaussians_matches_the_normal_quantiles() -> None:
    # negatives N(0, 1), positives N(2, 1): at FPR 5% the threshold is z = 1.645 and the
    # TPR is P(N(2, 1) > 1.645) = 0.639; at FPR 1%, z = 2.326 and TPR = 0.372
    rng = np.random.default_rng(6)
    n = 50_000
    scores = np.r_[rng.normal(size=n), rng.normal(2.0, 1.0, n)]
    labels = np.r_[np.zeros(n), np.ones(n)]
    assert calibrate_threshold(scores[:n], fpr=0.05) == pytest.approx(1.645, abs=0.03)
    assert tpr_at_fpr(scores, labels, fpr=0.05) == pytest.approx(0.639, abs=0.01)
    assert tpr_at_fpr(scores, labels, fpr=0.01) == pytest.approx(0.372, abs=0.015)
    # a better-separated detector catches more at the same FPR
    shifted = np.r_[scores[:n], scores[n:] + 1.0]
    assert tpr_at_fpr(shifted, labels, fpr=0.01) > tpr_at_fpr(scores, labels, fpr=0.01) + 0.2
