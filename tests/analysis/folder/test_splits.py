"""The splits (`analysis.folder.splits`): leave-one-family-out never puts one family on both
sides, and tests every row once."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.folder.splits import family_folds, split_by_group


def test_no_family_is_on_both_sides_and_every_row_is_tested_once() -> None:
    rng = np.random.default_rng(0)
    families = [f"family {i}" for i in rng.integers(0, 7, size=300)]
    folds = family_folds(families)
    assert [name for name, _, _ in folds] == list(dict.fromkeys(families))
    tested = np.concatenate([test for _, _, test in folds])
    assert sorted(tested.tolist()) == list(range(300))
    for name, train, test in folds:
        assert {families[i] for i in test} == {name}
        assert name not in {families[i] for i in train}
        assert len(train) + len(test) == 300


def test_one_family_cannot_be_left_out() -> None:
    with pytest.raises(ValueError, match="at least two prompt families"):
        family_folds(["a", "a"])


def test_a_question_split_keeps_each_group_whole() -> None:
    groups = [i // 2 for i in range(40)]
    train, test = split_by_group(groups, 0.5, seed=3)
    assert not {groups[i] for i in train} & {groups[i] for i in test}
