"""The batched Newton solvers called directly: on tiny problems (one separable layer, one
overlapping) both the primal and the dual reach scikit-learn's L2 logistic optimum, in a few
steps, each layer as if solved alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from probes._newton import dual_newton, primal_newton

C = 0.5


def _layers(seed: int = 0, n: int = 40, d: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Two layers: layer 0 linearly separable (a margin along feature 0), layer 1 overlapping."""
    rng = np.random.default_rng(seed)
    y = np.r_[np.zeros(n // 2), np.ones(n // 2)]
    separable = rng.normal(size=(n, d))
    separable[:, 0] = np.where(y == 1, 1.0, -1.0) * (1.0 + rng.uniform(size=n))
    overlapping = rng.normal(size=(n, d)) + 0.7 * y[:, None]
    return np.stack([separable, overlapping]), y


def _sklearn(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    ref = LogisticRegression(C=C, tol=1e-12, solver="newton-cholesky").fit(X, y)
    return ref.coef_[0], float(ref.intercept_[0])


def _primal(X: np.ndarray, y: np.ndarray):
    Xa = torch.as_tensor(np.concatenate([X, np.ones((*X.shape[:2], 1))], axis=-1))
    penalty = torch.tensor([1.0 / C] * X.shape[-1] + [0.0], dtype=torch.float64)
    beta, n_iter, converged = primal_newton(Xa, torch.as_tensor(y)[None], penalty, 50, 1e-10)
    return beta[:, :-1], beta[:, -1], n_iter, converged


def _dual(X: np.ndarray, y: np.ndarray):
    return dual_newton(torch.as_tensor(X), torch.as_tensor(y)[None], C, 50, 1e-10)


@pytest.mark.parametrize("solve", [_primal, _dual], ids=["primal", "dual"])
def test_each_layer_reaches_sklearns_optimum(solve) -> None:
    X, y = _layers()
    w, b, n_iter, converged = solve(X, y)
    assert bool(converged.all()) and int(n_iter.max()) < 25
    for layer in range(X.shape[0]):
        coef, intercept = _sklearn(X[layer], y)
        np.testing.assert_allclose(w[layer].numpy(), coef, rtol=1e-6, atol=1e-8)
        assert float(b[layer]) == pytest.approx(intercept, rel=1e-6, abs=1e-8)
    # the separable layer is classified perfectly; L2 keeps its weights finite
    assert bool(((torch.as_tensor(X[0]) @ w[0] + b[0] > 0) == torch.as_tensor(y == 1)).all())


@pytest.mark.parametrize("solve", [_primal, _dual], ids=["primal", "dual"])
def test_layers_are_independent_problems(solve) -> None:
    X, y = _layers()
    w, b, _, _ = solve(X, y)
    w1, b1, _, _ = solve(X[1:], y)
    torch.testing.assert_close(w[1], w1[0], rtol=1e-9, atol=1e-11)
    torch.testing.assert_close(b[1], b1[0], rtol=1e-9, atol=1e-11)


def test_primal_and_dual_agree_when_features_outnumber_examples() -> None:
    X, y = _layers(seed=1, n=12, d=30)  # n < d: the dual's case
    wp, bp, _, cp = _primal(X, y)
    wd, bd, _, cd = _dual(X, y)
    assert bool(cp.all()) and bool(cd.all())
    torch.testing.assert_close(wp, wd, rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(bp, bd, rtol=1e-6, atol=1e-8)


def test_a_hessian_that_lost_positive_definiteness_is_solved_with_a_jitter() -> None:
    """A layer whose float32 Hessian is singular (here: rank one, 200 wide, beside a healthy
    one) is solved with a small diagonal jitter: a finite solution that satisfies the system
    where it can, and the healthy layer's solution is the exact one."""
    from probes._newton import _spd_solve

    torch.manual_seed(0)
    k = 200
    a = torch.randn(k, k, dtype=torch.float64)
    healthy = a @ a.T + k * torch.eye(k, dtype=torch.float64)
    v = torch.randn(k, dtype=torch.float64)
    singular = torch.outer(v, v)
    rhs = torch.stack([torch.randn(k, dtype=torch.float64), 3.0 * v])
    out = _spd_solve(torch.stack([healthy, singular]), rhs)
    assert torch.isfinite(out).all()
    assert torch.allclose(out[0], torch.linalg.solve(healthy, rhs[0]), atol=1e-8)
    assert torch.allclose(singular @ out[1], rhs[1], rtol=1e-3, atol=1e-3)
