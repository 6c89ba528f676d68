"""Attention masks that survive autocast on bridge-booted Hugging Face models.

Hugging Face builds the additive attention mask in the model's dtype (float32), with
`finfo(float32).min` where a key is hidden. Under bf16 autocast, TransformerLens's attention
bridge casts that mask to the scores' dtype (bf16), and `finfo(float32).min` is beyond bf16's
range: it becomes -inf. The leading pads of a left-padded row then see no key at all, their
softmax is NaN, and through the pads' values (0 x NaN = NaN) so is every later position of the
row: sampling raised "probability tensor contains either inf, nan or element < 0" and greedy
decoding silently returned token 0. :func:`guard_attention_masks` clamps a floating mask to the
autocast dtype's own finite minimum before the bridge casts it, so a hidden key is still
hidden (its weight underflows to exactly 0) and a row with no visible key stays finite.

Example:
    >>> bridge = TransformerBridge.boot_transformers(path, hf_model=hf_model)  # doctest: +SKIP
    >>> guard_attention_masks(bridge)                                          # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def _clamp_mask(
    module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    mask = kwargs.get("attention_mask")
    if isinstance(mask, torch.Tensor) and mask.is_floating_point():
        device_type = mask.device.type
        if torch.is_autocast_enabled(device_type):
            low = torch.finfo(torch.get_autocast_dtype(device_type)).min
            kwargs["attention_mask"] = mask.clamp(min=low)
    return args, kwargs


def guard_attention_masks(bridge: nn.Module) -> int:
    """Clamp each attention bridge's floating mask to the autocast dtype's range while autocast
    is on (a no-op otherwise); returns how many attention modules were guarded."""
    attention = [m for m in bridge.modules() if hasattr(m, "_apply_reconstruct_attention_mask")]
    for module in attention:
        module.register_forward_pre_hook(_clamp_mask, with_kwargs=True)
    return len(attention)
