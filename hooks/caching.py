"""Cache activations at chosen hook names and token positions, keeping only what was asked for.

Each wanted hook stores just the selected position of each prompt (a `[batch, ...]` slice, moved
to the CPU), and the forward pass stops after the last block that holds a wanted hook.

Example:
    >>> acts = cache_activations(model, prompts, probe_sites(model), position="last")  # doctest: +SKIP
    >>> acts["blocks.2.hook_resid_post"].shape                                             # doctest: +SKIP
    torch.Size([400, 128])
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Sequence
from typing import Literal

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens import TransformerBridge

Position = Literal["last"] | int | Sequence[int]
_BLOCK = re.compile(r"^blocks\.(\d+)\.")
_NO_POSITION_DIM = ("hook_pattern", "hook_attn_scores")


def resid_post_names(model: TransformerBridge) -> list[str]:
    """`blocks.{L}.hook_resid_post` for every layer, in order (no embedding: see
    :func:`probe_sites` for the sites a run caches)."""
    return [f"blocks.{layer}.hook_resid_post" for layer in range(model.cfg.n_layers)]


EMBED_SITE = "blocks.0.hook_resid_pre"


def probe_sites(model: TransformerBridge) -> list[str]:
    """The residual-stream sites a run caches, probes, patches and reports, in this order: the
    embedding (`blocks.0.hook_resid_pre`, labelled `embed`), then each block's output
    (`blocks.{L}.hook_resid_post`, labelled `L{L}`). A run's activations files, its
    results.json `sites` lists and the patching grid's rows all use this order, so index `i`
    means the same site everywhere.

    Example:
        >>> probe_sites(model)                                  # doctest: +SKIP
        ['blocks.0.hook_resid_pre', 'blocks.0.hook_resid_post', 'blocks.1.hook_resid_post']
    """
    return [EMBED_SITE, *resid_post_names(model)]


def check_hook_names(model: TransformerBridge, names: Sequence[str]) -> None:
    """Raise one error listing every unknown hook name, each with its closest valid names."""
    if not names:
        raise ValueError("No hook names given; pass e.g. probe_sites(model).")
    valid = set(model.hook_dict)
    problems = []
    n_layers = int(model.cfg.n_layers)
    for name in names:
        layer = _BLOCK.match(name)
        if layer and int(layer.group(1)) >= n_layers:
            problems.append(
                f"{name!r}: layer {layer.group(1)} is out of range (the model has {n_layers} layers, "
                f"blocks.0 to blocks.{n_layers - 1})"
            )
        elif name not in valid:
            close = difflib.get_close_matches(name, valid, n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            problems.append(f"{name!r}{hint}")
        elif name.endswith(_NO_POSITION_DIM):
            problems.append(
                f"{name!r} has no single position dimension (it is [batch, head, query, key]); "
                "cache it with model.run_with_cache instead"
            )
    if problems:
        raise ValueError("Unknown or unsupported hook names: " + "; ".join(problems) + ".")


def tokenize_prompts(
    model: TransformerBridge, prompts: Sequence[str]
) -> tuple[Int[Tensor, "n pos"], Int[Tensor, " n"]]:
    """Right-padded token ids (BOS first) and the length of each prompt.

    A model that carries a `prompt_tokenizer` (a pretrained base, whose prompts go in its chat
    template) is tokenized with it; any other with its own `tokenizer`.
    """
    if not prompts:
        raise ValueError("The prompt list is empty; pass at least one prompt.")
    tok = getattr(model, "prompt_tokenizer", None) or model.tokenizer
    rows = []
    for p in prompts:
        ids = list(tok(p, add_special_tokens=True)["input_ids"])
        if tok.bos_token_id is not None and (not ids or ids[0] != tok.bos_token_id):
            ids = [tok.bos_token_id, *ids]
        rows.append(ids)
    lengths = torch.tensor([len(r) for r in rows])
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    tokens = torch.full((len(rows), int(lengths.max())), pad, dtype=torch.long)
    for i, r in enumerate(rows):
        tokens[i, : len(r)] = torch.tensor(r)
    return tokens, lengths


def prompt_token_ids(model: TransformerBridge, prompts: Sequence[str]) -> list[list[int]]:
    """Each prompt's token ids as :func:`tokenize_prompts` writes them (BOS first), unpadded: what
    the text-only baseline (`probes.text_baseline`) reads."""
    tokens, lengths = tokenize_prompts(model, prompts)
    return [row[:n].tolist() for row, n in zip(tokens, lengths.tolist(), strict=True)]


def resolve_positions(position: Position, lengths: Int[Tensor, " n"]) -> Int[Tensor, " n"]:
    """Absolute token index per prompt: "last" (last prompt token), an int (negative counts from
    each prompt's end), or one index per prompt. Out-of-range positions raise."""
    n = lengths.shape[0]
    if isinstance(position, str):
        if position != "last":
            raise ValueError(
                f"Unknown position {position!r}; use 'last', an int or a list of ints."
            )
        return lengths - 1
    if isinstance(position, int):
        idx = torch.full((n,), position) if position >= 0 else lengths + position
    else:
        idx = torch.as_tensor(list(position), dtype=torch.long)
        if idx.shape != (n,):
            raise ValueError(f"Got {idx.numel()} positions for {n} prompts; give one per prompt.")
    bad = ((idx < 0) | (idx >= lengths)).nonzero().flatten()
    if bad.numel():
        i = int(bad[0])
        raise ValueError(
            f"Token position {position!r} is outside prompt {i} (length {int(lengths[i])}) and "
            f"{bad.numel() - 1} other prompts; positions must lie within every prompt."
        )
    return idx


def _stop_layer(names: Sequence[str], n_layers: int) -> int | None:
    layers = []
    for name in names:
        m = _BLOCK.match(name)
        if m:
            layers.append(int(m.group(1)))
        elif name not in ("hook_embed", "hook_pos_embed"):
            return None  # e.g. ln_final / unembed hooks need the whole model
    # stop_at_layer=n_layers still runs every block but skips ln_final and the unembedding,
    # which cost about two-thirds of a layer on the small preset and are not needed here
    return max(layers, default=0) + 1


def _grab(
    sink: list[Tensor], rows: Int[Tensor, " batch"], pos: Int[Tensor, " batch"]
) -> Callable[[Tensor, object], None]:
    """A hook that keeps only `act[rows, pos]` (one position per prompt), on the CPU."""

    def hook(act: Tensor, hook: object) -> None:
        sink.append(act[rows, pos].detach().float().cpu())

    return hook


@torch.no_grad()
def cache_activations(
    model: TransformerBridge,
    prompts: Sequence[str],
    hook_names: Sequence[str],
    position: Position = "last",
    batch_size: int = 64,
    progress: bool = False,
) -> dict[str, Float[Tensor, "n ..."]]:
    """Activations of `hook_names` at one token position per prompt, as CPU float32 tensors.

    Prompts are tokenized with BOS first and right-padded, so under causal attention the padding
    never reaches a real token. Raises on unknown hooks, out-of-range positions, and NaN/inf.
    """
    tokens, lengths = tokenize_prompts(model, prompts)
    return cache_activations_from_tokens(
        model, tokens, lengths, hook_names, position, batch_size, progress
    )


@torch.no_grad()
def cache_activations_from_tokens(
    model: TransformerBridge,
    tokens: Int[Tensor, "n pos"],
    lengths: Int[Tensor, " n"],
    hook_names: Sequence[str],
    position: Position = "last",
    batch_size: int = 64,
    progress: bool = False,
) -> dict[str, Float[Tensor, "n ..."]]:
    """`cache_activations` for prompts already tokenized: right-padded `tokens` (BOS first) and
    the length of each row, as `tokenize_prompts` returns them."""
    check_hook_names(model, hook_names)
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
    if tokens.ndim != 2 or lengths.shape != (tokens.shape[0],):
        raise ValueError(
            f"tokens must be [n, pos] with one length per row; got tokens {tuple(tokens.shape)} and "
            f"lengths {tuple(lengths.shape)}."
        )
    if tokens.shape[0] == 0:
        raise ValueError("The prompt list is empty; pass at least one prompt.")
    idx = resolve_positions(position, lengths)
    # longest first, so each batch pads to rows of about its own length (on SmolLM2's
    # evaluation set, 17% fewer token positions than in the set's order); rows are put back
    order = torch.argsort(lengths, descending=True, stable=True)
    tokens, lengths, idx = tokens[order], lengths[order], idx[order]
    stop = _stop_layer(hook_names, model.cfg.n_layers)
    device = next(model.parameters()).device
    store: dict[str, list[Tensor]] = {name: [] for name in hook_names}
    was_training = model.training
    model.eval()
    try:
        starts = range(0, int(tokens.shape[0]), batch_size)
        for start in tqdm(starts, desc="cache", disable=not progress):
            sl = slice(start, start + batch_size)
            width = int(lengths[sl].max())
            batch_tokens = tokens[sl, :width].to(device)
            rows = torch.arange(batch_tokens.shape[0], device=device)
            pos = idx[sl].to(device)

            model.run_with_hooks(
                batch_tokens,
                fwd_hooks=[(name, _grab(store[name], rows, pos)) for name in hook_names],
                stop_at_layer=stop,
                return_type=None,
            )
    finally:
        model.train(was_training)
    back = torch.argsort(order)
    out = {name: torch.cat(chunks)[back] for name, chunks in store.items()}
    for name, acts in out.items():
        if not torch.isfinite(acts).all():
            raise FloatingPointError(
                f"Activations at {name} contain NaN or inf; the model's weights are probably "
                "diverged (check the training loss) or the input has out-of-range tokens."
            )
    return out


def _grab_span(
    sink: list[Tensor], index: Int[Tensor, "batch span"], keep: Bool[Tensor, "batch span"]
) -> Callable[[Tensor, object], None]:
    """A hook that keeps, per row, the positions `index` (zeroed where not `keep`), on the CPU."""

    def hook(act: Tensor, hook: object) -> None:
        picked = act.gather(1, index[..., None].expand(-1, -1, act.shape[-1]))
        sink.append((picked * keep[..., None]).detach().float().cpu())

    return hook


@torch.no_grad()
def cache_token_span_activations(
    model: TransformerBridge,
    tokens: Int[Tensor, "n pos"],
    span_mask: Bool[Tensor, "n pos"],
    hook_names: Sequence[str],
    batch_size: int = 64,
) -> tuple[dict[str, Float[Tensor, "n span d"]], Bool[Tensor, "n span"]]:
    """Activations of `hook_names` at every position marked in `span_mask` (e.g. a reply's
    tokens after its prompt), left-aligned per row, and the mask of the real ones.

    `tokens` are right-padded rows (BOS first); under causal attention the padding after a row
    never reaches its marked positions. Each row needs at least one marked position.

    Example:
        >>> acts, mask = cache_token_span_activations(model, tokens, reply_mask, probe_sites(model))  # doctest: +SKIP
        >>> acts["blocks.1.hook_resid_post"].shape, mask.shape                                          # doctest: +SKIP
        (torch.Size([8, 12, 128]), torch.Size([8, 12]))
    """
    check_hook_names(model, hook_names)
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
    if tokens.ndim != 2 or span_mask.shape != tokens.shape:
        raise ValueError(
            f"tokens and span_mask must both be [n, pos]; got {tuple(tokens.shape)} and "
            f"{tuple(span_mask.shape)}."
        )
    span_mask = span_mask.bool()
    counts = span_mask.sum(1)
    if tokens.shape[0] == 0 or bool((counts == 0).any()):
        raise ValueError(
            "Every row needs at least one marked token (a reply of one token or more)."
        )
    width_all = int(counts.max())
    # each row's marked positions, left-aligned; padding points at position 0 and is zeroed
    order = torch.argsort((~span_mask).to(torch.int8), dim=1, stable=True)[:, :width_all]
    keep = torch.arange(width_all)[None, :] < counts[:, None]
    index = torch.where(keep, order, 0)
    ends = torch.where(span_mask, torch.arange(tokens.shape[1])[None, :] + 1, 0).max(1).values
    stop = _stop_layer(hook_names, model.cfg.n_layers)
    device = next(model.parameters()).device
    store: dict[str, list[Tensor]] = {name: [] for name in hook_names}
    was_training = model.training
    model.eval()
    try:
        for start in range(0, int(tokens.shape[0]), batch_size):
            sl = slice(start, start + batch_size)
            width = int(ends[sl].max())
            model.run_with_hooks(
                tokens[sl, :width].to(device),
                fwd_hooks=[
                    (name, _grab_span(store[name], index[sl].to(device), keep[sl].to(device)))
                    for name in hook_names
                ],
                stop_at_layer=stop,
                return_type=None,
            )
    finally:
        model.train(was_training)
    out = {name: torch.cat(chunks) for name, chunks in store.items()}
    for name, acts in out.items():
        if not torch.isfinite(acts).all():
            raise FloatingPointError(
                f"Activations at {name} contain NaN or inf; the model's weights are probably "
                "diverged (check the training loss) or the input has out-of-range tokens."
            )
    return out, keep
