"""Detectors over arrays (no model code): batched probes, metrics, controls."""

from probes.controls import shuffled_label_auroc, shuffled_label_null
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
