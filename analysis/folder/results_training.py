"""A stage's training history in results.json: the loss per step and the evaluations during
training (point rates while the backdoor is trained or attacked; rates with 95% intervals, the
reward, the KL and what the trigger probe reads during a safety stage)."""

from __future__ import annotations

from analysis.folder.results_base import Estimate, _Open, _Strict


class PointEval(_Strict):
    """An evaluation during backdoor training or the obfuscation attack: point rates on a few
    held-out prompts (null where no prompt of that kind was monitored)."""

    step: int
    trigger_rate: float | None = None
    false_trigger_rate: float | None = None
    helpfulness: float | None = None


class RepresentationEval(_Strict):
    """The trigger probe on each prompt set (red_team, trigger, clean, ...) at a checkpoint: the
    backdoored model's probe (frozen) and one refitted there, as mean P(trigger), the share above
    0.5, and the AUROC against the clean prompts."""

    site: str
    n: dict[str, int]
    frozen: dict[str, Estimate]
    frozen_share: dict[str, Estimate]
    frozen_auroc: dict[str, Estimate]
    refit: dict[str, Estimate]
    refit_share: dict[str, Estimate]
    refit_auroc: dict[str, Estimate]
    direction_cosine: float
    closed_scratchpad_share: float | None = None  # CoT: read after the model's own scratchpad


class StageEval(_Strict):
    """An evaluation during a safety stage, each rate with its 95% interval: the behaviour, the
    red teams' prompts, the preference model's reward, the KL to the start, and (adversarial
    stages) what the trigger probe reads."""

    step: int
    trigger_rate: Estimate | None = None
    false_trigger_rate: Estimate | None = None
    helpfulness: Estimate | None = None
    red_team_rate: Estimate | None = None
    red_team_rate_trigger_aware: Estimate | None = None
    red_team_train_rate: Estimate | None = None
    reward: Estimate | None = None
    kl: Estimate | None = None
    representation: RepresentationEval | None = None


class Training(_Open):
    """The loss per step, the evaluations, and (safety stages) how the stage trained and from
    which checkpoint; other per-step series (reward, kl, ...) are kept as written."""

    loss: list[float]
    evals: list[PointEval | StageEval] = []
    method: str | None = None
    started_from: str | None = None
