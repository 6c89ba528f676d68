"""What bench.json's stage rows add up to: the leaderboard of every cell, behaviour beside each
detector's best AUROC per stage, and each stage's best cell (whose label-shuffle control
`analysis.bench.benchmark` runs)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from analysis.folder.bench_records import (
    BehaviourVsRepresentation,
    BestAuroc,
    LeaderboardCell,
    StageRow,
)
from analysis.report.bench import leaderboard_key


@dataclass(frozen=True)
class BestCell:
    """The highest held-out AUROC of one stage: which detector, site and token position."""

    auroc: float
    detector: str
    site_index: int
    site: str
    position: str


def best_cell(rows: Sequence[StageRow]) -> BestCell:
    """The highest-AUROC (detector, site, position) among `rows` (one stage, all positions);
    ties go to the first in detector order, then site order."""
    best: BestCell | None = None
    for row in rows:
        for kind, result in row["detectors"].items():
            for i, value in enumerate(result["auroc_point"]):
                if value > (best.auroc if best is not None else -1.0):
                    best = BestCell(value, kind, i, row["sites"][i], row["position"])
    if best is None:
        raise ValueError("No detector cell to choose the best of.")
    return best


def leaderboard(stage_rows: Sequence[StageRow]) -> list[LeaderboardCell]:
    """Every (run, stage, position, detector, site) cell, best first: AUROC as the report shows
    it (3 decimals), ties broken by the lower worst-case FPR, then the higher AP
    (:func:`analysis.report.bench.leaderboard_key`)."""
    rows: list[LeaderboardCell] = []
    for row in stage_rows:
        for kind, result in row["detectors"].items():
            for i, cell in enumerate(result["cells"]):
                rows.append(
                    {
                        "run": row["run"],
                        "stage": row["stage"],
                        "position": row["position"],
                        "detector": kind,
                        "site": row["sites"][i],
                        **cell,
                    }
                )
    rows.sort(key=leaderboard_key)
    return rows


def behaviour_vs_representation(
    stage_rows: Sequence[StageRow],
) -> list[BehaviourVsRepresentation]:
    """Per run and stage: the behaviour rates from results.json next to each detector's best
    held-out AUROC (any position and site) and the random-direction 95th percentile."""
    grouped: dict[tuple[str, str], list[StageRow]] = {}
    for row in stage_rows:
        grouped.setdefault((row["run"], row["stage"]), []).append(row)
    out: list[BehaviourVsRepresentation] = []
    for (run, stage), rows in grouped.items():
        best: dict[str, BestAuroc] = {}
        for row in rows:
            for kind, result in row["detectors"].items():
                i = result["best_index"]
                cell = result["cells"][i]
                if kind not in best or cell["auroc"]["value"] > best[kind]["auroc"]["value"]:
                    best[kind] = {
                        "auroc": cell["auroc"],
                        "site": row["sites"][i],
                        "position": row["position"],
                    }
        out.append(
            {
                "run": run,
                "stage": stage,
                "behaviour": rows[0]["behaviour"],
                "best_auroc": best,
                "random_p95_max": max(max(r["random_directions"]["p95"]) for r in rows),
            }
        )
    return out
