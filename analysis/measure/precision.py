"""Forward passes of the analysis in the run's precision.

A run's training and generation forwards run under `model.autocast`
(`backdoor_models.models.device.autocast_forwards`). The analysis reads the same model the same way:
activation caching, the contrast pairs and the ask-the-model scores run their forwards under
that autocast (bf16 on a pretrained base on a CPU with bf16 units, nothing on the native
models), and what they keep is float32. Probes, projections and metrics are computed on those
float32 tensors, outside it.

Example:
    >>> acts = cache_in_run_precision(model, prompts, probe_sites(model))   # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager

from jaxtyping import Float
from torch import Tensor
from transformer_lens import TransformerBridge

from backdoor_models.models.device import forward_autocast
from hooks.caching import Position, cache_activations

__all__ = ["cache_in_run_precision", "run_precision"]


def run_precision(model: TransformerBridge) -> AbstractContextManager[object]:
    """The autocast the run's forwards use, on `model`'s device (a no-op in float32 runs)."""
    return forward_autocast(next(model.parameters()).device)


def cache_in_run_precision(
    model: TransformerBridge,
    prompts: Sequence[str],
    hook_names: Sequence[str],
    position: Position = "last",
    batch_size: int = 64,
) -> dict[str, Float[Tensor, "n ..."]]:
    """`hooks.caching.cache_activations` with its forwards in the run's precision; float32 out."""
    with run_precision(model):
        return cache_activations(model, prompts, hook_names, position, batch_size)
