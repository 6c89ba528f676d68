"""fit_logistic_grid: every layer x C value (or label set) at once, equal to separate fits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from probes import LayerwiseLogisticProbe, choose_solver, load_detector, save_detector
from probes.logistic import NEWTON_MAX_STEP_WORK
from probes.logistic_grid import LogisticGrid, fit_logistic_grid
from tests.probes.conftest import SIGNAL_LAYER, Planted
from tests.probes.test_lbfgs import _data

GRID = [10.0, 0.01, 1.0, 0.1]  # deliberately unsorted


@pytest.mark.parametrize(("n", "d"), [(150, 40), (40, 90)])  # n > d and n < d
def test_each_grid_entry_is_the_newton_optimum(n: int, d: int) -> None:
    X, y = _data(10, 3, n, d)
    grid = fit_logistic_grid(X, y, C=GRID, tol=1e-10, solver="lbfgs")
    assert grid.solver == "lbfgs" and grid.coef.shape == (3, len(GRID), d)
    newton = "primal" if n > d else "dual"
    for j, C in enumerate(GRID):
        exact = LayerwiseLogisticProbe(C=C, tol=1e-12, solver=newton).fit(X, y)
        torch.testing.assert_close(grid.coef[:, j], exact.coef_, rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(grid.intercept[:, j], exact.intercept_, rtol=1e-5, atol=1e-7)


def test_warm_started_grid_equals_cold_grid_and_independent_fits() -> None:
    X, y = _data(11, 2, 120, 30)
    warm = fit_logistic_grid(X, y, C=GRID, tol=1e-9, solver="lbfgs")
    cold = fit_logistic_grid(X, y, C=GRID, tol=1e-9, solver="lbfgs", warm_start=False)
    # tol=1e-9 on the mean gradient: the three agree to about 1e-6 relative
    torch.testing.assert_close(warm.coef, cold.coef, rtol=1e-5, atol=1e-7)
    for j, C in enumerate(GRID):
        alone = LayerwiseLogisticProbe(C=C, tol=1e-9, solver="lbfgs").fit(X, y)
        torch.testing.assert_close(warm.coef[:, j], alone.coef_, rtol=1e-5, atol=1e-7)
    # warm starts along the sorted grid save iterations on the weakly regularised entries
    assert warm.n_iter[:, 0].sum() < cold.n_iter[:, 0].sum()


def test_one_entry_is_the_probe_and_scores_match() -> None:
    X, y = _data(12, 2, 100, 20)
    X_test, y_test = _data(13, 2, 60, 20)
    grid = fit_logistic_grid(X, y, C=[0.1, 1.0])
    probe = LayerwiseLogisticProbe(C=1.0).fit(X, y)
    from_grid = grid.probe(1)
    assert from_grid.solver_ == probe.solver_ == grid.solver
    torch.testing.assert_close(from_grid.coef_, probe.coef_, rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(grid.score(X_test, y_test)[:, 1], probe.score(X_test, y_test))
    logits = grid.decision_function(X_test)
    expected = torch.einsum("lnd,lgd->lgn", torch.from_numpy(X_test), grid.coef)
    torch.testing.assert_close(logits, expected + grid.intercept[..., None])


def test_one_label_set_per_entry_equals_separate_fits() -> None:
    X, y = _data(14, 2, 90, 16)
    rng = np.random.default_rng(0)
    labels = np.stack([rng.permutation(y) for _ in range(3)])
    for solver in ("lbfgs", "primal"):
        grid = fit_logistic_grid(X, labels, C=0.5, solver=solver)
        assert grid.C == (0.5, 0.5, 0.5)
        for k in range(3):
            alone = LayerwiseLogisticProbe(C=0.5, solver=solver).fit(X, labels[k])
            torch.testing.assert_close(grid.coef[:, k], alone.coef_, rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize(
    ("n", "d", "expected"),
    [(300, 128, "lbfgs"), (2000, 256, "lbfgs"), (300, 512, "lbfgs"), (600, 32, "primal"),
     (40, 64, "dual"), (100, 200, "lbfgs"), (1000, 31, "primal"), (1000, 32, "lbfgs")],
)  # fmt: skip
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # max_iter=1
def test_auto_picks_by_the_newton_step_work(n: int, d: int, expected: str) -> None:
    assert choose_solver(n, d) == expected
    work = n * d * d if n >= d else n * n * d
    assert (work <= NEWTON_MAX_STEP_WORK) == (expected != "lbfgs")
    X, y = _data(15, 1, n, d)
    assert LayerwiseLogisticProbe(max_iter=1).fit(X.astype(np.float32), y).solver_ == expected


def test_an_lbfgs_probe_saves_and_loads(tmp_path) -> None:
    X, y = _data(16, 2, 150, 90)
    probe = LayerwiseLogisticProbe(C=0.3).fit(X, y)
    assert probe.solver_ == "lbfgs"
    loaded = load_detector(save_detector(probe, tmp_path / "probe"))
    assert loaded.get_params() == probe.get_params()
    torch.testing.assert_close(loaded.decision_function(X), probe.decision_function(X))


def test_rejects_bad_grids() -> None:
    X, y = _data(17, 1, 40, 4)
    with pytest.raises(ValueError, match="C must be positive"):
        fit_logistic_grid(X, y, C=[1.0, 0.0])
    with pytest.raises(ValueError, match="one row of labels per C value"):
        fit_logistic_grid(X, np.stack([y, y]), C=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="one label per example"):
        fit_logistic_grid(X, y[:-1], C=[1.0])


def test_a_grid_on_planted_data_finds_the_signal_layer_at_every_c(planted: Planted) -> None:
    grid = fit_logistic_grid(planted.X_train, planted.y_train, C=[0.01, 1.0])
    assert isinstance(grid, LogisticGrid) and grid.C == (0.01, 1.0)
    auroc = grid.score(planted.X_test, planted.y_test)  # [layers, 2]
    assert bool((auroc[SIGNAL_LAYER] > planted.optimal_auroc - 0.03).all())
    assert bool(((auroc[:SIGNAL_LAYER] - 0.5).abs() < 0.1).all())  # no signal elsewhere
    with pytest.raises(ValueError, match=r"grid was fitted on 3 layers of width d=32"):
        grid.decision_function(planted.X_test[:, :, :8])
