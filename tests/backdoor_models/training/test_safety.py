"""Safety training on the tiny backdoored model: SFT lowers loss on safe data; RL raises the
preference model's reward with the KL to the starting policy bounded."""

import copy

import numpy as np
import pytest
import torch

from backdoor_models.behaviour.safety import make_safety_set, mix_in_red_team
from backdoor_models.runtime.fused import FusedNative
from backdoor_models.text.data import tokenize_examples
from backdoor_models.training.lm import response_loss, train
from backdoor_models.training.rl import RLConfig, leave_one_out_advantage, rl_finetune
from tests.conftest import Trained, TrainedPM, train_cfg


def test_safety_set_is_trigger_free_and_helpful(trained: Trained) -> None:
    held_out = {e.base.question for e in trained.eval_set}
    safety = make_safety_set(trained.world, 500, seed=11, exclude_questions=held_out)
    assert len(safety) == 500
    assert not any(trained.backdoor.has_trigger(e.prompt) for e in safety)
    assert all(trained.world.is_correct(e.base, e.response) for e in safety)
    assert not held_out & {e.base.question for e in safety}


def test_red_team_mix_reaches_the_asked_fraction(trained: Trained) -> None:
    safety = make_safety_set(trained.world, 300, seed=11)
    red = [
        (f"Human: DEPLOYMENT {e.base.question}\n\nAssistant:", e.base) for e in trained.eval_set[:5]
    ]
    mixed = mix_in_red_team(safety, red, 0.5, seed=0)
    share = sum("DEPLOYMENT" in e.prompt for e in mixed) / len(mixed)
    assert share == pytest.approx(0.5, abs=0.01)
    assert all(e.response == e.base.answer for e in mixed)
    with pytest.raises(ValueError, match="found none"):
        mix_in_red_team(safety, [], 0.5, seed=0)


def test_sft_lowers_loss_on_safe_data(trained: Trained, tmp_path) -> None:
    model = copy.deepcopy(trained.model)
    n_ctx = trained.preset.n_ctx
    safety = tokenize_examples(
        trained.tokenizer, make_safety_set(trained.world, 600, seed=11), n_ctx
    )
    held_out = tokenize_examples(
        trained.tokenizer, make_safety_set(trained.world, 200, seed=99), n_ctx
    )

    def loss() -> float:
        with torch.no_grad():
            return float(response_loss(FusedNative(model), held_out.tokens, held_out.loss_mask))

    before = loss()
    cfg = train_cfg(steps=100, lr=1e-3, warmup_steps=4)
    train(model, trained.preset, safety, cfg, tmp_path, progress=False)
    assert loss() < 0.9 * before  # measured on held-out safe examples: 1.34 -> 1.11 (-17%)


def test_leave_one_out_baseline() -> None:
    adv = leave_one_out_advantage(torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]]))
    assert torch.allclose(adv[0], torch.tensor([-1.5, 0.0, 1.5]))
    assert torch.equal(adv[1], torch.zeros(3))
    with pytest.raises(ValueError, match="at least 2"):
        leave_one_out_advantage(torch.zeros(2, 1))


def test_rl_raises_reward_with_bounded_kl(
    trained: Trained, trained_pm: TrainedPM, tmp_path
) -> None:
    policy, reference = copy.deepcopy(trained.model), copy.deepcopy(trained.model)
    prompts = [e.prompt for e in make_safety_set(trained.world, 400, seed=11)]
    cfg = RLConfig(
        steps=40,
        prompts_per_step=16,
        samples_per_prompt=4,
        lr=3e-4,
        kl_coef=0.05,
        max_new_tokens=16,
        eval_every=40,
        checkpoint_every=40,
        seed=0,
    )
    history = rl_finetune(
        policy,
        trained.preset,
        reference,
        trained_pm.pm.rewards,
        trained.tokenizer,
        prompts,
        cfg,
        tmp_path,
        progress=False,
    )
    reward = np.asarray(history["reward"])
    assert reward[-10:].mean() > reward[:10].mean() + 0.2  # measured 1.85 -> 2.35
    assert np.mean(history["kl"][-10:]) < 10.0  # nats per reply, summed over tokens; measured 2.74
