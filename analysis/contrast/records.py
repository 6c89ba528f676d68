"""The contrast probe's result as typed dicts: what `contrast_probe_analysis` returns, the stage's
contrast.json, and what the report (`analysis.report.contrast`) reads back. Typed dicts, not
dataclasses, because they are the JSON layout itself.
"""

# (no `from __future__ import annotations`: a TypedDict reads NotRequired at run time only from
# evaluated annotations; tests/analysis/folder/test_records.py checks its optional keys)
from typing import NotRequired, TypedDict

from analysis.measure.records import OperatingPointRecord

# probes.Estimate.to_dict(): value, low, high (the 95% interval), n and method.
EstimateJson = dict[str, float | int]
# dataclasses.asdict of a ContrastPair: question, answer_pos, answer_neg.
PairJson = dict[str, str]
# a probe as a monitor at one site (analysis.measure.monitoring.operating_points).
OperatingPointJson = OperatingPointRecord


class SiteAurocs(TypedDict):
    """AUROC per site with its 95% interval, the sign-free AUROC, and the best site's."""

    auroc: list[EstimateJson]
    sign_free_auroc: list[float]
    best_index: int
    best: EstimateJson


class ProbeRecord(TypedDict):
    """A contrast-pair probe on one model: its direction per site and what it scores."""

    sites: list[str]
    auroc: list[EstimateJson]
    sign_free_auroc: list[float]
    best: EstimateJson
    best_site: str
    best_site_scores: list[float]
    direction_norm: list[float]
    pairs: list[PairJson]
    # the obvious-truth probe only: its direction's cosine with the contrast probe's, per site
    cosine_with_contrast: NotRequired[list[float]]
    # the contrast probe only, with monitor prompts: the operating point per site and the best's
    operating_points: NotRequired[list[OperatingPointJson]]
    best_operating_point: NotRequired[OperatingPointJson]


class ControlProbe(ProbeRecord):
    """The contrast probe on the control model, and what that model is."""

    name: str


class RandomDirections(TypedDict):
    """Per site: mean, 95th percentile and max AUROC of random unit directions, and the share
    of them at least as good as the contrast probe."""

    n_directions: int
    mean: list[float]
    p95: list[float]
    max: list[float]
    share_at_least_contrast: list[float]


class AskModel(TypedDict):
    """Asking the model a yes/no question after each prompt, scored by the answers' log-odds."""

    pair: PairJson
    score: str
    auroc: EstimateJson
    sign_free_auroc: float
    scores: list[float]


class ContrastResult(TypedDict):
    """The contrast-pair defection probe and its four baselines (contrast.json)."""

    sign_convention: str
    sites: list[str]
    n: int
    n_positive: int
    contrast: ProbeRecord
    random: RandomDirections
    obvious_truth: ProbeRecord
    ask_model: AskModel
    control: ControlProbe | None
    paper: dict[str, str]
