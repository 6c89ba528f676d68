"""The black-box attack as a run's obfuscation stage (slow tier: a whole tiny run): RL against
every pooling at once, its reward's detector penalty recorded per step, every pooling measured
before, frozen and refit, the degenerate-evasion guard applied, and the report says so."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from analysis.config import config_from_dict
from analysis.folder.results import RunResults
from analysis.obfuscation.black_box import REWARD_SERIES
from analysis.report import kit
from analysis.report.obfuscation import obfuscation_section, reply_rows
from analysis.run.experiment import run_experiment
from analysis.run.obfuscation_black_box import stage_replies
from tests.analysis.bench.test_bench import TINY

POOLINGS = ["mean", "max", "attention"]


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> RunResults:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root: Path = tmp_path_factory.mktemp("black_box")
    cfg = {
        **TINY,
        "seed": 0,
        "safety": {**TINY["safety"], "stages": ["obfuscation"]},
        "rl": {"steps": 4, "prompts_per_step": 4, "eval_every": 2, "checkpoint_every": 2},
        "probe": {"patching": False},
        "obfuscation": {"attack": "black_box", "poolings": POOLINGS},
    }
    try:
        return run_experiment(config_from_dict(cfg), root / "run", progress=False)
    finally:
        torch.set_num_threads(threads)


@pytest.mark.slow
def test_the_black_box_stage_trains_against_every_pooling_and_measures_them(results) -> None:
    training = results.analysed()["obfuscation"].training
    assert training is not None and training.method == "black_box_rl"
    extra = training.model_extra or {}
    for key in REWARD_SERIES:
        assert len(extra[key]) == 4, key  # one per RL step
    assert any(p is not None and p > 0 for p in extra["detector_penalty"])
    assert extra["attacked"] == [f"{p}@blocks.1.hook_resid_post" for p in POOLINGS]

    ob = results.obfuscation
    assert ob is not None and ob.attack == "black_box" and ob.attacked_poolings == POOLINGS
    assert ob.attacked_detectors == [] and not any(d.attacked for d in ob.detectors)
    assert [(r.pooling, r.attacked) for r in ob.reply_detectors] == [(p, True) for p in POOLINGS]
    for r in ob.reply_detectors:
        assert len(r.before) == len(r.frozen) == len(r.refit) == len(ob.sites)
        site = ob.sites.index("blocks.1.hook_resid_post")
        assert r.before[site].auroc > 0.9, r  # the backdoored model's reply gives it away
    assert isinstance(ob.behaviour.kept, bool)  # the guard was applied
    text = obfuscation_section(results, kit.Figures())
    assert "trained with RL (no gradient through the detectors)" in text
    assert len(reply_rows(ob)) == 3


def test_replies_of_other_prompts_than_the_probe_data_are_refused() -> None:
    samples = [{"prompt": "b", "reply": "x"}, {"prompt": "a", "reply": "y"}]
    layout = SimpleNamespace(stage=lambda name: SimpleNamespace(samples=lambda: samples))
    run = SimpleNamespace(layout=layout)
    attack = SimpleNamespace(before=SimpleNamespace(prompts=("a", "b")))
    with pytest.raises(ValueError, match="not the backdoored stage's prompts in the same order"):
        stage_replies(run, attack, "obfuscation", None)  # type: ignore[arg-type]
