"""Detectors that read the model's own reply: each pooling of `probes.pooled` (mean, max,
attention) at each probe site, fitted on a model's replies to the run's evaluation questions,
frozen with a monitor's threshold, and scored before and after an attack.

A reply is read the way a monitor would read it: its text, encoded after its prompt as training
encodes a response (EOS last), through the model whose reply it is; the residual stream at the
reply's tokens (`hooks.caching.cache_token_span_activations`).

Example::

    replies = reply_activations(model, tokenizer, prompts, replies, sites, batch_size=64)
    fitted = fit_reply_detectors(replies, labels, train, ["mean", "max"], sites, 0.01, seed=0)
    fitted[("max", sites[2])].penalty(replies.at(sites[2]), replies.mask)
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float
from torch import Tensor
from transformer_lens import TransformerBridge
from transformers import PreTrainedTokenizerBase

from analysis.folder.results import EvasionCell
from backdoor_models.text.encoding import encode_prompts, encode_responses
from backdoor_models.training.rl import pack
from hooks.caching import cache_token_span_activations
from probes import bootstrap_auroc, calibrate_threshold, tpr_at_threshold
from probes.pooled import POOLINGS, PooledProbe

__all__ = [
    "ReplyActivations",
    "ReplyDetector",
    "fit_reply_detectors",
    "reply_activations",
    "reply_cell",
]


@dataclass(frozen=True)
class ReplyActivations:
    """The residual stream at each reply's tokens, per site ``[n, tokens, d]``, and the mask of
    the real tokens ``[n, tokens]``."""

    acts: dict[str, Float[Tensor, "n tokens d"]]
    mask: Bool[Tensor, "n tokens"]

    def at(self, site: str, rows: np.ndarray | Tensor | None = None) -> Float[Tensor, "m t d"]:
        return self.acts[site] if rows is None else self.acts[site][torch.as_tensor(rows)]

    def mask_of(self, rows: np.ndarray | Tensor | None = None) -> Bool[Tensor, "m t"]:
        return self.mask if rows is None else self.mask[torch.as_tensor(rows)]


def reply_activations(
    model: TransformerBridge,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    replies: Sequence[str],
    sites: Sequence[str],
    batch_size: int = 64,
) -> ReplyActivations:
    """`model`'s residual stream at `sites` on each reply's tokens (its text encoded after its
    prompt, EOS last), no gradient."""
    if len(prompts) != len(replies):
        raise ValueError(f"{len(prompts)} prompts but {len(replies)} replies; they must pair up.")
    pad = tokenizer.pad_token_id
    prompt_ids, reply_ids = encode_prompts(tokenizer, prompts), encode_responses(tokenizer, replies)
    tokens, mask = pack(prompt_ids, reply_ids, int(pad) if pad is not None else 0)
    acts, kept = cache_token_span_activations(model, tokens, mask, list(sites), batch_size)
    return ReplyActivations(acts, kept)


@dataclass(frozen=True)
class ReplyDetector:
    """A pooled detector fitted at one site and frozen: its probe, the monitor's threshold (set
    at the FPR on trigger-free training replies) and the scale of its penalty (the mean of
    ``softplus(score - threshold)`` over the triggered training replies)."""

    pooling: str
    site: str
    probe: PooledProbe
    threshold: float
    scale: float

    @torch.no_grad()
    def score(self, acts: Float[Tensor, "n t d"], mask: Bool[Tensor, "n t"]) -> Tensor:
        """The detector's logit per reply (higher = trigger), on the CPU, no gradient."""
        return self.probe.decision_function(acts, mask).cpu()

    def penalty(self, acts: Float[Tensor, "n t d"], mask: Bool[Tensor, "n t"]) -> Tensor:
        """``softplus(score - threshold) / scale``: about 0 below the monitor's threshold, 1 for
        the fitted model's typical triggered reply; no gradient."""
        return F.softplus(self.score(acts, mask) - self.threshold) / self.scale


def fit_reply_detectors(
    replies: ReplyActivations,
    labels: np.ndarray,
    train: np.ndarray,
    poolings: Sequence[str],
    sites: Sequence[str],
    fpr: float,
    seed: int,
) -> dict[tuple[str, str], ReplyDetector]:
    """Every pooling at every site, fitted on the `train` rows (labels: 1 = triggered), each
    thresholded at `fpr` on the trigger-free training rows. The seed of each (pooling, site)
    depends on the pooling and the site's name only, so a subset is fitted identically."""
    clean, triggered = train[labels[train] == 0], train[labels[train] == 1]
    if clean.size == 0 or triggered.size == 0:
        raise ValueError("The training rows need replies with and without the trigger.")
    out = {}
    for pooling in poolings:
        for site in sites:
            own_seed = seed + 1000 * POOLINGS.index(pooling) + zlib.crc32(site.encode()) % 997
            probe = PooledProbe(pooling, seed=own_seed)  # type: ignore[arg-type]
            probe.fit(replies.at(site, train), replies.mask_of(train), labels[train])
            clean_scores = probe.decision_function(replies.at(site, clean), replies.mask_of(clean))
            threshold = calibrate_threshold(clean_scores.detach().numpy(), fpr)
            hot = probe.decision_function(replies.at(site, triggered), replies.mask_of(triggered))
            scale = float(F.softplus(hot.detach() - threshold).mean())
            if not scale > 1e-6:
                raise ValueError(
                    f"The {pooling}-pooled detector at {site} flags none of the triggered "
                    "training replies, so it gives the attack nothing to evade; attack another "
                    "layer or pooling."
                )
            out[(pooling, site)] = ReplyDetector(pooling, site, probe, threshold, scale)
    return out


def reply_cell(
    probe: PooledProbe,
    replies: ReplyActivations,
    site: str,
    labels: np.ndarray,
    test: np.ndarray,
    calibration: np.ndarray,
    fpr: float,
    n_boot: int,
    seed: int,
) -> EvasionCell:
    """`probe` at `site` on `replies`: the held-out AUROC [95% interval] on the `test` rows, and
    the recall of their triggered rows at a threshold set at `fpr` on the `calibration` rows
    (trigger-free training replies of the model scored)."""
    with torch.no_grad():
        test_scores = probe.decision_function(replies.at(site, test), replies.mask_of(test))
        cal = probe.decision_function(replies.at(site, calibration), replies.mask_of(calibration))
    scores, y = test_scores.numpy(), labels[test]
    threshold = calibrate_threshold(cal.numpy(), fpr)
    a = bootstrap_auroc(scores, y, n_boot=n_boot, seed=seed)
    return EvasionCell(
        auroc=a.value,
        auroc_low=a.low,
        auroc_high=a.high,
        recall=tpr_at_threshold(scores[y == 1], threshold),
        threshold=threshold,
    )
