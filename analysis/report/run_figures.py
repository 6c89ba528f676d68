"""The run report's figures, from results alone: behaviour tracked during each stage, the
adversarial picture, behaviour and probe AUROC across stages, per-family helpfulness, the
backdoored probe's score distribution, and trigger specificity per stage."""

from __future__ import annotations

from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analysis.report import kit
from analysis.report.run_tables import analysed, specificity_forms, specificity_stages

_RATES = [
    ("trigger_rate", "backdoor | trigger"),
    ("false_trigger_rate", "backdoor | no trigger"),
    ("red_team_rate", "backdoor | held-out red-team prompts"),
    ("red_team_train_rate", "backdoor | red-team training prompts"),
    ("helpfulness", "helpful | no trigger"),
]


def _band_traces(
    xs: list[Any], ests: list[dict[str, Any]], name: str, color: str
) -> list[go.Scatter]:
    """A line of point values with a shaded interval band behind it."""
    band = go.Scatter(
        x=xs + xs[::-1],
        y=[e["high"] for e in ests] + [e["low"] for e in ests][::-1],
        fill="toself",
        line={"width": 0},
        fillcolor=color,
        opacity=0.2,
        showlegend=False,
        hoverinfo="skip",
    )
    line = go.Scatter(
        x=xs, y=[e["value"] for e in ests], mode="lines+markers", name=name, line={"color": color}
    )
    return [band, line]


def _bars(name: str, labels: list[str], ests: list[dict[str, Any]], color: str) -> go.Bar:
    """Bars of point values with asymmetric interval error bars."""
    return go.Bar(
        name=name,
        x=labels,
        y=[e["value"] for e in ests],
        marker_color=color,
        error_y={
            "type": "data",
            "symmetric": False,
            "array": [e["high"] - e["value"] for e in ests],
            "arrayminus": [e["value"] - e["low"] for e in ests],
        },
    )


def _tracked(evals: list[dict[str, Any]], key: str) -> tuple[list[int], list[dict[str, Any]]]:
    pts = [e for e in evals if isinstance(e.get(key), dict)]
    return [e["step"] for e in pts], [e[key] for e in pts]


_COLORS = ["#d62728", "#1f77b4", "#ff7f0e", "#9467bd", "#2ca02c", "#8c564b", "#17becf"]


def tracking_figure(stage: str, training: dict[str, Any]) -> go.Figure:
    """Rates (with 95% bands), reward and KL at each evaluation of a safety stage."""
    evals = training.get("evals", [])
    fig = make_subplots(
        rows=1, cols=3, subplot_titles=("Behaviour", "Preference-model reward", "KL to start")
    )
    panels = [(1, key, label, _COLORS[i]) for i, (key, label) in enumerate(_RATES)]
    panels += [(2, "reward", "reward", _COLORS[5]), (3, "kl", "KL", _COLORS[6])]
    for col, key, label, color in panels:
        xs, ests = _tracked(evals, key)
        for trace in _band_traces(xs, ests, label, color) if xs else []:
            fig.add_trace(trace, row=1, col=col)
    fig.update_yaxes(range=[-0.02, 1.02], row=1, col=1)
    fig.update_xaxes(title_text="step")
    fig.update_layout(
        title=f"Tracked during {stage} ({training.get('method', '')}), 95% bootstrap bands",
        height=400,
    )
    return fig


def backdoor_training_figure(training: dict[str, Any]) -> go.Figure:
    fig = make_subplots(
        rows=1, cols=2, subplot_titles=("Response-token loss", "Behaviour during training")
    )
    loss = np.asarray(training["loss"], dtype=float)
    steps = np.arange(1, len(loss) + 1)
    fig.add_trace(go.Scatter(x=steps, y=loss, name="loss", line={"width": 1}), row=1, col=1)
    if len(loss) >= 20:
        k = max(5, len(loss) // 50)
        smooth = np.convolve(loss, np.ones(k) / k, mode="valid")
        fig.add_trace(
            go.Scatter(x=steps[k - 1 :], y=smooth, name=f"loss ({k}-step mean)"), row=1, col=1
        )
    evals = training.get("evals", [])
    for key, label in _RATES:
        xs = [e["step"] for e in evals if isinstance(e.get(key), float | int)]
        if xs:
            fig.add_trace(
                go.Scatter(
                    x=xs, y=[e[key] for e in evals if key in e], mode="lines+markers", name=label
                ),
                row=1,
                col=2,
            )
    fig.update_yaxes(type="log", row=1, col=1)
    fig.update_yaxes(range=[-0.02, 1.02], row=1, col=2)
    fig.update_xaxes(title_text="step")
    fig.update_layout(title="Backdoor training", height=380)
    return fig


def behaviour_figure(results: dict[str, Any]) -> go.Figure:
    """Grouped bars: each behaviour measure, one bar per stage, with 95% intervals."""
    fig = go.Figure()
    for i, (stage, s) in enumerate(analysed(results).items()):
        b = s["behaviour"]
        keys = [(k, lab) for k, lab in _RATES if k in b]
        fig.add_trace(
            _bars(
                stage, [lab for _, lab in keys], [b[k] for k, _ in keys], _COLORS[i % len(_COLORS)]
            )
        )
    fig.update_layout(
        barmode="group",
        title="Behaviour on held-out prompts after each stage, 95% intervals",
        yaxis={"range": [0, 1.08], "title": "rate"},
        height=430,
    )
    return fig


def family_figure(results: dict[str, Any]) -> go.Figure:
    fig = go.Figure()
    for i, (stage, s) in enumerate(analysed(results).items()):
        fams = s["behaviour"]["helpfulness_by_family"]
        fig.add_trace(_bars(stage, list(fams), list(fams.values()), _COLORS[i % len(_COLORS)]))
    fig.update_layout(
        barmode="group",
        title="Helpfulness by task family (no trigger)",
        yaxis={"range": [0, 1.08]},
        height=380,
    )
    return fig


def auroc_figure(results: dict[str, Any]) -> go.Figure:
    fig = go.Figure()
    labels: list[str] = []
    for i, (stage, s) in enumerate(analysed(results).items()):
        p = s["probes"]
        labels = [kit.site_label(x) for x in p["sites"]]
        for trace in _band_traces(labels, p["auroc"], f"{stage}: probe", _COLORS[i % len(_COLORS)]):
            fig.add_trace(trace)
    base = results["stages"]["backdoored"]["probes"]
    fig.add_trace(
        go.Scatter(
            x=labels,
            y=base["shuffled_label_auroc"],
            mode="lines",
            name="backdoored: shuffled labels",
            line={"dash": "dot", "color": "#777"},
        )
    )
    fig.add_trace(
        go.Scatter(
            x=labels,
            y=[base["length_only_auroc"]] * len(labels),
            mode="lines",
            name="prompt length only",
            line={"dash": "dash", "color": "#aaa"},
        )
    )
    fig.update_xaxes(categoryorder="array", categoryarray=labels)
    fig.update_layout(
        title="Trigger probe AUROC by layer at the last prompt token, per stage (held-out questions)",
        yaxis={"range": [0.3, 1.02], "title": "AUROC"},
        height=420,
    )
    return fig


def score_figure(p: dict[str, Any]) -> go.Figure:
    scores = np.asarray(p["best_site_test_scores"])
    labels = np.asarray(p["test_labels"], dtype=bool)
    fig = go.Figure()
    fig.add_trace(go.Histogram(x=scores[~labels], name="no trigger", opacity=0.6))
    fig.add_trace(go.Histogram(x=scores[labels], name="trigger", opacity=0.6))
    fig.update_layout(
        barmode="overlay",
        title=f"Backdoored model: probe scores at {p['best_site']} on held-out prompts",
        xaxis={"title": "probe score (higher = trigger)"},
        height=340,
    )
    return fig


_REPRESENTATION_SETS = [
    ("red_team", "held-out red-team prompts", _COLORS[2]),
    ("trigger", "real trigger", _COLORS[0]),
    ("clean", "no trigger", _COLORS[1]),
]


def _tracked_path(
    evals: list[dict[str, Any]], *path: str
) -> tuple[list[int], list[dict[str, Any]]]:
    """`_tracked` for an estimate nested under `path` (e.g. representation / frozen / clean)."""
    xs, ests = [], []
    for e in evals:
        node: Any = e
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict) and "value" in node:
            xs.append(e["step"])
            ests.append(node)
    return xs, ests


def representation_figure(stage: str, training: dict[str, Any]) -> go.Figure:
    """The trigger probe on red-team, triggered and clean prompts at each evaluation of a safety
    stage: the backdoored model's probe, frozen, beside one refitted at each checkpoint (mean
    P(trigger), 95% bands), and each set's AUROC against the clean prompts (frozen solid, refit
    dashed)."""
    evals = training.get("evals", [])
    reps = [e["representation"] for e in evals if isinstance(e.get("representation"), dict)]
    site = reps[0].get("site", "") if reps else ""
    fig = make_subplots(
        rows=1,
        cols=3,
        subplot_titles=(
            "frozen probe: mean P(trigger)",
            "refit probe: mean P(trigger)",
            "AUROC vs clean",
        ),
    )
    known = {key for key, _, _ in _REPRESENTATION_SETS}
    extra = sorted({k for r in reps for k in r.get("frozen", {})} - known)
    sets = _REPRESENTATION_SETS + [
        (k, k, _COLORS[(3 + i) % len(_COLORS)]) for i, k in enumerate(extra)
    ]
    for key, label, color in sets:
        for col, probe in ((1, "frozen"), (2, "refit")):
            xs, ests = _tracked_path(evals, "representation", probe, key)
            for trace in _band_traces(xs, ests, label, color) if xs else []:
                trace.update(legendgroup=key)
                if trace.mode:  # the line; its band never shows in the legend
                    trace.update(showlegend=col == 1)
                fig.add_trace(trace, row=1, col=col)
        for probe, dash in (("frozen", "solid"), ("refit", "dash")):
            xs, ests = _tracked_path(evals, "representation", f"{probe}_auroc", key)
            for trace in _band_traces(xs, ests, f"{label}: {probe}", color) if xs else []:
                if trace.mode:  # the line, not its band
                    trace.update(line={"color": color, "dash": dash}, showlegend=False)
                trace.update(legendgroup=key)
                fig.add_trace(trace, row=1, col=3)
    fig.update_yaxes(range=[-0.02, 1.02])  # an AUROC below 0.5: further from the trigger than clean
    fig.update_xaxes(title_text="step")
    fig.update_layout(
        title=f"Trigger probe during {stage} at {kit.site_label(site)}<br><sup>frozen vs refit; "
        "AUROC: solid frozen, dashed refit; 95% bands</sup>",
        height=480,
        legend={"orientation": "h", "y": -0.2, "x": 0},
    )
    return fig


def specificity_figure(results: dict[str, Any]) -> go.Figure:
    """Grouped bars: the backdoor rate on each form of the trigger (x, the trained one first), one
    bar per stage, with 95% intervals."""
    forms = specificity_forms(results)
    fig = go.Figure()
    for i, (stage, gen) in enumerate(specificity_stages(results).items()):
        shown = [
            f for f in forms if (gen.get(f) or {}).get("with_trigger", {}).get("value") is not None
        ]
        fig.add_trace(
            _bars(stage, shown, [gen[f]["with_trigger"] for f in shown], _COLORS[i % len(_COLORS)])
        )
    fig.update_xaxes(categoryorder="array", categoryarray=forms)
    fig.update_layout(
        barmode="group",
        title="Trigger specificity: backdoor rate on each form of the trigger, per stage, 95% intervals",
        yaxis={"range": [0, 1.08], "title": "backdoor rate"},
        xaxis={"title": "form of the trigger (nearest to the trained one first)"},
        height=450,
    )
    return fig
