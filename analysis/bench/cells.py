"""Fitting the benchmark's detectors and scoring one stage with them: every metric of every
detector x site cell (:func:`detection_summary`, :func:`stage_cells`), the logistic probes of
all token positions in one solve, and the label-shuffle control of a cell.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from analysis.bench.zoo import StageData
from probes import (
    DiffMeansProbe,
    LayerwiseLogisticProbe,
    LDAProbe,
    MahalanobisDetector,
    auroc,
    bootstrap_auroc,
    bootstrap_average_precision,
    bootstrap_tpr_at_fpr,
    bootstrap_worst_case_fpr,
    fit_logistic_grid,
    roc_curve,
    tpr_at_threshold,
)

DETECTORS = ("logistic", "diff_means", "lda", "mahalanobis")


def fit_detector(
    kind: str, X_train: Float[Tensor, "sites n d"], y_train: np.ndarray, C: float = 1.0
) -> Any:
    """Fit one detector on all sites at once. Mahalanobis is fitted on the trigger-free rows only.

    >>> import torch
    >>> X = torch.randn(2, 20, 4, dtype=torch.float64)
    >>> fit_detector("lda", X, np.r_[np.zeros(10), np.ones(10)]).coef_.shape
    torch.Size([2, 4])
    """
    if kind == "logistic":
        return LayerwiseLogisticProbe(C=C).fit(X_train, y_train)
    if kind == "diff_means":
        return DiffMeansProbe().fit(X_train, y_train)
    if kind == "lda":
        return LDAProbe().fit(X_train, y_train)
    if kind == "mahalanobis":
        return MahalanobisDetector().fit(X_train[:, np.asarray(y_train) == 0])
    raise ValueError(f"Unknown detector {kind!r}; choose from {', '.join(DETECTORS)}.")


def logistic_per_position(
    per_position: Sequence[StageData], C: float
) -> list[LayerwiseLogisticProbe]:
    """The logistic probe of every site at every token position of one stage, fitted in one
    solve (the positions share the stage's labels and split), split back per position."""
    first = per_position[0]
    if any(not np.array_equal(data.train, first.train) for data in per_position):
        raise ValueError(f"{first.run}/{first.stage}: token positions with different splits.")
    X = torch.cat([data.X[:, first.train] for data in per_position])
    probe = fit_detector("logistic", X, first.labels[first.train], C)
    out, start = [], 0
    for data in per_position:
        part = LayerwiseLogisticProbe(**probe.get_params())
        rows = slice(start, start + data.X.shape[0])
        part.mean_, part.scale_ = probe.mean_[rows], probe.scale_[rows]
        part.coef_, part.intercept_ = probe.coef_[rows], probe.intercept_[rows]
        part.n_iter_, part.n_features_in_ = probe.n_iter_[rows], probe.n_features_in_
        part.solver_ = probe.solver_
        out.append(part)
        start += data.X.shape[0]
    return out


def detector_scores(detector: Any, X: Float[Tensor, "sites n d"]) -> np.ndarray:
    return np.asarray(detector.decision_function(X).cpu().numpy(), dtype=np.float64)


def detection_summary(
    test_scores: Any,
    test_labels: Any,
    test_families: Any,
    calibration_scores: Any,
    fpr: float = 0.01,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Every metric of one cell, JSON-ready: AUROC, AP and TPR@FPR with 95% intervals, and the
    worst-case FPR across the families of the test negatives at a threshold calibrated on
    `calibration_scores` (trigger-free rows the detector may have been fitted on), with the TPR
    at that same threshold.

    >>> y = np.r_[np.zeros(20), np.ones(20)]
    >>> s = detection_summary(np.r_[np.arange(20.0), 10 + np.arange(20.0)], y, ["a", "b"] * 20,
    ...                       np.arange(20.0), n_boot=50)
    >>> round(s["auroc"]["value"], 3), s["worst_case_fpr"]["name"]
    (0.875, 'a')
    """
    scores = np.asarray(test_scores, dtype=np.float64)
    labels = np.asarray(test_labels, dtype=np.int64)
    families = np.asarray(test_families)
    negative_sets = {
        str(f): scores[(labels == 0) & (families == f)]
        for f in sorted(set(families[labels == 0].tolist()))
    }
    worst, worst_interval = bootstrap_worst_case_fpr(
        calibration_scores, negative_sets, fpr, n_boot, seed
    )
    return {
        "auroc": bootstrap_auroc(scores, labels, n_boot, seed).to_dict(),
        "average_precision": bootstrap_average_precision(scores, labels, n_boot, seed).to_dict(),
        "tpr_at_fpr": bootstrap_tpr_at_fpr(scores, labels, fpr, n_boot, seed).to_dict(),
        "worst_case_fpr": {**worst.to_dict(), "interval": worst_interval.to_dict()},
        "tpr_at_calibrated_threshold": tpr_at_threshold(scores[labels == 1], worst.threshold),
    }


def stage_cells(
    data: StageData, fitted: dict[str, Any], fpr: float, n_boot: int, seed: int
) -> dict[str, Any]:
    """Per detector and site: the metrics, plus the held-out scores of the detector's best site."""
    y = data.labels
    calibration_rows = data.train[y[data.train] == 0]
    out: dict[str, Any] = {}
    for kind, detector in fitted.items():
        test_scores = detector_scores(detector, data.X[:, data.test])
        calibration = detector_scores(detector, data.X[:, calibration_rows])
        cells = [
            detection_summary(
                test_scores[i],
                y[data.test],
                data.families[data.test],
                calibration[i],
                fpr,
                n_boot,
                seed + i,
            )
            for i in range(len(data.sites))
        ]
        points = [c["auroc"]["value"] for c in cells]
        best = int(np.argmax(points))
        fpr_curve, tpr_curve = roc_curve(test_scores[best], y[data.test])
        out[kind] = {
            "auroc_point": points,
            "cells": cells,
            "best_site": data.sites[best],
            "best_index": best,
            "best_test_scores": test_scores[best].tolist(),
            "best_roc": {"fpr": fpr_curve.tolist(), "tpr": tpr_curve.tolist()},
        }
    return out


def shuffle_control(
    data: StageData, kind: str, site_index: int, C: float, seed: int, n_permutations: int
) -> dict[str, Any]:
    """Held-out AUROC of `kind` at one site refitted on permuted training labels (the same
    permutations as probes.controls.shuffled_label_null: default_rng(seed + k))."""
    X = data.X[site_index : site_index + 1]
    y_train = data.labels[data.train]
    permutations = [
        np.random.default_rng(seed + k).permutation(y_train) for k in range(n_permutations)
    ]
    if kind == "logistic":  # every permutation in one solve
        grid = fit_logistic_grid(X[:, data.train], np.stack(permutations), C=C)
        scores = grid.decision_function(X[:, data.test])[0].cpu().numpy()  # [permutations, n]
        values = [auroc(row, data.labels[data.test]) for row in scores]
    else:
        values = []
        for permuted in permutations:
            detector = fit_detector(kind, X[:, data.train], permuted, C)
            values.append(
                auroc(detector_scores(detector, X[:, data.test])[0], data.labels[data.test])
            )
    return {
        "detector": kind,
        "site": data.sites[site_index],
        "mean": float(np.mean(values)),
        "range_95": np.percentile(values, [2.5, 97.5]).tolist(),
        "n_permutations": n_permutations,
    }
