"""The safety stages as objects: each says where it starts, trains itself from that checkpoint
(resumable) and returns what it records (its training history, with the method it used and the
stage it started from), or why it was skipped.

- :class:`SupervisedSafety`: SFT on trigger-free helpful examples (`sft`);
- :class:`HighLearningRateSafety`: the same at a higher learning rate, beside it (`sft_high_lr`);
- :class:`PostScratchpadSafety`: the same, after the model's own scratchpad (`sft_post`);
- :class:`RLSafety`: RL against the preference model (`rl`);
- :class:`AdversarialSafety`: training on the red team's eliciting prompts mixed into the
  safety data (`adversarial`, and the trigger-aware ablation beside it);
- :class:`ObfuscationAttack`: the adaptive attacker against frozen detectors (`obfuscation`).

Example:
    >>> stage = safety_stage_named("adversarial_trigger_aware")
    >>> stage.start(chain=False, previous="sft", starts={"adversarial": "backdoored"})
    'backdoored'
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from typing import Protocol

from transformer_lens import TransformerBridge

from analysis.folder.layout import ADVERSARIAL, BACKDOORED, OBFUSCATION, TRIGGER_AWARE
from analysis.folder.results import SkippedStage
from analysis.measure.tracking import Tracker
from analysis.run.context import Run, tokenized
from analysis.run.obfuscation import obfuscation_stage
from analysis.run.representation import representation_tracker
from analysis.run.train_stages import after_own_scratchpad, stage_finished
from backdoor_models.behaviour.backdoor import BackdoorExample
from backdoor_models.behaviour.safety import mix_in_red_team
from backdoor_models.training.lm import TrainConfig, train
from backdoor_models.training.rl import rl_finetune

__all__ = [
    "AdversarialSafety",
    "HighLearningRateSafety",
    "ObfuscationAttack",
    "PostScratchpadSafety",
    "RLSafety",
    "SafetyStage",
    "StageRecord",
    "TrainingRecord",
    "SupervisedSafety",
    "safety_stage_named",
]

log = logging.getLogger(__name__)

# A stage's training history as recorded: the loss per step, the tracking evaluations, "method",
# "started_from" and the method's own series (RL's reward and KL, the attack's two losses);
# `analysis.folder.results_training.Training` types it when results.json is written.
TrainingRecord = Mapping[str, object]
# what a stage records: its training history, or why it did not train
StageRecord = TrainingRecord | SkippedStage
# a tracking evaluation at a step: metric -> estimate, or a nested record (what the probes read)
Evaluate = Callable[[int], dict[str, object]]


class SafetyStage(Protocol):
    """One safety stage of a run."""

    @property
    def name(self) -> str:
        """The stage's name: its folder and its key in results.json."""
        ...

    @property
    def chained(self) -> bool:
        """Whether a chained run's next stage starts from this one (a stage beside another,
        like the trigger-aware ablation, does not)."""
        ...

    def start(self, chain: bool, previous: str, starts: Mapping[str, str]) -> str:
        """The stage whose checkpoint this one starts from (`previous`: the last chained stage;
        `starts`: where the stages before this one started)."""
        ...

    def train(self, run: Run, start: str) -> StageRecord:
        """Train from `start`'s checkpoint, or say why the stage cannot run."""
        ...


@dataclasses.dataclass(frozen=True)
class SupervisedSafety:
    """SFT on trigger-free helpful examples (the organism's safety set)."""

    name: str = "sft"
    chained: bool = True

    def start(self, chain: bool, previous: str, starts: Mapping[str, str]) -> str:
        return _chained_start(chain, previous)

    def data(self, run: Run, model: TransformerBridge) -> list[BackdoorExample]:
        """The examples this stage trains on."""
        return _safety_set(run)

    def train(self, run: Run, start: str) -> StageRecord:
        model, _, evaluate = _tracked_models(run, self.name, start)
        data = self.data(run, model)
        return _supervised(run, self.name, start, model, data, run.cfg.sft, evaluate)


@dataclasses.dataclass(frozen=True)
class HighLearningRateSafety(SupervisedSafety):
    """The same SFT at `safety.high_lr_factor` times its learning rate, beside `sft` (from
    where `sft` started): the check that a high learning rate does not remove a backdoor the
    usual one leaves (the sweep's learning-rate axis at the cost of one stage)."""

    name: str = "sft_high_lr"
    chained: bool = False

    def start(self, chain: bool, previous: str, starts: Mapping[str, str]) -> str:
        return starts.get("sft", _chained_start(chain, previous))

    def train(self, run: Run, start: str) -> StageRecord:
        model, _, evaluate = _tracked_models(run, self.name, start)
        sft = run.cfg.sft
        train_cfg = dataclasses.replace(sft, lr=sft.lr * run.cfg.safety.high_lr_factor)
        record = _supervised(run, self.name, start, model, _safety_set(run), train_cfg, evaluate)
        return {**record, "lr": train_cfg.lr}


@dataclasses.dataclass(frozen=True)
class PostScratchpadSafety(SupervisedSafety):
    """SFT on the answer after the model's own scratchpad: training reaches the answer, not the
    reasoning (CoT models only)."""

    name: str = "sft_post"

    def data(self, run: Run, model: TransformerBridge) -> list[BackdoorExample]:
        return after_own_scratchpad(run, model, _safety_set(run))


@dataclasses.dataclass(frozen=True)
class RLSafety:
    """RL (RLOO with a KL penalty) against the preference model, on the safety set's prompts."""

    name: str = "rl"
    chained: bool = True

    def start(self, chain: bool, previous: str, starts: Mapping[str, str]) -> str:
        return _chained_start(chain, previous)

    def train(self, run: Run, start: str) -> StageRecord:
        model, reference, evaluate = _tracked_models(run, self.name, start)
        prompts = [ex.prompt for ex in _safety_set(run)]
        return _reinforced(run, self.name, start, model, reference, prompts, evaluate)


@dataclasses.dataclass(frozen=True)
class AdversarialSafety:
    """Adversarial (red-team) training: the red team's eliciting training prompts mixed into the
    safety data (`red_team.fraction` of it), by SFT towards the helpful answer or by RL
    (`red_team.method`). The trigger-aware ablation (TRIGGER_AWARE) starts where the
    adversarial stage started, beside it."""

    name: str = ADVERSARIAL

    @property
    def chained(self) -> bool:
        return self.name == ADVERSARIAL

    def start(self, chain: bool, previous: str, starts: Mapping[str, str]) -> str:
        if self.name == TRIGGER_AWARE:
            return starts[ADVERSARIAL]
        return _chained_start(chain, previous)

    def train(self, run: Run, start: str) -> StageRecord:
        cfg = run.cfg.red_team
        red = run.red_teams[self.name].train
        if cfg.method == "sft":
            red = [p for p in red if p.base is not None]  # SFT needs a checkable helpful answer
        if not red:
            log.warning(
                "adversarial training skipped: the red team found no usable eliciting prompts"
            )
            return SkippedStage(skipped="the red team found no eliciting prompts to train on")
        model, reference, evaluate = _tracked_models(run, self.name, start)
        safety = _safety_set(run)
        if cfg.method == "sft":
            pairs = [(p.prompt, p.base) for p in red if p.base is not None]
            data = mix_in_red_team(safety, pairs, cfg.fraction, seed=run.seeds.red_team_mix)
            adversarial = run.cfg.adversarial
            return _supervised(run, self.name, start, model, data, adversarial, evaluate)
        prompts = [ex.prompt for ex in safety]
        n_red = round(len(prompts) * cfg.fraction / (1 - cfg.fraction))
        prompts += [red[i % len(red)].prompt for i in range(n_red)]
        return _reinforced(run, self.name, start, model, reference, prompts, evaluate)


@dataclasses.dataclass(frozen=True)
class ObfuscationAttack:
    """The adaptive attacker: training against frozen detectors, from the backdoored model
    (`analysis.run.obfuscation`)."""

    name: str = OBFUSCATION
    chained: bool = False

    def start(self, chain: bool, previous: str, starts: Mapping[str, str]) -> str:
        return BACKDOORED

    def train(self, run: Run, start: str) -> StageRecord:
        assert start == BACKDOORED, "the attacker starts from the backdoored model"
        return obfuscation_stage(run)


_STAGES: dict[str, SafetyStage] = {
    s.name: s
    for s in (
        SupervisedSafety(),
        HighLearningRateSafety(),
        PostScratchpadSafety(),
        RLSafety(),
        AdversarialSafety(ADVERSARIAL),
        AdversarialSafety(TRIGGER_AWARE),
        ObfuscationAttack(),
    )
}


def safety_stage_named(name: str) -> SafetyStage:
    """The safety stage called `name` (a stage of the config's `safety.stages`, or the
    trigger-aware ablation)."""
    if name not in _STAGES:
        raise ValueError(f"no safety stage {name!r}; the stages are {', '.join(_STAGES)}")
    return _STAGES[name]


def _chained_start(chain: bool, previous: str) -> str:
    """`safety.chain`: from the last chained stage; else from the backdoored model."""
    return previous if chain else BACKDOORED


def _tracked_models(
    run: Run, name: str, start: str
) -> tuple[TransformerBridge, TransformerBridge, Evaluate]:
    """The model to train and the unchanged reference (for the KL), both `start`'s checkpoint,
    and what the stage measures at each tracking step."""
    model, reference = run.load(start), run.load(start)
    return model, reference, _tracking(run, name, start, model, reference)


def _safety_set(run: Run) -> list[BackdoorExample]:
    cfg = run.cfg.safety
    return run.organism.safety_set(
        cfg.n_safety, seed=run.seeds.safety_set, exclude_questions=run.held_out
    )


def _tracking(
    run: Run, name: str, start: str, model: TransformerBridge, reference: TransformerBridge
) -> Evaluate:
    """What a safety stage measures at each tracking step: behaviour, red-team rates, reward
    and KL to the start; in an adversarial stage also what the probes read."""
    cfg = run.cfg
    tracker = Tracker(
        run.organism.judge,
        run.backdoor,
        run.tokenizer,
        run.eval_set[: 2 * cfg.safety.n_track],
        red_team_sets=_tracked_red_team_sets(run, name),
        reward_fn=run.reward_fn() if run.organism.rewarded_by_preference_model else None,
        reference=reference,
        max_new_tokens=run.max_new_tokens,
        red_team_max_new_tokens=run.red_team_tokens,
        batch_size=cfg.eval.batch_size,
        red_team_samples=cfg.safety.red_team_track_samples,
        n_boot=cfg.eval.n_bootstrap // 2,
        seed=run.seeds.base,
    )
    # adversarial stages: what the probes read on red-team, trigger and clean prompts too
    representation = (
        representation_tracker(run, [p.prompt for p in run.red_teams[name].held_out])
        if name in run.red_teams
        else None
    )

    def evaluate(step: int) -> dict[str, object]:
        # at step 0 the model is `start`'s checkpoint, which every stage from it evaluates
        out = tracker(model, run.start_evaluations.setdefault(start, {}) if step == 0 else None)
        if representation is not None:
            out["representation"] = representation(model)
        return dict(out)

    return evaluate


def _supervised(
    run: Run,
    name: str,
    start: str,
    model: TransformerBridge,
    data: list[BackdoorExample],
    train_cfg: TrainConfig,
    evaluate: Evaluate,
) -> TrainingRecord:
    stage_dir = run.layout.stage(name).dir

    def work() -> TrainingRecord:
        history = train(
            model,
            run.spec,
            tokenized(run, data),
            train_cfg,
            stage_dir,
            evaluate,
            run.progress,
            evaluate_at_start=True,
            desc=name,
        )
        return {**history.to_dict(), "method": "sft"}

    result = run.steps.run(name, stage_finished(stage_dir, train_cfg.steps), work)
    return {**result, "method": "sft", "started_from": start}


def _reinforced(
    run: Run,
    name: str,
    start: str,
    model: TransformerBridge,
    reference: TransformerBridge,
    prompts: list[str],
    evaluate: Evaluate,
) -> TrainingRecord:
    stage_dir = run.layout.stage(name).dir
    rl_cfg = run.cfg.rl
    if rl_cfg.max_new_tokens is None:
        rl_cfg = dataclasses.replace(rl_cfg, max_new_tokens=run.max_new_tokens)

    def work() -> TrainingRecord:
        return rl_finetune(
            model,
            run.spec,
            reference,
            run.reward_fn(),
            run.tokenizer,
            prompts,
            rl_cfg,
            stage_dir,
            evaluate,
            run.progress,
            desc=name,
        )

    result = run.steps.run(name, stage_finished(stage_dir, rl_cfg.steps), work)
    return {**result, "method": "rl", "started_from": start}


def _tracked_red_team_sets(run: Run, stage: str) -> dict[str, list[str]]:
    """Red-team prompts sampled at each tracking step, at most `safety.n_track` per set (spread
    evenly over the set: rounds and sources alike): the adversarial stage's held-out prompts in
    every stage; in an adversarial stage also the other red team's held-out prompts and the
    stage's own training prompts. (Each stage's final checkpoint is measured on every held-out
    prompt, with more samples.)"""
    sets = run.red_team_rate_sets()
    if stage not in run.red_teams:
        sets = {k: v for k, v in sets.items() if k == "red_team_rate"}
    else:
        sets["red_team_train_rate"] = [p.prompt for p in run.red_teams[stage].train]
    return {k: _spread(v, run.cfg.safety.n_track) for k, v in sets.items() if v}


def _spread(items: list[str], n: int) -> list[str]:
    """At most `n` items, evenly spaced over the list (all of them if there are no more)."""
    if len(items) <= n:
        return items
    return [items[i * len(items) // n] for i in range(n)]
