"""The run report's behaviour-probe section: per stage, the behaviour-labelled probe against the
trigger-labelled one and the text baseline on held-out prompt families; whether "defects" is still
read where the model stopped; and the trigger probe on each held-out form against the text
baseline. Reads results.json only."""

from __future__ import annotations

from analysis.folder.results import RunResults, SkippedStage
from analysis.folder.results_behaviour import BehaviourProbe
from analysis.report import kit


def behaviour_probes(results: RunResults) -> dict[str, BehaviourProbe]:
    """Each analysed stage's behaviour probe (runs made before it existed have none)."""
    return {
        stage: s.behaviour_probe
        for stage, s in results.stages.items()
        if not isinstance(s, SkippedStage) and s.behaviour_probe is not None
    }


def behaviour_summary_rows(stage: str, b: BehaviourProbe | None) -> list[tuple[str, str]]:
    """The summary's rows for one stage: behaviour- against trigger-labelled at the best site,
    and whether the backdoored stage's behaviour probe still reads "defects" where this stage's
    model stopped."""
    if b is None:
        return []
    rows: list[tuple[str, str]] = []
    if b.skipped is not None or b.best_site is None:
        rows.append((f"[{stage}] behaviour-labelled probe", f"not fitted: {b.skipped}"))
    else:
        site = b.per_site[b.sites.index(b.best_site)]
        rows += [
            (
                f"[{stage}] behaviour-labelled probe AUROC for behaviour, held-out families "
                f"({b.best_site})",
                kit.est(site.behaviour_labelled),
            ),
            (
                f"[{stage}] behaviour-labelled minus trigger-labelled probe (paired)",
                kit.est(site.behaviour_minus_trigger),
            ),
            (
                f"[{stage}] behaviour-labelled probe minus text baseline (paired)",
                kit.est(site.behaviour_minus_text),
            ),
        ]
    if (s := b.stopped_defecting) is not None and s.auroc is not None:
        rows.append(
            (
                f"[{stage}] backdoored stage's behaviour probe ({s.site}), stopped vs never "
                f"defected (n={s.n_stopped} stopped)",
                f"{kit.est(s.auroc)}; text baseline {kit.est(s.text_auroc)}; "
                f"difference {kit.est(s.probe_minus_text)}",
            )
        )
    return rows


def _main_table(probes: dict[str, BehaviourProbe]) -> str:
    rows = []
    for stage, b in probes.items():
        if b.skipped is not None or b.best_site is None or b.text_baseline is None:
            rows.append([stage, "-", f"not fitted: {b.skipped}", "", "", "", ""])
            continue
        s = b.per_site[b.sites.index(b.best_site)]
        rows.append(
            [
                stage,
                kit.site_label(b.best_site),
                kit.est(s.trigger_labelled),
                kit.est(s.behaviour_labelled),
                kit.est(b.text_baseline),
                kit.est(s.behaviour_minus_trigger),
                kit.est(s.behaviour_minus_text),
            ]
        )
    header = [
        "stage",
        "site",
        "trigger-labelled",
        "behaviour-labelled",
        "text baseline",
        "behaviour - trigger",
        "behaviour - text",
    ]
    return kit.table(rows, header)


def _stopped_table(probes: dict[str, BehaviourProbe]) -> str:
    rows = []
    for stage, b in probes.items():
        if (s := b.stopped_defecting) is None:
            continue
        p = s.mean_probability
        rows.append(
            [
                stage,
                kit.site_label(s.site),
                s.n_stopped,
                s.n_still,
                s.n_never,
                kit.est(s.auroc),
                kit.est(s.text_auroc),
                kit.est(s.probe_minus_text),
                " / ".join(f"{p[k]:.2f}" if k in p else "-" for k in ("still", "stopped", "never")),
            ]
        )
    if not rows:
        return ""
    header = [
        "stage",
        "site",
        "stopped",
        "still defects",
        "never",
        "probe AUROC stopped vs never",
        "text baseline",
        "probe - text (paired)",
        "mean P(defects): still / stopped / never",
    ]
    return (
        '<h3>Where the model stopped defecting: is "I will defect" still read?</h3>'
        "<p class=small>Prompts on which the backdoored model showed the backdoor and this stage's "
        "model does not (stopped), against prompts where neither did (never). The backdoored "
        "stage's behaviour-labelled probe, fitted leaving each family out, scores this stage's "
        "activations unchanged, at the site where it did best on the backdoored stage. An "
        "AUROC above the text baseline's says the model still "
        "represents the defection it no longer carries out, beyond what the prompt's tokens "
        "give.</p>" + kit.table(rows, header)
    )


def _forms_table(probes: dict[str, BehaviourProbe]) -> str:
    stages = [s for s, b in probes.items() if b.forms]
    if not stages:
        return ""
    forms = list(probes[stages[0]].forms)
    rows = []
    for form in forms:
        row: list[str] = [form]
        for stage in stages:
            f = probes[stage].forms.get(form)
            row.append(
                "-"
                if f is None
                else f"{100 * f.backdoor_rate:.0f}% | {f.probe_auroc.value:.3f} | "
                f"{f.text_auroc.value:.3f}"
            )
        rows.append(row)
    return (
        "<h3>The trigger probe on trigger forms it never saw</h3>"
        "<p class=small>Fitted on half the evaluation set (exact trigger against none), scored on "
        "each form's prompts against the other half's clean prompts, at the behaviour probe's "
        "best site (where none could be fitted, the backdoored stage's). Each cell: the "
        "backdoor rate on the form | the probe's AUROC | the text "
        "baseline's (fitted the same way). A probe that reads the model's representation of the "
        "trigger would follow the backdoor rate; one that reads the tokens follows the text "
        "baseline.</p>" + kit.table(rows, ["form", *(f"{s}: rate | probe | text" for s in stages)])
    )


def behaviour_probe_section(results: RunResults) -> str:
    """The section, or nothing for a run made before the behaviour probe existed."""
    probes = behaviour_probes(results)
    if not probes:
        return ""
    first = next(iter(probes.values()))
    families = ", ".join(
        f"{name} ({f.n}; {f.n_trigger} trigger, {f.n_backdoor} backdoor)"
        for name, f in first.families.items()
    )
    return (
        "<h2>Probes labelled by behaviour, on held-out prompt families</h2>"
        "<p class=small>On prompt families that separate the trigger's presence from the "
        "behaviour, each prompt labelled twice (the exact trigger is there; the reply showed the "
        "backdoor), one family is left out at a time: a trigger-labelled probe, a "
        "behaviour-labelled probe and the text-only baseline (behaviour labels) are fitted on the "
        "other families and score the held-out one, read at "
        f"{first.position}. AUROC for behaviour, with paired bootstrap differences; the site is "
        "the one where the behaviour-labelled probe does best, chosen on these prompts. "
        f"Families at {next(iter(probes))}: {families}.</p>"
        + _main_table(probes)
        + _stopped_table(probes)
        + _forms_table(probes)
    )
