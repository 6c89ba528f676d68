"""The records of bench.json as typed dicts: what `run_bench` (`analysis.bench`) writes and
returns, and what the report (`analysis.report.bench`) reads back; here, below both, as the
schema of results.json is. Typed dicts, not dataclasses, because they are the JSON layout itself.
"""

# (no `from __future__ import annotations`: a TypedDict reads NotRequired at run time only from
# evaluated annotations; tests/analysis/folder/test_records.py checks its optional keys)
from typing import Literal, NotRequired, TypedDict

# probes.Estimate.to_dict(): value, low, high (the 95% interval), n and method.
EstimateJson = dict[str, float | int]


class Calibration(TypedDict):
    """The clean prompts a threshold was calibrated on (`analysis.bench.zoo.HELD_OUT_CLEAN` or
    `TRAINING_CLEAN`) and how many."""

    prompts: str
    n: int


class WorstCaseFpr(TypedDict):
    """The test set with the highest FPR at the threshold, every set's FPR, and the interval of
    the worst case."""

    name: str
    fpr: float
    threshold: float
    per_set: dict[str, float]
    interval: EstimateJson


class CellRecord(TypedDict):
    """One detector at one site (`analysis.bench.cells.CellMetrics`)."""

    auroc: EstimateJson
    average_precision: EstimateJson
    threshold: float
    calibration: Calibration
    tpr_at_fpr: EstimateJson
    worst_case_fpr: WorstCaseFpr


class RocCurve(TypedDict):
    fpr: list[float]
    tpr: list[float]


class DetectorRecord(TypedDict):
    """One detector on one stage: every site's cell, and the scores and ROC of its best site."""

    auroc_point: list[float]
    cells: list[CellRecord]
    best_site: str
    best_index: int
    best_test_scores: list[float]
    best_roc: RocCurve


class RandomDirections(TypedDict):
    """Per site: the mean, 95th percentile and max held-out AUROC of random directions."""

    mean: list[float]
    p95: list[float]
    max: list[float]


class StageRow(TypedDict):
    """One run x stage x token position: its split, behaviour and every detector's cells."""

    run: str
    stage: str
    position: str
    sites: list[str]
    d_model: int
    n_train: int
    n_test: int
    families: list[str]
    test_labels: list[int]
    test_families: list[str]
    behaviour: dict[str, EstimateJson]  # results.json's rates, BEHAVIOUR_KEYS present there
    detectors: dict[str, DetectorRecord]
    random_directions: RandomDirections
    # the last token's logistic AUROC per site against results.json's (largest difference)
    results_json_max_abs_diff: NotRequired[float]


class LeaderboardCell(CellRecord):
    """One (run, stage, position, detector, site) cell of the leaderboard."""

    run: str
    stage: str
    position: str
    detector: str
    site: str


class ShuffleNull(TypedDict):
    """Held-out AUROC of one detector at one site refitted on permuted training labels."""

    detector: str
    site: str
    mean: float
    range_95: list[float]
    n_permutations: int


class ShuffleControl(ShuffleNull):
    """A stage's best cell (its AUROC here) and its label-shuffle null."""

    run: str
    stage: str
    position: str
    auroc: float


class Transfer(TypedDict):
    """A detector fitted on one stage (or run), scored unchanged on another."""

    source_run: str
    source_stage: str
    target_run: str
    target_stage: str
    position: str
    detector: str
    sites: list[str]
    auroc_point: list[float]
    auroc: list[EstimateJson]


class SkippedTransfer(TypedDict):
    """A stage of two runs that transfer across settings would pair but did not score, and why
    (e.g. other evaluation prompts)."""

    source_run: str
    target_run: str
    stage: str
    reason: str


class TransferAcrossPair(TypedDict):
    """One source run -> target run of a row of the transfer-across table (same stage, same
    seed, same prompts): the source's detector on the target at the source's own best site and
    at the target's best site, beside the target's own detector at its best site."""

    seed: int
    source_run: str
    target_run: str
    source_site: str
    transfer: EstimateJson  # bootstrap over the target's held-out questions
    best_target_site: str
    transfer_best_target_site: EstimateJson
    target_site: str
    target_own: EstimateJson


class TransferAcrossRow(TypedDict):
    """One detector and stage, source settings -> target settings: AUROCs mean over the seeds'
    run pairs (Student t interval; with one pair, that pair's bootstrap interval), and the gap
    to the target's own detector (own minus transfer, paired by seed)."""

    detector: str
    stage: str
    position: str
    source: str  # the source runs' values of the keys, e.g. "model.finetune=lora, ..."
    target: str
    context: str  # the other settings these runs differ in from the zoo's others ("": none)
    transfer: EstimateJson
    transfer_best_target_site: EstimateJson
    target_own: EstimateJson
    gap: EstimateJson
    pairs: list[TransferAcrossPair]


class TransferAcross(TypedDict):
    """Transfer across named settings: detectors scored unchanged on the same stage of runs
    that differ from their own only in `keys`, as a table by setting (`analysis.bench.across`)."""

    keys: list[str]
    runs: dict[str, str]  # run -> its values of the keys
    rows: list[TransferAcrossRow]
    skipped: list[SkippedTransfer]


class BestAuroc(TypedDict):
    auroc: EstimateJson
    site: str
    position: str


class BehaviourVsRepresentation(TypedDict):
    """One run and stage: its behaviour rates beside each detector's best held-out AUROC."""

    run: str
    stage: str
    behaviour: dict[str, EstimateJson]
    best_auroc: dict[str, BestAuroc]
    random_p95_max: float


# The text-only baseline's row of a condition table: its "detector" and "site" names.
TEXT_BASELINE = "text baseline"
PROMPT_TOKENS = "prompt tokens"


class ConditionRow(TypedDict):
    """One detector at one site (or the text-only baseline, site "prompt tokens") in a condition
    table: the TPR at a threshold calibrated for the target FPR on clean prompts, the FPR of the
    table's negatives at that threshold (the worst of its sets, and each set's), and the AUROC
    of positives against all negatives; `rank` is "1", or "=1" for rows tied with a rank's
    first row (TPR intervals overlapping)."""

    rank: str
    detector: str
    site: str
    tpr_at_fpr: EstimateJson
    auroc: EstimateJson
    threshold: float
    negatives_fpr: EstimateJson
    negatives_fpr_per_set: dict[str, float]


# The conditions where detectors can differ (`analysis.bench.conditions`).
Condition = Literal[
    "refit on the stage",
    "frozen transfer",
    "obfuscated stage, frozen",
    "out-of-distribution negatives",
    "held-out trigger form",
]
# How the text-only baseline stands against a table's best detector row (TPR intervals).
BaselineVerdict = Literal["detectors beat it", "tied", "it beats every detector"]


class ConditionTable(TypedDict):
    """One leaderboard of a condition: every detector at every site and the text-only
    baseline, ranked by TPR at the target FPR, with which detectors' intervals do not overlap
    (at their best sites, and at one site)."""

    condition: Condition
    run: str
    stage: str  # the stage scored
    fitted_on: str  # the stage (and its split) the detectors were fitted on
    positives: str
    n_positives: int
    negatives: str
    n_negatives: int
    calibration: (
        Calibration  # the clean prompts every threshold is set on (for OOD: and the negatives)
    )
    rows: list[ConditionRow]
    separated_best: list[list[str]]  # [above, below]: detector kinds, each at its best site
    separated_at_site: list[list[str]]  # [site, above, below]: two detector kinds at one site
    baseline: BaselineVerdict
    backdoor_rate: NotRequired[float]  # share of the positives whose reply showed the backdoor


class SkippedCondition(TypedDict):
    """A condition a run or stage could not be scored under, and why (e.g. no behaviour set)."""

    condition: Condition
    run: str
    stage: str
    reason: str


class ConditionsRecord(TypedDict):
    """bench.json's leaderboards of the conditions where detectors can differ."""

    fpr: float
    tables: list[ConditionTable]
    skipped: list[SkippedCondition]


class BenchSettings(TypedDict):
    runs: list[str]
    positions: list[str]
    detectors: list[str]
    fpr: float
    n_boot: int
    n_directions: int
    n_permutations: int
    # what transfer scored (bench.json files from before these options lack them): the settings
    # cross-run transfer is restricted to (empty: every run of the same width), whether stages of
    # one run were paired, and the bootstrap resamples of a transfer cell
    transfer_across: NotRequired[list[str]]
    stage_transfer: NotRequired[bool]
    transfer_n_boot: NotRequired[int]


class RunRecord(TypedDict):
    """One benchmarked run's settings."""

    name: str
    path: str
    seed: int
    preset: str
    train_fraction: float
    C: float
    stages: list[str]


class BenchRecord(TypedDict):
    """bench.json."""

    settings: BenchSettings
    runs: list[RunRecord]
    stages: list[StageRow]
    leaderboard: list[LeaderboardCell]
    behaviour_vs_representation: list[BehaviourVsRepresentation]
    shuffle_controls: list[ShuffleControl]
    transfer: list[Transfer]
    # the leaderboards by condition (bench.json files from before them lack it)
    conditions: NotRequired[ConditionsRecord]
    # transfer across named settings (only with `transfer_across`)
    transfer_across: NotRequired[TransferAcross]
