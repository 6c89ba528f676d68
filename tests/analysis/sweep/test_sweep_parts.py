"""The sweep aggregate's parts by their own paths: factors found from the zoo file's points,
their labels, means over seeds and differences (the whole aggregate: test_sweep_factors)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from analysis.folder.results import Estimate
from analysis.sweep.factors import dimensions, dimensions_label, find_factors, value_label
from analysis.sweep.means import difference, metric_range, seed_interval
from analysis.sweep.spec import expand, load_sweep
from analysis.sweep.stage_metrics import SFT, SFT_HIGH_LR
from analysis.sweep.views import learning_rate_lines

ROOT = Path(__file__).resolve().parents[3]


def test_the_zoo_files_factors_are_fine_tuning_and_training_length() -> None:
    spec = load_sweep(ROOT / "sweeps" / "pretrained.yaml")
    points = expand(spec)
    factors = find_factors(spec, points, free_keys=[], has_size=False)
    assert [f.name for f in factors] == ["fine-tuning", "backdoor training steps"]
    assert factors[0].values == ["LoRA r4", "LoRA r16", "full"]
    assert factors[1].values == ["80", "320"]
    dims = dimensions(factors, ["backdoor.mechanism", "model.finetune"])
    assert [name for name, _ in dims] == [*(f.name for f in factors), "backdoor.mechanism"]
    label = dimensions_label(points[2].settings, dims)
    assert label == ("fine-tuning=full, backdoor training steps=80, backdoor.mechanism=normal")


def test_a_fine_tuning_label_says_lora_and_its_rank_or_full() -> None:
    keys = ["model.finetune", "model.lora_rank"]
    assert value_label(keys, {"model.finetune": "lora", "model.lora_rank": 64}) == "LoRA r64"
    assert value_label(keys, {"model.finetune": "full"}) == "full"
    assert value_label(["train.steps"], {"train.steps": 320}) == "320"


def test_a_mean_over_three_seeds_has_the_t_interval_clipped_to_the_range() -> None:
    e = seed_interval([0.9, 1.0, 0.95])
    half = 4.302652729911275 * 0.05 / math.sqrt(3)  # t(0.975, 2) x s / sqrt(n)
    assert e.value == pytest.approx(0.95)
    assert e.low == pytest.approx(0.95 - half) and e.high == 1.0  # clipped at 1
    assert e.method == "t over 3 seeds"
    with pytest.raises(ValueError, match="two"):
        seed_interval([0.5])
    assert metric_range("trigger_rate_change") == (-1.0, 1.0)
    assert metric_range("trigger_rate") == (0.0, 1.0)


def test_a_difference_has_the_mover_interval_or_none() -> None:
    after = Estimate(value=0.2, low=0.1, high=0.3, n=100, method="bootstrap")
    before = Estimate(value=1.0, low=0.96, high=1.0, n=100, method="bootstrap")
    d = difference(after, before)
    assert d is not None
    assert d.value == pytest.approx(-0.8)
    assert d.low == pytest.approx(-0.8 - math.hypot(0.1, 0.0))
    assert d.high == pytest.approx(-0.8 + math.hypot(0.1, 0.04))
    assert difference(after, None) is None


def test_no_learning_rate_line_without_points() -> None:
    assert (SFT, SFT_HIGH_LR) == ("sft", "sft_high_lr")
    assert learning_rate_lines([], []) == []
