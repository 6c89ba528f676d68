"""Probe fits choose their torch thread count by problem size and leave the caller's alone."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch

import probes._threads
import probes.logistic
from probes import LayerwiseLogisticProbe, fit_logistic_grid
from probes._threads import WORK_PER_THREAD, choose_threads, torch_threads
from probes.logistic import fit_threads, iteration_work
from tests.probes.test_lbfgs import _data


@pytest.fixture
def two_threads() -> Iterator[None]:
    """The caller runs torch on two threads (the machine's default) for the test."""
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _spy_on_standardise(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record torch's thread count each time a fit standardises its features."""
    seen: list[int] = []
    original = probes.logistic.standardise

    def spy(X: Any) -> Any:
        seen.append(torch.get_num_threads())
        return original(X)

    monkeypatch.setattr(probes.logistic, "standardise", spy)
    return seen


def test_choose_threads_grows_with_work_within_what_the_caller_allows() -> None:
    assert choose_threads(0, 4) == 1
    assert choose_threads(WORK_PER_THREAD - 1, 4) == 1
    assert choose_threads(2 * WORK_PER_THREAD, 4) == 2
    assert choose_threads(100 * WORK_PER_THREAD, 4) == 4
    assert choose_threads(100 * WORK_PER_THREAD, 1) == 1


def test_iteration_work_per_solver() -> None:
    assert iteration_work("lbfgs", 5, 300, 128, 1) == 2 * 5 * 300 * 128
    assert iteration_work("lbfgs", 5, 300, 128, 4) == 4 * iteration_work("lbfgs", 5, 300, 128, 1)
    assert iteration_work("primal", 3, 600, 31, 1) == 3 * 600 * 32 * 32
    assert iteration_work("dual", 2, 30, 500, 1) == 2 * (30**3 // 3 + 4 * 30 * 30)
    with pytest.raises(ValueError, match="unknown solver"):
        iteration_work("auto", 1, 10, 10, 1)


def test_the_benchmark_shapes_get_one_thread_and_the_large_one_two() -> None:
    assert fit_threads("lbfgs", 5, 300, 128, 1, 2) == 1
    assert fit_threads("lbfgs", 5, 300, 512, 1, 2) == 1
    assert fit_threads("lbfgs", 8, 2000, 256, 1, 2) == 2
    assert fit_threads("lbfgs", 8, 2000, 256, 1, 1) == 1  # never more than the caller's


def test_torch_threads_restores_the_callers_count_also_on_error(two_threads: None) -> None:
    with torch_threads(1) as n:
        assert n == 1 and torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2
    with pytest.raises(RuntimeError, match="inside"), torch_threads(1):
        raise RuntimeError("inside")
    assert torch.get_num_threads() == 2
    with pytest.raises(ValueError, match="at least 1"), torch_threads(0):
        pass
    assert torch.get_num_threads() == 2


def test_a_small_fit_runs_on_one_thread_and_restores_the_callers(
    two_threads: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = _spy_on_standardise(monkeypatch)
    X, y = _data(0, 5, 300, 128)
    probe = LayerwiseLogisticProbe().fit(X.astype(np.float32), y)
    assert probe.solver_ == "lbfgs" and probe.threads_ == 1
    assert seen == [1]
    assert torch.get_num_threads() == 2


def test_a_failing_fit_restores_the_callers_thread_count(two_threads: None) -> None:
    X, y = _data(0, 2, 100, 8)
    X[1, 3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        LayerwiseLogisticProbe().fit(X, y)
    assert torch.get_num_threads() == 2


def test_a_fit_never_uses_more_threads_than_the_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        monkeypatch.setattr(probes._threads, "WORK_PER_THREAD", 1)  # as if every fit were huge
        seen = _spy_on_standardise(monkeypatch)
        X, y = _data(1, 2, 80, 10)
        assert LayerwiseLogisticProbe().fit(X, y).threads_ == 1 and seen == [1]
    finally:
        torch.set_num_threads(previous)


@pytest.mark.parametrize("solver", ["lbfgs", "primal", "dual"])
def test_one_and_two_threads_reach_the_same_probe(
    solver: str, two_threads: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    X, y = _data(2, 3, 60, 90)
    one = LayerwiseLogisticProbe(tol=1e-9, solver=solver).fit(X, y)
    monkeypatch.setattr(probes._threads, "WORK_PER_THREAD", 1)  # force the caller's two
    two = LayerwiseLogisticProbe(tol=1e-9, solver=solver).fit(X, y)
    assert (one.threads_, two.threads_) == (1, 2)
    torch.testing.assert_close(two.coef_, one.coef_, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(two.intercept_, one.intercept_, rtol=1e-5, atol=1e-7)
    assert torch.get_num_threads() == 2


def test_a_grid_counts_the_problems_it_solves_together(two_threads: None) -> None:
    """Many label sets in one L-BFGS batch are worth two threads; the same fits one C at a
    time (warm starts on shared labels) are not."""
    layers, n, d, sets = 2, 200, 64, 100
    X, y = _data(3, layers, n, d)
    X = X.astype(np.float32)
    assert iteration_work("lbfgs", layers, n, d, sets) >= 2 * WORK_PER_THREAD
    rng = np.random.default_rng(0)
    shuffled = np.stack([rng.permutation(y) for _ in range(sets)])
    batched = fit_logistic_grid(X, shuffled, C=1.0, solver="lbfgs")
    assert batched.threads == 2 and batched.probe(0).threads_ == 2
    warm = fit_logistic_grid(X, y, C=[0.1, 1.0, 10.0], solver="lbfgs")
    assert warm.threads == 1
    assert torch.get_num_threads() == 2
