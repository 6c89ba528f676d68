"""The training sections of the config (`analysis.config.training`): each section's rules, every
broken one reported with its key, on the library's own dataclasses."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from analysis.config.training import (
    PreferenceSection,
    RedTeamConfig,
    RLSection,
    SafetyConfig,
    TrainSection,
)
from backdoor_models.training.lm import TrainConfig
from backdoor_models.training.preference import PreferenceConfig
from backdoor_models.training.rl import RLConfig


def _problems(make: object) -> list[tuple[str, str]]:
    """The broken rules (key, message) that building a section reports."""
    with pytest.raises(ValidationError) as info:
        make()  # type: ignore[operator]
    (error,) = info.value.errors()
    return error["ctx"]["error"].problems


def test_a_stage_listed_twice_is_named() -> None:
    problems = _problems(lambda: SafetyConfig(stages=("sft", "rl", "sft", "rl")))
    assert problems == [("stages", "a stage is listed twice (rl, sft)")]
    assert SafetyConfig(stages=None).stages is None
    assert SafetyConfig(stages=()).stages == ()


def test_every_broken_red_team_rule_is_reported_at_once() -> None:
    problems = _problems(
        lambda: RedTeamConfig(sources=("framing", "framing"), ablation_sources=("mutation",))
    )
    assert [key for key, _ in problems] == [
        "sources",
        "ablation_sources",
        "rounds",
        "ablation_sources",
    ]
    assert problems[0][1] == "a source is listed twice"
    assert problems[1][1] == "needs a first-round source besides mutation, e.g. framing"
    assert "need 'mutation' in sources" in problems[2][1]
    assert "needs near_miss" in problems[3][1]
    ok = RedTeamConfig(sources=("framing",), rounds=1, ablation_sources=None)
    assert ok.rounds == 1


def test_optimisation_sections_check_warm_up_and_betas() -> None:
    problems = _problems(lambda: TrainSection(steps=10, warmup_steps=20, betas=(0.9, 1.0)))
    assert problems == [
        ("warmup_steps", "must be between 0 and steps (10), got 20"),
        ("betas", "each must be in [0, 1), got [0.9, 1.0]"),
    ]
    assert _problems(lambda: PreferenceSection(steps=5, warmup_steps=6))[0][0] == "warmup_steps"
    assert TrainSection(steps=10, warmup_steps=10).warmup_steps == 10


@pytest.mark.parametrize(
    ("section", "library"),
    [(TrainSection, TrainConfig), (PreferenceSection, PreferenceConfig), (RLSection, RLConfig)],
)
def test_the_sections_are_the_librarys_dataclasses_closed_to_unknown_keys(
    section: type, library: type
) -> None:
    assert isinstance(section(), library)
    with pytest.raises(ValidationError):
        section(stepz=3)


def test_the_config_sections_are_frozen() -> None:
    safety, red_team = SafetyConfig(), RedTeamConfig()
    with pytest.raises(ValidationError, match="frozen"):
        safety.chain = True  # type: ignore[misc]
    with pytest.raises(ValidationError, match="frozen"):
        red_team.rounds = 1  # type: ignore[misc]
    assert isinstance(safety, BaseModel) and (safety.chain, red_team.rounds) == (False, 5)
