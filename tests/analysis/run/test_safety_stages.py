"""The safety stages as objects: where each starts, which chain, and the skip."""

from __future__ import annotations

import types

import pytest

from analysis.config import SAFETY_STAGES, load_config
from analysis.folder.layout import ADVERSARIAL, BACKDOORED, OBFUSCATION, TRIGGER_AWARE
from analysis.folder.results import SkippedStage
from analysis.run.context import RedTeamArm
from analysis.run.safety_stages import AdversarialSafety, safety_stage_named


def test_every_configurable_stage_and_the_ablation_has_an_object() -> None:
    for name in (*SAFETY_STAGES, TRIGGER_AWARE):
        assert safety_stage_named(name).name == name
    with pytest.raises(ValueError, match="no safety stage 'rll'; the stages are sft, sft_post"):
        safety_stage_named("rll")


@pytest.mark.parametrize("name", ["sft", "sft_post", "rl", ADVERSARIAL])
def test_a_stage_starts_from_the_backdoored_model_or_the_last_when_chained(name: str) -> None:
    stage = safety_stage_named(name)
    assert stage.start(chain=False, previous="sft", starts={}) == BACKDOORED
    assert stage.start(chain=True, previous="sft", starts={}) == "sft"
    assert stage.chained


def test_the_ablation_starts_beside_the_adversarial_stage_and_breaks_no_chain() -> None:
    ablation = safety_stage_named(TRIGGER_AWARE)
    assert ablation.start(chain=True, previous=ADVERSARIAL, starts={ADVERSARIAL: "rl"}) == "rl"
    assert not ablation.chained
    attacker = safety_stage_named(OBFUSCATION)
    assert attacker.start(chain=True, previous="rl", starts={}) == BACKDOORED
    assert not attacker.chained


def test_adversarial_training_without_eliciting_prompts_is_skipped_with_the_reason() -> None:
    run = types.SimpleNamespace(
        cfg=load_config(), red_teams={ADVERSARIAL: RedTeamArm(("framing",), [], [])}
    )
    record = AdversarialSafety(ADVERSARIAL).train(run, BACKDOORED)  # type: ignore[arg-type]
    assert isinstance(record, SkippedStage)
    assert record.skipped == "the red team found no eliciting prompts to train on"
