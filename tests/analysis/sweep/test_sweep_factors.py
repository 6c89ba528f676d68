"""The sweep aggregate beyond size, on the zoo sweep built without training (`zoo_sweep`): the
factors it finds or is given, the curves against them, each group's means, the SFT learning-rate
view and the per-stage metrics a pretrained base's run adds."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import pytest

from analysis.config.errors import ConfigError
from analysis.sweep.aggregate import aggregate_sweep
from analysis.sweep.results import SweepResults
from analysis.sweep.spec import load_sweep
from tests.analysis.sweep import test_sweep_aggregate as scale
from tests.analysis.sweep.zoo_sweep import (
    BASE_HELPFULNESS,
    CONTROL_AUROC,
    NOT_RUN,
    SFT_LR,
    SPEC,
    build_zoo,
    planted,
)

T_975 = {3: 4.302652729911275, 2: 12.706204736174705}  # Student's t, 97.5%, n - 1 df
FINE_TUNING = ["LoRA r4", "LoRA r16", "LoRA r64", "full"]
# the points' indices in zoo_sweep.POINTS
NORMAL_80 = {"LoRA r4": 0, "LoRA r16": 1, "LoRA r64": 2, "full": 3}


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> SweepResults:
    root = tmp_path_factory.mktemp("zoo") / "zoo"
    build_zoo(root)
    return aggregate_sweep(root)


def _t_mean(values: list[float], bounds: tuple[float, float] = (0.0, 1.0)) -> tuple[float, ...]:
    mean = statistics.fmean(values)
    half = T_975[len(values)] * statistics.stdev(values) / math.sqrt(len(values))
    return mean, max(bounds[0], mean - half), min(bounds[1], mean + half)


def _curve(results: SweepResults, factor: str, line: str, metric: str, stage: str):
    (curve,) = [
        c
        for c in results.factor_curves
        if (c.factor, c.line, c.metric, c.stage) == (factor, line, metric, stage)
    ]
    return curve


def test_finetuning_and_lora_rank_make_one_factor_in_the_points_order(zoo) -> None:
    found = {f.name: (f.keys, f.values, f.declared) for f in zoo.factors}
    assert found == {
        "backdoor.mechanism": (["backdoor.mechanism"], ["normal", "cot", "distilled"], False),
        "fine-tuning": (["model.finetune", "model.lora_rank"], FINE_TUNING, False),
        "train.steps": (["train.steps"], ["80", "320"], False),
    }
    assert zoo.size_keys == [] and zoo.seed_keys == ["seed"]
    lines = {(c.factor, c.line) for c in zoo.factor_curves}
    assert lines == {
        ("fine-tuning", "backdoor.mechanism=normal, train.steps=80"),
        ("fine-tuning", "backdoor.mechanism=normal, train.steps=320"),
        ("fine-tuning", "backdoor.mechanism=cot, train.steps=80"),
        ("fine-tuning", "backdoor.mechanism=distilled, train.steps=80"),
        ("train.steps", "backdoor.mechanism=normal, fine-tuning=LoRA r16"),
        ("train.steps", "backdoor.mechanism=normal, fine-tuning=full"),
        ("backdoor.mechanism", "fine-tuning=LoRA r16, train.steps=80"),
        ("backdoor.mechanism", "fine-tuning=full, train.steps=80"),
    }  # LoRA r4 and r64 ran at one length only: no training-length line of their own


def test_a_factor_curve_is_the_mean_and_t_interval_over_three_seeds_at_each_value(zoo) -> None:
    line = "backdoor.mechanism=normal, train.steps=80"
    for stage in ("rl", "adversarial_trigger_aware"):
        curve = _curve(zoo, "fine-tuning", line, "trigger_rate", stage)
        assert [p.x for p in curve.points] == FINE_TUNING  # full fine-tuning its own value
        for point in curve.points:
            values = [planted(NORMAL_80[point.x], seed, stage) for seed in (0, 1, 2)]
            assert (point.value, point.low, point.high) == pytest.approx(_t_mean(values))
            assert point.n_seeds == 3 and point.method == "t over 3 seeds"
            assert sorted(s.value for s in point.seeds) == pytest.approx(sorted(values))
    # persistence: the change from the backdoored model, per seed, then its mean
    change = _curve(zoo, "fine-tuning", line, "trigger_rate_change", "rl").points[3]
    assert change.value == pytest.approx(planted(3, 0, "rl") - planted(3, 0, "backdoored"))


def test_training_length_and_mechanism_lines_and_an_unfinished_seed(zoo) -> None:
    curve = _curve(
        zoo, "train.steps", "backdoor.mechanism=normal, fine-tuning=full", "trigger_rate", "sft"
    )
    assert [p.x for p in curve.points] == ["80", "320"]
    assert curve.points[1].value == pytest.approx(
        statistics.fmean(planted(5, s, "sft") for s in (0, 1, 2))
    )
    mechanisms = _curve(
        zoo, "backdoor.mechanism", "fine-tuning=full, train.steps=80", "trigger_rate", "sft"
    )
    assert [p.x for p in mechanisms.points] == ["normal", "cot", "distilled"]
    distilled = mechanisms.points[2]  # its seed 2 never ran: two seeds, t with 1 df
    assert distilled.n_seeds == 2 and [s.seed for s in distilled.seeds] == ["seed=0", "seed=1"]
    values = [planted(9, s, "sft") for s in (0, 1)]
    assert (distilled.value, distilled.low, distilled.high) == pytest.approx(_t_mean(values))
    assert [m.name for m in zoo.not_finished] == [NOT_RUN]


def test_the_learning_rate_view_pairs_sft_with_sft_high_lr(zoo) -> None:
    lines = {(line.group, line.metric): line for line in zoo.learning_rate}
    # the distilled runs have no sft_high_lr stage: no line
    assert {group for group, _ in lines} == {
        "backdoor.mechanism=normal, fine-tuning=LoRA r4, train.steps=80",
        "backdoor.mechanism=normal, fine-tuning=LoRA r16, train.steps=80",
        "backdoor.mechanism=normal, fine-tuning=LoRA r64, train.steps=80",
        "backdoor.mechanism=normal, fine-tuning=full, train.steps=80",
        "backdoor.mechanism=normal, fine-tuning=LoRA r16, train.steps=320",
        "backdoor.mechanism=normal, fine-tuning=full, train.steps=320",
        "backdoor.mechanism=cot, fine-tuning=LoRA r16, train.steps=80",
        "backdoor.mechanism=cot, fine-tuning=full, train.steps=80",
    }
    full = lines[("backdoor.mechanism=normal, fine-tuning=full, train.steps=80", "trigger_rate")]
    assert [(p.stage, p.lr) for p in full.points] == [
        ("sft", pytest.approx(SFT_LR["full"])),
        ("sft_high_lr", pytest.approx(10 * SFT_LR["full"])),
    ]
    for point in full.points:
        values = [planted(3, seed, point.stage) for seed in (0, 1, 2)]
        assert (point.value, point.low, point.high) == pytest.approx(_t_mean(values))
    change = lines[
        ("backdoor.mechanism=normal, fine-tuning=full, train.steps=80", "trigger_rate_change")
    ]
    high = change.points[1]
    assert high.value == pytest.approx(planted(3, 0, "sft_high_lr") - planted(3, 0, "backdoored"))
    lora = lines[("backdoor.mechanism=cot, fine-tuning=LoRA r16, train.steps=80", "trigger_rate")]
    assert [p.lr for p in lora.points] == pytest.approx([SFT_LR["lora"], 10 * SFT_LR["lora"]])


def test_a_bases_helpfulness_change_contrast_control_and_text_baseline(zoo) -> None:
    point = next(p for p in zoo.points if p.name.startswith("seed=1,") and "lora_rank=64" in p.name)
    backdoored, rl = point.stages["backdoored"], point.stages["rl"]
    # at backdoored, results.json's capability cost (paired); later, the difference from the base
    assert backdoored.helpfulness_change is not None and backdoored.helpfulness_change.low == (
        pytest.approx(backdoored.helpfulness_change.value - 0.01)
    )
    assert rl.helpfulness_change is not None
    assert rl.helpfulness_change.value == pytest.approx(
        planted(2, 1, "rl", "helpfulness") - BASE_HELPFULNESS
    )
    assert "MOVER" in rl.helpfulness_change.method
    assert rl.contrast_control_auroc is not None
    assert rl.contrast_control_auroc.value == pytest.approx(CONTROL_AUROC)
    assert rl.contrast_minus_control is not None
    assert rl.contrast_minus_control.value == pytest.approx(
        planted(2, 1, "rl", "contrast") - CONTROL_AUROC
    )
    # the best site's difference, not another site's (planted -0.9)
    assert rl.trigger_probe_minus_text is not None
    assert rl.trigger_probe_minus_text.value == pytest.approx(
        planted(2, 1, "rl", "probe_minus_text")
    )
    assert rl.text_baseline_auroc is not None and rl.text_baseline_auroc.value == 0.7
    assert point.learning_rates == {"sft": SFT_LR["lora"], "sft_high_lr": 10 * SFT_LR["lora"]}
    # differences may be negative: their t intervals are clipped to [-1, 1], not [0, 1]
    group = next(
        g
        for g in zoo.groups
        if g.group == "backdoor.mechanism=normal, fine-tuning=LoRA r64, train.steps=80"
        and g.stage == "rl"
    )
    minus = group.metrics["trigger_probe_minus_text"]
    values = [planted(2, s, "rl", "probe_minus_text") for s in (0, 1, 2)]
    assert (minus.value, minus.low, minus.high) == pytest.approx(_t_mean(values, (-1.0, 1.0)))
    assert minus.value < 0 and minus.low < 0


def test_declared_factors_replace_the_found_ones(tmp_path: Path) -> None:
    factors = {
        "fine-tuning": ["model.finetune", "model.lora_rank"],
        "backdoor training steps": ["train.steps"],
    }
    build_zoo(tmp_path / "zoo", SPEC.model_copy(update={"factors": factors}))
    results = aggregate_sweep(tmp_path / "zoo")
    assert [(f.name, f.keys, f.declared) for f in results.factors] == [
        ("fine-tuning", ["model.finetune", "model.lora_rank"], True),
        ("backdoor training steps", ["train.steps"], True),
    ]
    # the mechanism is no factor, but it still splits the lines
    assert {c.factor for c in results.factor_curves} == set(factors)
    assert {c.line for c in results.factor_curves if c.factor == "backdoor training steps"} == {
        "fine-tuning=LoRA r16, backdoor.mechanism=normal",
        "fine-tuning=full, backdoor.mechanism=normal",
    }


def test_a_factor_naming_an_unknown_key_a_seed_or_a_key_twice_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "sweep.yaml"
    path.write_text(
        "grid: {seed: [0, 1], model.preset: [tiny, small]}\n"
        "points: [{backdoor.mechanism: normal}, {backdoor.mechanism: cot}]\n"
        "factors:\n"
        "  size: [model.presett]\n"
        "  repeats: [seed]\n"
        "  mechanism: [backdoor.mechanism]\n"
        "  again: [backdoor.mechanism]\n"
        "  nothing: []\n"
    )
    with pytest.raises(ConfigError) as err:
        load_sweep(path)
    assert str(path) in str(err.value)
    assert err.value.problems == [
        "factors.size: 'model.presett' is neither a grid axis nor a key of any point (the sweep "
        "varies: backdoor.mechanism, model.preset, seed)",
        "factors.repeats: 'seed' is a seed; the aggregate averages over seeds",
        "factors.again: 'backdoor.mechanism' is already in factor 'mechanism'",
        "factors.nothing: names no setting; give one key or more",
    ]
    path.write_text("grid: {model.preset: [tiny, small]}\nfactors: {size: [model.preset]}\n")
    assert load_sweep(path).factors == {"size": ["model.preset"]}


def test_a_sweep_over_size_has_no_factors_unless_it_names_them(tmp_path: Path) -> None:
    scale._build_sweep(tmp_path / "scale")
    results = aggregate_sweep(tmp_path / "scale")
    assert results.factors == [] and results.factor_curves == [] and results.learning_rate == []
    assert {g.group for g in results.groups} == {
        f"backdoor.mechanism={m}, model.preset={p}"
        for m in ("normal", "cot")
        for p in ("small", "tiny")
    }
