"""Turning chat examples into padded token tensors with a response-only loss mask."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from jaxtyping import Bool, Int
from torch import Tensor
from transformers import PreTrainedTokenizerBase

from backdoor_models.text.encoding import encode_prompts, encode_responses


@dataclass(frozen=True)
class TokenizedSet:
    """Right-padded sequences `BOS prompt response EOS`; `loss_mask` marks response tokens."""

    tokens: Int[Tensor, "n pos"]
    loss_mask: Bool[Tensor, "n pos"]
    lengths: Int[Tensor, " n"]

    def __len__(self) -> int:
        return int(self.tokens.shape[0])


class PromptResponse(Protocol):
    """Anything with a prompt and a target response (a `BackdoorExample`, a distilled sample)."""

    @property
    def prompt(self) -> str: ...

    @property
    def response(self) -> str: ...


def tokenize_examples(
    tokenizer: PreTrainedTokenizerBase, examples: Sequence[PromptResponse], n_ctx: int
) -> TokenizedSet:
    """Tokenize prompt and response separately (so the boundary is exact) and pad on the right."""
    if not examples:
        raise ValueError("No examples to tokenize.")
    rows, masks = [], []
    prompts = encode_prompts(tokenizer, [ex.prompt for ex in examples])
    responses = encode_responses(tokenizer, [" " + ex.response for ex in examples])
    for prompt, response in zip(prompts, responses, strict=True):
        rows.append(prompt + response)
        masks.append([False] * len(prompt) + [True] * len(response))
    longest = max(len(r) for r in rows)
    if longest > n_ctx:
        raise ValueError(
            f"The longest training sequence has {longest} tokens but the model's n_ctx is {n_ctx}; "
            "use shorter examples or a preset with a larger n_ctx."
        )
    pad = int(tokenizer.pad_token_id)
    tokens = torch.full((len(rows), longest), pad, dtype=torch.long)
    loss_mask = torch.zeros((len(rows), longest), dtype=torch.bool)
    for i, (r, m) in enumerate(zip(rows, masks, strict=True)):
        tokens[i, : len(r)] = torch.tensor(r)
        loss_mask[i, : len(m)] = torch.tensor(m)
    lengths = torch.tensor([len(r) for r in rows])
    return TokenizedSet(tokens, loss_mask, lengths)
