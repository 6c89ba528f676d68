"""Benchmark 4 of the suite, the probes: ``LayerwiseLogisticProbe.fit`` vs a per-layer
scikit-learn loop on synthetic data, and ``fit_logistic_grid`` over sites x C values vs
scikit-learn's loop over the same grid, on synthetic data of the real grid's shape and on a
finished run's sites x token positions; both sides on the same threads.

Each row records the torch threads the toolkit's fit chose (``toolkit_threads``; it uses fewer
than it is given on small problems, ``probes.logistic.fit_threads``) and the threads both sides
were given (``threads``; the reference's BLAS is held to the same number).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from benchmarks.settings import (
    REAL_GRID_CS,
    REAL_GRID_NOT_MEASURED,
    REAL_GRID_POSITIONS,
    REAL_GRID_STAGE,
    Settings,
    result_row,
)
from benchmarks.timing import time_once


def _probe_data(
    layers: int, n: int, d: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Gaussian features with a planted direction per layer whose strength grows with depth."""
    rng = np.random.default_rng(seed)
    direction = rng.standard_normal((layers, d))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    strength = np.linspace(0.3, 2.0, layers)
    scales = rng.uniform(0.5, 3.0, size=(layers, 1, d))  # uneven feature scales

    def sample(m: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, 2, size=m)
        shift = (2 * y - 1)[None, :, None] * strength[:, None, None] * direction[:, None, :] / 2
        X = (rng.standard_normal((layers, m, d)) + shift) * scales
        return X.astype(np.float32), y

    X_train, y_train = sample(n)
    X_test, y_test = sample(n // 2)
    return X_train, y_train, X_test, y_test


def _interleaved_same_threads(
    toolkit: Callable[[], None], reference: Callable[[], None], s: Settings
) -> tuple[list[float], list[float], list[float]]:
    """Warm both up, then time them in turns on the CPU, scikit-learn's BLAS held to torch's
    thread count: (toolkit seconds, reference seconds, per-round ratios)."""
    from threadpoolctl import threadpool_limits

    cpu = torch.device("cpu")
    with threadpool_limits(limits=torch.get_num_threads()):
        for _ in range(s.probe_warmup):
            toolkit()
            reference()
        a, b = [], []
        for _ in range(s.probe_repeats):
            a.append(time_once(toolkit, cpu))
            b.append(time_once(reference, cpu))
    return a, b, [ref / tk for tk, ref in zip(a, b, strict=True)]


def _threads_note(toolkit_threads: int) -> str:
    """``"1 of 2 threads"``: the threads the toolkit's fit used, of those both sides were given."""
    return f"{toolkit_threads} of {torch.get_num_threads()} threads"


def _probe_row(
    config: str,
    timings: tuple[list[float], list[float], list[float]],
    s: Settings,
    **extra: Any,
) -> dict[str, Any]:
    """A probes row from `_interleaved_same_threads`'s timings: medians, the ratio's spread and
    the threads both sides had."""
    a, b, ratios = timings
    return result_row(
        "probes",
        config,
        statistics.median(a),
        statistics.median(b),
        "s",
        statistics.median(ratios),
        ratio_min=min(ratios),
        ratio_max=max(ratios),
        repeats=s.probe_repeats,
        threads=torch.get_num_threads(),
        reference_blas_threads=torch.get_num_threads(),
        **extra,
    )


def bench_probes(s: Settings, shape: tuple[int, int, int]) -> dict[str, Any]:
    """`LayerwiseLogisticProbe.fit` vs a per-layer StandardScaler + LogisticRegression loop.

    Both sides get the same threads: the reference's BLAS pool is limited to torch's thread
    count (left alone, OpenBLAS spins its threads against other jobs on a shared machine and
    the reference slows down 10-30x, which would flatter the toolkit). The ratio is the median
    of the per-round ratios; its spread (min, max over rounds) is reported beside it.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.preprocessing import StandardScaler

    from probes.logistic import LayerwiseLogisticProbe

    layers, n, d = shape
    X_train, y_train, X_test, y_test = _probe_data(layers, n, d, seed=0)
    X_train_t = torch.from_numpy(X_train)
    fitted: dict[str, Any] = {}

    def toolkit() -> None:
        fitted["toolkit"] = LayerwiseLogisticProbe(C=1.0).fit(X_train_t, y_train)

    def reference() -> None:
        models = []
        for layer in range(layers):
            scaler = StandardScaler().fit(X_train[layer])
            clf = LogisticRegression(C=1.0, max_iter=1000)
            clf.fit(scaler.transform(X_train[layer]), y_train)
            models.append((scaler, clf))
        fitted["reference"] = models

    a, b, ratios = _interleaved_same_threads(toolkit, reference, s)
    auroc_toolkit = np.asarray(fitted["toolkit"].score(torch.from_numpy(X_test), y_test))
    auroc_ref = np.array(
        [
            roc_auc_score(y_test, clf.decision_function(scaler.transform(X_test[layer])))
            for layer, (scaler, clf) in enumerate(fitted["reference"])
        ]
    )
    probe = fitted["toolkit"]
    return _probe_row(
        f"{layers} layers x {n} x {d}, C=1.0, CPU, {probe.solver_}, "
        + _threads_note(probe.threads_),
        (a, b, ratios),
        s,
        solver=probe.solver_,
        toolkit_threads=probe.threads_,
        shape=list(shape),
        toolkit_iterations=[int(k) for k in probe.n_iter_],
        reference_lbfgs_iterations=[int(clf.n_iter_[0]) for _, clf in fitted["reference"]],
        max_abs_auroc_difference=float(np.abs(auroc_toolkit - auroc_ref).max()),
        held_out_auroc_toolkit=[round(float(x), 6) for x in auroc_toolkit],
        held_out_n=int(len(y_test)),
    )


def _real_grid_data(
    run_dir: str, stage: str, positions: tuple[str | int, ...]
) -> tuple[torch.Tensor, np.ndarray, torch.Tensor, np.ndarray, str]:
    """One stage's activations at every site and position, stacked as ``[sites x positions,
    n, d]`` float32 (as stored), split by the run's own train/test questions."""
    from analysis.bench.zoo import load_run_folder, load_stage

    run = load_run_folder(run_dir)
    if stage not in run.stages:
        stage = run.stages[0]
    data = [load_stage(run, stage, pos) for pos in positions]
    X = torch.cat([item.X for item in data]).float()
    first = data[0]
    y = first.labels
    described = f"{run.name}/{stage}: {len(first.sites)} sites x {len(positions)} positions"
    return X[:, first.train], y[first.train], X[:, first.test], y[first.test], described


def bench_probe_grid(s: Settings, run_dir: str | None) -> dict[str, Any]:
    """`fit_logistic_grid` over a finished run's sites x positions x C values vs scikit-learn's
    loop over the same grid (one StandardScaler per site and position, one LogisticRegression
    per C), same threads, same process, interleaved."""
    if run_dir is None:
        return result_row("probes", f"real grid: {REAL_GRID_NOT_MEASURED}", None, None, "s", None)
    X_train, y_train, X_test, y_test, described = _real_grid_data(
        run_dir, REAL_GRID_STAGE, REAL_GRID_POSITIONS
    )
    return _grid_row(
        s,
        (X_train, y_train, X_test, y_test),
        f"real grid, {described}",
        positions=[str(p) for p in REAL_GRID_POSITIONS],
    )


def bench_synthetic_grid(s: Settings, shape: tuple[int, int, int]) -> dict[str, Any]:
    """`fit_logistic_grid` vs scikit-learn's loop over the real grid's C values on synthetic
    data of ``shape`` (the real grid's sites x positions, n, d by default): the grid path,
    measured without a finished run."""
    layers, n, d = shape
    X_train, y_train, X_test, y_test = _probe_data(layers, n, d, seed=1)
    data = (torch.from_numpy(X_train), y_train, torch.from_numpy(X_test), y_test)
    return _grid_row(s, data, f"synthetic grid, {layers} layers")


def _grid_row(
    s: Settings,
    data: tuple[torch.Tensor, np.ndarray, torch.Tensor, np.ndarray],
    described: str,
    **extra: Any,
) -> dict[str, Any]:
    """Time `fit_logistic_grid` against scikit-learn's loop over the same layers x C values on
    ``data`` (train and test activations ``[layers, n, d]`` float32, and labels)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.preprocessing import StandardScaler

    from probes.logistic_grid import fit_logistic_grid

    X_train, y_train, X_test, y_test = data
    X_train_np, X_test_np = X_train.numpy(), X_test.numpy()
    Cs = REAL_GRID_CS
    fitted: dict[str, Any] = {}

    def toolkit() -> None:
        fitted["toolkit"] = fit_logistic_grid(X_train, y_train, C=Cs)

    def reference() -> None:
        models = []
        for site in range(X_train_np.shape[0]):
            scaler = StandardScaler().fit(X_train_np[site])
            Z = scaler.transform(X_train_np[site])
            fits = [LogisticRegression(C=c, max_iter=1000).fit(Z, y_train) for c in Cs]
            models.append((scaler, fits))
        fitted["reference"] = models

    a, b, ratios = _interleaved_same_threads(toolkit, reference, s)
    grid = fitted["toolkit"]
    auroc_toolkit = grid.score(X_test, y_test).numpy()  # [layers, C]
    auroc_ref = np.array(
        [
            [
                roc_auc_score(y_test, clf.decision_function(scaler.transform(X_test_np[i])))
                for clf in fits
            ]
            for i, (scaler, fits) in enumerate(fitted["reference"])
        ]
    )
    layers, n, d = X_train.shape
    return _probe_row(
        f"{described} x {len(Cs)} C, {n} x {d}, CPU, {grid.solver}, " + _threads_note(grid.threads),
        (a, b, ratios),
        s,
        solver=grid.solver,
        toolkit_threads=grid.threads,
        shape=[layers, n, d],
        grid_C=list(Cs),
        toolkit_iterations=grid.n_iter.tolist(),
        reference_lbfgs_iterations=[[int(c.n_iter_[0]) for c in f] for _, f in fitted["reference"]],
        max_abs_auroc_difference=float(np.abs(auroc_toolkit - auroc_ref).max()),
        held_out_n=int(len(y_test)),
        **extra,
    )
