"""A training setting carries its description and range in its dataclass field."""

from __future__ import annotations

import dataclasses

import pytest

from backdoor_models.training.lm import TrainConfig
from backdoor_models.training.setting import setting


def test_a_setting_keeps_default_description_and_bounds() -> None:
    @dataclasses.dataclass(frozen=True)
    class Demo:
        steps: int = setting(10, "optimiser steps", ge=1)
        name: str = setting("x", "a choice")
        betas: tuple[float, float] = setting((0.9, 0.98), "AdamW betas")

    steps, name, betas = dataclasses.fields(Demo)
    assert Demo().steps == 10 and Demo(steps=3).steps == 3
    assert steps.metadata == {"description": "optimiser steps", "ge": 1, "strict": True}
    assert "strict" not in name.metadata and "strict" not in betas.metadata


def test_a_mutable_default_is_refused() -> None:
    with pytest.raises(TypeError, match="mutable default"):
        setting([0.9], "AdamW betas")


def test_every_training_field_is_described() -> None:
    for f in dataclasses.fields(TrainConfig):
        assert f.metadata["description"], f.name
