"""Which stages a benchmark detector is scored on (`analysis.bench.transfer`); the scores
themselves are checked on real runs in test_bench and test_bench_across_runs."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from analysis.bench.transfer import transfer_pairs


def _stage(run: str, stage: str, d_model: int = 8, position: str = "last") -> Any:
    return SimpleNamespace(run=run, stage=stage, position=position, d_model=d_model, sites=("L0",))


def _names(pairs: Any) -> set[tuple[str, str]]:
    return {(f"{s.run}/{s.stage}", f"{t.run}/{t.stage}") for s, t in pairs}


def test_pairs_within_a_run_and_to_the_same_stage_of_a_run_of_the_same_width() -> None:
    stages = [_stage("a", "sft"), _stage("a", "rl"), _stage("b", "sft"), _stage("c", "sft", 16)]
    every = {("a/sft", "a/rl"), ("a/rl", "a/sft"), ("a/sft", "b/sft"), ("b/sft", "a/sft")}
    assert _names(transfer_pairs(stages)) == every
    assert _names(transfer_pairs(stages, across_runs=False)) == {
        ("a/sft", "a/rl"),
        ("a/rl", "a/sft"),
    }
    assert _names(transfer_pairs(stages, within_runs=False)) == {
        ("a/sft", "b/sft"),
        ("b/sft", "a/sft"),
    }
    other_position = [_stage("a", "sft"), _stage("a", "rl", position="-2")]
    assert not list(transfer_pairs(other_position))
