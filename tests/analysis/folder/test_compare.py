"""Two runs side by side: a run agrees with itself, and a rate moved outside the reference's
interval or an AUROC moved by more than the tolerance is reported as a disagreement."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from analysis.cli import main
from analysis.folder.compare import compare_runs, markdown_table


def test_a_run_agrees_with_itself_and_a_moved_number_does_not(
    tiny_run: Path, tmp_path: Path
) -> None:
    run = tiny_run / "run"
    same = compare_runs(run, run)
    assert same and all(r.agrees for r in same)
    assert {r.measure for r in same} >= {"trigger_rate", "false_trigger_rate", "helpfulness"}

    moved = tmp_path / "moved"
    shutil.copytree(run, moved)
    results = json.loads((moved / "results.json").read_text())
    rate = results["stages"]["backdoored"]["behaviour"]["trigger_rate"]
    rate["value"] = rate["high"] + 0.01 if rate["high"] < 0.99 else rate["low"] - 0.01
    best = results["stages"]["sft"]["probes"]["best_auroc"]
    best["value"] -= 0.03
    (moved / "results.json").write_text(json.dumps(results))
    rows = {(r.stage, r.measure): r for r in compare_runs(run, moved)}
    assert not rows[("backdoored", "trigger_rate")].agrees
    assert not rows[("sft", "trigger probe AUROC, best site")].agrees
    assert sum(not r.agrees for r in rows.values()) == 2
    assert "NO" in markdown_table(list(rows.values()), "a", "b")
    assert main(["compare", str(run), str(moved)]) == 1
    assert main(["compare", str(run), str(run)]) == 0
