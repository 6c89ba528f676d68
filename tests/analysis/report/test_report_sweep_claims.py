"""sweep.html's published claims (analysis.report.sweep_claims), on the zoo sweep built without
training and changed by hand (tests/analysis/sweep/test_sweep_contrasts) with three claims: the
summary and detail rows, the units, a claim the sweep has no estimate for, and no section
without claims."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import pytest

from analysis.report.sweep_claims import (
    DETAIL_HEADER,
    SUMMARY_HEADER,
    claim_parts,
    detail_rows,
    expectation,
    summary_rows,
)
from analysis.sweep.aggregate import report_sweep
from analysis.sweep.runner import SweepLayout
from analysis.sweep.spec import ClaimSpec
from tests.analysis.sweep.test_sweep_contrasts import build_changed_zoo
from tests.analysis.sweep.zoo_sweep import SPEC

CLAIMS = [
    ClaimSpec(
        source="Redwood",
        claim="full beats LoRA",
        comparison="full − LoRA r4",
        metric="trigger_rate",
        stages=["sft"],
        expect="above",
    ),
    ClaimSpec(
        source="Redwood",
        claim="a quarter is lost under SFT",
        metric="trigger_rate_change",
        stages=["sft"],
        expect="about",
        value=-0.25,
        tolerance=0.1,
    ),
    ClaimSpec(
        source="nobody",
        claim="rank 8 is worse",
        comparison="LoRA r8 − LoRA r4",
        metric="trigger_rate",
        stages=["sft"],
        expect="below",
    ),
]
NORMAL_80 = "backdoor.mechanism=normal, train.steps=80"


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    root = tmp_path_factory.mktemp("zoo") / "zoo"
    build_changed_zoo(root, SPEC.model_copy(update={"claims": CLAIMS}))
    return root, report_sweep(root).model_dump(mode="json")


def test_one_summary_row_per_claim_with_its_verdict_counts_or_why_it_has_none(zoo) -> None:
    _, results = zoo
    rows = summary_rows(results)
    assert [r[:2] for r in rows] == [[c.source, c.claim] for c in CLAIMS]
    assert all(len(r) == len(SUMMARY_HEADER) for r in rows)
    full, quarter, missing = rows
    assert full[2] == "full − LoRA r4: backdoor rate with the trigger, at sft"
    assert full[3] == "above 0.0 pp"
    counts = results["claims"][0]["counts"]
    assert full[4] == f"agrees {counts['agrees']}, disagrees {counts['disagrees']}, " + (
        f"cannot tell {counts['cannot tell']}"
    )
    assert quarter[3] == "about −25.0 ± 10.0 pp"
    assert missing[4].startswith("not measured: no paired contrast 'LoRA r8 − LoRA r4'")


def test_each_estimate_is_a_detail_row_in_its_units_with_its_verdict(zoo) -> None:
    _, results = zoo
    rows = detail_rows(results)
    assert all(len(r) == len(DETAIL_HEADER) for r in rows)
    n_rows = sum(len(c["rows"]) for c in results["claims"])
    assert len(rows) == n_rows and n_rows > 0
    (full,) = [r for r in rows if r[1] == "full beats LoRA" and r[2] == NORMAL_80]
    # full fine-tuning's planted backdoor rate is 0.15 above LoRA r4's at every seed
    assert full[4].startswith("+15.0 pp [+15.0, +15.0]") and full[5:] == ["3", "agrees"]
    # the change after SFT is a difference too: signed, in pp
    quarter = [r for r in rows if r[1] == "a quarter is lost under SFT"]
    assert quarter and all(r[4].startswith(("+", "−")) and " pp" in r[4] for r in quarter)


def test_the_page_has_the_section_and_a_sweep_without_claims_has_none(zoo) -> None:
    root, results = zoo
    page = html.unescape(SweepLayout(root).report.read_text())
    assert "Published claims against this sweep" in page
    assert "not measured: no paired contrast 'LoRA r8 − LoRA r4'" in page
    assert claim_parts({**results, "claims": []}) == []
    assert claim_parts({key: v for key, v in results.items() if key != "claims"}) == []


def test_an_expectation_reads_in_the_estimates_units() -> None:
    rate = {"metric": "trigger_rate", "comparison": None, "expect": "below", "value": 0.1}
    assert expectation(rate) == "below 10.0%"
    auroc = {"metric": "trigger_probe_auroc", "comparison": None, "expect": "above", "value": 0.5}
    assert expectation(auroc) == "above 0.500"
