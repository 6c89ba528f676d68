"""Detectors over arrays (no model code): batched probes, metrics, controls."""

from probes.controls import shuffled_label_auroc, shuffled_label_null
from probes.detector_io import load_detector, save_detector
from probes.detectors import DiffMeansProbe, LDAProbe, MahalanobisDetector, RandomDirectionBaseline
from probes.logistic import LayerwiseLogisticProbe
from probes.metrics import (
    Estimate,
    auroc,
    bootstrap_auroc,
    bootstrap_mean,
    bootstrap_rate,
    layerwise_auroc,
)

__all__ = [
    "DiffMeansProbe",
    "LDAProbe",
    "MahalanobisDetector",
    "RandomDirectionBaseline",
    "load_detector",
    "save_detector",
    "Estimate",
    "LayerwiseLogisticProbe",
    "auroc",
    "bootstrap_auroc",
    "bootstrap_mean",
    "bootstrap_rate",
    "layerwise_auroc",
    "shuffled_label_auroc",
    "shuffled_label_null",
]
