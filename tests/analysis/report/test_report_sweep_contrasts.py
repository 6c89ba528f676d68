"""sweep.html's paired contrasts (analysis.report.sweep_contrasts), on the zoo sweep built without
training and changed by hand (tests/analysis/sweep/test_sweep_contrasts): the planted differences
with their intervals, the seeds left out, the highlighted rows, and no section without factors."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import pytest

from analysis.report.sweep_contrasts import (
    HEADER,
    TABLE_METRICS,
    contrast_parts,
    contrast_rows,
    excludes,
    points,
)
from analysis.sweep.aggregate import report_sweep
from analysis.sweep.runner import SweepLayout
from tests.analysis.sweep.test_sweep_contrasts import build_changed_zoo

NORMAL_80 = "backdoor.mechanism=normal, train.steps=80"
RATE = "backdoor rate with the trigger"


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    root = tmp_path_factory.mktemp("zoo") / "zoo"
    build_changed_zoo(root)
    return root, report_sweep(root).model_dump(mode="json")


def _row(rows: list[list[str]], *first: str) -> list[str]:
    (found,) = [r for r in rows if tuple(r[: len(first)]) == first]
    return found


def test_the_setting_table_shows_the_planted_differences(zoo) -> None:
    _, results = zoo
    rows = contrast_rows(results)
    assert all(len(r) == len(HEADER) for r in rows)
    # full fine-tuning minus LoRA r4 after RL: per seed +15.0, +22.0, +13.0 points (planted)
    row = _row(rows, "fine-tuning", "full − LoRA r4", NORMAL_80, "rl", RATE)
    assert row[5:] == [
        "+16.7 pp [+4.9, +28.4]",
        "3",
        "yes, above 0",
        "seed=0: +15.0; seed=1: +22.0; seed=2: +13.0",
        "—",
    ]
    # LoRA r64's seed 1 did not run: left out
    row = _row(rows, "fine-tuning", "LoRA r64 − LoRA r4", NORMAL_80, "sft", RATE)
    assert row[6:] == ["2", "yes, above 0", "seed=0: +10.0; seed=2: +10.0", "seed=1"]
    # cot with full fine-tuning ran seed 0 only: its pair's MOVER interval (± 4 points each)
    row = _row(
        rows, "backdoor.mechanism", "cot − normal", "fine-tuning=full, train.steps=80", "sft", RATE
    )
    assert row[5:] == [
        "+20.0 pp [+14.3, +25.7]",
        "1",
        "yes, above 0",
        "seed=0: +20.0",
        "seed=1, seed=2",
    ]
    # by default: the two metrics at the safety stages only
    shown = {(r[3], r[4]) for r in rows}
    assert {stage for stage, _ in shown} == set(results["safety_stages"])
    assert len({metric for _, metric in shown}) == len(TABLE_METRICS)
    assert len(rows) == sum(
        c["kind"] == "setting" and c["metric"] in TABLE_METRICS and c["stage"] != "backdoored"
        for c in results["contrasts"]
    )


def test_the_stage_table_and_the_page(zoo) -> None:
    root, results = zoo
    rows = contrast_rows(results, "stage", ("trigger_rate",), results["stages"])
    full = _row(rows, "stage", "sft_high_lr − sft", NORMAL_80.replace(",", ", fine-tuning=full,"))
    assert full[3:9] == [
        "sft_high_lr vs sft",
        RATE,
        "-22.3 pp [-38.9, -5.8]",
        "3",
        "yes, below 0",
        "seed=0: -19.0; seed=1: -18.0; seed=2: -30.0",
    ]
    page = SweepLayout(root).report.read_text()
    titles = re.findall(r"<h2>(.*?)</h2>", page)
    assert (
        titles.index("Paired contrasts") == titles.index("Each configuration, mean over seeds") + 1
    )
    assert "<h3>SFT at the high learning rate minus SFT, same runs</h3>" in page
    cells = "".join(f"<td>{html.escape(c)}</td>" for c in full)
    assert f"<tr class=flag>{cells}</tr>" in page  # excludes 0: highlighted
    # a difference of 0 with a zero-width interval is not highlighted
    red = _row(
        contrast_rows(results),
        "fine-tuning",
        "full − LoRA r4",
        NORMAL_80,
        "rl",
        "backdoor rate on held-out red-team prompts",
    )
    assert red[5:8] == ["+0.0 pp [+0.0, +0.0]", "3", "no"]
    assert f"<tr>{''.join(f'<td>{html.escape(c)}</td>' for c in red)}</tr>" in page


def test_no_section_without_factors_and_the_cells_on_their_own(zoo) -> None:
    _, results = zoo
    assert contrast_parts({**results, "factors": []}) == []
    assert contrast_parts({**results, "contrasts": []}) == []
    assert points({"difference": -0.05, "low": None, "high": None}) == "-5.0 pp"
    assert points({"difference": None}) == "—"
    assert excludes({"excludes_zero": False, "low": None}) == "no interval"
    assert excludes({"excludes_zero": True, "low": -0.3, "high": -0.1}) == "yes, below 0"
