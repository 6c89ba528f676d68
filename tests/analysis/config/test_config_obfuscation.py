"""The `obfuscation` section (`analysis.config.obfuscation`): what cannot run is refused, every
reason at once, and the detectors it can attack are the ones the stage builds."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from analysis.config.obfuscation import ATTACKED_DETECTORS, ObfuscationConfig
from analysis.run.obfuscation_context import DETECTORS


def test_the_defaults_attack_the_logistic_probe_at_the_middle_block() -> None:
    cfg = ObfuscationConfig()
    assert cfg.detectors == ("logistic",) and cfg.layers is None and cfg.attack == "white_box"


def test_every_setting_that_cannot_run_is_named_at_once() -> None:
    with pytest.raises(ValidationError) as info:
        ObfuscationConfig(
            detectors=("lda", "contrast", "lda"),
            layers=(1, 1),
            steps=5,
            warmup_steps=6,
            defence_rounds=1,
        )
    (error,) = info.value.errors()
    problems = dict(error["ctx"]["error"].problems)
    assert problems["detectors"] == "a detector is listed twice"
    assert problems["layers"] == "a layer is listed twice"
    assert problems["warmup_steps"] == "must be at most steps (5)"
    assert "contrast probe is not fitted on them" in problems["defence_rounds"]


def test_the_black_box_attack_is_configured_by_its_poolings_without_sweep_or_defence() -> None:
    cfg = ObfuscationConfig(attack="black_box", poolings=("mean", "max", "attention"))
    assert cfg.black_box_lam == 0.5
    with pytest.raises(ValidationError) as info:
        ObfuscationConfig(
            attack="black_box", poolings=("max", "max"), lambdas=(0.3,), defence_rounds=2
        )
    problems = dict(info.value.errors()[0]["ctx"]["error"].problems)
    assert problems["poolings"] == "a pooling is listed twice"
    assert "white-box attack only" in problems["lambdas"]
    assert "white-box attack only" in problems["defence_rounds"]
    with pytest.raises(ValidationError):
        ObfuscationConfig(poolings=("median",))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "values",
    [{"detectors": ()}, {"detectors": ("svm",)}, {"layers": (-1,)}, {"lambdas": (0.0,)}],
)
def test_bad_values_are_refused(values: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ObfuscationConfig(**values)  # type: ignore[arg-type]


def test_the_attackable_detectors_are_the_stages() -> None:
    assert set(ATTACKED_DETECTORS) == {*DETECTORS, "contrast"}
    cfg = ObfuscationConfig(detectors=ATTACKED_DETECTORS)  # all of them, without the defence
    assert cfg.detectors == ATTACKED_DETECTORS
