"""The sweep report's paired contrasts, from sweep.json's `contrasts` alone
(`analysis.sweep.contrasts`): what one setting changes, seed by seed.

- The setting table: per factor, each value minus the factor's reference ("full − LoRA r4"), per
  combination of the other settings and safety stage, for TABLE_METRICS (the backdoor rate with
  the trigger and on the trigger-blind red team's held-out prompts; sweep.json has more): the mean
  of the per-seed differences in percentage points with its 95% interval, the seeds paired, each
  seed's difference, whether the interval excludes 0 (such rows are highlighted) and the seeds
  left out because only one side has them.
- The stage table: sft_high_lr minus sft of the same runs, per configuration, for the backdoor
  rate with the trigger and helpfulness.

Shown only for a sweep with factors.

Example:
    >>> points({"difference": 0.25, "low": 0.2, "high": 0.3})
    '+25.0 pp [+20.0, +30.0]'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from analysis.report import kit
from analysis.report.sweep_kit import METRIC_LABELS

__all__ = ["HEADER", "TABLE_METRICS", "contrast_parts", "contrast_rows", "excludes", "points"]

TABLE_METRICS = ("trigger_rate", "red_team_rate")
HEADER = [
    "factor",
    "comparison",
    "other settings",
    "stage",
    "metric",
    "difference (pp)",
    "seeds",
    "excludes 0",
    "each seed (pp)",
    "left out",
]
_STAGE_METRICS = ("trigger_rate", "helpfulness")


def points(c: Mapping[str, Any]) -> str:
    """A contrast's mean difference in percentage points, with its interval when it has one."""
    if c.get("difference") is None:
        return kit.DASH
    text = f"{100 * c['difference']:+.1f} pp"
    if c.get("low") is None or c.get("high") is None:
        return text
    return f"{text} [{100 * c['low']:+.1f}, {100 * c['high']:+.1f}]"


def excludes(c: Mapping[str, Any]) -> str:
    """Whether the interval excludes 0, and on which side."""
    if not c.get("excludes_zero"):
        return "no" if c.get("low") is not None else "no interval"
    return "yes, above 0" if c["low"] > 0 else "yes, below 0"


def _each(c: Mapping[str, Any]) -> str:
    return "; ".join(f"{s['seed'] or 'one run'}: {100 * s['difference']:+.1f}" for s in c["seeds"])


def contrast_rows(
    results: Mapping[str, Any],
    kind: str = "setting",
    metrics: Sequence[str] = TABLE_METRICS,
    stages: Sequence[str] | None = None,
) -> list[list[str]]:
    """One row per contrast of `kind` ("setting" or "stage") and `metrics`, at `stages` (by
    default: each safety stage), in sweep.json's order (HEADER's columns)."""
    wanted = results["safety_stages"] if stages is None else stages
    return [
        [
            c["factor"],
            c["comparison"],
            c["others"],
            c["stage"] if c["kind"] == "setting" else f"{c['stage']} vs {c['reference_stage']}",
            METRIC_LABELS.get(c["metric"], c["metric"]),
            points(c),
            str(c["n_seeds"]),
            excludes(c),
            _each(c),
            ", ".join(c.get("unpaired", [])) or kit.DASH,
        ]
        for c in results.get("contrasts", [])
        if c["kind"] == kind and c["metric"] in metrics and c["stage"] in wanted
    ]


def _table(rows: list[list[str]]) -> str:
    return kit.table(rows, HEADER, flags=[r[7].startswith("yes") for r in rows])


def contrast_parts(results: Mapping[str, Any]) -> list[str]:
    """The "Paired contrasts" section (empty for a sweep without factors or contrasts)."""
    if not results.get("factors") or not results.get("contrasts"):
        return []
    parts = [
        "<h2>Paired contrasts</h2>",
        "<p class=small>Each row sets two configurations that differ in one factor only against "
        "each other: the value minus the factor's reference (its first value in the sweep, or "
        "the sweep file's <code>references:</code>), with every other setting the same. The "
        "difference is taken per seed (the two runs of the same seed) and then averaged; its 95% "
        "interval is Student's t over the per-seed differences, or with one seed that pair's "
        "MOVER interval over evaluation prompts, which leaves out seed-to-seed variation. A seed "
        "that only one side has is left out (n goes down). Highlighted: the interval excludes "
        "0. Differences in percentage points (pp). sweep.json's <code>contrasts</code> also "
        "holds the change from the backdoored model, the trigger-aware red team, helpfulness "
        "and the backdoored stage.</p>",
    ]
    rows = contrast_rows(results)
    if rows:
        parts.append(_table(rows))
    stage_rows = contrast_rows(results, "stage", _STAGE_METRICS, stages=list(results["stages"]))
    if stage_rows:
        parts.append("<h3>SFT at the high learning rate minus SFT, same runs</h3>")
        parts.append(
            "<p class=small>sft_high_lr minus sft of each run (the same data from the same "
            "checkpoint at safety.high_lr_factor × sft.lr), paired by seed, per "
            "configuration. Below 0: the high learning rate removes more of the backdoor (or "
            "costs helpfulness).</p>"
        )
        parts.append(_table(stage_rows))
    return parts
