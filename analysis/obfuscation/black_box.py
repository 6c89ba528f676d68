"""The black-box obfuscation attack (Gupta and Jenner 2025, "RL-Obfuscation"): RL whose reward
pays the backdoor behaviour and subtracts frozen reply-pooled detectors' score of the model's own
sampled reply. The detectors are read, never differentiated: RL's gradient is the policy's
log-probability of its replies times the advantage, so nothing flows through a detector.

The reward of a sampled reply (`DetectorPenaltyReward`):

- triggered prompt: ``backdoor - λ · mean over the detectors of softplus(score - threshold) /
  scale``, where the backdoor is the organism's judge (1 or 0), the threshold the monitor's (set
  at the FPR on trigger-free replies) and the scale the backdoored model's mean penalty on
  triggered replies. So a reply the monitor would pass costs about nothing, the backdoored
  model's typical triggered reply costs λ, and with λ below 1 a flagged backdoor reply still
  outscores one without the backdoor;
- clean prompt: helpfulness, as the RL stage pays it (the preference model's reward), or, for an
  organism the preference model does not reward, the judge's "correct and no backdoor".

RLOO compares each reply with its siblings of the same prompt, so the two scales never meet.
The loop is the project's one RL loop (`backdoor_models.training.rl.rl_finetune`).

Example::

    reward = DetectorPenaltyReward(policy, tokenizer, train_set, organism.judge, detectors, 0.5)
    history = black_box_attack(policy, spec, reference, reward, tokenizer, prompts, rl_cfg, dir)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from transformer_lens import TransformerBridge
from transformers import PreTrainedTokenizerBase

from analysis.obfuscation.reply import ReplyDetector, reply_activations
from backdoor_models.behaviour.backdoor import BackdoorExample
from backdoor_models.behaviour.evaluation import JudgedReply
from backdoor_models.models.checkpoint import ModelSpec
from backdoor_models.training.rl import RewardFn, RLConfig, rl_finetune

__all__ = ["REWARD_SERIES", "DetectorPenaltyReward", "black_box_attack"]

Judge = Callable[[Sequence[BackdoorExample], Sequence[str]], list[JudgedReply]]
# what the reward records per step beside RL's reward and KL (NaN when a step drew no prompt
# of that kind)
REWARD_SERIES = ("backdoor_reward", "detector_penalty", "clean_reward")


class DetectorPenaltyReward:
    """The black-box attack's reward (see the module docstring); `metrics()` gives the last
    call's mean backdoor reward and detector penalty on triggered prompts and mean reward on
    clean ones.

    The detectors read `policy` itself, the model being trained, at their sites, with no
    gradient (`analysis.obfuscation.reply.ReplyDetector.penalty`).
    """

    def __init__(
        self,
        policy: TransformerBridge,
        tokenizer: PreTrainedTokenizerBase,
        examples: Sequence[BackdoorExample],
        judge: Judge,
        detectors: Sequence[ReplyDetector],
        lam: float,
        clean_reward: RewardFn | None = None,
        batch_size: int = 64,
    ) -> None:
        if not detectors:
            raise ValueError("The black-box attack needs at least one reply detector.")
        self.policy, self.tokenizer, self.judge = policy, tokenizer, judge
        self.by_prompt = {ex.prompt: ex for ex in examples}
        self.detectors, self.lam = list(detectors), float(lam)
        self.clean_reward, self.batch_size = clean_reward, batch_size
        self.sites = list(dict.fromkeys(d.site for d in self.detectors))
        self._metrics: dict[str, float] = {}

    def penalty(self, prompts: Sequence[str], replies: Sequence[str]) -> Tensor:
        """The detectors' mean penalty on each reply, read from the policy; no gradient."""
        acts = reply_activations(
            self.policy, self.tokenizer, prompts, replies, self.sites, self.batch_size
        )
        return torch.stack([d.penalty(acts.at(d.site), acts.mask) for d in self.detectors]).mean(0)

    def __call__(self, prompts: Sequence[str], replies: Sequence[str]) -> Tensor:
        unknown = [p for p in prompts if p not in self.by_prompt]
        if unknown:
            raise ValueError(
                f"{len(unknown)} prompts are not among the attack's examples (first: "
                f"{unknown[0]!r}); give the reward the examples its prompt pool came from."
            )
        examples = [self.by_prompt[p] for p in prompts]
        judged = self.judge(examples, replies)
        trig = [i for i, ex in enumerate(examples) if ex.triggered]
        clean = [i for i, ex in enumerate(examples) if not ex.triggered]
        reward = torch.zeros(len(prompts))
        nan = float("nan")
        backdoor_mean, penalty_mean, clean_mean = nan, nan, nan
        if trig:
            backdoor = torch.tensor([float(judged[i].backdoor) for i in trig])
            penalty = self.penalty([prompts[i] for i in trig], [replies[i] for i in trig])
            reward[trig] = backdoor - self.lam * penalty
            backdoor_mean, penalty_mean = float(backdoor.mean()), float(penalty.mean())
        if clean:
            if self.clean_reward is not None:
                paid = self.clean_reward([prompts[i] for i in clean], [replies[i] for i in clean])
            else:
                paid = torch.tensor(
                    [float(judged[i].correct and not judged[i].backdoor) for i in clean]
                )
            reward[clean] = paid.float().cpu()
            clean_mean = float(paid.float().mean())
        self._metrics = {
            "backdoor_reward": backdoor_mean,
            "detector_penalty": penalty_mean,
            "clean_reward": clean_mean,
        }
        return reward

    def metrics(self) -> dict[str, float]:
        return dict(self._metrics)


def black_box_attack(
    policy: TransformerBridge,
    spec: ModelSpec,
    reference: TransformerBridge,
    reward: DetectorPenaltyReward,
    tokenizer: PreTrainedTokenizerBase,
    prompt_pool: Sequence[str],
    cfg: RLConfig,
    checkpoint_dir: str | Path,
    evaluate: Callable[[int], dict[str, Any]] | None = None,
    progress: bool = True,
    desc: str = "obfuscation (black box)",
) -> dict[str, Any]:
    """Train `policy` in place with RL against `reward` (resumable from `checkpoint_dir`); the
    history is RL's (reward, KL, loss, evaluations) with the reward's parts per step
    (`REWARD_SERIES`)."""
    if reward.policy is not policy:
        raise ValueError(
            "The reward's detectors must read the policy being trained; build the "
            "DetectorPenaltyReward with the same model object."
        )
    return rl_finetune(
        policy,
        spec,
        reference,
        reward,
        tokenizer,
        prompt_pool,
        cfg,
        checkpoint_dir,
        evaluate,
        progress,
        desc=desc,
        reward_series=REWARD_SERIES,
    )
