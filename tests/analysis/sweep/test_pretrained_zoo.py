"""The zoo sweep file (sweeps/pretrained.yaml) on the tiny Hugging Face base: two points, LoRA
and full fine-tuning, every stage of the zoo's runs (slow tier)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from analysis.cli import main
from analysis.config import smoke_overrides
from analysis.sweep.aggregate import read_sweep_results
from analysis.sweep.runner import read_status
from analysis.sweep.spec import load_sweep
from tests.tiny_hf import tiny_hf_folder

ROOT = Path(__file__).resolve().parents[3]
ZOO_STAGES = ["backdoored", "sft", "sft_high_lr", "rl", "adversarial", "adversarial_trigger_aware"]


@pytest.mark.slow
def test_a_two_point_zoo_on_a_tiny_base_with_lora_and_full_finetuning(tmp_path: Path) -> None:
    spec = load_sweep(ROOT / "sweeps" / "pretrained.yaml")
    base = tiny_hf_folder(tmp_path / "base", tied=True)  # tied embeddings, as SmolLM2's
    # the zoo's own settings, on the tiny base at smoke sizes; LoRA rank 16 (the contrasts'
    # reference) and full fine-tuning, as the zoo's normal runs have them
    zoo_set = [s for s in spec.set if not s.startswith("model.base=")]
    points = [p for p in spec.points if p["backdoor.mechanism"] == "normal"]
    lora = next(p for p in points if p.get("model.lora_rank") == 16)
    full = next(p for p in points if p["model.finetune"] == "full")
    small = {"train.steps": 16}
    spec = spec.model_copy(
        update={
            "set": [f"model.base={base}", *zoo_set, *smoke_overrides(base=True)],
            "grid": {"seed": [0]},
            "points": [{**lora, **small}, {**full, **small}],
        }
    )
    sweep_file = tmp_path / "zoo.yaml"
    sweep_file.write_text(yaml.safe_dump(spec.model_dump(), sort_keys=False))
    argv = ["sweep", str(sweep_file), "--sweep-dir", str(tmp_path / "zoo"), "--executor", "local"]
    assert main([*argv, "--quiet", "--threads", "1"]) == 0  # the runs, the bench, the report
    status = read_status(tmp_path / "zoo")
    assert [s["state"] for s in status.values()] == ["done", "done"]
    done = list(status)
    finetunes = []
    for name in done:
        run = tmp_path / "zoo" / "runs" / name
        results = json.loads((run / "results.json").read_text())
        assert list(results["stages"]) == ZOO_STAGES
        finetunes.append(results["model"]["preset"].rsplit("(", 1)[1].rstrip(")"))
        high = results["stages"]["sft_high_lr"]
        if "skipped" not in high:
            assert high["training"]["lr"] == pytest.approx(10 * results["config"]["sft"]["lr"])
        # a finished stage keeps its weights, not its optimizer state
        assert (run / "backdoored" / "model.safetensors").is_file()
        assert not (run / "backdoored" / "optimizer.safetensors").exists()
    assert finetunes == ["lora", "full"]
    aggregate = read_sweep_results(tmp_path / "zoo")
    assert len(aggregate.points) == 2 and not aggregate.not_finished
    assert [f.values for f in aggregate.factors] == [["LoRA r16", "full"], ["16"]]
    (full_vs_lora,) = [
        c
        for c in aggregate.contrasts
        if c.comparison == "full − LoRA r16" and c.stage == "sft" and c.metric == "trigger_rate"
    ]
    assert full_vs_lora.n_seeds == 1
    assert (tmp_path / "zoo" / "sweep.html").is_file()
    # the bench's transfer across fine-tuning: each run's detectors scored on the other's
    bench = json.loads((tmp_path / "zoo" / "bench" / "bench.json").read_text())
    pairs = {(r["source_run"], r["target_run"]) for r in bench["transfer"]}
    assert pairs >= {(done[0], done[1]), (done[1], done[0])}
    assert bench["transfer_across"]["rows"]
