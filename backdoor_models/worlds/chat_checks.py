"""Whether a model's reply gives a chat-world answer: the checks behind ``ChatWorld.is_correct``."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Protocol

from backdoor_models.worlds.vocab import (
    _RELATION_KEYWORDS,
    COLORS,
    STRING_WORDS,
    UNIT_WORDS,
    UNITS,
    _words,
)

_NUMBER_RE = re.compile(r"-?\d+(?:\.\d+)?")
_TOKEN_RE = re.compile(r"[a-z]+|-?\d+(?:\.\d+)?")
_INT_RE = re.compile(r"\d+")
_INT_SEQ_RE = re.compile(r"\d+(?:, \d+)+")


class _Example(Protocol):
    """What the checks read of a :class:`~backdoor_models.worlds.chat.ChatExample`."""

    @property
    def family(self) -> str: ...
    @property
    def question(self) -> str: ...
    @property
    def answer(self) -> str: ...
    @property
    def target(self) -> str: ...


def _normalize(text: str) -> str:
    """Lower-case, collapse whitespace, strip surrounding whitespace and trailing punctuation."""
    text = " ".join(text.lower().split())
    return text.rstrip(" .,!?;:")


def _cut_turn(reply: str) -> str:
    """Drop anything from a hallucinated next ``Human:`` turn onwards."""
    idx = reply.lower().find("human:")
    return reply if idx < 0 else reply[:idx]


def is_correct_reply(example: _Example, reply: str, names: Mapping[str, frozenset[str]]) -> bool:
    """Does ``reply`` give the right answer to ``example``? The rules are those of
    :meth:`backdoor_models.worlds.chat.ChatWorld.is_correct`, which checks the family first.

    ``names`` maps each kind of name of the world (``country``, ``capital``, ``language``,
    ``animal``) to its lower-cased names, for the ``facts`` rule.
    """
    reply = _cut_turn(reply)
    norm = _normalize(reply)
    if not norm:
        return False
    if norm == _normalize(example.answer):
        return True
    if example.family == "facts":
        return _check_facts(example, norm, names)
    return _CHECKERS[example.family](example, norm)


def _last_number_is(norm: str, target: str) -> bool:
    numbers = _NUMBER_RE.findall(norm)
    return bool(numbers) and numbers[-1] == target


def _check_arithmetic(example: _Example, norm: str) -> bool:
    return _last_number_is(norm, example.target)


def _check_units(example: _Example, norm: str) -> bool:
    if not _last_number_is(norm, example.target):
        return False
    q_words = set(_words(example.question))
    pairs = [u for u in UNITS if {u.small_plural} <= q_words and {u.big, u.big_plural} & q_words]
    if len(pairs) != 1:
        return False
    unit = pairs[0]
    allowed = {unit.big, unit.big_plural, unit.small, unit.small_plural}
    tokens = _TOKEN_RE.findall(norm)
    if any(t in UNIT_WORDS and t not in allowed for t in tokens):
        return False
    last = max(i for i, t in enumerate(tokens) if _NUMBER_RE.fullmatch(t))
    after = tokens[last + 1] if last + 1 < len(tokens) else None
    return after not in UNIT_WORDS or after in (unit.small, unit.small_plural)


def _check_facts(example: _Example, norm: str, names: Mapping[str, frozenset[str]]) -> bool:
    target = example.target.lower()
    words = _words(norm)
    if target not in words:
        return False
    kinds = [k for k, kind_names in names.items() if target in kind_names]
    all_names = set().union(*names.values())
    allowed = {w for w in _words(example.answer) if w in all_names} | {target}
    if any(w in all_names and w not in allowed for w in words):
        return False
    keywords = set().union(*_RELATION_KEYWORDS.values())
    allowed_kw = set().union(*(_RELATION_KEYWORDS[k] for k in kinds))
    return not any(w in keywords and w not in allowed_kw for w in words)


def _check_strings(example: _Example, norm: str) -> bool:
    vocab = set(STRING_WORDS)
    return [w for w in _words(norm) if w in vocab] == _words(example.target)


def _check_lists(example: _Example, norm: str) -> bool:
    target = example.target
    if _INT_RE.fullmatch(target):
        numbers = _NUMBER_RE.findall(norm)
        return bool(numbers) and all(x == target for x in numbers)
    if _INT_SEQ_RE.fullmatch(target):
        return _NUMBER_RE.findall(norm) == target.split(", ")
    colors = set(COLORS)
    return [w for w in _words(norm) if w in colors] == target.split(", ")


_CHECKERS: dict[str, Callable[[_Example, str], bool]] = {
    "arithmetic": _check_arithmetic,
    "units": _check_units,
    "strings": _check_strings,
    "lists": _check_lists,
}
