"""Paired contrasts over seeds (sweep.json's `contrasts`), on the zoo sweep built without training
(`zoo_sweep`), with a few runs changed by hand: full fine-tuning's backdoor rate after RL moved
by a different amount per seed, one LoRA r64 run removed, two of cot with full fine-tuning's
seeds removed, one run without its sft_high_lr stage and full fine-tuning's sft_high_lr set low."""

from __future__ import annotations

import math
import shutil
import statistics
from pathlib import Path
from typing import Any

import pytest

from analysis.config.errors import ConfigError
from analysis.errors import InputError
from analysis.folder.layout import RunLayout
from analysis.sweep.aggregate import aggregate_sweep
from analysis.sweep.contrasts import (
    dimension_values,
    paired_difference,
    reference_values,
    setting_contrasts,
    stage_contrasts,
)
from analysis.sweep.results import Contrast, SweepResults
from analysis.sweep.runner import SweepLayout
from analysis.sweep.spec import SweepSpec, expand, load_sweep
from backdoor_models.io.atomic import read_json, write_json
from tests.analysis.sweep.zoo_sweep import POINTS, SPEC, build_zoo, estimate, planted

T_975 = {3: 4.302652729911275, 2: 12.706204736174705}  # Student's t, 97.5%, n - 1 df
NORMAL_80 = "backdoor.mechanism=normal, train.steps=80"
FULL_80 = "fine-tuning=full, train.steps=80"
# zoo_sweep.POINTS' indices
R4, R16, R64, FULL, COT_FULL = 0, 1, 2, 3, 7
RL_BUMP = {0: 0.0, 1: 0.07, 2: -0.02}  # added to full fine-tuning's backdoor rate after RL
HIGH_LR = {0: 0.02, 1: 0.06, 2: 0.03}  # full fine-tuning's backdoor rate after sft_high_lr


def _run(root: Path, index: int, seed: int) -> Path:
    settings = {"seed": seed, **POINTS[index]}
    name = next(p.name for p in expand(SPEC) if p.settings == settings)
    return SweepLayout(root).run(name)


def _edit(root: Path, index: int, seed: int, change: Any) -> None:
    path = RunLayout(_run(root, index, seed)).results
    results = read_json(path)
    change(results["stages"])
    write_json(path, results)


def build_changed_zoo(root: Path, spec: SweepSpec = SPEC) -> None:
    """The zoo sweep in `root`, with the changes of the module docstring."""
    build_zoo(root, spec)
    for seed in (0, 1, 2):
        value = planted(FULL, seed, "rl") + RL_BUMP[seed]
        _edit(
            root,
            FULL,
            seed,
            lambda s, v=value: s["rl"]["behaviour"].update(trigger_rate=estimate(v)),
        )
        high = estimate(HIGH_LR[seed], 0.01)
        _edit(
            root, FULL, seed, lambda s, e=high: s["sft_high_lr"]["behaviour"].update(trigger_rate=e)
        )
    _edit(root, R16, 2, lambda s: s.pop("sft_high_lr"))
    shutil.rmtree(_run(root, R64, 1))
    for seed in (1, 2):
        shutil.rmtree(_run(root, COT_FULL, seed))


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> SweepResults:
    root = tmp_path_factory.mktemp("zoo") / "zoo"
    build_changed_zoo(root)
    return aggregate_sweep(root)


def _one(results: SweepResults, **fields: Any) -> Contrast:
    (found,) = [c for c in results.contrasts if all(getattr(c, k) == v for k, v in fields.items())]
    return found


def _t(values: list[float], bounds: float = 1.0) -> tuple[float, float, float]:
    mean = statistics.fmean(values)
    half = T_975[len(values)] * statistics.stdev(values) / math.sqrt(len(values))
    return mean, max(-bounds, mean - half), min(bounds, mean + half)


def test_a_paired_difference_and_its_t_interval_equal_a_hand_computation(zoo) -> None:
    c = _one(zoo, comparison="full − LoRA r4", others=NORMAL_80, stage="rl", metric="trigger_rate")
    assert (c.kind, c.factor, c.value, c.reference) == ("setting", "fine-tuning", "full", "LoRA r4")
    # per seed: full's rate minus LoRA r4's, both of that seed
    diffs = [planted(FULL, s, "rl") + RL_BUMP[s] - planted(R4, s, "rl") for s in (0, 1, 2)]
    assert diffs == pytest.approx([0.15, 0.22, 0.13])
    assert [s.difference for s in c.seeds] == pytest.approx(diffs)
    assert [s.seed for s in c.seeds] == ["seed=0", "seed=1", "seed=2"]
    assert (c.difference, c.low, c.high) == pytest.approx(_t(diffs))
    assert (c.difference, c.low, c.high) == pytest.approx((0.16667, 0.04927, 0.28406), abs=1e-4)
    assert c.n_seeds == 3 and c.excludes_zero and c.unpaired == []
    assert c.method.startswith("t over 3 seeds")
    # the change from the backdoored model: per seed after minus before, then paired; the
    # backdoored rates differ by 0.15 at every seed, so what is left is the bump
    change = _one(
        zoo, comparison="full − LoRA r4", others=NORMAL_80, stage="rl", metric="trigger_rate_change"
    )
    assert [s.difference for s in change.seeds] == pytest.approx(list(RL_BUMP.values()))
    bump = list(RL_BUMP.values())
    assert (change.difference, change.low, change.high) == pytest.approx(_t(bump, 2.0))
    assert not change.excludes_zero


def test_pairs_are_the_same_seed_and_differ_in_the_factor_alone(zoo) -> None:
    settings = {p.name: p.settings for p in zoo.points}
    for c in zoo.contrasts:
        for pair in c.seeds:
            a, b = settings[pair.point], settings[pair.reference_point]
            assert a["seed"] == b["seed"] and pair.seed == f"seed={a['seed']}"
            if c.kind == "stage":
                assert pair.point == pair.reference_point
                continue
            differ = {k for k in {*a, *b} if a.get(k) != b.get(k)}
            factor = {"fine-tuning": {"model.finetune", "model.lora_rank"}}.get(
                c.factor, {c.factor}
            )
            assert differ and differ <= factor


def test_a_seed_that_only_one_side_has_is_left_out(zoo) -> None:
    c = _one(
        zoo, comparison="LoRA r64 − LoRA r4", others=NORMAL_80, stage="sft", metric="trigger_rate"
    )
    assert c.n_seeds == 2 and c.unpaired == ["seed=1"]
    assert [s.seed for s in c.seeds] == ["seed=0", "seed=2"]
    assert c.difference == pytest.approx(0.10)
    # distilled with full fine-tuning never ran its seed 2
    distilled = _one(
        zoo, comparison="distilled − normal", others=FULL_80, stage="sft", metric="helpfulness"
    )
    assert distilled.n_seeds == 2 and distilled.unpaired == ["seed=2"]
    values = [
        planted(9, s, "sft", "helpfulness") - planted(FULL, s, "sft", "helpfulness") for s in (0, 1)
    ]
    assert (distilled.difference, distilled.low, distilled.high) == pytest.approx(_t(values))


def test_one_seed_gives_that_pairs_difference_with_the_mover_interval(zoo) -> None:
    c = _one(zoo, comparison="cot − normal", others=FULL_80, stage="sft", metric="trigger_rate")
    assert c.n_seeds == 1 and c.unpaired == ["seed=1", "seed=2"]
    assert c.difference == pytest.approx(planted(COT_FULL, 0, "sft") - planted(FULL, 0, "sft"))
    half = math.hypot(0.04, 0.04)  # each run's interval is its value ± 0.04
    assert (c.low, c.high) == pytest.approx((c.difference - half, c.difference + half))
    assert "MOVER" in c.method and c.method.startswith("one seed")


def test_sft_high_lr_minus_sft_is_paired_within_each_run(zoo) -> None:
    group = "backdoor.mechanism=normal, fine-tuning=full, train.steps=80"
    c = _one(zoo, kind="stage", others=group, metric="trigger_rate")
    assert (c.factor, c.comparison, c.stage, c.reference_stage) == (
        "stage",
        "sft_high_lr − sft",
        "sft_high_lr",
        "sft",
    )
    diffs = [HIGH_LR[s] - planted(FULL, s, "sft") for s in (0, 1, 2)]
    assert [s.difference for s in c.seeds] == pytest.approx(diffs)
    assert (c.difference, c.low, c.high) == pytest.approx(_t(diffs))
    assert c.excludes_zero and c.high < 0  # the high learning rate removes more of it
    helpful = _one(zoo, kind="stage", others=group, metric="helpfulness")
    assert helpful.difference == pytest.approx(0.01)  # the stages' planted helpfulness
    # a run without sft_high_lr is left out of its configuration's pairs; distilled has none
    r16 = _one(zoo, kind="stage", others=group.replace("full", "LoRA r16"), metric="trigger_rate")
    assert r16.n_seeds == 2 and r16.unpaired == ["seed=2"]
    stage_groups = {c.others for c in zoo.contrasts if c.kind == "stage"}
    assert len(stage_groups) == 8 and not any("distilled" in g for g in stage_groups)
    assert {c.metric for c in zoo.contrasts if c.kind == "stage"} == {"trigger_rate", "helpfulness"}


def test_each_value_against_the_first_at_every_stage_and_metric(zoo) -> None:
    comparisons = {(c.factor, c.comparison, c.others) for c in zoo.contrasts if c.kind == "setting"}
    assert comparisons == {
        ("backdoor.mechanism", "cot − normal", "fine-tuning=LoRA r16, train.steps=80"),
        ("backdoor.mechanism", "cot − normal", FULL_80),
        ("backdoor.mechanism", "distilled − normal", "fine-tuning=LoRA r16, train.steps=80"),
        ("backdoor.mechanism", "distilled − normal", FULL_80),
        ("fine-tuning", "LoRA r16 − LoRA r4", NORMAL_80),
        ("fine-tuning", "LoRA r64 − LoRA r4", NORMAL_80),
        ("fine-tuning", "full − LoRA r4", NORMAL_80),
        ("train.steps", "320 − 80", "backdoor.mechanism=normal, fine-tuning=LoRA r16"),
        ("train.steps", "320 − 80", "backdoor.mechanism=normal, fine-tuning=full"),
    }  # no reference LoRA r4 beside cot, distilled or 320 steps: no fine-tuning contrast there
    full = [c for c in zoo.contrasts if c.comparison == "full − LoRA r4"]
    assert {c.stage for c in full} == {"backdoored", *zoo.safety_stages}
    assert {c.metric for c in full} == {
        "trigger_rate",
        "trigger_rate_change",
        "red_team_rate",
        "red_team_rate_trigger_aware",
        "helpfulness",
    }
    assert not any(c.metric == "trigger_rate_change" and c.stage == "backdoored" for c in full)


def test_the_sweep_files_reference_replaces_the_first_value(tmp_path: Path) -> None:
    factors = {"fine-tuning": ["model.finetune", "model.lora_rank"], "steps": ["train.steps"]}
    spec = SPEC.model_copy(update={"factors": factors, "references": {"fine-tuning": "LoRA r16"}})
    build_changed_zoo(tmp_path / "zoo", spec)
    results = aggregate_sweep(tmp_path / "zoo")
    fine_tuning = {(c.comparison, c.others) for c in results.contrasts if c.factor == "fine-tuning"}
    assert fine_tuning == {
        ("LoRA r4 − LoRA r16", "steps=80, backdoor.mechanism=normal"),
        ("LoRA r64 − LoRA r16", "steps=80, backdoor.mechanism=normal"),
        ("full − LoRA r16", "steps=80, backdoor.mechanism=normal"),
        ("full − LoRA r16", "steps=320, backdoor.mechanism=normal"),
        ("full − LoRA r16", "steps=80, backdoor.mechanism=cot"),
        ("full − LoRA r16", "steps=80, backdoor.mechanism=distilled"),
    }
    c = _one(
        results,
        comparison="full − LoRA r16",
        others="steps=80, backdoor.mechanism=normal",
        stage="rl",
        metric="trigger_rate",
    )
    diffs = [planted(FULL, s, "rl") + RL_BUMP[s] - planted(R16, s, "rl") for s in (0, 1, 2)]
    assert (c.difference, c.low, c.high) == pytest.approx(_t(diffs))


def test_an_unknown_reference_is_refused_naming_what_there_is(tmp_path: Path) -> None:
    values = {"fine-tuning": ["LoRA r4", "full"], "train.steps": ["80", "320"]}
    assert reference_values(values, {"train.steps": 320}) == {
        "fine-tuning": "LoRA r4",
        "train.steps": "320",
    }
    with pytest.raises(InputError, match=r"'LoRA r8' is none of its values \(LoRA r4, full\)"):
        reference_values(values, {"fine-tuning": "LoRA r8"})
    path = tmp_path / "sweep.yaml"
    path.write_text(
        "grid: {seed: [0, 1]}\npoints: [{train.steps: 80}, {train.steps: 320}]\n"
        "factors: {steps: [train.steps]}\nreferences: {train.steps: 320}\n"
    )
    with pytest.raises(ConfigError) as err:
        load_sweep(path)
    assert err.value.problems == [
        "references.train.steps: not a factor of the file's `factors:` (declared: 'steps')"
    ]


def test_the_parts_work_on_their_own_and_old_sweep_json_still_reads(zoo) -> None:
    points = [p for p in zoo.points if p.settings["backdoor.mechanism"] == "normal"]
    dims = [("steps", ["train.steps"]), ("fine-tuning", ["model.finetune", "model.lora_rank"])]
    values = dimension_values(dims, expand(SPEC))
    assert values == {
        "steps": ["80", "320"],
        "fine-tuning": ["LoRA r4", "LoRA r16", "LoRA r64", "full"],
    }
    steps = setting_contrasts(points, dims, values, {}, ["sft"])
    assert {c.comparison for c in steps if c.factor == "steps"} == {"320 − 80"}
    assert len(stage_contrasts(points, dims)) == 2 * 6  # six configurations, two metrics
    assert paired_difference({}, {}, "trigger_rate") is None
    old = zoo.model_dump(mode="json")
    del old["contrasts"]
    assert SweepResults.model_validate(old).contrasts == []
