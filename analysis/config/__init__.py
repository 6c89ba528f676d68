"""The experiment config: one pydantic schema (types, defaults, descriptions, ranges, choices
and cross-field rules) from which come validation, the `--help` listing of the keys and
docs/configuration.md. Each setting is declared once: the optimisation, RL and
preference-model sections are the library's own dataclasses, whose fields carry their
descriptions and ranges (`backdoor_models.training.setting`).

The modules, from the bottom up:

- `errors`: pydantic's errors as plain messages, one list per config;
- `types`: the strict scalar types, the choice lists and how a section states its rules;
- `sections`: world, backdoor, data, model, eval and probe;
- `training`: train (and sft, adversarial), safety, red team, preference model and RL;
- `obfuscation`: the adaptive attacker's section;
- `profiles`: the defaults a run starts from (the stages an organism runs, the safety SFT's
  own defaults, a pretrained base's, `--smoke`) and old configs read in today's terms;
- `run`: :class:`RunConfig`, the rules across sections, loading and saving;
- `docs`: `run --help`'s key listing and docs/configuration.md.

Example:
    >>> from analysis.config import load_config
    >>> load_config(overrides=["train.steps=200"]).train.steps
    200
"""

from analysis.config.errors import ConfigError
from analysis.config.profiles import (
    BASE_DEFAULTS,
    SMOKE_BASE_OVERRIDES,
    SMOKE_OVERRIDES,
    default_stages,
    smoke_overrides,
)
from analysis.config.run import (
    RunConfig,
    config_from_dict,
    load_config,
    resolve_defaults,
    save_config,
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
from analysis.config.types import (
    BACKDOOR_KINDS,
    MECHANISMS,
    SAFETY_STAGES,
    BackdoorKind,
    Mechanism,
    PresetName,
    Stage,
)

__all__ = [
    "BACKDOOR_KINDS",
    "BASE_DEFAULTS",
    "MECHANISMS",
    "SAFETY_STAGES",
    "SMOKE_BASE_OVERRIDES",
    "SMOKE_OVERRIDES",
    "BackdoorConfig",
    "BackdoorKind",
    "ConfigError",
    "DataConfig",
    "EvalConfig",
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
    "TrainSection",
    "WorldConfig",
    "config_from_dict",
    "default_stages",
    "load_config",
    "resolve_defaults",
    "save_config",
    "smoke_overrides",
]
