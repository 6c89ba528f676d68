"""The residual stream read with gradients through bridge hooks, at the sites the probes are
cached at (`hooks.caching.probe_sites`), so what a gradient-based attacker sees is what a probe
sees.

Example:
    >>> acts = resid_post_at(model, tokens, lengths, [1, 3])   # doctest: +SKIP
    >>> acts[1].shape                                          # doctest: +SKIP
    torch.Size([8, 128])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import TransformerBridge

__all__ = ["resid_post_at"]


def resid_post_at(
    model: TransformerBridge,
    tokens: Int[Tensor, "n pos"],
    lengths: Int[Tensor, " n"],
    layers: Sequence[int],
) -> dict[int, Float[Tensor, "n d_model"]]:
    """The residual stream after each of `layers` at each row's last prompt token (index
    ``lengths - 1`` of right-padded `tokens`), with gradients, through bridge hooks."""
    captured: dict[int, Tensor] = {}

    def keep(layer: int) -> Callable[[Tensor, object], Tensor]:
        def hook(resid: Tensor, hook: object) -> Tensor:
            captured[layer] = resid
            return resid

        return hook

    device = next(model.parameters()).device
    hooks = [(f"blocks.{layer}.hook_resid_post", keep(layer)) for layer in sorted(set(layers))]
    with model.hooks(fwd_hooks=hooks):
        model(tokens.to(device), return_type=None)
    rows = torch.arange(tokens.shape[0], device=device)
    last = (lengths - 1).to(device)
    return {layer: captured[layer][rows, last].float() for layer in layers}
