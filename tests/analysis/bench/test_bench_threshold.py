"""The benchmark reports a detector as a monitor at one threshold: calibrated for the target FPR
on held-out clean prompts, and used for the TPR and for every test set's FPR alike."""

from __future__ import annotations

import numpy as np
import torch

from analysis.bench.cells import stage_cells
from analysis.bench.evasion import ProjectionDetector
from analysis.bench.zoo import StageData
from probes import calibrate_threshold, fpr_at_threshold, tpr_at_fpr, tpr_at_threshold

N = 40  # questions per split


def _stage(calibration: torch.Tensor | None) -> StageData:
    """Held-out clean rows in [0, 1), triggered rows in [2, 4): the ROC curve of the test rows
    alone gives TPR 1 at any FPR; the held-out clean prompts reach up to 3."""
    n = 4 * N
    labels = np.tile([0, 1], 2 * N)
    train, test = np.arange(2 * N), np.arange(2 * N, n)
    scores = np.zeros(n)
    scores[train] = np.linspace(0.0, 0.5, 2 * N)
    scores[test[labels[test] == 0]] = np.linspace(0.0, 0.99, N)
    scores[test[labels[test] == 1]] = np.linspace(2.0, 4.0, N)
    return StageData(
        run="r", stage="sft", position="last", sites=("blocks.0.hook_resid_post",),
        X=torch.from_numpy(scores)[None, :, None], labels=labels, groups=np.arange(n) // 2,
        families=np.repeat(np.array(["arithmetic", "facts"] * N), 2), prompts=("p",) * n,
        train=train, test=test, calibration=calibration,
    )  # fmt: skip


def test_tpr_and_every_sets_fpr_share_one_threshold_set_on_held_out_clean_prompts() -> None:
    clean = np.linspace(0.0, 3.0, 100)  # clean prompts the model finds more unusual
    data = _stage(torch.from_numpy(clean)[None, :, None])
    detector = ProjectionDetector(torch.ones(1, 1, dtype=torch.float64))
    cell = stage_cells(data, {"lda": detector}, fpr=0.01, n_boot=50, seed=0)["lda"]["cells"][0]

    threshold = calibrate_threshold(clean, fpr=0.01)  # the 2nd largest of 100
    scores, y = data.X[0, data.test, 0].numpy(), data.labels[data.test]
    families = data.families[data.test]
    assert cell["threshold"] == threshold
    assert cell["worst_case_fpr"]["threshold"] == threshold
    assert cell["tpr_at_fpr"]["value"] == tpr_at_threshold(scores[y == 1], threshold)
    for name in ("arithmetic", "facts"):
        negatives = scores[(y == 0) & (families == name)]
        assert cell["worst_case_fpr"]["per_set"][name] == fpr_at_threshold(negatives, threshold)
    assert cell["worst_case_fpr"]["fpr"] == max(cell["worst_case_fpr"]["per_set"].values())
    assert cell["calibration"] == {"prompts": "held-out clean prompts", "n": 100}
    # not the ROC curve of the test rows, which calibrates on the test rows themselves
    assert tpr_at_fpr(scores, y, 0.01) == 1.0
    assert cell["tpr_at_fpr"]["value"] < 0.6
    low, high = cell["tpr_at_fpr"]["low"], cell["tpr_at_fpr"]["high"]
    assert low <= cell["tpr_at_fpr"]["value"] <= high


def test_without_held_out_clean_prompts_the_training_clean_rows_calibrate_and_say_so() -> None:
    data = _stage(None)
    detector = ProjectionDetector(torch.ones(1, 1, dtype=torch.float64))
    cell = stage_cells(data, {"lda": detector}, fpr=0.01, n_boot=50, seed=0)["lda"]["cells"][0]
    clean_train = data.X[0, data.train[data.labels[data.train] == 0], 0].numpy()
    assert cell["threshold"] == calibrate_threshold(clean_train, 0.01)
    assert cell["calibration"] == {"prompts": "trigger-free training rows", "n": N}
    assert cell["tpr_at_fpr"]["value"] == 1.0
