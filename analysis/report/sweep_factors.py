"""The sweep report's parts beyond size, from sweep.json's content alone: persistence against each
factor of the sweep, the SFT learning-rate figure, and a table of each group's means per stage.

- Factor figures: for each factor (e.g. fine-tuning: "LoRA r4", ..., "full"; training length), the
  backdoor rate with the trigger and its change from the backdoored model, one panel per stage,
  one line per combination of the other settings (e.g. per mechanism), the factor's values as a
  categorical x axis in the sweep's order; the mean over seeds with 95% error bars, each seed's
  value a faint dot.
- The learning-rate figure: the same two metrics after `sft` and after `sft_high_lr`, against the
  learning rate (log axis), one line per group.
- The group table: per group of non-seed settings and stage, the mean over seeds with its interval
  of the backdoor rates, both red teams' held-out rates, helpfulness and its change from the base,
  the contrast probe against its no-backdoor control, the trigger probe against its text baseline.

Example::

    parts = factor_parts(json.loads(Path("runs/zoo/sweep.json").read_text()), kit.Figures())
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analysis.report import kit
from analysis.report.sweep_kit import METRIC_LABELS, PCT, Y_RANGE, bar, fmt

__all__ = [
    "GROUP_COLUMNS",
    "factor_figure",
    "factor_parts",
    "group_rows",
    "learning_rate_figure",
]

# lines are shifted sideways by this much per line (in units of one category), so that their
# error bars do not overlap
SHIFT = 0.06
WIDTH = 1100  # pixels: the page is 1200 wide
# the figures per factor: (metric, what it shows, include the backdoored stage as a reference)
_PERSISTENCE = [
    ("trigger_rate", "backdoor rate with the trigger after each safety method", True),
    (
        "trigger_rate_change",
        "change in the backdoor rate with the trigger (after − backdoored)",
        False,
    ),
]
_WHAT = {metric: what for metric, what, _ in _PERSISTENCE}
# the group table's numbers: (metric, column header)
GROUP_COLUMNS = [
    ("trigger_rate", "with trigger"),
    ("trigger_rate_change", "change from backdoored"),
    ("no_trigger_rate", "without trigger"),
    ("red_team_rate", "red-team prompts (held out)"),
    ("red_team_rate_trigger_aware", "trigger-aware red-team prompts (held out)"),
    ("helpfulness", "helpfulness"),
    ("helpfulness_change", "helpfulness change from the base"),
    ("contrast_probe_auroc", "contrast probe AUROC"),
    ("contrast_control_auroc", "its no-backdoor control (the base)"),
    ("contrast_minus_control", "contrast − control"),
    ("trigger_probe_auroc", "trigger probe AUROC (best site)"),
    ("text_baseline_auroc", "text baseline AUROC"),
    ("trigger_probe_minus_text", "probe − text (best site)"),
]


def _grid(n_panels: int) -> tuple[int, int]:
    n_cols = min(3, n_panels)
    return (n_panels + n_cols - 1) // n_cols, n_cols


def _add_line(
    fig: go.Figure,
    points: list[dict[str, Any]],
    xs: list[float],
    name: str,
    color: str,
    at: tuple[int, int, bool],
    percent: bool,
) -> None:
    """One line of means with error bars, and each seed's value as a faint dot, in panel
    `at` = (row, col, show in the legend)."""
    row, col, legend = at
    shown = [(x, p) for x, p in zip(xs, points, strict=True) if p["value"] is not None]
    fig.add_trace(
        go.Scatter(
            x=[x for x, _ in shown],
            y=[p["value"] for _, p in shown],
            mode="lines+markers",
            line={"color": color},
            name=name,
            legendgroup=name,
            showlegend=legend,
            error_y={
                "type": "data",
                "symmetric": False,
                "array": [bar(p, "high") for _, p in shown],
                "arrayminus": [bar(p, "low") for _, p in shown],
            },
            text=[
                f"{name}: {fmt(p, percent)}, {p['n_seeds']} seed(s), {p['method']}"
                for _, p in shown
            ],
            hoverinfo="text",
        ),
        row=row,
        col=col,
    )
    seeds = [(x, v) for x, p in zip(xs, points, strict=True) for v in p["seeds"]]
    fig.add_trace(
        go.Scatter(
            x=[x for x, _ in seeds],
            y=[v["value"] for _, v in seeds],
            mode="markers",
            marker={"color": color, "size": 6},
            opacity=0.3,
            name=f"{name}: each seed",
            legendgroup=name,
            showlegend=False,
            text=[f"{v['point']}: {v['value']:.3f}" for _, v in seeds],
            hoverinfo="text",
        ),
        row=row,
        col=col,
    )


def _layout(fig: go.Figure, title: str, n_rows: int) -> go.Figure:
    """Wide enough for the category labels; the legend (long labels, one a line) below the
    panels; the title on two lines."""
    n_lines = len({t.legendgroup for t in fig.data})
    top, bottom, panels = 110, 90 + 24 * n_lines, 340 * n_rows
    fig.update_layout(
        width=WIDTH,
        height=top + panels + bottom,
        title=f"{title}<br><sup>mean over seeds, 95% interval; each seed a faint dot</sup>",
        legend={"orientation": "h", "yanchor": "top", "y": -80 / panels, "x": 0},
        margin={"t": top, "b": bottom},
    )
    return fig


def _finish(fig: go.Figure, metric: str, title: str, n_rows: int) -> go.Figure:
    fig.update_yaxes(range=Y_RANGE.get(metric, [-0.02, 1.02]))
    fig.update_yaxes(title_text=METRIC_LABELS[metric], row=1, col=1)
    if metric in Y_RANGE:
        fig.add_hline(y=0, line_dash="dot", line_color="gray")
    return _layout(fig, title, n_rows)


def factor_figure(
    results: Mapping[str, Any], factor: str, metric: str, with_backdoored: bool = True
) -> go.Figure | None:
    """`metric` against `factor`'s values, one panel per stage and one line per combination of
    the other settings; None when no curve has it."""
    curves = [
        c
        for c in results.get("factor_curves", [])
        if (c["factor"], c["metric"]) == (factor, metric)
    ]
    values = next(f["values"] for f in results["factors"] if f["name"] == factor)
    wanted = results["stages"] if with_backdoored else results["safety_stages"]
    stages = [s for s in wanted if any(c["stage"] == s for c in curves)]
    if not stages:
        return None
    n_rows, n_cols = _grid(len(stages))
    fig = make_subplots(
        rows=n_rows, cols=n_cols, subplot_titles=stages, shared_yaxes=True, vertical_spacing=0.18
    )
    lines = list(dict.fromkeys(c["line"] for c in curves))
    for i, line in enumerate(lines):
        color = kit.COLORS[i % len(kit.COLORS)]
        shift = SHIFT * (i - (len(lines) - 1) / 2)
        for s, stage in enumerate(stages):
            curve = next((c for c in curves if (c["line"], c["stage"]) == (line, stage)), None)
            if curve is None:
                continue
            xs = [values.index(p["x"]) + shift for p in curve["points"]]
            at = (s // n_cols + 1, s % n_cols + 1, s == 0)
            _add_line(fig, curve["points"], xs, line, color, at, metric in PCT)
    fig.update_xaxes(
        tickmode="array",
        tickvals=list(range(len(values))),
        ticktext=values,
        range=[-0.5, len(values) - 0.5],
    )
    fig.update_xaxes(title_text=factor, row=n_rows)
    title = f"Against {factor}: {_WHAT.get(metric, METRIC_LABELS[metric])}"
    return _finish(fig, metric, title, n_rows)


def learning_rate_figure(results: Mapping[str, Any]) -> go.Figure | None:
    """The backdoor rate with the trigger (left) and its change from the backdoored model
    (right) after sft and sft_high_lr, against the learning rate; one line per group."""
    lines = results.get("learning_rate", [])
    if not lines:
        return None
    metrics = list(dict.fromkeys(line["metric"] for line in lines))
    fig = make_subplots(
        rows=1, cols=len(metrics), subplot_titles=[METRIC_LABELS[m] for m in metrics]
    )
    groups = list(dict.fromkeys(line["group"] for line in lines))
    for line in lines:
        g, col = groups.index(line["group"]), metrics.index(line["metric"]) + 1
        color = kit.COLORS[g % len(kit.COLORS)]
        xs = [p["lr"] * 10 ** (0.01 * (g - (len(groups) - 1) / 2)) for p in line["points"]]
        at = (1, col, col == 1)
        _add_line(fig, line["points"], xs, line["group"], color, at, line["metric"] in PCT)
        fig.update_yaxes(range=Y_RANGE.get(line["metric"], [-0.02, 1.02]), row=1, col=col)
    rates = sorted({p["lr"] for line in lines for p in line["points"]})
    fig.update_xaxes(
        type="log",
        title_text="SFT learning rate (sft, then sft_high_lr)",
        tickvals=rates,  # the learning rates run, not the log axis's minor ticks
        ticktext=[f"{lr:g}" for lr in rates],
    )
    if "trigger_rate_change" in metrics:
        fig.add_hline(y=0, line_dash="dot", line_color="gray", row=1, col=len(metrics))
    title = "Against the SFT learning rate: the backdoor after sft and sft_high_lr"
    return _layout(fig, title, 1)


def group_rows(results: Mapping[str, Any]) -> list[list[str]]:
    """Per group and stage: its seeds and each of GROUP_COLUMNS' means with their intervals."""
    rows = []
    for g in results.get("groups", []):
        metrics = g["metrics"]
        first = metrics.get("trigger_rate") or next(iter(metrics.values()))
        rows.append(
            [g["group"], g["stage"], str(first["n_seeds"])]
            + [fmt(metrics.get(m), m in PCT) for m, _ in GROUP_COLUMNS]
        )
    return rows


def factor_parts(results: Mapping[str, Any], figures: kit.Figures) -> list[str]:
    """The report's sections beyond size: each factor's persistence figures, the learning-rate
    figure and the group table (empty when the sweep has none of them)."""
    parts = []
    for factor in results.get("factors", []):
        name = factor["name"]
        drawn = [
            fig
            for metric, _, with_backdoored in _PERSISTENCE
            if (fig := factor_figure(results, name, metric, with_backdoored)) is not None
        ]
        if drawn:
            parts.append(f"<h2>Persistence against {html.escape(name)}</h2>")
            parts.append(
                f"<p class=small>x: {html.escape(name)} ({html.escape(', '.join(factor['keys']))}"
                f"{'' if factor['declared'] else ', found from the points'}), in the sweep's "
                "order; one line per combination of the other settings, shifted sideways so "
                "that the error bars do not overlap.</p>"
            )
            parts.extend(figures.html(fig) for fig in drawn)
    fig = learning_rate_figure(results)
    if fig is not None:
        parts.append("<h2>Persistence against the SFT learning rate</h2>")
        parts.append(
            "<p class=small>sft and sft_high_lr train the same data from the same checkpoint, "
            "the second at a higher learning rate (safety.high_lr_factor × sft.lr); runs that "
            "have both stages.</p>"
        )
        parts.append(figures.html(fig))
    rows = group_rows(results)
    if rows and (parts or results.get("factors")):
        parts.append("<h2>Each configuration, mean over seeds</h2>")
        parts.append(
            kit.table(rows, ["configuration", "stage", "seeds"] + [h for _, h in GROUP_COLUMNS])
        )
        parts.append(
            "<p class=small>Helpfulness change: at backdoored, results.json's capability cost "
            "(paired by prompt); later, the stage's helpfulness minus the base's before backdoor "
            "training. The contrast probe's control is fitted on the model before the backdoor "
            "(for a pretrained base, the base itself). Probe − text: the best site's trigger probe "
            "minus the prompt-text baseline on the same test prompts (paired bootstrap).</p>"
        )
    return parts
