"""How many CPU threads a probe fit uses: one, unless an iteration has work enough for more.

A solver iteration runs tens to a hundred torch ops. Many of them (``bmm``, ``triu``, the
triangular solves) open an OpenMP parallel region whatever their size, and every region waits
for all of its threads. On an idle core that costs a few microseconds; on a machine shared with
other jobs a thread that was descheduled holds the region up for a scheduler slice
(milliseconds). So a fit whose iterations are a few thousand numbers wide is fastest on one
thread, and threads only pay once an iteration's arithmetic dwarfs those waits (docs/speed.md,
"Probe fitting").

    with torch_threads(choose_threads(work, torch.get_num_threads())):
        ...  # the fit
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

# One thread per this many multiply-adds in one solver iteration (at least one thread, at most
# the caller's torch.get_num_threads()).
WORK_PER_THREAD = 1 << 21


def choose_threads(work: int, available: int) -> int:
    """Threads for a fit whose iterations each cost ``work`` multiply-adds, given ``available``
    (the caller's torch thread count): one per ``WORK_PER_THREAD``, between 1 and ``available``.

    >>> choose_threads(300 * 128 * 5 * 2, 2), choose_threads(2000 * 256 * 8 * 2, 2)
    (1, 2)
    """
    return max(1, min(int(available), int(work) // WORK_PER_THREAD))


@contextmanager
def torch_threads(n: int) -> Iterator[int]:
    """Run the block with ``torch.set_num_threads(n)``; restore the caller's count afterwards,
    also when the block raises. Yields ``n``.

    torch's thread count is process state, so a fit run inside this block changes it for the
    block's duration only (per OS thread with torch's OpenMP backend)."""
    if n < 1:
        raise ValueError(f"the thread count must be at least 1, got {n}.")
    previous = torch.get_num_threads()
    if n == previous:
        yield n
        return
    torch.set_num_threads(n)
    try:
        yield n
    finally:
        torch.set_num_threads(previous)
