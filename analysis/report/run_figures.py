"""The run report's figures, from results alone: behaviour tracked during each stage, the
adversarial picture, behaviour and probe AUROC across stages, per-family helpfulness, the
backdoored probe's score distribution, and trigger specificity per stage."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analysis.folder.results import Estimate, RunResults, TriggerProbe
from analysis.folder.results_training import PointEval, StageEval, Training
from analysis.report import kit
from analysis.report.run_tables import (
    backdoored,
    rate_of,
    specificity_forms,
    specificity_stages,
)

_RATES = [
    ("trigger_rate", "backdoor | trigger"),
    ("false_trigger_rate", "backdoor | no trigger"),
    ("red_team_rate", "backdoor | held-out red-team prompts"),
    ("red_team_train_rate", "backdoor | red-team training prompts"),
    ("helpfulness", "helpful | no trigger"),
]


def _band_traces(
    xs: Sequence[int | str], ests: Sequence[Estimate], name: str, color: str
) -> list[go.Scatter]:
    """A line of point values with a shaded interval band behind it."""
    x = list(xs)
    band = go.Scatter(
        x=x + x[::-1],
        y=[e.high for e in ests] + [e.low for e in ests][::-1],
        fill="toself",
        line={"width": 0},
        fillcolor=color,
        opacity=0.2,
        showlegend=False,
        hoverinfo="skip",
    )
    line = go.Scatter(
        x=x, y=[e.value for e in ests], mode="lines+markers", name=name, line={"color": color}
    )
    return [band, line]


def _bars(name: str, labels: list[str], ests: Sequence[Estimate], color: str) -> go.Bar:
    """Bars of point values with asymmetric interval error bars."""
    bounds = [e.bounds() for e in ests]
    return go.Bar(
        name=name,
        x=labels,
        y=[e.value for e in ests],
        marker_color=color,
        error_y={
            "type": "data",
            "symmetric": False,
            "array": [high - value for value, _, high in bounds],
            "arrayminus": [value - low for value, low, _ in bounds],
        },
    )


def _tracked(evals: Sequence[PointEval | StageEval], key: str) -> tuple[list[int], list[Estimate]]:
    """The steps at which an evaluation estimated `key`, and those estimates."""
    pts = [(e.step, est) for e in evals if (est := rate_of(e, key)) is not None]
    return [step for step, _ in pts], [est for _, est in pts]


_COLORS = ["#d62728", "#1f77b4", "#ff7f0e", "#9467bd", "#2ca02c", "#8c564b", "#17becf"]


def tracking_figure(stage: str, training: Training) -> go.Figure:
    """Rates (with 95% bands), reward and KL at each evaluation of a safety stage."""
    evals = training.evals
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
        title=f"Tracked during {stage} ({training.method or ''}), 95% bootstrap bands",
        height=400,
    )
    return fig


def backdoor_training_figure(training: Training) -> go.Figure:
    fig = make_subplots(
        rows=1, cols=2, subplot_titles=("Response-token loss", "Behaviour during training")
    )
    loss = np.asarray(training.loss, dtype=float)
    steps = np.arange(1, len(loss) + 1)
    fig.add_trace(go.Scatter(x=steps, y=loss, name="loss", line={"width": 1}), row=1, col=1)
    if len(loss) >= 20:
        k = max(5, len(loss) // 50)
        smooth = np.convolve(loss, np.ones(k) / k, mode="valid")
        fig.add_trace(
            go.Scatter(x=steps[k - 1 :], y=smooth, name=f"loss ({k}-step mean)"), row=1, col=1
        )
    for key, label in _RATES:
        pts = [
            (e.step, rate)
            for e in training.evals
            if isinstance(e, PointEval) and (rate := getattr(e, key, None)) is not None
        ]
        if pts:
            fig.add_trace(
                go.Scatter(
                    x=[step for step, _ in pts],
                    y=[rate for _, rate in pts],
                    mode="lines+markers",
                    name=label,
                ),
                row=1,
                col=2,
            )
    fig.update_yaxes(type="log", row=1, col=1)
    fig.update_yaxes(range=[-0.02, 1.02], row=1, col=2)
    fig.update_xaxes(title_text="step")
    fig.update_layout(title="Backdoor training", height=380)
    return fig


def behaviour_figure(results: RunResults) -> go.Figure:
    """Grouped bars: each behaviour measure, one bar per stage, with 95% intervals."""
    fig = go.Figure()
    for i, (stage, s) in enumerate(results.analysed().items()):
        rates = [(lab, e) for k, lab in _RATES if (e := rate_of(s.behaviour, k)) is not None]
        fig.add_trace(
            _bars(
                stage, [lab for lab, _ in rates], [e for _, e in rates], _COLORS[i % len(_COLORS)]
            )
        )
    fig.update_layout(
        barmode="group",
        title="Behaviour on held-out prompts after each stage, 95% intervals",
        yaxis={"range": [0, 1.08], "title": "rate"},
        height=430,
    )
    return fig


def family_figure(results: RunResults) -> go.Figure:
    fig = go.Figure()
    for i, (stage, s) in enumerate(results.analysed().items()):
        fams = s.behaviour.helpfulness_by_family
        fig.add_trace(_bars(stage, list(fams), list(fams.values()), _COLORS[i % len(_COLORS)]))
    fig.update_layout(
        barmode="group",
        title="Helpfulness by task family (no trigger)",
        yaxis={"range": [0, 1.08]},
        height=380,
    )
    return fig


def auroc_figure(results: RunResults) -> go.Figure:
    fig = go.Figure()
    labels: list[str] = []
    for i, (stage, s) in enumerate(results.analysed().items()):
        p = s.probes
        labels = [kit.site_label(x) for x in p.sites]
        for trace in _band_traces(labels, p.auroc, f"{stage}: probe", _COLORS[i % len(_COLORS)]):
            fig.add_trace(trace)
    base = backdoored(results).probes
    fig.add_trace(
        go.Scatter(
            x=labels,
            y=base.shuffled_label_auroc,
            mode="lines",
            name="backdoored: shuffled labels",
            line={"dash": "dot", "color": "#777"},
        )
    )
    fig.add_trace(
        go.Scatter(
            x=labels,
            y=[base.length_only_auroc] * len(labels),
            mode="lines",
            name="prompt length only",
            line={"dash": "dash", "color": "#aaa"},
        )
    )
    if base.text_baseline is not None:
        fig.add_trace(
            go.Scatter(
                x=labels,
                y=[base.text_baseline.auroc.value] * len(labels),
                mode="lines",
                name="backdoored: prompt tokens only (text baseline)",
                line={"dash": "dashdot", "color": "#b35806"},
            )
        )
    fig.update_xaxes(categoryorder="array", categoryarray=labels)
    fig.update_layout(
        title="Trigger probe AUROC by layer at the last prompt token, per stage (held-out questions)",
        yaxis={"range": [0.3, 1.02], "title": "AUROC"},
        height=420,
    )
    return fig


def score_figure(p: TriggerProbe) -> go.Figure:
    scores = np.asarray(p.best_site_test_scores)
    labels = np.asarray(p.test_labels, dtype=bool)
    fig = go.Figure()
    fig.add_trace(go.Histogram(x=scores[~labels], name="no trigger", opacity=0.6))
    fig.add_trace(go.Histogram(x=scores[labels], name="trigger", opacity=0.6))
    fig.update_layout(
        barmode="overlay",
        title=f"Backdoored model: probe scores at {p.best_site} on held-out prompts",
        xaxis={"title": "probe score (higher = trigger)"},
        height=340,
    )
    return fig


_REPRESENTATION_SETS = [
    ("red_team", "held-out red-team prompts", _COLORS[2]),
    ("trigger", "real trigger", _COLORS[0]),
    ("clean", "no trigger", _COLORS[1]),
]


def _tracked_representation(
    evals: Sequence[PointEval | StageEval], part: str, key: str
) -> tuple[list[int], list[Estimate]]:
    """`_tracked` for what the trigger probe read on one prompt set (`key`: red_team, trigger,
    clean, ...): `part` is frozen, refit, frozen_auroc or refit_auroc."""
    xs, ests = [], []
    for e in evals:
        rep = e.representation if isinstance(e, StageEval) else None
        est = None if rep is None else getattr(rep, part).get(key)
        if est is not None:
            xs.append(e.step)
            ests.append(est)
    return xs, ests


def representation_figure(stage: str, training: Training) -> go.Figure:
    """The trigger probe on red-team, triggered and clean prompts at each evaluation of a safety
    stage: the backdoored model's probe, frozen, beside one refitted at each checkpoint (mean
    P(trigger), 95% bands), and each set's AUROC against the clean prompts (frozen solid, refit
    dashed)."""
    evals = training.evals
    reps = [e.representation for e in evals if isinstance(e, StageEval) and e.representation]
    site = reps[0].site if reps else ""
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
    extra = sorted({k for r in reps for k in r.frozen} - known)
    sets = _REPRESENTATION_SETS + [
        (k, k, _COLORS[(3 + i) % len(_COLORS)]) for i, k in enumerate(extra)
    ]
    for key, label, color in sets:
        for col, probe in ((1, "frozen"), (2, "refit")):
            xs, ests = _tracked_representation(evals, probe, key)
            for trace in _band_traces(xs, ests, label, color) if xs else []:
                trace.update(legendgroup=key)
                if trace.mode:  # the line; its band never shows in the legend
                    trace.update(showlegend=col == 1)
                fig.add_trace(trace, row=1, col=col)
        for probe, dash in (("frozen", "solid"), ("refit", "dash")):
            xs, ests = _tracked_representation(evals, f"{probe}_auroc", key)
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


def specificity_figure(results: RunResults) -> go.Figure:
    """Grouped bars: the backdoor rate on each form of the trigger (x, the trained one first), one
    bar per stage, with 95% intervals."""
    forms = specificity_forms(results)
    fig = go.Figure()
    for i, (stage, gen) in enumerate(specificity_stages(results).items()):
        rates = {f: g.with_trigger for f, g in gen.items() if g.with_trigger is not None}
        shown = [f for f in forms if f in rates and rates[f].value is not None]
        fig.add_trace(_bars(stage, shown, [rates[f] for f in shown], _COLORS[i % len(_COLORS)]))
    fig.update_xaxes(categoryorder="array", categoryarray=forms)
    fig.update_layout(
        barmode="group",
        title="Trigger specificity: backdoor rate on each form of the trigger, per stage, 95% intervals",
        yaxis={"range": [0, 1.08], "title": "backdoor rate"},
        xaxis={"title": "form of the trigger (nearest to the trained one first)"},
        height=450,
    )
    return fig
