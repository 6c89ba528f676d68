"""A run's named random streams (`analysis.folder.seeds`): reproducible, distinct from each other,
following the run's seed, and a misspelt stream is named with the ones there are."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.folder.seeds import Seeds


def _draws(seed: int) -> tuple[float, ...]:
    return tuple(np.random.default_rng(seed).random(4))


def test_the_streams_are_distinct_and_reproducible() -> None:
    names = Seeds.streams()
    assert len(names) == len(set(names)) >= 10
    for run_seed in (0, 5):
        seeds = [getattr(Seeds(run_seed), name) for name in names]
        assert len(set(seeds)) == len(seeds)  # no two streams draw the same numbers
        assert len({_draws(s) for s in seeds}) == len(seeds)
        assert seeds == [getattr(Seeds(run_seed), name) for name in names]


def test_the_streams_follow_the_runs_seed_and_keep_their_offsets() -> None:
    # the offsets runs have always used: changing one changes every run's numbers
    assert (Seeds(0).base, Seeds(0).train_set, Seeds(0).eval_set) == (0, 1, 7)
    for name in Seeds.streams():
        assert getattr(Seeds(3), name) - getattr(Seeds(0), name) == 3
    assert _draws(Seeds(0).eval_set) != _draws(Seeds(1).eval_set)


def test_a_misspelt_stream_is_named_with_the_streams() -> None:
    with pytest.raises(AttributeError, match="No random stream named 'eval'; streams: base, "):
        Seeds(0).eval  # noqa: B018
    assert Seeds(0) == Seeds(0) and hash(Seeds(1)) == hash(Seeds(1))
