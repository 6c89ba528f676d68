"""One way to run a model for training and decoding, whatever built it.

Training, RL and generation need two things from a model: logits for right-padded token rows, and
batched, KV-cached continuation of token prompts. A native bridge (`boot_native`) gets them from
:class:`~backdoor_models.runtime.fused.FusedNative`; a bridge booted from a Hugging Face model
(`boot_transformers`, :mod:`backdoor_models.models.pretrained`) from :class:`HFEngine`, which runs the
bridge's own forward (so LoRA adapters apply) and left-padded decoding with an attention mask
(:mod:`backdoor_models.runtime.hf_generation`). :func:`engine_for` picks.

Example:
    >>> engine = engine_for(model)                                    # doctest: +SKIP
    >>> logits = engine.logits(tokens)                                # doctest: +SKIP
    >>> new = engine.generate([[1, 5, 9], [1, 7]], 8, eos_token_id=2) # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from transformer_lens import TransformerBridge

from backdoor_models.models.device import forward_autocast, forward_dtype
from backdoor_models.models.frozen_weights import frozen_weights_in
from backdoor_models.models.pretrained import is_pretrained
from backdoor_models.runtime.fused import FusedNative
from backdoor_models.runtime.hf_direct import direct_model, is_hooked
from backdoor_models.runtime.hf_generation import generate_hf_tokens
from backdoor_models.runtime.steering import steered

__all__ = ["Engine", "HFEngine", "engine_for"]


class Engine(Protocol):
    """What training and decoding use: logits and cached continuation."""

    def logits(
        self,
        tokens: Int[Tensor, "batch pos"],
        positions: Int[Tensor, "batch pos"] | None = None,
        steering: Mapping[int, Tensor] | None = None,
    ) -> Float[Tensor, "batch pos d_vocab"]: ...

    def logits_where(
        self, tokens: Int[Tensor, "batch pos"], where: Bool[Tensor, "batch pos"]
    ) -> Float[Tensor, "n d_vocab"]: ...

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        max_new_tokens: int,
        eos_token_id: int,
        pad_token_id: int = 0,
        temperature: float = 0.0,
        generator: torch.Generator | None = None,
        steering: Mapping[int, Tensor] | None = None,
    ) -> list[list[int]]: ...


# Hugging Face causal LMs whose logits are the output embedding applied to the base model's
# last hidden state, with no scaling or soft-capping after it (Gemma's are not like this)
PLAIN_HEADS = frozenset(
    {
        "GPT2LMHeadModel",
        "GPTNeoXForCausalLM",
        "LlamaForCausalLM",
        "MistralForCausalLM",
        "Qwen2ForCausalLM",
        "Qwen3ForCausalLM",
    }
)


def engine_for(model: TransformerBridge) -> Engine:
    """`FusedNative` for a native bridge, `HFEngine` for one booted from Hugging Face."""
    return HFEngine(model) if is_pretrained(model) else FusedNative(model)


class HFEngine:
    """Logits and decoding for a bridge booted from a Hugging Face causal LM.

    `logits` runs the HF model on right-padded rows (causal attention: padding after a
    row's end changes nothing before it), on the model's device, under the enclosing
    `backdoor_models.models.device.autocast_forwards`, and returns float32 logits. `generate`
    left-pads with an attention mask and position ids, and returns each prompt's new tokens up
    to and including its EOS, as `FusedNative.generate` does. `steering` ({layer: vector})
    means what it means there: each vector is added to its layer's output
    (`blocks.{layer}.hook_resid_post`) at every prompt and generated position, here through
    bridge hooks (`backdoor_models.runtime.steering.steered`).
    """

    def __init__(self, model: TransformerBridge) -> None:
        if not is_pretrained(model):
            raise TypeError("HFEngine needs a bridge booted from a Hugging Face model.")
        self.model = model

    def logits(
        self,
        tokens: Int[Tensor, "batch pos"],
        positions: Int[Tensor, "batch pos"] | None = None,
        steering: Mapping[int, Tensor] | None = None,
    ) -> Float[Tensor, "batch pos d_vocab"]:
        if positions is not None:
            raise NotImplementedError(
                "HFEngine.logits takes right-padded rows from position 0; pass no positions."
            )
        device = next(self.model.parameters()).device
        with (
            steered(self.model, steering),
            forward_autocast(device),
            direct_model(self.model) as hf,  # the bridge's wrappers only when hooked
            frozen_weights_in(hf, forward_dtype()),  # no per-call casts of the frozen base
        ):
            out: Tensor = hf(input_ids=tokens.to(device)).logits
        return out.float()

    def logits_where(
        self, tokens: Int[Tensor, "batch pos"], where: Bool[Tensor, "batch pos"]
    ) -> Float[Tensor, "n d_vocab"]:
        """The float32 logits at the positions where `where` is True, in row-major order: what a
        loss on response tokens reads. Every position runs through the blocks; the unembedding
        (on SmolLM2 a fifth of a token's FLOPs) runs only where asked, for an architecture whose
        head is a plain linear layer on the decoder's output (`PLAIN_HEADS`). Any other, or a
        hooked bridge, gets `logits(tokens)[where]`."""
        device = next(self.model.parameters()).device
        tokens, where = tokens.to(device), where.to(device)
        with (
            forward_autocast(device),
            direct_model(self.model) as hf,
            frozen_weights_in(hf, forward_dtype()),
        ):
            causal_lm: Any = hf
            if type(hf).__name__ in PLAIN_HEADS and not is_hooked(self.model):
                hidden = causal_lm.base_model(input_ids=tokens).last_hidden_state
                out: Tensor = causal_lm.get_output_embeddings()(hidden[where])
            else:
                out = hf(input_ids=tokens).logits[where]
        return out.float()

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        max_new_tokens: int,
        eos_token_id: int,
        pad_token_id: int = 0,
        temperature: float = 0.0,
        generator: torch.Generator | None = None,
        steering: Mapping[int, Tensor] | None = None,
    ) -> list[list[int]]:
        if not prompts:
            raise ValueError("No prompts to generate from: pass a non-empty list of token lists.")
        with steered(self.model, steering):  # fires at the prefill and at every decoding step
            new = generate_hf_tokens(
                self.model,
                prompts,
                max_new_tokens,
                stop_token_ids=[eos_token_id],
                pad_token_id=pad_token_id,
                temperature=temperature,
                generator=generator,
            )
        # generate_hf_tokens stops before the stop token; keep it, as FusedNative does, so that
        # RL packs and scores the end of each reply
        return [[*r, eos_token_id] if len(r) < max_new_tokens else r for r in new]
