"""The zoo sweep file (sweeps/pretrained.yaml) on the tiny Hugging Face base: two points, LoRA
and full fine-tuning, every stage of the zoo's runs (slow tier)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from analysis.config import smoke_overrides
from analysis.sweep.aggregate import report_sweep
from analysis.sweep.runner import read_status, run_sweep
from analysis.sweep.spec import load_sweep
from tests.tiny_hf import tiny_hf_folder

ROOT = Path(__file__).resolve().parents[3]
ZOO_STAGES = ["backdoored", "sft", "sft_high_lr", "rl", "adversarial", "adversarial_trigger_aware"]


@pytest.mark.slow
def test_a_two_point_zoo_on_a_tiny_base_with_lora_and_full_finetuning(tmp_path: Path) -> None:
    spec = load_sweep(ROOT / "sweeps" / "pretrained.yaml")
    base = tiny_hf_folder(tmp_path / "base", tied=True)  # tied embeddings, as SmolLM2's
    # the zoo's own settings, on the tiny base at smoke sizes; its first point and full FT
    zoo_set = [s for s in spec.set if not s.startswith("model.base=")]
    points = [p for p in spec.points if p["backdoor.mechanism"] == "normal"]
    lora, full = points[0], next(p for p in points if p["model.finetune"] == "full")
    small = {"train.steps": 16}
    spec = spec.model_copy(
        update={
            "set": [f"model.base={base}", *zoo_set, *smoke_overrides(base=True)],
            "grid": {"seed": [0]},
            "points": [{**lora, **small}, {**full, **small}],
        }
    )
    outcome = run_sweep(spec, tmp_path / "zoo", executor="local")
    assert not outcome.failed and len(outcome.done) == 2
    status = read_status(tmp_path / "zoo")
    assert [s["state"] for s in status.values()] == ["done", "done"]
    finetunes = []
    for name in outcome.done:
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
    aggregate = report_sweep(tmp_path / "zoo")
    assert len(aggregate.points) == 2 and not aggregate.not_finished
    assert (tmp_path / "zoo" / "sweep.html").is_file()
