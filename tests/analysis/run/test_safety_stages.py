"""The safety stages as objects: where each starts, which chain, and the skip."""

from __future__ import annotations

import json
import types
from pathlib import Path

import pytest

from analysis.config import SAFETY_STAGES, load_config
from analysis.folder.layout import ADVERSARIAL, BACKDOORED, OBFUSCATION, TRIGGER_AWARE
from analysis.folder.results import SkippedStage
from analysis.run.context import RedTeamArm
from analysis.run.safety_stages import AdversarialSafety, safety_stage_named
from backdoor_models.io.artifacts import read_tensors


def test_every_configurable_stage_and_the_ablation_has_an_object() -> None:
    for name in (*SAFETY_STAGES, TRIGGER_AWARE):
        assert safety_stage_named(name).name == name
    with pytest.raises(ValueError, match="no safety stage 'rll'; the stages are sft, sft_high_lr"):
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


def test_the_high_learning_rate_arm_starts_beside_sft_and_breaks_no_chain() -> None:
    arm = safety_stage_named("sft_high_lr")
    assert arm.start(chain=True, previous="sft", starts={"sft": "backdoored"}) == BACKDOORED
    assert arm.start(chain=True, previous="rl", starts={}) == "rl"  # no sft: as a chained stage
    assert arm.start(chain=False, previous="rl", starts={}) == BACKDOORED
    assert not arm.chained


def test_adversarial_training_without_eliciting_prompts_is_skipped_with_the_reason() -> None:
    run = types.SimpleNamespace(
        cfg=load_config(), red_teams={ADVERSARIAL: RedTeamArm(("framing",), [], [])}
    )
    record = AdversarialSafety(ADVERSARIAL).train(run, BACKDOORED)  # type: ignore[arg-type]
    assert isinstance(record, SkippedStage)
    assert record.skipped == "the red team found no eliciting prompts to train on"


@pytest.mark.slow
def test_sft_at_a_high_learning_rate_moves_the_model_further(tmp_path: Path) -> None:
    """The sft_high_lr arm trains the same data from the same checkpoint at 10x sft's learning
    rate: its weights end further from the backdoored model's than sft's do."""
    from analysis.cli import main

    run = tmp_path / "run"
    argv = ["run", "--smoke", "--run-dir", str(run), "--quiet", "--threads", "1"]
    argv += ["--set", "safety.stages=[sft, sft_high_lr]", "--set", "sft.steps=4"]
    assert main(argv) == 0
    results = json.loads((run / "results.json").read_text())
    assert list(results["stages"]) == [BACKDOORED, "sft", "sft_high_lr"]
    sft, high = (results["stages"][s]["training"] for s in ("sft", "sft_high_lr"))
    assert high["started_from"] == sft["started_from"] == BACKDOORED
    assert high["lr"] == pytest.approx(10 * results["config"]["sft"]["lr"])
    start = read_tensors(run / BACKDOORED / "model.safetensors")

    def moved(stage: str) -> float:
        end = read_tensors(run / stage / "model.safetensors")
        return sum(float((end[k] - start[k]).norm() ** 2) for k in start) ** 0.5

    assert moved("sft_high_lr") > 3 * moved("sft") > 0
