"""The run's training steps before the safety stages: the backdoored model, the clean control,
the red team and the preference model; and the post-scratchpad SFT's data. Each resumes from
its own checkpoint. The safety stages themselves are objects in `analysis.run.safety_stages`.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from transformer_lens import TransformerBridge

from analysis.config import RunConfig
from analysis.errors import InputError
from analysis.folder.layout import ADVERSARIAL, BACKDOORED, CLEAN_CONTROL, TRIGGER_AWARE
from analysis.folder.results import RedTeamSummary
from analysis.measure.behaviour import quick_rates
from analysis.run.context import RedTeamArm, Run, tokenized
from backdoor_models.behaviour.backdoor import BackdoorExample
from backdoor_models.behaviour.evaluation import generate_replies
from backdoor_models.behaviour.scratchpad import scratchpad_prefix
from backdoor_models.io.artifacts import read_json, write_json
from backdoor_models.models.checkpoint import is_complete
from backdoor_models.red_team.candidates import load_hh_rlhf_prompts
from backdoor_models.red_team.search import RedTeamResult, red_team, split_red_team
from backdoor_models.text.data import TokenizedSet
from backdoor_models.training.lm import STATE_FILE, TrainConfig, train
from backdoor_models.training.preference import PreferenceModel, train_preference_model

log = logging.getLogger(__name__)


def stage_finished(directory: Path, steps: int) -> bool:
    """Whether `directory` holds a complete checkpoint of at least `steps` training steps."""
    state = directory / STATE_FILE
    return state.is_file() and read_json(state)["step"] >= steps and is_complete(directory)


def train_backdoor(run: Run, data: TokenizedSet | None = None) -> Mapping[str, object]:
    """Train the backdoored model on `data` (default: the run's training set)."""
    cfg = run.cfg
    stage_dir = run.layout.stage(BACKDOORED).dir
    done = stage_finished(stage_dir, cfg.train.steps)
    model = run.build(run.seeds.base)
    monitor = run.eval_set[: 2 * cfg.eval.n_during_training]

    def evaluate(step: int) -> dict[str, float]:
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

    def work() -> Mapping[str, object]:
        return train(
            model,
            run.spec,
            data if data is not None else tokenized(run, run.train_set),
            cfg.train,
            stage_dir,
            evaluate,
            run.progress,
        ).to_dict()

    return run.steps.run("train", done, work)


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


def run_red_team(run: Run, stage: str) -> tuple[RedTeamResult, RedTeamArm]:
    """Search for eliciting prompts on the backdoored model for one adversarial stage; split
    them by family into training and held-out prompts (the stage's arm of the red team)."""
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
    arm = RedTeamArm(sources, train, held_out)
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
    return result, arm


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


def red_team_summary(arm: RedTeamArm, result: RedTeamResult) -> RedTeamSummary:
    """What results.json says of a red team and the arm split from it."""
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


def after_own_scratchpad(
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
