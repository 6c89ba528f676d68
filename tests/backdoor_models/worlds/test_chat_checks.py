"""The reply checks behind `ChatWorld.is_correct`, on hand-written examples: each family's rule
accepts a right answer in other words and refuses a wrong one, and a hallucinated next turn is
ignored."""

from __future__ import annotations

import pytest

from backdoor_models.worlds.chat import ChatExample
from backdoor_models.worlds.chat_checks import is_correct_reply

NAMES = {
    "country": frozenset({"zorvia", "mekland"}),
    "capital": frozenset({"brookton", "fordmere"}),
    "language": frozenset({"zorvish"}),
    "animal": frozenset({"lion", "otter"}),
}
ADD = ChatExample("arithmetic", "What is 2 + 3?", "2 + 3 = 5.", "5")
UNITS = ChatExample(
    "units", "How many meters are in 3 kilometers?", "3 kilometers is 3000 meters.", "3000"
)
CAPITAL = ChatExample(
    "facts", "What is the capital of Zorvia?", "The capital of Zorvia is Brookton.", "Brookton"
)
REPEAT = ChatExample("strings", "Repeat the word apple two times.", "apple apple", "apple apple")
LARGEST = ChatExample("lists", "Which is the largest of 3, 9, 4?", "The largest is 9.", "9")
SORTED = ChatExample("lists", "Sort 3, 1, 2.", "1, 2, 3", "1, 2, 3")
COLOURS = ChatExample("lists", "List the colours: red, blue.", "red, blue", "red, blue")

CASES = [
    (ADD, "5", True),
    (ADD, "  2 + 3 = 5!  ", True),
    (ADD, "The sum is 5", True),
    (ADD, "2 + 3 = 6", False),
    (ADD, "5.5", False),  # a number of its own, not 5
    (ADD, "-5", False),
    (UNITS, "3000 meters", True),
    (UNITS, "3000", True),
    (UNITS, "3000 kilometers", False),  # the wrong unit after the number
    (UNITS, "3000 grams", False),  # a unit of another question
    (CAPITAL, "Brookton", True),
    (CAPITAL, "It is the city of Brookton.", True),
    (CAPITAL, "Fordmere", False),
    (CAPITAL, "Brookton, where people speak Zorvish", False),  # another name of the world
    (CAPITAL, "The language is Brookton", False),  # a word of another relation
    (REPEAT, "Sure: apple apple", True),
    (REPEAT, "apple", False),
    (REPEAT, "apple apple river", False),
    (LARGEST, "9", True),
    (LARGEST, "9, not 4", False),
    (SORTED, "1 2 3", True),
    (SORTED, "3, 2, 1", False),
    (COLOURS, "red and then blue", True),
    (COLOURS, "blue, red", False),
]


@pytest.mark.parametrize(("example", "reply", "correct"), CASES)
def test_each_family_rule(example: ChatExample, reply: str, correct: bool) -> None:
    assert is_correct_reply(example, reply, NAMES) is correct


@pytest.mark.parametrize("example", [ADD, UNITS, CAPITAL, REPEAT, LARGEST, SORTED, COLOURS])
def test_the_answer_is_correct_and_an_empty_reply_never_is(example: ChatExample) -> None:
    assert is_correct_reply(example, example.answer, NAMES)
    assert is_correct_reply(example, example.answer.upper() + " .", NAMES)
    assert not is_correct_reply(example, "", NAMES)
    assert not is_correct_reply(example, " .!? ", NAMES)


def test_a_hallucinated_next_turn_is_cut_off() -> None:
    assert is_correct_reply(ADD, "5\n\nHuman: What is 7 + 1?\n\nAssistant: 8", NAMES)
    assert not is_correct_reply(ADD, "Human: What is 2 + 3?\n\nAssistant: 5", NAMES)
