"""The sweep report's published claims, from sweep.json's `claims` alone
(`analysis.sweep.claims`): each claim, what it was checked against, and its verdicts.

- The summary table: one row per claim (who, the claim, the estimate it is checked against and
  where the claim puts it, how many estimates agree, disagree or cannot tell).
- The detail table: every estimate with its 95% interval, its seeds and its verdict.

Rates and their differences in percent and percentage points, AUROCs as they are.

Example:
    >>> expectation({"expect": "about", "value": -0.25, "tolerance": 0.1,
    ...              "metric": "trigger_rate_change", "comparison": None})
    'about −25.0 ± 10.0 pp'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from analysis.report import kit
from analysis.report.sweep_kit import DIFFERENCES, METRIC_LABELS, PCT

__all__ = ["DETAIL_HEADER", "SUMMARY_HEADER", "claim_parts", "detail_rows", "expectation"]

SUMMARY_HEADER = ["source", "claim", "checked against", "the claim expects", "verdicts"]
DETAIL_HEADER = [
    "source",
    "claim",
    "other settings",
    "stage",
    "estimate [95%]",
    "seeds",
    "verdict",
]


def _signed(claim: Mapping[str, Any]) -> bool:
    """Whether the claim's estimates are differences (shown with a sign, in pp for rates)."""
    return claim["comparison"] is not None or claim["metric"] in DIFFERENCES


def _number(x: float, claim: Mapping[str, Any]) -> str:
    pct, signed = claim["metric"] in PCT, _signed(claim)
    if pct:
        text = f"{100 * x:+.1f}" if signed else f"{100 * x:.1f}"
    else:
        text = f"{x:+.3f}" if signed else f"{x:.3f}"
    return text.replace("-", "−")


def _unit(claim: Mapping[str, Any]) -> str:
    if claim["metric"] not in PCT:
        return ""
    return " pp" if _signed(claim) else "%"


def expectation(claim: Mapping[str, Any]) -> str:
    """Where the claim puts the estimate, in the estimate's units."""
    value = _number(claim["value"], claim).lstrip("+")
    if claim["expect"] == "about":
        half = _number(claim["tolerance"], claim).lstrip("+")
        return f"about {value} ± {half}{_unit(claim)}"
    return f"{claim['expect']} {value}{_unit(claim)}"


def _estimate(row: Mapping[str, Any], claim: Mapping[str, Any]) -> str:
    if row["value"] is None:
        return kit.DASH
    text = f"{_number(row['value'], claim)}{_unit(claim)}"
    if row["low"] is None or row["high"] is None:
        return text
    return f"{text} [{_number(row['low'], claim)}, {_number(row['high'], claim)}]"


def _checked(claim: Mapping[str, Any]) -> str:
    metric = METRIC_LABELS.get(claim["metric"], claim["metric"])
    what = claim["comparison"] or "each configuration"
    return f"{what}: {metric}, at {', '.join(claim['stages'])}"


def _verdicts(claim: Mapping[str, Any]) -> str:
    if not claim["rows"]:
        return f"not measured: {claim['note']}"
    return ", ".join(f"{verdict} {n}" for verdict, n in claim["counts"].items())


def summary_rows(results: Mapping[str, Any]) -> list[list[str]]:
    """One row per claim (SUMMARY_HEADER's columns)."""
    return [
        [c["source"], c["claim"], _checked(c), expectation(c), _verdicts(c)]
        for c in results.get("claims", [])
    ]


def detail_rows(results: Mapping[str, Any]) -> list[list[str]]:
    """One row per estimate of every claim (DETAIL_HEADER's columns)."""
    return [
        [
            c["source"],
            c["claim"],
            row["configuration"],
            row["stage"],
            _estimate(row, c),
            str(row["n_seeds"]),
            row["verdict"],
        ]
        for c in results.get("claims", [])
        for row in c["rows"]
    ]


def claim_parts(results: Mapping[str, Any]) -> list[str]:
    """The "Published claims" section (empty for a sweep file without `claims:`)."""
    if not results.get("claims"):
        return []
    details = detail_rows(results)
    parts = [
        "<h2>Published claims against this sweep</h2>",
        "<p class=small>Each claim of the sweep file's <code>claims:</code>, checked against "
        "the paired contrasts it names (or each configuration's mean over seeds) at the stages "
        "it names. A verdict comes from the estimate's 95% interval over seeds: it agrees when "
        "the interval lies wholly where the claim puts it (above or below the value, or within "
        "its tolerance), disagrees when wholly on the other side, and cannot tell otherwise. An "
        "estimate of one seed cannot tell: its interval is over evaluation prompts only.</p>",
        kit.table(summary_rows(results), SUMMARY_HEADER),
    ]
    if details:
        parts.append(
            kit.table(details, DETAIL_HEADER, flags=[r[-1] != "cannot tell" for r in details])
        )
    return parts
