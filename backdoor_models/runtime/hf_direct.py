"""The Hugging Face model inside a bridge, without the bridge's wrappers, while nothing hooks it.

`TransformerBridge.boot_transformers` wraps the HF model's submodules in place: each attention,
MLP, norm, block and linear layer becomes a TransformerLens component around the original
(`_original_component`), with hook points on its inputs and outputs. That is what makes
`run_with_cache` and hooks work, and it costs Python calls: on SmolLM2-135M a forward makes
about six times as many module calls as the plain HF model, which showed as 8-17% of a decoding
step at one thread (docs/speed.md). Training and decoding that no hook looks at do not need
them, nor the eager attention that `load_base` asks for so that attention patterns can be
cached: while the wrappers are out, a model that supports it runs PyTorch's fused
`scaled_dot_product_attention` (on SmolLM2 in bf16, sampling 64 prompts x 4 took 15-20 s
against 26-30 s, greedy decoding 7-8 s against 10-11 s; one thread).

:func:`direct_model` swaps every wrapper back for the module it wraps for the duration of a
`with` block and restores them after (also on an error). LoRA layers live inside the wrapped
linears, so they apply either way, and the parameters are the same objects: gradients reach the
optimizer's tensors. When anything is hooked (a hook point with a hook, a steering vector, a
`bridge.hooks(...)` block), it yields the bridge's own HF model instead, so hooks see what they
always saw.

Example:
    >>> with direct_model(bridge) as hf:                          # doctest: +SKIP
    ...     logits = hf(input_ids=tokens).logits
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from torch import nn
from transformer_lens import TransformerBridge
from transformer_lens.hook_points import HookPoint

__all__ = ["direct_model", "is_hooked"]


def is_hooked(bridge: nn.Module) -> bool:
    """Whether any hook point of `bridge` has a hook (forward, pre-forward or backward)."""
    return any(
        m._forward_hooks or m._forward_pre_hooks or m._backward_hooks
        for m in bridge.modules()
        if isinstance(m, HookPoint)
    )


def _wrappers(model: nn.Module) -> list[tuple[nn.Module, str, nn.Module]]:
    """(parent, attribute, wrapper) of every bridge component under `model`, outermost first."""
    found: list[tuple[nn.Module, str, nn.Module]] = []

    def walk(module: nn.Module) -> None:
        for name, child in module.named_children():
            inner = getattr(child, "_original_component", None)
            if isinstance(inner, nn.Module):
                found.append((module, name, child))
                walk(inner)
            else:
                walk(child)

    walk(model)
    return found


@contextmanager
def direct_model(bridge: TransformerBridge) -> Iterator[nn.Module]:
    """The bridge's HF model with its wrappers swapped out while the block runs, or, when
    anything hooks the bridge, the bridge's HF model as it is."""
    model = getattr(bridge, "original_model", None)
    if not isinstance(model, nn.Module):
        raise TypeError("direct_model needs a bridge booted from a Hugging Face model.")
    if is_hooked(bridge):
        yield model
        return
    swapped = _wrappers(model)
    config: Any = model.config
    attention = config._attn_implementation
    for parent, name, wrapper in swapped:
        setattr(parent, name, wrapper._original_component)
    if attention == "eager" and getattr(model, "_supports_sdpa", False):
        config._attn_implementation = "sdpa"  # the fused kernel: no pattern is read here
    try:
        yield model
    finally:
        config._attn_implementation = attention
        for parent, name, wrapper in reversed(swapped):
            setattr(parent, name, wrapper)
