"""The tracker's memo: stages that start from one checkpoint measure its step 0 once, with the
numbers a fresh measurement gives."""

from __future__ import annotations

from typing import Any

import pytest

from analysis.measure import tracking
from analysis.measure.tracking import Memo, Tracker
from backdoor_models.behaviour.evaluation import judge_replies
from tests.conftest import Trained


def _tracker(trained: Trained, red: list[str]) -> Tracker:
    return Tracker(
        lambda examples, replies: judge_replies(trained.world, trained.backdoor, examples, replies),
        trained.backdoor,
        trained.tokenizer,  # type: ignore[arg-type]
        trained.eval_set[:8],
        red_team_sets={"red_team_rate": red},
        reference=trained.model,
        max_new_tokens=16,
        red_team_samples=2,
        n_boot=100,
    )


def test_a_memo_measures_each_part_once_with_the_same_numbers(
    trained: Trained, monkeypatch: pytest.MonkeyPatch
) -> None:
    red = [ex.prompt for ex in trained.eval_set[8:12]]
    fresh = _tracker(trained, red)(trained.model)
    calls: list[int] = []
    real = tracking.generate_replies

    def counted(*args: Any, **kwargs: Any) -> list[str]:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(tracking, "generate_replies", counted)
    memo: Memo = {}
    first = _tracker(trained, red)(trained.model, memo)
    assert len(calls) == 1 and len(memo) == 3  # greedy replies, red-team rates, KL
    again = _tracker(trained, red)(trained.model, memo)
    assert len(calls) == 1  # nothing measured twice
    assert first == again == fresh
    other = _tracker(trained, red[:2])(trained.model, memo)  # other prompts: measured anew
    assert len(memo) == 4 and other["trigger_rate"] == fresh["trigger_rate"]
