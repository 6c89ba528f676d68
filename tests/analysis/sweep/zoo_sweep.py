"""A zoo sweep built without training, for the tests of factors (the aggregate and the report).

The points are those of the pretrained zoo as first sized (sweeps/pretrained.yaml): LoRA rank
4, 16 and 64 and full fine-tuning for the normal mechanism, rank 16 and full at 4x the training length, CoT and
distilled at rank 16 and full; each crossed with seed 0, 1, 2. Every run folder holds the
results.json of a real run (`tests/analysis/data/small_run_results.json`) with a `sft_high_lr`
stage (a copy of sft, recording 10x sft.lr) and what a pretrained base's run has besides (the
base's behaviour before the backdoor, the capability cost, the contrast probe's control, the
trigger probe's text baseline), and planted numbers distinct per point, seed and stage.

The distilled points have no sft_high_lr stage; distilled with full fine-tuning has no seed 2
(never run).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import yaml

from analysis.folder.layout import RunLayout
from analysis.sweep.runner import SweepLayout
from analysis.sweep.spec import SweepSpec, expand
from backdoor_models.io.atomic import write_json

REAL = json.loads((Path(__file__).parents[1] / "data" / "small_run_results.json").read_text())
POINTS: list[dict[str, Any]] = [
    {"backdoor.mechanism": "normal", "model.finetune": "lora", "model.lora_rank": 4, "train.steps": 80},
    {"backdoor.mechanism": "normal", "model.finetune": "lora", "model.lora_rank": 16, "train.steps": 80},
    {"backdoor.mechanism": "normal", "model.finetune": "lora", "model.lora_rank": 64, "train.steps": 80},
    {"backdoor.mechanism": "normal", "model.finetune": "full", "train.steps": 80},
    {"backdoor.mechanism": "normal", "model.finetune": "lora", "model.lora_rank": 16, "train.steps": 320},
    {"backdoor.mechanism": "normal", "model.finetune": "full", "train.steps": 320},
    {"backdoor.mechanism": "cot", "model.finetune": "lora", "model.lora_rank": 16, "train.steps": 80},
    {"backdoor.mechanism": "cot", "model.finetune": "full", "train.steps": 80},
    {"backdoor.mechanism": "distilled", "model.finetune": "lora", "model.lora_rank": 16, "train.steps": 80},
    {"backdoor.mechanism": "distilled", "model.finetune": "full", "train.steps": 80},
]  # fmt: skip
SPEC = SweepSpec(set=["model.base=smollm2-135m"], grid={"seed": [0, 1, 2]}, points=POINTS)
STAGES = ["backdoored", "sft", "sft_high_lr", "rl", "adversarial", "adversarial_trigger_aware"]
SFT_LR = {"lora": 2e-4, "full": 5e-5}  # sft.lr of the point's config
NOT_RUN = "seed=2,backdoor.mechanism=distilled,model.finetune=full,train.steps=80"
BASE_HELPFULNESS = 0.5
CONTROL_AUROC = 0.6


def point_index(settings: dict[str, Any]) -> int:
    return POINTS.index({k: v for k, v in settings.items() if k != "seed"})


def planted(index: int, seed: int, stage: str, metric: str = "trigger_rate") -> float:
    """A planted estimate: distinct per point, seed, stage and metric."""
    shift = {"trigger_rate": 0.0, "helpfulness": 0.2, "contrast": 0.25, "probe_minus_text": -0.6}
    return round(
        0.05 + 0.05 * index + 0.03 * seed**2 + 0.01 * STAGES.index(stage) + shift[metric], 6
    )


def estimate(value: float, half: float = 0.04) -> dict[str, Any]:
    return {
        "value": value,
        "low": value - half,
        "high": value + half,
        "n": 300,
        "method": "bootstrap",
    }


def _text_baseline(probe_minus_text: float, sites: list[str], best: str) -> dict[str, Any]:
    """The text baseline, and each site's probe against it: the best site's difference is the
    planted one, every other site's a different number."""
    versus = [
        {
            "probe_auroc": estimate(0.9),
            "text_auroc": estimate(0.7),
            "difference": estimate(probe_minus_text if site == best else -0.9, 0.02),
            "reads_the_prompt": False,
        }
        for site in sites
    ]
    baseline = {
        "auroc": estimate(0.7),
        "tpr": estimate(0.3),
        "target_fpr": 0.05,
        "threshold": 0.5,
        "threshold_from": "calibration",
        "fpr_on_test_negatives": 0.05,
        "n_train": 100,
        "n_features": 50,
        "C": 1.0,
    }
    return {"text_baseline": baseline, "probe_vs_text": versus}


def results_of(settings: dict[str, Any]) -> dict[str, Any]:
    """The results.json of one point: the real run's, with planted numbers."""
    index, seed = point_index(settings), settings["seed"]
    results = copy.deepcopy(REAL)
    finetune = settings["model.finetune"]
    results["config"]["sft"]["lr"] = SFT_LR[finetune]
    results["model"].update(preset=f"base:smollm2-135m ({finetune})", n_params=134_515_008)
    stages = results["stages"]
    sft = stages["sft"]
    high = copy.deepcopy(sft)
    high["training"]["lr"] = 10 * SFT_LR[finetune]
    order = [s for s in STAGES if s in stages or s == "sft_high_lr"]
    if settings["backdoor.mechanism"] == "distilled":
        order.remove("sft_high_lr")
    results["stages"] = {s: (high if s == "sft_high_lr" else stages[s]) for s in order}
    for name in order:
        stage = results["stages"][name] = copy.deepcopy(results["stages"][name])
        behaviour = stage["behaviour"]
        behaviour["trigger_rate"] = estimate(planted(index, seed, name))
        behaviour["helpfulness"] = estimate(planted(index, seed, name, "helpfulness"))
        control = copy.deepcopy(stage["contrast"]["contrast"])
        control["best"] = estimate(CONTROL_AUROC)
        stage["contrast"]["control"] = control
        stage["contrast"]["contrast"]["best"] = estimate(planted(index, seed, name, "contrast"))
        probes = stage["probes"]
        minus = planted(index, seed, name, "probe_minus_text")
        probes.update(_text_baseline(minus, probes["sites"], probes["best_site"]))
    before = copy.deepcopy(results["stages"]["backdoored"]["behaviour"])
    before["helpfulness"] = estimate(BASE_HELPFULNESS)
    results["before_backdoor"] = before
    cost = planted(index, seed, "backdoored", "helpfulness") - BASE_HELPFULNESS
    results["capability_cost"] = estimate(cost, 0.01)
    return results


def build_zoo(root: Path, spec: SweepSpec = SPEC) -> None:
    """The sweep folder: the sweep file, every point's run (NOT_RUN excepted) and status.json."""
    layout = SweepLayout(root)
    root.mkdir(parents=True)
    layout.spec.write_text(yaml.safe_dump(spec.model_dump(), sort_keys=False))
    status = {}
    for point in expand(spec):
        if point.name == NOT_RUN:
            status[point.name] = {"state": "pending", "settings": point.settings}
            continue
        run = RunLayout(layout.run(point.name))
        run.root.mkdir(parents=True)
        write_json(run.results, results_of(point.settings))
        write_json(run.timing, {"train": 1.0, "report": 0.1})
        status[point.name] = {"state": "done", "settings": point.settings, "seconds": 1.0}
    write_json(layout.status, status)
