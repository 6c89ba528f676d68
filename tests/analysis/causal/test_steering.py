"""Steering: a zero vector is a no-op, a large one changes the output, and the trigger
direction (unlike a random one of the same norm) moves the backdoor rate both ways."""

from __future__ import annotations

import pytest
import torch

from analysis.causal.steering import (
    SteeringDirection,
    probe_direction,
    random_like,
    steering_sweep,
    summarise_steering,
    user_direction,
)
from backdoor_models.runtime.fused import FusedNative
from backdoor_models.text.encoding import encode_prompt
from hooks.caching import cache_activations
from tests.conftest import Trained

LAYER = 1


@pytest.fixture(scope="module")
def direction(trained: Trained) -> SteeringDirection:
    fit = trained.train_set[:200]  # training prompts: disjoint from the evaluation questions
    site = f"blocks.{LAYER}.hook_resid_post"
    acts = cache_activations(trained.model, [ex.prompt for ex in fit], [site])[site]
    return probe_direction(acts, [ex.triggered for ex in fit])


def _prompts(trained: Trained, n: int = 12) -> list[list[int]]:
    return [encode_prompt(trained.tokenizer, ex.prompt) for ex in trained.eval_set[:n]]


def test_zero_vector_changes_nothing(trained: Trained) -> None:
    fused = FusedNative(trained.model)
    prompts = _prompts(trained)
    eos = trained.tokenizer.eos_token_id
    zero = {LAYER: torch.zeros(trained.model.cfg.d_model)}
    assert fused.generate(prompts, 12, eos, steering=zero) == fused.generate(prompts, 12, eos)
    tokens = trained.model.to_tokens([ex.prompt for ex in trained.eval_set[:4]])
    assert torch.equal(fused.logits(tokens, steering=zero), fused.logits(tokens))


def test_large_vector_changes_the_output(trained: Trained) -> None:
    fused = FusedNative(trained.model)
    prompts = _prompts(trained)
    eos = trained.tokenizer.eos_token_id
    big = {
        0: 50.0 * torch.randn(trained.model.cfg.d_model, generator=torch.Generator().manual_seed(0))
    }
    assert fused.generate(prompts, 12, eos, steering=big) != fused.generate(prompts, 12, eos)


def test_fused_steering_matches_a_hook_on_the_bridge(trained: Trained) -> None:
    vec = torch.randn(trained.model.cfg.d_model, generator=torch.Generator().manual_seed(1))
    tokens = trained.model.to_tokens([ex.prompt for ex in trained.eval_set[:4]])

    def add(act: torch.Tensor, hook: object) -> torch.Tensor:
        return act + vec

    hooked = trained.model.run_with_hooks(
        tokens, fwd_hooks=[(f"blocks.{LAYER}.hook_resid_post", add)]
    )
    fused = FusedNative(trained.model).logits(tokens, steering={LAYER: vec})
    assert torch.allclose(fused, hooked, atol=1e-4)


def test_trigger_direction_steers_the_backdoor_and_random_does_not(
    trained: Trained, direction: SteeringDirection
) -> None:
    examples = trained.eval_set[:40]  # 20 questions, with and without the trigger
    control = random_like(direction, seed=0)
    result = steering_sweep(
        trained.model,
        trained.tokenizer,
        trained.world,
        trained.backdoor,
        examples,
        LAYER,
        [direction, control],
        scales=(0.0, 0.5, 1.0),
        max_new_tokens=12,
        n_boot=200,
    )
    probe, rand = result["directions"][direction.name], result["directions"]["random"]
    rate = lambda rows, i: rows[i]["backdoor_rate"]["value"]  # noqa: E731
    assert rate(probe["remove_with_trigger"], 0) > 0.8  # the trained backdoor fires
    assert rate(probe["remove_with_trigger"], 2) < 0.3  # removing the direction suppresses it
    # a random direction of the same norm does far less, both ways (adding is compared at half
    # the scale: at full scale any large push, random ones too, sets this fuzzy backdoor off)
    assert rate(rand["remove_with_trigger"], 2) > rate(probe["remove_with_trigger"], 2) + 0.4
    assert rate(probe["add_without_trigger"], 1) > rate(rand["add_without_trigger"], 1) + 0.4
    assert len(summarise_steering(result)) == 4


def test_user_direction_takes_the_sign_that_points_to_triggered(
    trained: Trained, direction: SteeringDirection
) -> None:
    fit = trained.train_set[:200]
    site = f"blocks.{LAYER}.hook_resid_post"
    acts = cache_activations(trained.model, [ex.prompt for ex in fit], [site])[site]
    flipped = user_direction(-direction.unit, acts, [ex.triggered for ex in fit], "mine")
    assert torch.allclose(flipped.unit, direction.unit, atol=1e-5)


def test_bad_steering_input_raises(trained: Trained) -> None:
    fused = FusedNative(trained.model)
    prompts = _prompts(trained, 2)
    eos = trained.tokenizer.eos_token_id
    with pytest.raises(ValueError, match="out of range"):
        fused.generate(prompts, 4, eos, steering={99: torch.zeros(trained.model.cfg.d_model)})
    with pytest.raises(ValueError, match=r"must be \[d_model\]"):
        fused.generate(prompts, 4, eos, steering={0: torch.zeros(3)})
    with pytest.raises(ValueError, match="unit vector"):
        SteeringDirection("x", torch.ones(4), 1.0)
