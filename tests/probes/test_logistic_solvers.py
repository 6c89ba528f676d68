"""The primal and dual Newton solvers of LayerwiseLogisticProbe reach scikit-learn's optimum."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from probes import LayerwiseLogisticProbe, load_detector, save_detector


def _wide(seed: int, n: int = 60, d: int = 150, layers: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Fewer examples than features (the dual's case); a class shift along one direction."""
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.r_[np.zeros(n // 2), np.ones(n - n // 2)]).astype(np.int64)
    X = rng.normal(size=(layers, n, d)) * rng.uniform(0.5, 4.0, size=(layers, 1, d)) + 2.0
    direction = rng.normal(size=d) / np.sqrt(d)
    X += np.linspace(0.0, 3.0, layers)[:, None, None] * np.outer(y, direction)[None]
    return X, y


@pytest.mark.parametrize("C", [0.01, 1.0, 100.0])
def test_dual_matches_sklearn_when_n_below_d(C: float) -> None:
    X, y = _wide(0)
    probe = LayerwiseLogisticProbe(C=C, solver="dual", tol=1e-9).fit(X, y)
    for layer in range(X.shape[0]):
        scaler = StandardScaler().fit(X[layer])
        # newton-cholesky: lbfgs stops short of the optimum at C=100 on this data.
        reference = LogisticRegression(C=C, tol=1e-10, solver="newton-cholesky").fit(
            scaler.transform(X[layer]), y
        )
        np.testing.assert_allclose(
            (probe.coef_[layer] * probe.scale_[layer]).numpy(),
            reference.coef_[0],
            rtol=1e-3,
            atol=1e-6,
        )
        theirs = reference.decision_function(scaler.transform(X[layer]))
        np.testing.assert_allclose(
            probe.decision_function(X)[layer].numpy(), theirs, rtol=1e-3, atol=1e-5
        )


@pytest.mark.parametrize("shape", [(60, 150), (300, 20)])
def test_primal_and_dual_reach_the_same_optimum(shape: tuple[int, int]) -> None:
    X, y = _wide(1, n=shape[0], d=shape[1])
    primal = LayerwiseLogisticProbe(solver="primal", tol=1e-9).fit(X, y)
    dual = LayerwiseLogisticProbe(solver="dual", tol=1e-9).fit(X, y)
    torch.testing.assert_close(dual.coef_, primal.coef_, rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(dual.intercept_, primal.intercept_, rtol=1e-6, atol=1e-8)


def test_auto_uses_the_dual_for_wide_data_and_the_primal_for_tall() -> None:
    wide_X, wide_y = _wide(2, n=40, d=90)
    tall_X, tall_y = _wide(2, n=200, d=10)
    for X, y, expected in ((wide_X, wide_y, "dual"), (tall_X, tall_y, "primal")):
        auto = LayerwiseLogisticProbe().fit(X, y)
        explicit = LayerwiseLogisticProbe(solver=expected).fit(X, y)
        assert torch.equal(auto.coef_, explicit.coef_)


def test_dual_converges_on_separable_data_with_weak_regularisation() -> None:
    rng = np.random.default_rng(3)
    y = np.r_[np.zeros(20), np.ones(20)].astype(np.int64)
    X = rng.normal(size=(2, 40, 64))
    X[:, y == 1, :4] += 4.0  # perfectly separable
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        probe = LayerwiseLogisticProbe(C=1e4, solver="dual").fit(X, y)
    assert torch.isfinite(probe.coef_).all()
    assert (probe.n_iter_ < probe.max_iter).all()
    assert torch.equal(probe.score(X, y), torch.ones(2, dtype=torch.float64))


def test_dual_warns_when_not_converged() -> None:
    X, y = _wide(4)
    with pytest.warns(ConvergenceWarning, match="max_iter"):
        LayerwiseLogisticProbe(max_iter=1, solver="dual").fit(X, y)


def test_rejects_unknown_solver() -> None:
    X, y = _wide(5)
    with pytest.raises(ValueError, match="solver must be one of"):
        LayerwiseLogisticProbe(solver="sgd").fit(X, y)


def test_a_probe_saved_before_the_solver_parameter_still_loads(tmp_path: Path) -> None:
    X, y = _wide(6)
    probe = LayerwiseLogisticProbe(C=0.5).fit(X, y)
    stem = save_detector(probe, tmp_path / "probe")
    meta = json.loads(Path(f"{stem}.json").read_text())
    del meta["params"]["solver"]  # as written by the version without `solver`
    Path(f"{stem}.json").write_text(json.dumps(meta))
    loaded = load_detector(stem)
    assert loaded.get_params() == {"C": 0.5, "max_iter": 1000, "tol": 1e-4, "solver": "auto"}
    torch.testing.assert_close(loaded.decision_function(X), probe.decision_function(X))
    meta["params"]["learning_rate"] = 0.1
    Path(f"{stem}.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="takes parameters"):
        load_detector(stem)
