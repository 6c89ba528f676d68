"""Steering vectors: one check for both engines, and the bridge hooks that add them.

A steering map `{layer: vector}` adds each vector to that layer's output, the residual stream
after the block (`blocks.{layer}.hook_resid_post`), at every position the model runs: every
prompt token (pads included; they are masked as keys, so nothing reaches a real token from
them) and every generated token. `FusedNative` adds the vectors in its own fused layers;
a bridge booted from Hugging Face (`engine.HFEngine`) gets them through :func:`steered`, bridge
hooks that fire on each forward of its cached decoding too.

Example:
    >>> with steered(bridge, {1: vector}):                                # doctest: +SKIP
    ...     new = generate_hf_tokens(bridge, prompts, 16, [eot], pad)      # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import TransformerBridge

__all__ = ["check_steering", "steered"]


def check_steering(
    steering: Mapping[int, Tensor], n_layers: int, d_model: int
) -> dict[int, Float[Tensor, " d_model"]]:
    """The map with int layers and tensor vectors, or one ValueError naming the bad entry."""
    out = {}
    for layer, vec in steering.items():
        if not 0 <= int(layer) < n_layers:
            raise ValueError(
                f"Steering layer {layer} is out of range; the model has layers 0 to {n_layers - 1}."
            )
        vec = torch.as_tensor(vec)
        if tuple(vec.shape) != (d_model,):
            raise ValueError(
                f"The steering vector for layer {layer} has shape {tuple(vec.shape)}; it "
                f"must be [d_model] = [{d_model}]."
            )
        out[int(layer)] = vec
    return out


def _add(vec: Tensor) -> Callable[[Tensor, object], Tensor]:
    def hook(resid: Tensor, hook: object) -> Tensor:
        return resid + vec.to(device=resid.device, dtype=resid.dtype)

    return hook


@contextmanager
def steered(model: TransformerBridge, steering: Mapping[int, Tensor] | None) -> Iterator[None]:
    """While open, every forward of `model` adds each vector at its layer's `hook_resid_post`
    (checked first; None or an empty map adds no hook at all)."""
    if not steering:
        yield
        return
    vectors = check_steering(steering, int(model.cfg.n_layers), int(model.cfg.d_model))
    hooks = [(f"blocks.{layer}.hook_resid_post", _add(vec)) for layer, vec in vectors.items()]
    with model.hooks(fwd_hooks=hooks):
        yield
