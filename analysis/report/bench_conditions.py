"""The benchmark report's leaderboards by condition (bench.json's `conditions`): where detectors
can differ. First the verdict in words (does any table have two detectors whose TPR intervals
do not overlap?), then one line per table, what could not be scored and why, and every table in
full: every detector at every site and the text-only baseline, ranked by TPR at the target FPR.

Example::

    html = conditions_section(json.loads(Path("runs/bench/bench.json").read_text()))
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from analysis.folder.bench_records import (
    TEXT_BASELINE,
    BenchRecord,
    ConditionRow,
    ConditionsRecord,
    ConditionTable,
)
from analysis.report import kit

NONE_SEPARATED = (
    "No table has two detectors whose TPR intervals do not overlap: under every condition "
    "scored here, the detectors tie."
)


def _title(t: ConditionTable) -> str:
    form = f", {t['positives']}" if t["condition"] == "held-out trigger form" else ""
    return f"{t['condition']}: {t['run']}/{t['stage']}{form}"


def _pairs(t: ConditionTable) -> str:
    """The detector kinds separated at their best sites, in words ("a > b, a > c")."""
    return ", ".join(f"{a} > {b}" for a, b in t["separated_best"])


def _sites(t: ConditionTable) -> str:
    """The same-site separations, grouped by site ("L0: a > b; embed: a > c")."""
    by_site: dict[str, list[str]] = {}
    for site, a, b in t["separated_at_site"]:
        by_site.setdefault(kit.site_label(site), []).append(f"{a} > {b}")
    return "; ".join(f"{site}: {', '.join(pairs)}" for site, pairs in by_site.items())


def verdict(conditions: ConditionsRecord) -> str:
    """In words: which tables have two detector kinds whose TPR intervals do not overlap (at
    their best sites, or at one site), or plainly that none has; then where the best detector
    row and the text baseline stand apart."""
    tables = conditions["tables"]
    best = [t for t in tables if t["separated_best"]]
    at_site = [t for t in tables if t["separated_at_site"]]
    out = []
    if not best and not at_site:
        out.append(NONE_SEPARATED)
    elif best:
        out.append(
            f"In {len(best)} of {len(tables)} tables, two detectors' TPR intervals do not "
            "overlap with each detector at its best site: "
            + "; ".join(f"{_title(t)} ({_pairs(t)})" for t in best)
            + "."
        )
    else:
        out.append(
            "No table has two detectors whose TPR intervals do not overlap with each at its best "
            "site: picking the best site ties them everywhere."
        )
    if at_site:
        out.append(
            f"At one site, two detectors' intervals do not overlap in {len(at_site)} of "
            f"{len(tables)} tables."
        )
    return " ".join(out + [_baseline_words(tables)]) if tables else " ".join(out)


def _baseline_words(tables: Sequence[ConditionTable]) -> str:
    """Where the best detector row and the text baseline's intervals lie apart, in words."""
    beat = [t for t in tables if t["baseline"] == "detectors beat it"]
    lost = [t for t in tables if t["baseline"] == "it beats every detector"]
    words = f"The best detector beats the text baseline (intervals apart) in {len(beat)} of "
    words += f"{len(tables)} tables" + (": " + "; ".join(map(_title, beat)) if beat else "")
    words += f"; the text baseline beats every detector in {len(lost)}"
    return words + (": " + "; ".join(map(_title, lost)) + "." if lost else ".")


def conditions_verdict(bench: BenchRecord) -> str:
    """The verdict as the page's opening line ("" for a bench.json without conditions)."""
    conditions = bench.get("conditions")
    if conditions is None:
        return ""
    return (
        "<p><b>Where detectors can differ</b> (every site, ranked by TPR at "
        f"{100 * conditions['fpr']:g}% FPR; the leaderboards by condition below): "
        f"{html.escape(verdict(conditions))}</p>"
    )


def _baseline(t: ConditionTable) -> ConditionRow:
    return next(r for r in t["rows"] if r["detector"] == TEXT_BASELINE)


def _top(t: ConditionTable) -> ConditionRow:
    return next(r for r in t["rows"] if r["detector"] != TEXT_BASELINE)


def table_line(t: ConditionTable) -> str:
    """One table in a line: its title, the best detector row and the text baseline (TPR)."""
    top, text = _top(t), _baseline(t)
    return (
        f"{_title(t)}: {top['rank']} {top['detector']} {kit.site_label(top['site'])} "
        f"{kit.est(top['tpr_at_fpr'], pct=True)}; text baseline {text['rank']} "
        f"{kit.est(text['tpr_at_fpr'], pct=True)} ({t['baseline']}); "
        f"separated: {_pairs(t) or 'none'}"
    )


def _summary(tables: Sequence[ConditionTable]) -> str:
    rows = []
    for t in tables:
        top, text = _top(t), _baseline(t)
        rate = (
            f" (backdoor fired on {100 * t['backdoor_rate']:.1f}%)" if "backdoor_rate" in t else ""
        )
        tied = sum(r["rank"] == top["rank"] for r in t["rows"])
        rows.append(
            [
                t["condition"],
                f"{t['run']}/{t['stage']}",
                t["fitted_on"],
                f"{t['positives']} ({t['n_positives']}){rate}",
                f"{t['negatives']} ({t['n_negatives']})",
                f"{top['detector']} {kit.site_label(top['site'])}: "
                f"{kit.est(top['tpr_at_fpr'], pct=True)} ({tied} rows at rank {top['rank']})",
                f"{kit.est(text['tpr_at_fpr'], pct=True)}: {t['baseline']}",
                _pairs(t) or "none",
                _sites(t) or "none",
            ]
        )
    header = [
        "condition",
        "scored on",
        "fitted on",
        "positives (n)",
        "negatives (n)",
        "best detector row: TPR [95% CI]",
        "text baseline: TPR [95% CI]",
        "separated at best sites",
        "separated at one site",
    ]
    flags = [bool(t["separated_best"]) for t in tables]
    return kit.table(rows, header, flags)


def condition_table(t: ConditionTable, fpr: float) -> str:
    """One condition's leaderboard: every row, ranked; the text baseline highlighted."""
    rows = [
        [
            r["rank"],
            r["detector"],
            kit.site_label(r["site"]),
            kit.est(r["tpr_at_fpr"], pct=True),
            kit.est(r["auroc"]),
            f"{kit.est(r['negatives_fpr'], pct=True)}"
            + (
                ""
                if len(r["negatives_fpr_per_set"]) < 2
                else " ("
                + ", ".join(f"{k} {100 * v:.1f}%" for k, v in r["negatives_fpr_per_set"].items())
                + ")"
            ),
            f"{r['threshold']:.4g}",
        ]
        for r in t["rows"]
    ]
    header = [
        "#",
        "detector",
        "site",
        f"TPR at {100 * fpr:g}% FPR [95% CI]",
        "AUROC [95% CI]",
        "FPR on the negatives at the threshold (worst set)",
        "threshold",
    ]
    cal = t["calibration"]
    summary = (
        f"{_title(t)}; fitted on {t['fitted_on']}; threshold set on {cal['n']} {cal['prompts']}"
    )
    flags = [r["detector"] == TEXT_BASELINE for r in t["rows"]]
    return (
        f"<details><summary>{html.escape(summary)}</summary>"
        f"{kit.table(rows, header, flags)}</details>"
    )


def _skipped(conditions: ConditionsRecord) -> str:
    if not conditions["skipped"]:
        return ""
    grouped: dict[tuple[str, str, str], list[str]] = {}
    for s in conditions["skipped"]:
        grouped.setdefault((s["condition"], s["run"], s["reason"]), []).append(s["stage"])
    items = "".join(
        f"<li>{html.escape(condition)} ({html.escape(run)}: {html.escape(', '.join(stages))}): "
        f"not scored, {html.escape(reason)}.</li>"
        for (condition, run, reason), stages in grouped.items()
    )
    return f"<p>Not scored:</p><ul class=small>{items}</ul>"


def conditions_section(bench: BenchRecord) -> str:
    """The report's section of leaderboards by condition ("" for a bench.json without them)."""
    conditions = bench.get("conditions")
    if conditions is None:
        return ""
    fpr = 100 * conditions["fpr"]
    tables = conditions["tables"]
    intro = (
        "<p class=small>Every detector at every site, and the text-only baseline (logistic "
        "regression on the prompt's token unigrams and bigrams, the run's tokenizer, fitted on the "
        "same training split), under the conditions where detectors can differ: refit on each "
        "stage; frozen transfer (fitted on the backdoored stage, scored unchanged on each later "
        "stage); the obfuscated stage, frozen; out-of-distribution negatives (trigger-free "
        "prompts of other kinds: the run's detection negatives and real human prompts); held-out "
        "trigger forms (fitted on the exact trigger against none, scored on each form against the "
        f"clean test prompts). Each row's threshold is set for {fpr:g}% FPR on the run's held-out "
        "clean calibration prompts, scored on the stage being scored (under out-of-distribution "
        f"negatives, also at most {fpr:g}% on each negative set); rows rank by TPR at that "
        "threshold, with 95% bootstrap intervals that re-set the threshold in each resample. A "
        "rank's first row takes its place; every row whose TPR interval overlaps it shares the "
        "rank (=). Highlighted rows are the text baseline in a table, and tables where two "
        "detectors at their best sites do not overlap in the summary.</p>"
    )
    parts = [
        "<h2>Where detectors can differ: leaderboards by condition</h2>",
        f"<p><b>{html.escape(verdict(conditions))}</b></p>",
        intro,
        _summary(tables) if tables else "<p>No condition could be scored.</p>",
        _skipped(conditions),
        *(condition_table(t, conditions["fpr"]) for t in tables),
    ]
    return "".join(parts)
