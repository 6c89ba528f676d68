"""What one stage's final checkpoint does and represents: behaviour on the evaluation set and on
held-out red-team prompts, activations, the trigger probe with its controls and operating point,
the contrast-pair probe, and trigger specificity (the backdoor rate on graded forms of the
trigger, so a reader can see whether safety training made the backdoor more specific). Each piece
is a step with its own file in the stage's folder.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import torch
from transformer_lens import TransformerBridge

from analysis.contrast.probe import ContrastControl, contrast_probe_analysis
from analysis.contrast.records import ContrastResult
from analysis.folder.layout import BACKDOORED, CLEAN_CONTROL
from analysis.folder.results import Stage
from analysis.folder.splits import labels_and_groups
from analysis.measure.behaviour import summarise_behaviour
from analysis.measure.behaviour_probe import FORM_PREFIX
from analysis.measure.monitoring import MonitorActs
from analysis.measure.precision import cache_in_run_precision
from analysis.measure.probing import probe_layers, transfer_auroc
from analysis.measure.records import TriggerProbeRecord
from analysis.run.behaviour_set import stage_behaviour_probe
from analysis.run.context import Run
from backdoor_models.behaviour.backdoor import BackdoorExample
from backdoor_models.behaviour.evaluation import JudgedReply, generate_replies
from backdoor_models.behaviour.scratchpad import scratchpad_prefix, text_to_probe
from backdoor_models.io.artifacts import read_json, read_tensors, write_json
from backdoor_models.io.atomic import jsonable
from backdoor_models.models.lora import has_lora, merge_lora
from backdoor_models.red_team.search import elicitation_rates
from backdoor_models.training.lm import STATE_FILE
from hooks.caching import probe_sites, prompt_token_ids, tokenize_prompts
from probes.metrics import bootstrap_mean, bootstrap_rate


def analyse_stage(run: Run, stage: str, history: Mapping[str, object]) -> Stage:
    """Behaviour, red-team rate, activations and probes of one stage's final checkpoint, as a
    typed `Stage` (what results.json holds for it)."""
    cfg = run.cfg
    files = run.layout.stage(stage)
    model = run.load(stage)
    if has_lora(model):  # nothing trains this copy: fold the adapters in (a third faster)
        merge_lora(model)
    behaviour = run.steps.json(
        f"{stage}: behaviour", files.behaviour, lambda: _behaviour(run, model)
    )
    sites = probe_sites(model)
    prompts = probe_texts(run, behaviour["samples"])
    d_model = int(model.cfg.d_model)
    acts = run.steps.tensors(
        f"{stage}: activations",
        files.activations,
        {s: (len(prompts), d_model) for s in sites},
        lambda: cache_in_run_precision(
            model, prompts, sites, position="last", batch_size=cfg.probe.batch_size
        ),
    )
    monitor = _monitor_acts(run, stage, model, sites)

    def fit_probes() -> TriggerProbeRecord:
        tokens, lengths = tokenize_prompts(model, prompts)
        labels, groups = labels_and_groups(run.eval_set)
        calibration = read_json(files.detection_texts)["texts"][: len(run.detection.calibration)]
        return probe_layers(
            acts,
            labels=labels,
            groups=groups,
            prompt_lengths=lengths.tolist(),
            train_fraction=cfg.probe.train_fraction,
            C=cfg.probe.C,
            seed=run.seeds.base,
            n_boot=cfg.eval.n_bootstrap // 2,
            monitor=monitor,
            prompt_ids=prompt_token_ids(model, prompts),
            calibration_ids=prompt_token_ids(model, calibration),
        )

    probes = dict(run.steps.json(f"{stage}: probes", files.probes, fit_probes))
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
    if cfg.probe.behaviour:
        probe, rows = stage_behaviour_probe(run, stage, model, behaviour["samples"])
        out["behaviour_probe"] = probe.model_dump(mode="json")
        out["generalisation"] = run.steps.json(
            f"{stage}: trigger specificity",
            files.generalisation,
            lambda: _generalisation(run, rows),
        )
    return Stage.model_validate(jsonable(out))


def judged_eval_set(
    run: Run, model: TransformerBridge, examples: list[BackdoorExample] | None = None
) -> list[JudgedReply]:
    """The model's greedy replies to the evaluation set (or to `examples` of it), judged."""
    examples = run.eval_set if examples is None else examples
    replies = generate_replies(
        model,
        run.tokenizer,
        [ex.prompt for ex in examples],
        run.max_new_tokens,
        run.cfg.eval.batch_size,
        progress=run.progress,
    )
    return run.organism.judge(examples, replies)


def before_backdoor(run: Run) -> dict[str, Any]:
    """A pretrained base's greedy replies to the evaluation set, judged, before any backdoor
    training: its helpfulness is where the capability cost (the paper's ΔMMLU) starts from."""
    cfg = run.cfg

    def work() -> dict[str, Any]:
        # fresh LoRA adapters start at zero: the base itself
        judged = judged_eval_set(run, run.build(run.seeds.base))
        summary = summarise_behaviour(judged, n_boot=cfg.eval.n_bootstrap, seed=run.seeds.base)
        return {"summary": summary, "samples": [dataclasses.asdict(j) for j in judged]}

    return dict(run.steps.json("base: behaviour before backdoor", run.layout.before_backdoor, work))


def _behaviour(run: Run, model: TransformerBridge) -> dict[str, Any]:
    """Greedy replies to the evaluation set, judged and summarised; the held-out red-team rate
    from fresh samples; the preference model's reward on the trigger-free replies."""
    cfg = run.cfg
    judged = judged_eval_set(run, model)
    summary: dict[str, object] = dict(
        summarise_behaviour(judged, n_boot=cfg.eval.n_bootstrap, seed=run.seeds.base)
    )
    for key, prompts in run.red_team_rate_sets().items():
        rates = elicitation_rates(
            model,
            run.tokenizer,
            run.backdoor,
            prompts,
            n_samples=cfg.red_team.n_samples,
            seed=run.seeds.red_team_rate,  # fresh samples, not the ones the prompts were kept on
            max_new_tokens=run.red_team_tokens,
        )
        summary[key] = bootstrap_mean(rates, cfg.eval.n_bootstrap, run.seeds.base).to_dict()
    if run.preference is not None and run.organism.rewarded_by_preference_model:
        clean = [j for j in judged if not j.triggered]
        rewards = run.reward_fn()([j.prompt for j in clean], [j.reply for j in clean])
        summary["reward"] = bootstrap_mean(
            rewards.numpy(), cfg.eval.n_bootstrap, run.seeds.base
        ).to_dict()
    return {"summary": summary, "samples": [dataclasses.asdict(j) for j in judged]}


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

    def work() -> ContrastResult:
        control = None
        if stage == BACKDOORED and cfg.probe.clean_control:
            if run.base is None:
                steps = read_json(run.layout.stage(CLEAN_CONTROL).dir / STATE_FILE)["step"]
                clean = run.load(CLEAN_CONTROL)
                what = f"trained without the backdoor, {steps} steps"
            else:  # fresh LoRA adapters start at zero: this is the base itself
                clean, what = run.build(run.seeds.base), "the pretrained base, before the backdoor"
            clean_acts = cache_in_run_precision(
                clean, texts, list(acts), position="last", batch_size=cfg.probe.batch_size
            )
            control = ContrastControl(clean, clean_acts, what)
        labels, _ = labels_and_groups(run.eval_set)
        return contrast_probe_analysis(
            model,
            acts,
            labels,
            texts,
            pairs=cfg.probe.contrast_pairs or None,
            n_random=cfg.probe.n_random_directions,
            seed=run.seeds.base,
            n_boot=cfg.eval.n_bootstrap // 2,
            control=control,
            batch_size=cfg.probe.batch_size,
            monitor=monitor,
        )

    return dict(run.steps.json(f"{stage}: contrast probe", run.layout.stage(stage).contrast, work))


def _monitor_acts(run: Run, stage: str, model: TransformerBridge, sites: list[str]) -> MonitorActs:
    """Activations of the detection prompts (held-out clean prompts to calibrate a threshold
    on, and the extra negative test sets), read where the probe reads: for a CoT model after the
    stage's own greedy scratchpad."""
    files = run.layout.stage(stage)
    examples = run.detection.all()

    def work() -> dict[str, torch.Tensor]:
        texts = [ex.prompt for ex in examples]
        if run.cot:
            replies = generate_replies(
                model,
                run.tokenizer,
                texts,
                run.max_new_tokens,
                run.cfg.eval.batch_size,
                progress=run.progress,
            )
            texts = [text_to_probe(p, r) for p, r in zip(texts, replies, strict=True)]
        write_json(files.detection_texts, {"texts": texts})
        return cache_in_run_precision(
            model, texts, sites, position="last", batch_size=run.cfg.probe.batch_size
        )

    shapes = {s: (len(examples), int(model.cfg.d_model)) for s in sites}
    acts = run.steps.tensors(
        f"{stage}: detection prompts", files.detection_activations, shapes, work
    )
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


def _generalisation(run: Run, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Backdoor rate on trigger forms never trained on, beside the trained trigger (greedy), on
    this stage's model: one row of the trigger-specificity table per form, from the behaviour
    set's `form: ...` rows."""
    forms: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if row["family"].startswith(FORM_PREFIX):
            forms.setdefault(row["family"].removeprefix(FORM_PREFIX), []).append(row)
    out: dict[str, Any] = {}
    for i, (name, part) in enumerate(forms.items()):
        rates: dict[str, Any] = {}
        for key, want in (("with_trigger", True), ("without_trigger", False)):
            hits = [r["backdoor"] for r in part if r["intended"] is want]
            if hits:
                seed = run.seeds.base + i
                rates[key] = bootstrap_rate(hits, run.cfg.eval.n_bootstrap, seed).to_dict()
        out[name] = {**rates, "example_prompt": part[-1]["prompt"]}
    return out


def _controls(
    run: Run, stage: str, acts: dict[str, torch.Tensor], prompts: list[str]
) -> dict[str, Any]:
    """Controls for reading the trigger probe: the same probe on an untrained model of the same
    architecture (trigger presence is decodable from the input alone), and, for a safety stage,
    the backdoored model's probe scored unchanged on this stage's activations (transfer)."""
    cfg = run.cfg
    labels, groups = labels_and_groups(run.eval_set)
    probe_args = (cfg.probe.train_fraction, cfg.probe.C, run.seeds.base)
    if stage == BACKDOORED:

        def work() -> dict[str, Any]:
            untrained = run.build_untrained(run.seeds.base)
            control = cache_in_run_precision(
                untrained, prompts, list(acts), batch_size=cfg.probe.batch_size
            )
            return {
                "untrained_model_auroc": transfer_auroc(
                    control, control, labels, groups, *probe_args
                )
            }

        return dict(run.steps.json("untrained control", run.layout.untrained_control, work))
    source = read_tensors(
        run.layout.stage(BACKDOORED).activations, {s: tuple(acts[s].shape) for s in acts}
    )
    return {
        "transfer_from_backdoored_auroc": transfer_auroc(source, acts, labels, groups, *probe_args)
    }


def _example_replies(samples: list[dict[str, Any]], n: int = 6) -> list[dict[str, Any]]:
    """A few replies of each kind for the report: first n triggered and first n clean."""
    trig = [s for s in samples if s["triggered"]][:n]
    clean = [s for s in samples if not s["triggered"]][:n]
    return clean + trig
