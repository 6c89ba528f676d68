"""The chat world's fixed vocabularies, question templates and generated knowledge base.

Everything :class:`backdoor_models.worlds.chat.ChatWorld` asks about that does not depend on a model:
the word lists (animals, string words, colours, units), the question and answer templates of the
five families, the words that name a relation, and :func:`build_knowledge_base`, which makes up
the countries, capitals and languages of a world from its seed without reusing a template word.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Country:
    """One entry of the generated knowledge base."""

    name: str
    capital: str
    language: str
    animal: str


# --------------------------------------------------------------------------------------------
# Fixed vocabularies and templates
# --------------------------------------------------------------------------------------------

ANIMALS: tuple[str, ...] = (
    "lion", "tiger", "eagle", "wolf", "bear", "fox", "owl", "deer", "camel", "whale",
    "dolphin", "panda", "rabbit", "otter", "falcon", "zebra", "moose", "heron", "beaver",
    "badger", "lynx", "bison", "swan", "hawk",
)  # fmt: skip

STRING_WORDS: tuple[str, ...] = (
    "apple", "river", "stone", "house", "tree", "book", "chair", "table", "water", "fire",
    "cloud", "rain", "snow", "wind", "sun", "moon", "star", "road", "bridge", "garden",
    "window", "door", "bread", "milk", "cheese", "sugar", "salt", "paper", "pencil", "lamp",
    "clock", "shoe", "hat", "coat", "ship", "boat", "train", "car", "bike", "hill",
    "lake", "sea", "sand", "rock", "leaf", "flower", "grass", "seed", "root", "bird",
    "fish", "dog", "cat", "cow", "duck", "frog", "bee", "ant", "king", "queen",
    "child", "friend", "teacher", "doctor", "farmer", "music", "song", "dance", "game", "ball",
    "box", "cup", "plate", "spoon", "fork", "knife", "bottle", "bag", "key", "ring",
    "coin", "gold", "silver", "iron", "glass", "wood", "wall", "roof", "floor", "bed",
    "pillow", "candle", "mirror", "phone", "story", "dream", "light", "shadow", "island",
    "forest",
)  # fmt: skip

COLORS: tuple[str, ...] = (
    "red", "blue", "green", "yellow", "black", "white", "pink", "purple", "brown", "gray",
)  # fmt: skip

REPEAT_COUNTS: tuple[tuple[str, int], ...] = (("two", 2), ("three", 3), ("four", 4))


@dataclass(frozen=True)
class _Unit:
    big: str
    big_plural: str
    small: str
    small_plural: str
    factor: int


UNITS: tuple[_Unit, ...] = (
    _Unit("kilometer", "kilometers", "meter", "meters", 1000),
    _Unit("kilogram", "kilograms", "gram", "grams", 1000),
    _Unit("dollar", "dollars", "cent", "cents", 100),
    _Unit("hour", "hours", "minute", "minutes", 60),
    _Unit("minute", "minutes", "second", "seconds", 60),
    _Unit("day", "days", "hour", "hours", 24),
    _Unit("week", "weeks", "day", "days", 7),
    _Unit("year", "years", "month", "months", 12),
    _Unit("foot", "feet", "inch", "inches", 12),
)
UNIT_WORDS: frozenset[str] = frozenset(
    w for u in UNITS for w in (u.big, u.big_plural, u.small, u.small_plural)
)
MAX_QUANTITY = 12
MAX_OPERAND = 50
MAX_LIST_NUMBER = 30

ARITHMETIC_TEMPLATES: tuple[str, ...] = ("What is {a} {op} {b}?", "Compute {a} {op} {b}.")
ARITHMETIC_ANSWER = "{a} {op} {b} = {c}."

# relation -> (question templates, answer template, name of the target slot)
FACT_TEMPLATES: dict[str, tuple[tuple[str, ...], str, str]] = {
    "capital": (
        (
            "What is the capital of {country}?",
            "Which city is the capital of {country}?",
            "Name the capital of {country}.",
        ),
        "The capital of {country} is {capital}.",
        "capital",
    ),
    "language": (
        (
            "What language is spoken in {country}?",
            "What is the language of {country}?",
            "Which language do people speak in {country}?",
        ),
        "The language of {country} is {language}.",
        "language",
    ),
    "animal": (
        (
            "What is the national animal of {country}?",
            "Which animal is the symbol of {country}?",
        ),
        "The national animal of {country} is the {animal}.",
        "animal",
    ),
    "country": (
        (
            "Which country has the capital {capital}?",
            "{capital} is the capital of which country?",
        ),
        "{capital} is the capital of {country}.",
        "country",
    ),
}

# kind -> question templates (slots: w, n / a, b / a, b, c)
STRING_TEMPLATES: dict[str, tuple[str, ...]] = {
    "repeat": ("Repeat the word {w} {n} times.", "Say the word {w} {n} times."),
    "swap": ("Swap the words {a} and {b}.",),
    "reverse": ("Reverse the words {a} {b} {c}.", "Reverse the order of the words {a} {b} {c}."),
    "first": ("What is the first word in {a} {b} {c}?",),
    "last": ("What is the last word in {a} {b} {c}?",),
}

# kind -> question templates (slot: items, a comma-separated list)
LIST_TEMPLATES: dict[str, tuple[str, ...]] = {
    "largest": ("What is the largest of {items}?", "Which number is the largest in {items}?"),
    "smallest": ("What is the smallest of {items}?", "Which number is the smallest in {items}?"),
    "sort_up": ("Sort the numbers {items}.", "Sort {items} from smallest to largest."),
    "sort_down": ("Sort {items} from largest to smallest.",),
    "reverse": ("Reverse the list: {items}.",),
    "count": ("How many items are in the list: {items}?",),
}

UNIT_TEMPLATES: tuple[str, ...] = (
    "How many {small} are in {q} {big}?",
    "Convert {q} {big} to {small}.",
    "How many {small} is {q} {big}?",
)
UNIT_ANSWER = "{q} {big} is {value} {small}."

# Syllable pieces for made-up names.
_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr",
           "gr", "kr", "st", "tr", "sh")  # fmt: skip
_VOWELS = ("a", "e", "i", "o", "u")
_CODAS = ("", "", "n", "r", "l", "s", "m")
_COUNTRY_ENDINGS = ("ia", "ova", "ania", "ora", "and", "esh", "ium")
_CAPITAL_ENDINGS = ("brook", "ton", "burg", "port", "ford", "mere", "dale", "holm", "wick")
_LANGUAGE_ENDINGS = ("ish", "ese", "ic", "ian", "ot")

# Words that name a relation; a facts reply may only use those of the relation asked about.
_RELATION_KEYWORDS: dict[str, frozenset[str]] = {
    "capital": frozenset({"capital", "city"}),
    "country": frozenset({"capital", "city"}),
    "language": frozenset({"language", "speak", "spoken"}),
    "animal": frozenset({"animal", "national", "symbol"}),
}

_WORD_RE = re.compile(r"[a-z]+")


def _words(text: str) -> list[str]:
    return _WORD_RE.findall(text.lower())


def _template_words() -> set[str]:
    """Every lower-case word used by a template or a fixed vocabulary."""
    texts: list[str] = [*ARITHMETIC_TEMPLATES, ARITHMETIC_ANSWER, *UNIT_TEMPLATES, UNIT_ANSWER]
    for questions, answer, _ in FACT_TEMPLATES.values():
        texts.extend(questions)
        texts.append(answer)
    for templates in (*STRING_TEMPLATES.values(), *LIST_TEMPLATES.values()):
        texts.extend(templates)
    texts.extend(["The largest is", "The smallest is", "There are items", "Human Assistant"])
    texts.extend([*ANIMALS, *STRING_WORDS, *COLORS, *UNIT_WORDS])
    texts.extend(word for word, _ in REPEAT_COUNTS)
    return {w for t in texts for w in _words(re.sub(r"\{[a-z]+\}", " ", t))}


def build_knowledge_base(seed: int, n_countries: int) -> tuple[Country, ...]:
    """The made-up countries of the world of ``seed``: fresh names, never a template word."""
    rng = random.Random(f"chat-world-kb-{seed}")
    used = _template_words()

    def syllable() -> str:
        return rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS)

    def fresh(make: Callable[[], str]) -> str:
        for _ in range(10_000):
            name = make()
            if 4 <= len(name) <= 10 and name not in used:
                used.add(name)
                return name.capitalize()
        raise RuntimeError("could not generate a fresh name")  # pragma: no cover

    countries = []
    for _ in range(n_countries):
        name = fresh(lambda: syllable() + rng.choice(_ONSETS) + rng.choice(_COUNTRY_ENDINGS))
        capital = fresh(lambda: syllable() + rng.choice(_CAPITAL_ENDINGS))
        language = fresh(lambda: syllable() + rng.choice(_ONSETS) + rng.choice(_LANGUAGE_ENDINGS))
        countries.append(Country(name, capital, language, rng.choice(ANIMALS)))
    return tuple(countries)
