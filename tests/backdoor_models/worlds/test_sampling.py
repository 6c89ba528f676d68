"""Family-balanced sampling, as both worlds use it: every family the same count (within one),
the order shuffled, the draw seeded, and unknown or empty families refused by name."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from backdoor_models.worlds.sampling import balanced_sample, check_families

VALID = ("red", "green", "blue")


def _draw(family: str, rng: random.Random) -> tuple[str, float]:
    return family, rng.random()


@pytest.mark.parametrize("n", [0, 1, 2, 7, 30, 31])
def test_families_are_balanced_within_one(n: int) -> None:
    out = balanced_sample(n, None, VALID, random.Random(n), _draw)
    counts = Counter(family for family, _ in out)
    assert len(out) == n and set(counts) <= set(VALID)
    per_family = [counts[f] for f in VALID]
    assert max(per_family) - min(per_family) <= 1
    if n % len(VALID) == 0:
        assert all(counts[f] == n // len(VALID) for f in VALID)


def test_the_leftover_draws_start_at_a_random_family() -> None:
    # with one draw, which family it is comes from the offset, so all of them come up
    firsts = {balanced_sample(1, None, VALID, random.Random(s), _draw)[0][0] for s in range(30)}
    assert firsts == set(VALID)


def test_the_order_is_shuffled_and_seeded() -> None:
    out = balanced_sample(30, None, VALID, random.Random(0), _draw)
    families = [f for f, _ in out]
    round_robin = all(families[i] != families[i + 1] for i in range(len(families) - 1))
    assert not round_robin
    assert out == balanced_sample(30, None, VALID, random.Random(0), _draw)
    assert out != balanced_sample(30, None, VALID, random.Random(1), _draw)


def test_a_subset_or_a_single_name_restricts_the_families() -> None:
    out = balanced_sample(10, ["blue", "red"], VALID, random.Random(0), _draw)
    assert Counter(f for f, _ in out) == {"blue": 5, "red": 5}
    assert {f for f, _ in balanced_sample(4, "green", VALID, random.Random(0), _draw)} == {"green"}


def test_bad_arguments_are_refused_with_the_valid_families() -> None:
    with pytest.raises(ValueError, match=r"unknown family \['purple'\]; valid families are"):
        balanced_sample(3, ["red", "purple"], VALID, random.Random(0), _draw)
    with pytest.raises(ValueError, match=r"unknown families \['a', 'b'\]"):
        check_families(["a", "b"], VALID)
    with pytest.raises(ValueError, match="must not be empty"):
        balanced_sample(3, [], VALID, random.Random(0), _draw)
    with pytest.raises(ValueError, match="n must be non-negative, got -1"):
        balanced_sample(-1, None, VALID, random.Random(0), _draw)
    check_families(["blue"], VALID)  # a known family passes
