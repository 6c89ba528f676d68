"""The patching-and-steering page (`analysis.report.causal`), from the golden tiny run's results:
the summary says each stage's numbers, the heatmaps draw the grids the run normalised (the raw
logit differences where it did not), and the steering curves draw each rate per scale."""

from __future__ import annotations

import html
import json
from pathlib import Path

from analysis.folder.results_causal import Causal
from analysis.report.causal import (
    patching_figures,
    render_causal_page,
    steering_figure,
    summary_lines,
    write_causal_page,
)

GOLDEN = Path(__file__).parents[2] / "golden" / "tiny_results.json"
ALL = Causal.model_validate(json.loads(GOLDEN.read_text())["results"]["causal"])
ONE = ALL.model_copy(update={"run_dir": "runs/tiny", "stages": {"rl": ALL.stages["rl"]}})
RL = ALL.stages["rl"]


def test_the_summary_gives_each_stages_patching_then_steering() -> None:
    lines = summary_lines(ALL)
    assert lines.count("[backdoored] patching") == 1
    assert [line for line in lines if line.endswith("] patching")] == [
        f"[{stage}] patching" for stage in ALL.stages
    ]
    i = lines.index("[rl] patching")
    assert lines[i + 1 : i + 1 + len(RL.patching.summary)] == [
        f"  {s}" for s in RL.patching.summary
    ]
    steer = RL.steering
    assert steer is not None
    header = lines[i + 1 + len(RL.patching.summary)]
    assert header == (
        f"[rl] steering (direction fitted on {steer.direction_from}'s activations of "
        f"{steer.fit_questions} questions, steered on {steer.steer_questions} others)"
    )


def test_the_heatmaps_draw_the_normalised_grids_or_the_raw_ones() -> None:
    patching = RL.patching
    assert patching.metric.normalised
    figs = patching_figures(patching, "rl")
    assert len(figs) == 5  # position, two region sweeps, attention/MLP, heads
    by_position = figs[0].data[0]
    assert [
        list(row) for row in by_position.z
    ] == patching.positions.triggered_into_clean.normalised
    assert list(by_position.y) == ["embed", "L0", "L1"]
    assert by_position.x[4] == "4: 'GO'"
    assert list(figs[4].data[0].x) == [f"head {h}" for h in range(4)]
    assert "normalised: 0 clean, 1 triggered" in figs[0].layout.title.text

    raw = patching.model_copy(
        update={"metric": patching.metric.model_copy(update={"normalised": False})}
    )
    heads = patching_figures(raw, "rl")[4]
    assert [list(r) for r in heads.data[0].z] == raw.heads.triggered_into_clean.logit_diff
    assert "raw logit difference" in heads.layout.title.text


def test_the_steering_curves_draw_each_rate_per_scale() -> None:
    steer = RL.steering
    assert steer is not None
    fig = steering_figure(steer, "rl steering")
    layers = list(steer.layers)
    assert len(fig.data) == len(layers) * 2 * 2 * 2  # directions x conditions x two rates
    probe = next(iter(steer.layers[layers[0]].directions))
    first = fig.data[0]  # first layer, first direction, subtract with the trigger
    rows = steer.layers[layers[0]].directions[probe].remove_with_trigger
    assert first.name == f"{probe}: backdoor rate"
    assert list(first.x) == [r.scale for r in rows]
    assert list(first.y) == [r.backdoor_rate.value for r in rows]
    assert sum(t.showlegend for t in fig.data) == 4  # one legend entry per curve


def test_the_page_holds_the_summary_and_every_figure(tmp_path: Path) -> None:
    text = render_causal_page(ONE)
    assert "<h1>Patching and steering: runs/tiny</h1>" in text and "<h2>rl</h2>" in text
    lines = summary_lines(ONE)
    for line in lines:
        assert html.escape(line) in text
    assert text.count('class="plotly-graph-div"') == 6  # five heatmaps and the steering curves
    written = write_causal_page(ONE, tmp_path / "patching.html").read_text()
    assert written.startswith("<!doctype html>")  # the same page (figure ids are random)
    assert written.count('class="plotly-graph-div"') == 6 and html.escape(lines[1]) in written
