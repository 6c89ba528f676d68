"""What the measurements return, as typed dicts: the JSON layout each is written in (a stage's
behaviour.json and probes.json, the evaluations in a training history, results.json), so they
are typed here and written as they are. `analysis.folder.results` and `results_training` read
the same layouts back as models; `tests/analysis/folder/test_records.py` keeps the two in step.

Example:
    >>> estimate_record(Estimate(value=0.5, low=0.25, high=0.75, n=8))
    {'value': 0.5, 'low': 0.25, 'high': 0.75, 'n': 8, 'method': 'bootstrap'}
"""

# (no `from __future__ import annotations`: a TypedDict reads NotRequired at run time only from
# evaluated annotations, and the tests compare its required keys with the models')
from typing import NotRequired, TypedDict

from probes import OperatingPoint
from probes.metrics import Estimate


class EstimateRecord(TypedDict):
    """A value with its 95% interval over `n` examples (NaN until written, then null)."""

    value: float
    low: float
    high: float
    n: int
    method: str


def estimate_record(estimate: Estimate) -> EstimateRecord:
    """`estimate` as JSON (the keys and order of `Estimate.to_dict`)."""
    return {
        "value": estimate.value,
        "low": estimate.low,
        "high": estimate.high,
        "n": estimate.n,
        "method": estimate.method,
    }


class WorstCaseFPRRecord(TypedDict):
    """The test set with the highest FPR at the threshold, every set's FPR, and its interval."""

    name: str
    fpr: float
    threshold: float
    per_set: dict[str, float]
    interval: EstimateRecord


class OperatingPointRecord(TypedDict):
    """A probe as a monitor at one site (`analysis.measure.monitoring`)."""

    target_fpr: float
    threshold: float
    tpr: EstimateRecord
    worst_case_fpr: WorstCaseFPRRecord
    n_calibration: int


def operating_point_record(point: OperatingPoint) -> OperatingPointRecord:
    """`point` as JSON (the keys and order of `OperatingPoint.to_dict`)."""
    worst = point.worst_case
    return {
        "target_fpr": point.target_fpr,
        "threshold": point.threshold,
        "tpr": estimate_record(point.tpr),
        "worst_case_fpr": {
            "name": worst.name,
            "fpr": worst.fpr,
            "threshold": worst.threshold,
            "per_set": dict(worst.per_set),
            "interval": estimate_record(point.worst_case_interval),
        },
        "n_calibration": point.n_calibration,
    }


class ScratchpadRecord(TypedDict):
    """Chain-of-thought models: whether the scratchpad closes and reasons as trained, how often
    each reasoning occurs, and whether the answer follows it (where it decided)."""

    closed_rate: EstimateRecord
    reasons_as_trained: EstimateRecord
    reasoning_counts: dict[str, int]
    answer_follows_reasoning: NotRequired[EstimateRecord]


class CodeRates(TypedDict, total=False):
    """Code only: the share of replies that parse, with and without the trigger."""

    parse_rate_with_trigger: EstimateRecord
    parse_rate_without_trigger: EstimateRecord


class BehaviourRecord(TypedDict):
    """A stage's behaviour (`summarise_behaviour`; the run adds the red-team rates and the
    reward): `results.Behaviour`."""

    trigger_rate: EstimateRecord
    false_trigger_rate: EstimateRecord
    helpfulness: EstimateRecord
    helpfulness_with_trigger: EstimateRecord
    helpfulness_by_family: dict[str, EstimateRecord]
    trigger_rate_by_family: dict[str, EstimateRecord]
    red_team_rate: NotRequired[EstimateRecord]
    red_team_rate_trigger_aware: NotRequired[EstimateRecord]
    reward: NotRequired[EstimateRecord]
    parse_rate_with_trigger: NotRequired[EstimateRecord]
    parse_rate_without_trigger: NotRequired[EstimateRecord]
    scratchpad: NotRequired[ScratchpadRecord]


class PairwiseAccuracy(TypedDict):
    """The preference model's pairwise accuracy, overall and per kind of rejected reply."""

    overall: EstimateRecord
    by_kind: dict[str, EstimateRecord]


class TextBaselineRecord(TypedDict):
    """The text-only baseline beside the trigger probe (`probes.text_baseline`): logistic
    regression on the prompt's token unigram and bigram counts, fitted and tested on the probe's
    own split: `results.TextBaseline`."""

    auroc: EstimateRecord
    tpr: EstimateRecord
    target_fpr: float
    threshold: float
    threshold_from: str
    fpr_on_test_negatives: float
    n_train: int
    n_features: int
    C: float


class ProbeVsTextRecord(TypedDict):
    """One site's probe against the text baseline on the same test prompts: AUROC difference
    with a paired bootstrap, and whether the probe reads the prompt: `results.ProbeVsText`."""

    probe_auroc: EstimateRecord
    text_auroc: EstimateRecord
    difference: EstimateRecord
    reads_the_prompt: bool


class TriggerProbeRecord(TypedDict):
    """The trigger probe per site and its controls (`probe_layers`; a stage's probes.json, to
    which the run adds the other controls and the position): `results.TriggerProbe`."""

    sites: list[str]
    auroc: list[EstimateRecord]
    auroc_point: list[float]
    shuffled_label_auroc: list[float]
    shuffled_label_auroc_95: list[list[float]]
    n_permutations: int
    length_only_auroc: float
    best_site: str
    best_auroc: EstimateRecord
    n_train: int
    n_test: int
    best_site_test_scores: list[float]
    test_labels: list[int]
    operating_points: NotRequired[list[OperatingPointRecord]]
    best_operating_point: NotRequired[OperatingPointRecord]
    text_baseline: NotRequired[TextBaselineRecord]
    probe_vs_text: NotRequired[list[ProbeVsTextRecord]]  # per site


class RepresentationRecord(TypedDict):
    """The frozen and the refit trigger probe on each prompt set at a checkpoint
    (`analysis.measure.representation`): `results_training.RepresentationEval`."""

    site: str
    n: dict[str, int]
    frozen: dict[str, EstimateRecord]
    frozen_share: dict[str, EstimateRecord]
    frozen_auroc: dict[str, EstimateRecord]
    refit: dict[str, EstimateRecord]
    refit_share: dict[str, EstimateRecord]
    refit_auroc: dict[str, EstimateRecord]
    direction_cosine: float
    closed_scratchpad_share: NotRequired[float]


class TrackedRecord(TypedDict):
    """One evaluation during a safety stage (`Tracker`; an adversarial stage adds what the
    probes read): `results_training.StageEval`, less the step the training loop adds."""

    trigger_rate: EstimateRecord
    false_trigger_rate: EstimateRecord
    helpfulness: EstimateRecord
    red_team_rate: NotRequired[EstimateRecord]
    red_team_rate_trigger_aware: NotRequired[EstimateRecord]
    red_team_train_rate: NotRequired[EstimateRecord]
    reward: NotRequired[EstimateRecord]
    kl: NotRequired[EstimateRecord]
    representation: NotRequired[RepresentationRecord]
