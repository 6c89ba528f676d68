"""Family-balanced sampling shared by the chat world and the code world.

:func:`check_families` rejects unknown family names with a message listing the valid ones;
:func:`balanced_sample` draws ``n`` examples with the families balanced round-robin from a random
offset, then shuffles them. Both worlds sample through it, so they balance alike.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


def check_families(families: Sequence[str], valid: Sequence[str]) -> None:
    """Raise a ValueError naming unknown families and listing the valid ones."""
    unknown = [f for f in families if f not in valid]
    if unknown:
        raise ValueError(
            f"unknown famil{'y' if len(unknown) == 1 else 'ies'} {unknown}; "
            f"valid families are {list(valid)}"
        )


def balanced_sample(
    n: int,
    families: Sequence[str] | str | None,
    valid: Sequence[str],
    rng: random.Random,
    draw: Callable[[str, random.Random], T],
) -> list[T]:
    """`n` draws, families balanced round-robin from a random offset, then shuffled."""
    if isinstance(families, str):
        families = [families]
    fams = list(valid if families is None else families)
    if not fams:
        raise ValueError(f"families must not be empty; valid families are {list(valid)}")
    check_families(fams, valid)
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}")
    offset = rng.randrange(len(fams))
    out = [draw(fams[(i + offset) % len(fams)], rng) for i in range(n)]
    rng.shuffle(out)
    return out
