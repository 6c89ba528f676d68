"""The benchmark CLI's quick mode runs end to end and writes every JSON field.

This is not a timed test: it checks the structure of the output, not the numbers.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ROW_KEYS = {"name", "config", "toolkit_value", "reference_value", "unit", "ratio", "goal", "met"}
TOP_KEYS = {"device", "threads", "torch", "quick", "matmul_peak_gflops", "rows", "stages"}


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
    assert names == {"training", "generation", "caching", "probes", "stages"}
    for row in result["rows"]:
        assert set(row) >= ROW_KEYS, row
        if not row["config"].startswith(("not measured", "real grid: not measured")):
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
    import torch

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
