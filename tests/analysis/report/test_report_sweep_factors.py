"""sweep.html beyond size, on the zoo sweep built without training (tests/analysis/sweep/zoo_sweep):
persistence against each factor, the SFT learning-rate figure, the table of each configuration,
and their PNGs."""

from __future__ import annotations

import re
import struct
from pathlib import Path
from typing import Any

import pytest

from analysis.report.sweep import FIGURES
from analysis.report.sweep_factors import (
    GROUP_COLUMNS,
    WIDTH,
    factor_figure,
    group_rows,
    learning_rate_figure,
)
from analysis.sweep.aggregate import report_sweep
from analysis.sweep.runner import SweepLayout
from tests.analysis.sweep.zoo_sweep import SFT_LR, build_zoo
from tests.browser import chromium

FINE_TUNING = ["LoRA r4", "LoRA r16", "LoRA r64", "full"]


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    root = tmp_path_factory.mktemp("zoo") / "zoo"
    build_zoo(root)
    return root, report_sweep(root).model_dump(mode="json")


def test_the_finetuning_figure_has_its_values_in_order_and_a_line_per_mechanism(zoo) -> None:
    _, results = zoo
    fig = factor_figure(results, "fine-tuning", "trigger_rate")
    assert fig is not None
    assert list(fig.layout.xaxis.ticktext) == FINE_TUNING
    assert [a.text for a in fig.layout.annotations][: len(results["stages"])] == results["stages"]
    lines = [t for t in fig.data if t.mode == "lines+markers"]
    assert [t.name for t in lines if t.showlegend] == [
        "backdoor.mechanism=normal, train.steps=80",
        "backdoor.mechanism=normal, train.steps=320",
        "backdoor.mechanism=cot, train.steps=80",
        "backdoor.mechanism=distilled, train.steps=80",
    ]
    # the first line (normal, 80 steps) in the rl panel: one mean per value, at x = its index
    curve = next(
        c
        for c in results["factor_curves"]
        if (c["factor"], c["line"], c["metric"], c["stage"])
        == ("fine-tuning", "backdoor.mechanism=normal, train.steps=80", "trigger_rate", "rl")
    )
    rl = lines[results["stages"].index("rl")]  # the first line's traces come first, by stage
    assert rl.name == "backdoor.mechanism=normal, train.steps=80"
    assert list(rl.y) == pytest.approx([p["value"] for p in curve["points"]])
    assert [round(x) for x in rl.x] == [0, 1, 2, 3] and list(rl.x) == sorted(rl.x)
    # cot has rank 16 and full only: its points sit at those two values
    cot = [t for t in lines if t.name == "backdoor.mechanism=cot, train.steps=80"][0]
    assert [round(x) for x in cot.x] == [1, 3]
    change = factor_figure(results, "fine-tuning", "trigger_rate_change", with_backdoored=False)
    assert change is not None and "backdoored" not in [a.text for a in change.layout.annotations]


def test_the_learning_rate_figure_puts_sft_and_sft_high_lr_at_their_rates(zoo) -> None:
    _, results = zoo
    fig = learning_rate_figure(results)
    assert fig is not None and fig.layout.xaxis.type == "log"
    lines = [t for t in fig.data if t.mode == "lines+markers"]
    full = [
        t for t in lines if t.name == "backdoor.mechanism=normal, fine-tuning=full, train.steps=80"
    ]
    assert len(full) == 2  # the rate and its change
    low, high = full[0].x
    assert low == pytest.approx(SFT_LR["full"], rel=0.2)
    assert high == pytest.approx(10 * SFT_LR["full"], rel=0.2)
    # the ticks are the learning rates the runs used, written as numbers
    rates = sorted({lr for lr in SFT_LR.values()} | {10 * lr for lr in SFT_LR.values()})
    assert list(fig.layout.xaxis.tickvals) == pytest.approx(rates)
    assert list(fig.layout.xaxis.ticktext) == [f"{lr:g}" for lr in rates]
    assert learning_rate_figure({**results, "learning_rate": []}) is None


def test_the_group_table_has_every_configuration_and_stage(zoo) -> None:
    _, results = zoo
    rows = group_rows(results)
    assert len(rows) == len(results["groups"]) and all(
        len(r) == 3 + len(GROUP_COLUMNS) for r in rows
    )
    row = next(
        r
        for r in rows
        if r[:2] == ["backdoor.mechanism=normal, fine-tuning=full, train.steps=80", "rl"]
    )
    group = next(g for g in results["groups"] if (g["group"], g["stage"]) == (row[0], "rl"))
    mean = group["metrics"]["trigger_rate"]
    assert row[2] == "3"
    assert (
        row[3] == f"{100 * mean['value']:.1f}% [{100 * mean['low']:.1f}, {100 * mean['high']:.1f}]"
    )
    minus = group["metrics"]["trigger_probe_minus_text"]
    assert row[-1] == f"{minus['value']:.3f} [{minus['low']:.3f}, {minus['high']:.3f}]"


def test_the_page_draws_the_factors_instead_of_the_size_curves(zoo) -> None:
    root, _ = zoo
    page = SweepLayout(root).report.read_text()
    titles = re.findall(r"<h2>(.*?)</h2>", page)
    assert titles[:4] == [
        "Persistence against backdoor.mechanism",
        "Persistence against fine-tuning",
        "Persistence against train.steps",
        "Persistence against the SFT learning rate",
    ]
    assert "Each configuration, mean over seeds" in titles
    assert not {title for _, title, _ in FIGURES} & set(titles)  # no size: no curves over it
    assert "Means over seeds" not in titles
    assert page.count('class="plotly-graph-div"') == 3 * 2 + 1
    assert "<td>backdoor.mechanism=cot, fine-tuning=LoRA r16, train.steps=80</td>" in page
    assert "No setting changes the model's size" in page


def test_the_factor_figures_come_out_as_pngs_at_their_own_width(zoo, tmp_path) -> None:
    chromium()  # kaleido's PNG export drives a local Chromium: skip, saying why, without one
    root, _ = zoo
    report_sweep(root, png_dir=tmp_path / "png")
    pngs = sorted((tmp_path / "png").glob("*.png"))
    assert [p.name[3:30] for p in pngs] == [
        "against-backdoor-mechanism-",
        "against-backdoor-mechanism-",
        "against-fine-tuning-backdoo",
        "against-fine-tuning-change-",
        "against-train-steps-backdoo",
        "against-train-steps-change-",
        "against-the-sft-learning-ra",
    ]
    width = struct.unpack(">I", pngs[0].read_bytes()[16:20])[0]
    assert width == 2 * WIDTH  # exported at scale 2
