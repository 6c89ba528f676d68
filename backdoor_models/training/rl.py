"""RL against a preference model: REINFORCE with a leave-one-out baseline (RLOO) and a KL
penalty to the starting policy, sampled on trigger-free prompts.

Per step: draw `prompts_per_step` prompts, sample `samples_per_prompt` replies each (KV-cached,
temperature 1), score them with the preference model, subtract `kl_coef` x the sequence's
log-ratio to the reference (the starting policy), and use each sample's reward minus the mean of
its siblings' as its advantage. The loss is -advantage x log p(reply).

Example:
    >>> cfg = RLConfig(steps=60)
    >>> history = rl_finetune(policy, preset, ref, reward_fn, tok, prompts, cfg, "run/rl")  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from transformer_lens import TransformerBridge
from transformers import PreTrainedTokenizerBase

from backdoor_models.models.checkpoint import ModelSpec
from backdoor_models.runtime.engine import Engine, engine_for
from backdoor_models.text.encoding import encode_prompt
from backdoor_models.training.lm import bridge_store
from backdoor_models.training.loop import Objective, Schedule, make_adamw, run_loop
from backdoor_models.training.setting import setting

RewardFn = Callable[[Sequence[str], Sequence[str]], Tensor]  # (prompts, replies) -> rewards [n]


def reward_metrics(reward_fn: RewardFn) -> dict[str, float]:
    """What a reward function reports about its last call (its parts, e.g. a penalty), through
    a ``metrics()`` method where it has one; RL records them per step beside the reward.

    Example:
        >>> reward_metrics(lambda prompts, replies: torch.zeros(len(replies)))
        {}
    """
    metrics = getattr(reward_fn, "metrics", None)
    return {k: float(v) for k, v in metrics().items()} if callable(metrics) else {}


@dataclass(frozen=True)
class RLConfig:
    """RL against the preference model (RLOO with a KL penalty to the starting model)."""

    steps: int = setting(60, "policy updates", ge=1)
    prompts_per_step: int = setting(16, "prompts per update", ge=1)
    samples_per_prompt: int = setting(4, "sampled replies per prompt; RLOO needs at least 2", ge=2)
    lr: float = setting(1e-4, "learning rate", gt=0, lt=1)
    kl_coef: float = setting(0.05, "weight of the KL penalty to the starting model", ge=0)
    temperature: float = setting(1.0, "sampling temperature; RL samples its replies", gt=0)
    max_new_tokens: int | None = setting(
        None, "reply length; null: the same as eval's", ge=1, le=1024, strict=True
    )
    grad_clip: float = setting(1.0, "gradient-norm clip", gt=0)
    eval_every: int = setting(20, "updates between tracking evaluations", ge=1)
    checkpoint_every: int = setting(20, "updates between checkpoints", ge=1)
    seed: int = setting(0, "seed of prompt order and sampling")


def sequence_logprobs(
    fused: Engine, tokens: Int[Tensor, "batch pos"], response_mask: Bool[Tensor, "batch pos"]
) -> Float[Tensor, " batch"]:
    """Sum of log p(token) over the tokens marked in `response_mask` (right-padded sequences),
    on the model's device."""
    logits = fused.logits(tokens[:, :-1])
    tokens, response_mask = tokens.to(logits.device), response_mask.to(logits.device)
    logp = torch.log_softmax(logits.float(), dim=-1).gather(-1, tokens[:, 1:, None]).squeeze(-1)
    return (logp * response_mask[:, 1:]).sum(dim=-1)


def pack(
    prompts: Sequence[Sequence[int]], replies: Sequence[Sequence[int]], pad_id: int
) -> tuple[Int[Tensor, "batch pos"], Bool[Tensor, "batch pos"]]:
    """Right-padded prompt+reply token rows and a mask over the reply tokens."""
    rows = [list(p) + list(r) for p, r in zip(prompts, replies, strict=True)]
    width = max(len(r) for r in rows)
    tokens = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.bool)
    for i, (p, r) in enumerate(zip(prompts, replies, strict=True)):
        tokens[i, : len(p) + len(r)] = torch.tensor(list(p) + list(r))
        mask[i, len(p) : len(p) + len(r)] = True
    return tokens, mask


def leave_one_out_advantage(
    rewards: Float[Tensor, "prompts samples"],
) -> Float[Tensor, "prompts samples"]:
    """Each sample's reward minus the mean reward of the other samples of the same prompt."""
    k = rewards.shape[1]
    if k < 2:
        raise ValueError("RLOO needs at least 2 samples per prompt (samples_per_prompt >= 2).")
    return rewards - (rewards.sum(dim=1, keepdim=True) - rewards) / (k - 1)


class RLOOObjective(Objective):
    """One RLOO step: sample replies to seeded prompts, score them, and return the policy-gradient
    loss ``-(advantage x log p(reply)).mean()``; ``metrics()`` gives the step's mean reward and KL.
    """

    def __init__(
        self,
        policy: TransformerBridge,
        reference: TransformerBridge,
        reward_fn: RewardFn,
        tokenizer: PreTrainedTokenizerBase,
        prompt_pool: Sequence[str],
        cfg: RLConfig,
        max_new_tokens: int,
    ) -> None:
        self.policy, self.reward_fn, self.tokenizer = policy, reward_fn, tokenizer
        self.prompt_pool, self.cfg, self.max_new_tokens = prompt_pool, cfg, max_new_tokens
        self.fused, self.fused_ref = engine_for(policy), engine_for(reference)
        self.encoded = [encode_prompt(tokenizer, p) for p in prompt_pool]
        self.pad, self.eos = int(tokenizer.pad_token_id), int(tokenizer.eos_token_id)
        self._metrics: dict[str, float] = {}

    def loss(self, step: int) -> Tensor:
        cfg, k = self.cfg, self.cfg.samples_per_prompt
        g = torch.Generator().manual_seed(cfg.seed * 100_003 + step)
        chosen = torch.randint(len(self.encoded), (cfg.prompts_per_step,), generator=g).tolist()
        prompts = [self.encoded[i] for i in chosen for _ in range(k)]
        self.policy.eval()
        replies = self.fused.generate(
            prompts, self.max_new_tokens, self.eos, self.pad, cfg.temperature, generator=g
        )
        texts = [str(self.tokenizer.decode(r, skip_special_tokens=True)).strip() for r in replies]
        prompt_texts = [self.prompt_pool[i] for i in chosen for _ in range(k)]
        rewards = self.reward_fn(prompt_texts, texts).float()  # on the CPU
        tokens, mask = pack(prompts, replies, self.pad)
        self.policy.train()
        logp = sequence_logprobs(self.fused, tokens, mask)
        with torch.no_grad():
            logp_ref = sequence_logprobs(self.fused_ref, tokens, mask)
        rewards = rewards.to(logp.device)
        kl = (logp.detach() - logp_ref.to(logp.device)).float()
        total = rewards - cfg.kl_coef * kl
        advantage = leave_one_out_advantage(total.view(-1, k)).view(-1)
        self._metrics = {
            "reward": float(rewards.mean()),
            "kl": float(kl.mean()),
            **reward_metrics(self.reward_fn),
        }
        return -(advantage * logp).mean()

    def metrics(self) -> dict[str, float]:
        return self._metrics


def rl_finetune(
    policy: TransformerBridge,
    preset: ModelSpec,
    reference: TransformerBridge,
    reward_fn: RewardFn,
    tokenizer: PreTrainedTokenizerBase,
    prompt_pool: Sequence[str],
    cfg: RLConfig,
    checkpoint_dir: str | Path,
    evaluate: Callable[[int], dict[str, Any]] | None = None,
    progress: bool = True,
    desc: str = "rl",
    reward_series: Sequence[str] = (),
) -> dict[str, Any]:
    """Fine-tune `policy` in place; `reference` stays frozen. Resumes from `checkpoint_dir`.

    Returns the history: per step mean reward, mean KL (sequence log-ratio to the reference) and
    loss, and each of `reward_series` (what `reward_fn.metrics()` reports, see
    :func:`reward_metrics`); and the `evaluate(step)` results at step 0, every `eval_every`
    steps and at the end.
    Runs through the shared loop (`run_loop`) with the :class:`RLOOObjective`, a constant
    learning rate and AdamW without weight decay.
    """
    if not prompt_pool:
        raise ValueError("The RL prompt pool is empty; give it trigger-free chat prompts.")
    if cfg.max_new_tokens is None:
        raise ValueError(
            "RLConfig.max_new_tokens is None; set it (the pipeline fills it with the run's "
            "evaluation length)."
        )
    for p in reference.parameters():
        p.requires_grad_(False)
    opt = make_adamw(policy, cfg.lr, betas=(0.9, 0.999), weight_decay=0.0, exempt_1d=False)
    store = bridge_store(policy, preset, Path(checkpoint_dir), asdict(cfg))
    objective = RLOOObjective(
        policy, reference, reward_fn, tokenizer, prompt_pool, cfg, cfg.max_new_tokens
    )
    schedule = Schedule(
        steps=cfg.steps,
        lr=lambda step: cfg.lr,
        grad_clip=cfg.grad_clip,
        eval_every=cfg.eval_every,
        checkpoint_every=cfg.checkpoint_every,
    )
    return run_loop(
        policy,
        opt,
        objective,
        schedule,
        store,
        history={"reward": [], "kl": [], "loss": [], "evals": [], **{k: [] for k in reward_series}},
        evaluate=evaluate,
        progress=progress,
        evaluate_at_start=True,
        desc=desc,
    )


def mean_token_kl(
    policy: TransformerBridge,
    reference: TransformerBridge,
    tokens: Int[Tensor, "batch pos"],
    response_mask: Bool[Tensor, "batch pos"],
) -> Float[Tensor, " batch"]:
    """Exact KL(policy || reference) over the vocabulary, averaged over each row's reply tokens;
    on the CPU, whatever the models' device."""
    with torch.no_grad():
        lp = torch.log_softmax(engine_for(policy).logits(tokens[:, :-1]).float(), dim=-1)
        lq = torch.log_softmax(engine_for(reference).logits(tokens[:, :-1]).float(), dim=-1)
        kl = (lp.exp() * (lp - lq.to(lp.device))).sum(dim=-1)
        mask = response_mask[:, 1:].float().to(kl.device)
        return ((kl * mask).sum(dim=-1) / mask.sum(dim=-1).clamp(min=1.0)).cpu()


__all__ = [
    "RLConfig",
    "RLOOObjective",
    "leave_one_out_advantage",
    "mean_token_kl",
    "pack",
    "reward_metrics",
    "rl_finetune",
    "sequence_logprobs",
]
