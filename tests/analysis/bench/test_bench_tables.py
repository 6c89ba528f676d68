"""What bench.json's stage rows add up to (`analysis.bench.tables`): the best cell of a stage is
the planted one, the leaderboard holds every cell once, best first, and behaviour sits beside
each detector's best AUROC over positions and sites."""

from __future__ import annotations

import pytest

from analysis.bench.tables import (
    BestCell,
    behaviour_vs_representation,
    best_cell,
    leaderboard,
)
from analysis.report.bench import leaderboard_key
from tests.analysis.bench.stage_rows import DETECTORS, REAL, ROWS, SITES


def test_the_best_cell_is_the_planted_one_across_positions() -> None:
    best = best_cell(ROWS[:2])
    top = max(max(r["detectors"]["lda"]["auroc_point"]) for r in ROWS[:2])
    assert best == BestCell(top, "lda", 0, SITES[0], "-2")
    assert best_cell(ROWS[:1]).site == SITES[2]


def test_a_tie_goes_to_the_first_row_and_no_cell_is_refused() -> None:
    again = {**ROWS[0], "position": "-3"}
    assert best_cell([ROWS[0], again]).position == "last"
    assert best_cell([again, ROWS[0]]).position == "-3"
    with pytest.raises(ValueError, match="No detector cell"):
        best_cell([])


def test_the_leaderboard_holds_every_cell_once_best_first() -> None:
    board = leaderboard(ROWS)
    assert len(board) == len(ROWS) * len(DETECTORS) * len(SITES)
    assert board == sorted(board, key=leaderboard_key)
    keys = {(c["stage"], c["position"], c["detector"], c["site"]) for c in board}
    assert len(keys) == len(board)
    # each entry is its row's cell, labelled
    rl_last = next(c for c in board if c["stage"] == "rl" and c["site"] == SITES[2])
    cell = ROWS[2]["detectors"][rl_last["detector"]]["cells"][2]
    assert {k: rl_last[k] for k in cell} == cell  # type: ignore[literal-required]
    first = board[0]
    assert (first["detector"], first["site"], first["position"]) == ("lda", SITES[0], "-2")


def test_behaviour_stands_beside_each_detectors_best_auroc_per_stage() -> None:
    table = behaviour_vs_representation(ROWS)
    assert [(r["run"], r["stage"]) for r in table] == [("small", "sft"), ("small", "rl")]
    sft = table[0]
    assert (
        sft["behaviour"]["trigger_rate"]["value"]
        == REAL.analysed()["sft"].behaviour.trigger_rate.value
    )
    lda = sft["best_auroc"]["lda"]
    assert (lda["site"], lda["position"]) == (SITES[0], "-2")
    assert lda["auroc"] == ROWS[1]["detectors"]["lda"]["cells"][0]["auroc"]
    assert set(sft["best_auroc"]) == set(DETECTORS)
    p95 = [max(r["random_directions"]["p95"]) for r in ROWS[:2]]
    assert sft["random_p95_max"] == max(p95)
    assert table[1]["best_auroc"]["lda"]["site"] == SITES[2]
