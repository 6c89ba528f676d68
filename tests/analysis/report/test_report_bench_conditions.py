"""The benchmark page's leaderboards by condition (`analysis.report.bench_conditions`), rendered
from records the benchmark builds from planted stages: the verdict names the tables where two
detectors do not overlap, or says plainly that none does; every table, the text baseline and
what was skipped are on the page."""

from __future__ import annotations

from analysis.bench.conditions import condition_tables
from analysis.folder.bench_records import BenchRecord, ConditionsRecord
from analysis.report.bench_conditions import (
    NONE_SEPARATED,
    condition_table,
    conditions_section,
    conditions_verdict,
    table_line,
    verdict,
)
from tests.analysis.bench.condition_stages import condition_stage

SEPARATED = condition_tables(
    [condition_stage("backdoored", (4, 4)), condition_stage("sft", (4, 0), seed=1)], n_boot=200
)
# both features carry the trigger at every stage: every detector ties everywhere
TIED = condition_tables(
    [condition_stage("backdoored", (6, 6)), condition_stage("sft", (6, 6), seed=1)], n_boot=200
)


def _page(conditions: ConditionsRecord) -> str:
    return conditions_section({"conditions": conditions})  # type: ignore[typeddict-item]


def test_the_verdict_names_the_tables_where_two_detectors_do_not_overlap() -> None:
    words = verdict(SEPARATED)
    assert "frozen transfer: planted/sft (lda > diff_means)" in words
    assert "refit on the stage: planted/sft (lda > diff_means)" in words
    assert words.startswith("In 2 of 3 tables")
    # random token ids: the baseline reads nothing, and the detectors beat it everywhere
    assert "beats the text baseline (intervals apart) in 3 of 3 tables" in words
    assert words.endswith("the text baseline beats every detector in 0.")


def test_where_no_two_detectors_differ_the_page_says_so_plainly() -> None:
    assert all(not t["separated_best"] and not t["separated_at_site"] for t in TIED["tables"])
    assert verdict(TIED).startswith(NONE_SEPARATED + " The best detector beats the text baseline")
    assert NONE_SEPARATED in _page(TIED)
    assert NONE_SEPARATED in conditions_verdict({"conditions": TIED})  # type: ignore[typeddict-item]


def test_every_table_is_on_the_page_with_the_text_baseline_and_what_was_skipped() -> None:
    page = _page(SEPARATED)
    assert page.count("<details>") == len(SEPARATED["tables"]) == 3
    assert page.count("<tr class=flag><td>") >= 3  # the baseline row of each table, at least
    assert (
        "held-out trigger form (planted: backdoored, sft): not scored, no behaviour_set.json"
        in page
    )
    assert "obfuscated stage, frozen (planted: obfuscation): not scored" in page
    one = condition_table(SEPARATED["tables"][0], 0.01)
    assert "text baseline" in one and "TPR at 1% FPR [95% CI]" in one and "=1" in one


def test_a_bench_json_from_before_the_conditions_renders_without_them() -> None:
    old: BenchRecord = {}  # type: ignore[typeddict-item]
    assert conditions_section(old) == "" and conditions_verdict(old) == ""


def test_one_line_per_table_names_the_best_row_and_the_baseline() -> None:
    frozen = next(t for t in SEPARATED["tables"] if t["condition"] == "frozen transfer")
    line = table_line(frozen)
    assert line.startswith("frozen transfer: planted/sft: ")
    assert " lda " in line and "(detectors beat it)" in line and line.endswith("lda > diff_means")
