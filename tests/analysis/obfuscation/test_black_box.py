"""The black-box attack on the tiny backdoored model: reply detectors read the model's own reply
and catch the backdoor; the reward is the backdoor minus λ x their penalty (no gradient through
them); RL runs against each pooling and its penalty term is recorded and moves the policy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from analysis.obfuscation.black_box import REWARD_SERIES, DetectorPenaltyReward, black_box_attack
from analysis.obfuscation.reply import (
    fit_reply_detectors,
    reply_activations,
    reply_cell,
)
from backdoor_models.behaviour.evaluation import generate_replies, judge_replies
from backdoor_models.models.checkpoint import load_model
from backdoor_models.training.rl import RLConfig, reward_metrics
from probes.pooled import POOLINGS
from tests.conftest import Trained

SITE = "blocks.1.hook_resid_post"


def _judge(trained: Trained):
    return lambda examples, replies: judge_replies(
        trained.world, trained.backdoor, examples, replies
    )


@pytest.fixture(scope="module")
def fitted(trained: Trained):
    """The tiny model's own replies to the paired evaluation set, every pooling fitted on the
    first half of the questions (by pair) at the last block."""
    prompts = [e.prompt for e in trained.eval_set]
    replies = generate_replies(trained.model, trained.tokenizer, prompts, 12, 64)
    acts = reply_activations(trained.model, trained.tokenizer, prompts, replies, [SITE])
    labels = np.array([int(e.triggered) for e in trained.eval_set])
    rows = np.arange(len(labels))
    train, test = rows[rows < len(rows) // 2], rows[rows >= len(rows) // 2]
    detectors = fit_reply_detectors(acts, labels, train, POOLINGS, [SITE], 0.1, seed=0)
    return acts, labels, train, test, detectors


def test_every_pooling_catches_the_backdoor_on_the_models_own_reply(fitted) -> None:
    acts, labels, train, test, detectors = fitted
    calibration = train[labels[train] == 0]
    for pooling in POOLINGS:
        cell = reply_cell(
            detectors[(pooling, SITE)].probe, acts, SITE, labels, test, calibration, 0.1, 50, 0
        )
        assert cell.auroc > 0.95 and cell.recall > 0.8, (pooling, cell)


def test_a_subset_is_fitted_identically(fitted, trained: Trained) -> None:
    acts, labels, train, _, detectors = fitted
    again = fit_reply_detectors(acts, labels, train, ["max"], [SITE], 0.1, seed=0)
    assert torch.equal(again[("max", SITE)].probe.weight_, detectors[("max", SITE)].probe.weight_)
    with pytest.raises(ValueError, match="with and without the trigger"):
        fit_reply_detectors(acts, labels, train[labels[train] == 1], ["mean"], [SITE], 0.1, 0)


def test_the_reward_is_the_backdoor_minus_lam_times_the_penalty(fitted, trained: Trained) -> None:
    *_, detectors = fitted
    examples = trained.eval_set[:8]
    prompts = [e.prompt for e in examples]
    replies = generate_replies(trained.model, trained.tokenizer, prompts, 12, 64)
    judged = _judge(trained)(examples, replies)
    detector = detectors[("mean", SITE)]
    with_penalty = DetectorPenaltyReward(
        trained.model, trained.tokenizer, examples, _judge(trained), [detector], 0.5
    )
    no_penalty = DetectorPenaltyReward(
        trained.model, trained.tokenizer, examples, _judge(trained), [detector], 1e-12
    )
    paid, base = with_penalty(prompts, replies), no_penalty(prompts, replies)
    penalty = with_penalty.penalty(prompts, replies)
    for i, (ex, j) in enumerate(zip(examples, judged, strict=True)):
        if ex.triggered:
            assert paid[i] == pytest.approx(float(j.backdoor) - 0.5 * float(penalty[i]), abs=1e-5)
        else:  # clean prompts are paid for the helpful answer, with no penalty
            assert paid[i] == base[i] == float(j.correct and not j.backdoor)
    metrics = reward_metrics(with_penalty)
    assert set(metrics) == set(REWARD_SERIES) and metrics["detector_penalty"] > 0.3
    with pytest.raises(ValueError, match="not among the attack's examples"):
        with_penalty(["Human: something else\n\nAssistant:"], ["hi"])


@pytest.mark.parametrize("pooling", POOLINGS)
def test_rl_runs_against_each_pooling_without_a_gradient_into_the_detector(
    fitted, trained: Trained, tmp_path: Path, pooling: str
) -> None:
    *_, detectors = fitted
    detector = detectors[(pooling, SITE)]
    policy = load_model(trained.checkpoint_dir, trained.tokenizer)  # a copy: the fixture is shared
    reference = load_model(trained.checkpoint_dir, trained.tokenizer)
    start = [p.detach().clone() for p in policy.parameters()]
    pool = trained.train_set[:200]
    reward = DetectorPenaltyReward(
        policy, trained.tokenizer, pool, _judge(trained), [detector], 0.5
    )
    cfg = RLConfig(steps=2, prompts_per_step=6, samples_per_prompt=2, max_new_tokens=12, lr=1e-3)
    history = black_box_attack(
        policy,
        trained.preset,
        reference,
        reward,
        trained.tokenizer,
        [e.prompt for e in pool],
        cfg,
        tmp_path,
        progress=False,
    )
    assert len(history["detector_penalty"]) == 2 and len(history["reward"]) == 2
    assert any(np.isfinite(history["detector_penalty"]))  # the penalty was in the reward
    assert all(not t.requires_grad and t.grad is None for t in detector.probe.parameters())
    moved = any(
        not torch.equal(a, b.detach()) for a, b in zip(start, policy.parameters(), strict=True)
    )
    assert moved  # the policy gradient reached the model
    with pytest.raises(ValueError, match="read the policy being trained"):
        black_box_attack(
            reference, trained.preset, reference, reward, trained.tokenizer, [], cfg, tmp_path
        )
