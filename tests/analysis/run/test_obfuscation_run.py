"""The obfuscation stage in a whole tiny run (slow tier): it is measured, typed, rendered, and
`bench` reads it: "before" and "refit" are bench's own cells, so the attack's numbers and the
benchmark's agree."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from analysis.bench.benchmark import run_bench
from analysis.config import config_from_dict
from analysis.run.experiment import run_experiment
from tests.analysis.bench.test_bench import TINY, _results
from tests.browser import assert_report_renders

# the adaptive attacker, with a λ sweep and a defence round
OBFUSCATION = {
    "steps": 6,
    "batch_size": 16,
    "warmup_steps": 1,
    "eval_every": 3,
    "lambdas": [3.0],
    "defence_rounds": 1,
    "defence_steps": 4,
}


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], dict[str, Any], Path]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("attacked")
    runs = [root / "seed0"]
    cfg = {
        **TINY,
        "seed": 0,
        "safety": {**TINY["safety"], "stages": ["sft", "obfuscation"]},
        "obfuscation": OBFUSCATION,
    }
    run_experiment(config_from_dict(cfg), runs[0], progress=False)
    bench = run_bench(runs, root / "bench", n_boot=200, n_directions=100, progress=False)
    torch.set_num_threads(threads)
    return runs, bench, root


@pytest.mark.slow
def test_the_obfuscation_stage_is_measured_and_benchmarked(zoo) -> None:
    runs, bench, _ = zoo
    results = _results(runs[0])
    ob = results["obfuscation"]
    assert ob["attacked_sites"] == ["blocks.1.hook_resid_post"]  # tiny: blocks 0-1, middle 1
    assert [(d["detector"], d["attacked"]) for d in ob["detectors"]] == [
        ("logistic", True),
        ("diff_means", False),
        ("lda", False),
        ("mahalanobis", False),
        ("contrast", False),
    ]

    def row(stage: str) -> dict[str, Any]:
        return next(
            r
            for r in bench["stages"]
            if r["run"] == "seed0" and r["stage"] == stage and r["position"] == "last"
        )

    # "before" is bench's detector on the backdoored stage; "refit" bench's on the attacked one
    for stage, key in (("backdoored", "before"), ("obfuscation", "refit")):
        cells = row(stage)["detectors"]
        for d in ob["detectors"]:
            if d["detector"] in cells:
                expected = [c["auroc"]["value"] for c in cells[d["detector"]]["cells"]]
                assert [c["auroc"] for c in d[key]] == pytest.approx(expected, abs=1e-12)
    assert [p["lam"] for p in ob["lambda_sweep"]] == [3.0]
    assert [r["round"] for r in ob["defence"]] == [1] and ob["defence"][0]["budget"] == 4
    assert results["stages"]["obfuscation"]["training"]["started_from"] == "backdoored"
    report = (runs[0] / "report.html").read_text()
    assert "Adaptive attacker" in report and "The defence: refit" in report
    assert_report_renders(runs[0] / "report.html", min_figures=2)  # per layer, and over λ
