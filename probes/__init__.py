"""Detectors over arrays (no model code): batched probes, metrics, controls, text baseline."""

from probes.controls import shuffled_label_auroc, shuffled_label_null
from probes.detection_intervals import (
    OperatingPoint,
    bootstrap_average_precision,
    bootstrap_tpr_at_fpr,
    bootstrap_worst_case_fpr,
    operating_point,
)
from probes.detection_metrics import (
    WorstCaseFPR,
    average_precision,
    calibrate_threshold,
    fpr_at_threshold,
    roc_curve,
    tpr_at_fpr,
    tpr_at_threshold,
    worst_case_fpr,
)
from probes.detector_io import load_detector, save_detector
from probes.detectors import DiffMeansProbe, LDAProbe, MahalanobisDetector, RandomDirectionBaseline
from probes.logistic import LayerwiseLogisticProbe, choose_solver
from probes.logistic_grid import LogisticGrid, fit_logistic_grid
from probes.metrics import (
    Estimate,
    auroc,
    bootstrap_auroc,
    bootstrap_mean,
    bootstrap_rate,
    layerwise_auroc,
    t_interval,
)
from probes.text_baseline import (
    ProbeVsText,
    TextBaseline,
    TextBaselineResult,
    fit_text_baseline,
    probe_vs_text,
    text_baseline_result,
)

__all__ = [
    "OperatingPoint",
    "WorstCaseFPR",
    "average_precision",
    "bootstrap_average_precision",
    "bootstrap_tpr_at_fpr",
    "bootstrap_worst_case_fpr",
    "calibrate_threshold",
    "fpr_at_threshold",
    "operating_point",
    "roc_curve",
    "tpr_at_fpr",
    "tpr_at_threshold",
    "worst_case_fpr",
    "DiffMeansProbe",
    "LDAProbe",
    "MahalanobisDetector",
    "RandomDirectionBaseline",
    "load_detector",
    "save_detector",
    "Estimate",
    "LayerwiseLogisticProbe",
    "LogisticGrid",
    "choose_solver",
    "fit_logistic_grid",
    "auroc",
    "bootstrap_auroc",
    "bootstrap_mean",
    "bootstrap_rate",
    "layerwise_auroc",
    "t_interval",
    "shuffled_label_auroc",
    "shuffled_label_null",
    "ProbeVsText",
    "TextBaseline",
    "TextBaselineResult",
    "fit_text_baseline",
    "probe_vs_text",
    "text_baseline_result",
]
