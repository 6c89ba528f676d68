"""The benchmark CLI's quick mode runs end to end and writes every JSON field.

This is not a timed test: it checks the structure of the output, not the numbers.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from benchmarks.pretrained_paths import bf16_rows_skipped

ROOT = Path(__file__).resolve().parents[1]
ROW_KEYS = {"name", "config", "toolkit_value", "reference_value", "unit", "ratio", "goal", "met"}
TOP_KEYS = {"device", "threads", "torch", "quick", "matmul_peak_gflops", "rows", "stages"}
TOP_KEYS |= {"matmul_peak_gflops_bf16", "bases"}
PRETRAINED_TRAINING_KEYS = {
    "base",
    "precision",
    "n_params_base",
    "n_params_lora",
    "n_params_lora_reference",
    "step_seconds_toolkit",
    "step_seconds_reference",
    "achieved_gflops",
    "matmul_peak_gflops",
    "matmul_peak_gflops_bf16",
    "fraction_of_fp32_peak",
    "fraction_of_bf16_peak",
    "flops_formula",
}
PRETRAINED_GENERATION_KEYS = {
    "base",
    "precision",
    "greedy_equal_fraction",
    "greedy_equal_token_fraction",
    "seconds_toolkit",
    "seconds_reference",
}


def check_pretrained_rows(rows: list[dict[str, Any]], base: str, bf16_measured: bool) -> None:
    """One training and one generation row per precision, with their fields (not timings); the
    bf16 rows say why where they were not measured."""
    training = [r for r in rows if r["name"] == "pretrained training" and r["base"] == base]
    generation = [r for r in rows if r["name"] == "pretrained generation" and r["base"] == base]
    assert [r["precision"] for r in training] == ["none", "bf16"]
    assert [r["precision"] for r in generation] == ["none", "bf16"]
    if not bf16_measured:
        for row in (training.pop(), generation.pop()):
            assert row["ratio"] is None and row["met"] is None and row["toolkit_value"] is None
            assert row["config"].startswith(f"{base}, bf16 autocast: not measured")
            assert "no native bf16" in row["config"] and "--bf16" in row["config"]
    for row in training + generation:
        assert set(row) >= ROW_KEYS, row
        assert row["toolkit_value"] > 0 and row["reference_value"] > 0 and row["ratio"] > 0
        assert row["goal"] == 1.0 and isinstance(row["met"], bool)
        label = "fp32" if row["precision"] == "none" else "bf16 autocast"
        assert row["config"].startswith(base) and f", {label}" in row["config"]
    for row in training:
        assert set(row) >= PRETRAINED_TRAINING_KEYS, row
        assert row["n_params_lora"] == row["n_params_lora_reference"] > 0  # the same LoRA config
        assert row["matmul_peak_gflops"] > 0 and row["matmul_peak_gflops_bf16"] > 0
        assert row["fraction_of_fp32_peak"] > 0 and row["fraction_of_bf16_peak"] > 0
        assert row["unit"] == "tokens/s" and row["achieved_gflops"] > 0
    for row in generation:
        assert set(row) >= PRETRAINED_GENERATION_KEYS, row
        assert row["unit"] == "new tokens/s"
        assert 0.0 <= row["greedy_equal_fraction"] <= row["greedy_equal_token_fraction"] <= 1.0
        assert "equal tokens" in row["config"]
    # the tiny base has no near-ties: fp32 greedy tokens are transformers' own
    assert generation[0]["greedy_equal_fraction"] == 1.0


@pytest.mark.slow  # about 40 s of real benchmarks (`make test-slow`)
def test_quick_mode_writes_every_field(tmp_path: Path) -> None:
    out = tmp_path / "b.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--threads", "1", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "benchmark" in proc.stdout and "met?" in proc.stdout
    result = json.loads(out.read_text())
    assert set(result) >= TOP_KEYS
    assert result["quick"] is True
    assert result["threads"] == 1
    assert result["matmul_peak_gflops"] > 0
    names = {row["name"] for row in result["rows"]}
    assert names == {"training", "generation", "caching", "probes", "stages"} | {
        "pretrained training",
        "pretrained generation",
    }
    assert result["bases"] == ["tiny"] and result["matmul_peak_gflops_bf16"] > 0
    bf16_measured = bf16_rows_skipped(torch.device("cpu")) is None
    assert (result["bf16_rows"] == "measured") == bf16_measured
    assert result["matmul_size_bf16"] == (2048 if bf16_measured else 512)
    check_pretrained_rows(result["rows"], "tiny-hf", bf16_measured)
    for row in result["rows"]:
        assert set(row) >= ROW_KEYS, row
        if "not measured" not in row["config"]:
            assert row["toolkit_value"] > 0 and row["reference_value"] > 0
            assert row["ratio"] > 0 and row["goal"] > 0 and isinstance(row["met"], bool)
    generation = [row for row in result["rows"] if row["name"] == "generation"]
    assert generation and all(row["outputs_equal"] is True for row in generation)
    probes = [row for row in result["rows"] if row["name"] == "probes"]
    assert len(probes) == 5  # three synthetic shapes, the synthetic grid, then the real grid
    for row in probes[:4]:
        assert row["max_abs_auroc_difference"] < 0.01
        assert row["solver"] in ("lbfgs", "primal", "dual") and row["solver"] in row["config"]
        assert row["threads"] == row["reference_blas_threads"] == 1
        assert row["toolkit_threads"] == 1 and "1 of 1 threads" in row["config"]
    assert probes[3]["config"].startswith("synthetic grid") and len(probes[3]["grid_C"]) == 5
    assert probes[4]["config"] == "real grid: not measured (pass --run-dir of a finished run)"
    stages = next(row for row in result["rows"] if row["name"] == "stages")
    assert stages["config"].startswith("not measured") and result["stages"] == {}


def test_stages_are_read_from_a_run_dir(tmp_path: Path) -> None:
    from benchmarks.suite import read_stages

    (tmp_path / "timing.json").write_text(json.dumps({"prepare": 1.5, "train": 2.5}))
    row, stages = read_stages(str(tmp_path))
    assert stages == {"prepare": 1.5, "train": 2.5}
    assert row["toolkit_value"] == 4.0 and row["met"] is None


def test_synthetic_grid_row_records_both_sides_threads() -> None:
    from benchmarks.probe_bench import bench_synthetic_grid
    from benchmarks.settings import SETTINGS

    s = SETTINGS["smoke"]
    row = bench_synthetic_grid(s, s.probe_grid_shape)
    assert row["name"] == "probes" and row["ratio"] > 0 and isinstance(row["met"], bool)
    assert row["shape"] == list(s.probe_grid_shape) and len(row["grid_C"]) == 5
    assert row["threads"] == row["reference_blas_threads"] == torch.get_num_threads()
    # a 2 x 100 x 16 grid is far too small for a second thread
    assert row["toolkit_threads"] == 1
    assert f"1 of {torch.get_num_threads()} threads" in row["config"]
    assert row["max_abs_auroc_difference"] < 0.01
    assert torch.get_num_threads() == row["threads"]  # the caller's count is back


def test_real_probe_grid_needs_a_run_dir() -> None:
    from benchmarks.probe_bench import bench_probe_grid
    from benchmarks.settings import SETTINGS

    row = bench_probe_grid(SETTINGS["smoke"], None)
    assert row["name"] == "probes" and row["ratio"] is None and row["met"] is None
    assert "pass --run-dir" in row["config"]


def test_pretrained_rows_on_the_tiny_base(tmp_path: Path) -> None:
    """The LoRA training and HF generation rows of the suite, at the smoke sizes (a few seconds)."""
    from benchmarks.pretrained_paths import bench_hf_generation, bench_lora_training
    from benchmarks.settings import SETTINGS

    s, device = SETTINGS["smoke"], torch.device("cpu")
    peaks = {"fp32": 0.0, "bf16": 0.0}
    rows = bench_lora_training("tiny", tmp_path, device, s, peaks)
    rows += bench_hf_generation("tiny", tmp_path, device, s)
    assert peaks["fp32"] > 0 and peaks["bf16"] > 0  # measured beside the training rows
    check_pretrained_rows(rows, "tiny-hf", bf16_measured=True)
    assert all(f"{s.pretrained_gen_prompts} prompts" in r["config"] for r in rows[2:])


def test_bf16_rows_are_measured_where_bf16_is_native_and_skipped_with_the_reason_elsewhere() -> (
    None
):
    cpu = torch.device("cpu")
    assert bf16_rows_skipped(cpu, units=["amx_bf16"]) is None
    assert bf16_rows_skipped(cpu, units=["avx512_bf16"]) is None
    reason = bf16_rows_skipped(cpu, units=[])
    assert reason is not None and reason.startswith("not measured") and "--bf16" in reason
    assert bf16_rows_skipped(torch.device("cuda"), units=[]) is None  # a GPU: measured


def test_without_bf16_the_lora_rows_measure_only_the_fp32_peak(tmp_path: Path) -> None:
    from dataclasses import replace

    from benchmarks.pretrained_paths import bench_lora_training
    from benchmarks.settings import SETTINGS

    s = replace(SETTINGS["smoke"], pretrained_precisions=("none",))
    peaks = {"fp32": 0.0, "bf16": 1.0}  # the suite's one small bf16 peak
    rows = bench_lora_training("tiny", tmp_path, torch.device("cpu"), s, peaks)
    assert [r["precision"] for r in rows] == ["none"]
    assert peaks["fp32"] > 0 and peaks["bf16"] == 1.0  # the bf16 peak was not re-measured
