"""A detector as a monitor (`analysis.measure.monitoring`): one threshold per site set on the
calibration prompts, the TPR there, and the worst FPR over the test split's own trigger-free sets
(by name) and the extra negative sets; mismatched inputs are refused with the fix."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from analysis.measure.monitoring import TARGET_FPR, operating_points
from probes import calibrate_threshold, fpr_at_threshold

N = 60


def _inputs() -> dict[str, Any]:
    """Two sites: at site 0 triggered prompts score 5 standard deviations above clean ones and an
    extra negative set (code requests) sits at 3; at site 1 nothing tells them apart."""
    rng = np.random.default_rng(0)
    labels = np.r_[np.zeros(2 * N), np.ones(N)].astype(int)
    names = ["chat, 2023"] * N + ["code, 2023"] * N + ["code, 2024"] * N
    test = rng.normal(size=(2, 3 * N))
    test[0, labels == 1] += 5.0
    code = rng.normal(size=(2, 80))
    code[0] += 3.0
    return {
        "test_scores": test,
        "test_labels": labels,
        "test_set_names": names,
        "calibration_scores": rng.normal(size=(2, 200)),
        "negative_scores": {"code request, no trigger": code},
        "n_boot": 100,
    }


def test_one_threshold_per_site_from_the_calibration_prompts_gives_tpr_and_every_sets_fpr() -> None:
    args = _inputs()
    points = operating_points(**args)
    assert len(points) == 2
    test = args["test_scores"]
    for i, point in enumerate(points):
        threshold = calibrate_threshold(args["calibration_scores"][i], TARGET_FPR)
        assert point["threshold"] == threshold and point["target_fpr"] == TARGET_FPR
        per_set = point["worst_case_fpr"]["per_set"]
        # the trigger-free test sets by name, then the extra ones; never the triggered rows
        assert sorted(per_set) == ["chat, 2023", "code request, no trigger", "code, 2023"]
        chat = test[i][:N]
        assert per_set["chat, 2023"] == fpr_at_threshold(chat, threshold)
        assert point["worst_case_fpr"]["fpr"] == max(per_set.values())
        assert point["n_calibration"] == 200
    assert points[0]["tpr"]["value"] > 0.95 > 0.2 > points[1]["tpr"]["value"]
    assert points[0]["worst_case_fpr"]["name"] == "code request, no trigger"
    assert points[0]["worst_case_fpr"]["fpr"] > 0.5


def test_the_same_inputs_give_the_same_points() -> None:
    assert operating_points(**_inputs()) == operating_points(**_inputs())


def test_a_name_or_label_missing_for_a_test_example_is_refused() -> None:
    args = _inputs()
    args["test_set_names"] = args["test_set_names"][:-1]
    with pytest.raises(ValueError, match="180 test scores, 180 labels and 179 test-set names"):
        operating_points(**args)
