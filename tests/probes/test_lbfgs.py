"""The batched L-BFGS solver: scikit-learn's stopping rule, its optimum, awkward layers, dtypes."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler

from probes import LayerwiseLogisticProbe
from probes._lbfgs import lbfgs_logistic
from probes.logistic import standardise


def _data(seed: int, layers: int, n: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    """Uneven feature scales and offsets, a class shift along a random direction per layer."""
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.r_[np.zeros(n // 2), np.ones(n - n // 2)]).astype(np.int64)
    X = rng.normal(size=(layers, n, d)) * rng.uniform(0.5, 4.0, size=(layers, 1, d)) + 2.0
    direction = rng.normal(size=(layers, 1, d)) / np.sqrt(d)
    X += np.linspace(0.5, 3.0, layers)[:, None, None] * (2 * y - 1)[None, :, None] * direction
    return X, y


def _mean_gradient(X: np.ndarray, y: np.ndarray, coef: np.ndarray, b: float, C: float) -> float:
    """Max-norm of the gradient of scikit-learn's mean objective, standardised coordinates."""
    scaler = StandardScaler().fit(X)
    Z = scaler.transform(X)
    w = coef * scaler.scale_
    b_std = b + coef @ scaler.mean_
    r = 1.0 / (1.0 + np.exp(-(Z @ w + b_std))) - y
    grad = np.r_[Z.T @ r + w / C, r.sum()] / len(y)
    return float(np.abs(grad).max())


@pytest.mark.parametrize("tol", [1e-3, 1e-4, 1e-6])
def test_stops_at_scikit_learns_rule(tol: float) -> None:
    X, y = _data(0, 3, 200, 30)
    probe = LayerwiseLogisticProbe(tol=tol, solver="lbfgs").fit(X, y)
    for layer in range(3):
        coef = probe.coef_[layer].numpy()
        gradient = _mean_gradient(X[layer], y, coef, float(probe.intercept_[layer]), 1.0)
        assert gradient < tol
    if tol == 1e-6:  # a tighter tolerance takes more iterations
        loose = LayerwiseLogisticProbe(tol=1e-3, solver="lbfgs").fit(X, y)
        assert (loose.n_iter_ < probe.n_iter_).all()


@pytest.mark.parametrize(("n", "d"), [(200, 30), (40, 90)])  # n > d and n < d
@pytest.mark.parametrize("C", [0.01, 1.0, 100.0])
def test_reaches_scikit_learns_optimum(n: int, d: int, C: float) -> None:
    X, y = _data(1, 2, n, d)
    probe = LayerwiseLogisticProbe(C=C, tol=1e-10, solver="lbfgs").fit(X, y)
    for layer in range(2):
        scaler = StandardScaler().fit(X[layer])
        reference = LogisticRegression(C=C, tol=1e-12, solver="newton-cholesky", max_iter=500)
        reference.fit(scaler.transform(X[layer]), y)
        ours = probe.decision_function(X)[layer].numpy()
        theirs = reference.decision_function(scaler.transform(X[layer]))
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


def test_a_constant_layer_and_a_separable_layer_do_not_break_it() -> None:
    rng = np.random.default_rng(2)
    y = np.r_[np.zeros(30), np.ones(30)].astype(np.int64)
    X = rng.normal(size=(3, 60, 20))
    X[0] = 5.0  # every feature constant: nothing to learn
    X[1, y == 1, :3] += 6.0  # perfectly separable
    X[2, :, 4] = -2.0  # one constant feature
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        probe = LayerwiseLogisticProbe(C=1e4, solver="lbfgs").fit(X, y)
    assert torch.isfinite(probe.coef_).all() and torch.isfinite(probe.intercept_).all()
    assert probe.coef_[0].abs().max() < 1e-12  # rounding of the mean only
    assert torch.equal(probe.scale_[0], torch.ones(20, dtype=torch.float64))
    assert abs(probe.coef_[2, 4]) < 1e-12
    assert probe.score(X, y)[1] == 1.0
    assert (probe.n_iter_ < probe.max_iter).all()


@pytest.mark.parametrize("solver", ["lbfgs", "primal", "dual"])
def test_float32_and_float64_inputs_give_the_same_probe(solver: str) -> None:
    X, y = _data(3, 2, 80, 40)
    X32 = X.astype(np.float32)
    wide = LayerwiseLogisticProbe(tol=1e-6, solver=solver).fit(X32.astype(np.float64), y)
    narrow = LayerwiseLogisticProbe(tol=1e-6, solver=solver).fit(torch.from_numpy(X32), y)
    assert narrow.coef_.dtype == torch.float64
    logits = wide.decision_function(X32)
    torch.testing.assert_close(narrow.decision_function(X32), logits, rtol=0, atol=1e-3)


def test_a_problem_that_stops_early_keeps_its_point() -> None:
    # Batched problems are independent: one layer alone equals the same layer in the batch,
    # although the other layers need more iterations.
    X, y = _data(4, 3, 120, 25)
    together = LayerwiseLogisticProbe(solver="lbfgs").fit(X, y)
    assert len(set(together.n_iter_.tolist())) > 1
    for layer in range(3):
        alone = LayerwiseLogisticProbe(solver="lbfgs").fit(X[layer : layer + 1], y)
        torch.testing.assert_close(alone.coef_[0], together.coef_[layer], rtol=1e-9, atol=1e-12)
        assert alone.n_iter_[0] == together.n_iter_[layer]


def test_solver_warm_start_from_the_optimum_needs_no_iteration() -> None:
    X, y = _data(5, 2, 100, 12)
    Xt = torch.from_numpy(X)
    X_std, _, _ = standardise(Xt)
    labels = torch.from_numpy(y).double()[None]
    C = torch.tensor([1.0], dtype=torch.float64)
    first = lbfgs_logistic(X_std, labels, C, tol=1e-8, max_iter=500)
    assert first.converged.all()
    again = lbfgs_logistic(X_std, labels, C, tol=1e-8, max_iter=500, init=(first.w, first.b))
    assert (again.n_iter == 0).all()
    assert torch.equal(again.w, first.w)


def _residual_like(seed: int, n: int, d: int, layers: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Activations shaped like a residual stream: correlated features with a decaying spectrum,
    a few 'massive' dimensions with large offsets, and a weak class direction."""
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.r_[np.zeros(n // 2), np.ones(n - n // 2)]).astype(np.int64)
    X = np.empty((layers, n, d))
    for layer in range(layers):
        basis = rng.normal(size=(d, d)) / np.sqrt(d)  # a random mixing: correlated features
        spectrum = 1.0 / np.arange(1, d + 1) ** 0.7
        X[layer] = (rng.normal(size=(n, d)) * spectrum) @ basis.T
        X[layer, :, :3] = 40.0 + 8.0 * X[layer, :, :3]  # massive activations
        X[layer] += 0.15 * (2 * y - 1)[:, None] * basis[:, 5]
    return X.astype(np.float32), y


@pytest.mark.parametrize(("n", "d"), [(300, 128), (120, 256)])
def test_default_rule_matches_scikit_learns_auroc_on_residual_like_data(n: int, d: int) -> None:
    X_all, y_all = _residual_like(6, n + 400, d)  # one geometry; the last 400 rows held out
    X, y, X_test, y_test = X_all[:, :n], y_all[:n], X_all[:, n:], y_all[n:]
    probe = LayerwiseLogisticProbe().fit(X, y)
    assert probe.solver_ == "lbfgs"
    ours = probe.decision_function(X_test).numpy()
    for layer in range(2):
        scaler = StandardScaler().fit(X[layer])
        reference = LogisticRegression(max_iter=1000).fit(scaler.transform(X[layer]), y)
        theirs = reference.decision_function(scaler.transform(X_test[layer]))
        gap = roc_auc_score(y_test, ours[layer]) - roc_auc_score(y_test, theirs)
        assert abs(gap) < 0.005
        assert roc_auc_score(y_test, ours[layer]) > 0.6  # the direction is found
