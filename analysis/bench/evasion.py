"""Which detectors survive an adaptive attacker: every detector fitted on the stage before the
attack, scored unchanged on the attacked stage (frozen), and fitted again on the attacked stage
(refit), each on the run's held-out questions.

Per detector and site: AUROC with its 95% interval, and the recall (TPR) at a threshold set at
`fpr` (1%) on the scored stage's `calibration_rows()` (its held-out clean prompts where the
StageData has them, otherwise its trigger-free training prompts): what a deployed monitor would
catch. An AUROC far
below 0.5 means the attack pushed triggered prompts past the clean ones: a one-sided monitor
misses them, a two-sided one would not.

Example::

    cells = evasion_cells(before, after, ["logistic", "mahalanobis"], C=1.0, fpr=0.01)
    cells["logistic"].frozen[3].recall      # the frozen probe's recall at site 3
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from analysis.bench.cells import Detector, fit_detector, stage_cells
from analysis.bench.zoo import StageData
from analysis.folder.bench_records import CellRecord


@dataclass(frozen=True)
class Cell:
    """One detector at one site: AUROC [95% interval] and recall at the calibrated threshold."""

    auroc: float
    auroc_low: float
    auroc_high: float
    recall: float
    threshold: float

    @classmethod
    def of(cls, cell: CellRecord) -> Cell:
        a = cell["auroc"]
        return cls(
            float(a["value"]),
            float(a["low"]),
            float(a["high"]),
            float(cell["tpr_at_fpr"]["value"]),
            float(cell["threshold"]),
        )


@dataclass(frozen=True)
class DetectorCells:
    """A detector before the attack (fitted and scored on the stage before), frozen (fitted
    before, scored after) and refit (fitted and scored after), one cell per site."""

    before: list[Cell]
    frozen: list[Cell]
    refit: list[Cell]


class ProjectionDetector:
    """A fixed direction per site, scored as the projection on its unit vector (the contrast
    probe: `analysis.contrast.probe.contrast_directions`)."""

    def __init__(self, directions: Float[Tensor, "sites d"]) -> None:
        norms = directions.double().norm(dim=-1, keepdim=True)
        self.coef_ = torch.where(norms > 0, directions.double() / norms.clamp_min(1e-300), 0.0)
        self.intercept_ = torch.zeros(directions.shape[0], dtype=torch.float64)

    def decision_function(self, X: Float[Tensor, "sites n d"]) -> Float[Tensor, "sites n"]:
        return torch.einsum("snd,sd->sn", X.double(), self.coef_) + self.intercept_[:, None]


def fit_all(
    data: StageData,
    detectors: Sequence[str],
    C: float,
    contrast: Float[Tensor, "sites d"] | None = None,
) -> dict[str, Detector]:
    """Every detector fitted on `data`'s training rows; "contrast" takes its directions from
    `contrast` (the contrast pairs' mean difference on the same model)."""
    out: dict[str, Detector] = {}
    for kind in detectors:
        if kind == "contrast":
            if contrast is None:
                raise ValueError("The contrast detector needs the contrast directions.")
            out[kind] = ProjectionDetector(contrast)
        else:
            out[kind] = fit_detector(kind, data.X[:, data.train], data.labels[data.train], C)
    return out


def evasion_cells(
    before: StageData,
    after: StageData,
    fitted_before: Mapping[str, Detector],
    fitted_after: Mapping[str, Detector],
    fpr: float,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, DetectorCells]:
    """Per detector: its cells before the attack, frozen, and refit (see the module docstring).
    `fitted_before` / `fitted_after`: the detectors fitted on each stage (`fit_all`)."""
    if before.sites != after.sites or not (before.labels == after.labels).all():
        raise ValueError("before and after must hold the same prompts at the same sites.")

    def cells(data: StageData, fitted: Mapping[str, Detector]) -> dict[str, list[Cell]]:
        out = stage_cells(data, fitted, fpr, n_boot, seed)
        return {k: [Cell.of(c) for c in v["cells"]] for k, v in out.items()}

    b, f, r = cells(before, fitted_before), cells(after, fitted_before), cells(after, fitted_after)
    return {k: DetectorCells(b[k], f[k], r[k]) for k in fitted_before}
