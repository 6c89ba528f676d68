"""Detection sets: calibration prompts first, then each named negative set, and the distinct
trigger-free chat questions they are drawn from."""

from __future__ import annotations

import pytest

from backdoor_models.behaviour.detection_sets import DetectionSets, _distinct_chat
from backdoor_models.worlds.chat import ChatWorld


@pytest.fixture(scope="module")
def world() -> ChatWorld:
    return ChatWorld(seed=0)


def test_distinct_chat_questions_are_clean_distinct_and_avoid_the_excluded(
    world: ChatWorld,
) -> None:
    first = _distinct_chat(world, 40, seed=1, excluded=set())
    excluded = {ex.base.question for ex in first[:20]}
    again = _distinct_chat(world, 40, seed=1, excluded=excluded)
    questions = [ex.base.question for ex in again]
    assert len(again) == 40 and len(set(questions)) == 40
    assert not set(questions) & excluded
    assert all(not ex.triggered and ex.response == ex.base.answer for ex in again)
    assert _distinct_chat(world, 40, seed=1, excluded=set()) == first  # seeded


class _FactsWorld(ChatWorld):
    """A chat world that asks only about its facts: two countries give a few dozen questions."""

    families = ("facts",)


def test_asking_for_more_questions_than_the_world_has_is_refused() -> None:
    world = _FactsWorld(seed=0, n_countries=2)
    available = len(_distinct_chat(world, 10, seed=0, excluded=set()))
    assert available == 10
    with pytest.raises(ValueError, match=r"gave only \d+ distinct questions; ask for fewer"):
        _distinct_chat(world, 200, seed=0, excluded=set())


def test_all_lists_calibration_then_each_negative_set_in_order(world: ChatWorld) -> None:
    a, b, c, d = _distinct_chat(world, 4, seed=2, excluded=set())
    sets = DetectionSets(calibration=[a], negatives={"second": [b, c], "third": [d]})
    assert sets.all() == [a, b, c, d]
    assert DetectionSets([], {}).all() == []
