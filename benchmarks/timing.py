"""Timing two implementations fairly on a shared machine: interleaved runs (A B A B ...) after
warm-up, medians, and a measured fp32 (or bf16) matmul peak.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_once(fn: Callable[[], object], device: torch.device) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def interleaved(
    toolkit: Callable[[], object],
    reference: Callable[[], object],
    warmup: int,
    repeats: int,
    device: torch.device,
) -> tuple[float, float]:
    """Median seconds of `toolkit` and `reference`, run A B A B ... after `warmup` rounds."""
    for _ in range(warmup):
        toolkit()
        reference()
    a, b = [], []
    for _ in range(repeats):
        a.append(time_once(toolkit, device))
        b.append(time_once(reference, device))
    return statistics.median(a), statistics.median(b)


def matmul_peak_gflops(
    n: int, repeats: int, device: torch.device, dtype: torch.dtype = torch.float32
) -> float:
    """Measured matmul throughput in `dtype` (fp32 by default): best of `repeats` timings of an
    n x n @ n x n `torch.mm`."""
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=gen).to(device=device, dtype=dtype)
    b = torch.randn(n, n, generator=gen).to(device=device, dtype=dtype)
    torch.mm(a, b)
    best = min(time_once(lambda: torch.mm(a, b), device) for _ in range(repeats))
    return 2 * n**3 / best / 1e9
