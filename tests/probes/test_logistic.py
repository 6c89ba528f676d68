"""Behaviour of LayerwiseLogisticProbe: recovers planted signal, matches scikit-learn, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler

from probes import LayerwiseLogisticProbe
from tests.probes.conftest import D_MODEL, N_LAYERS, SIGNAL_LAYER, Planted


@pytest.fixture(scope="module")
def fitted(planted: Planted) -> LayerwiseLogisticProbe:
    return LayerwiseLogisticProbe(C=1.0).fit(planted.X_train, planted.y_train)


def test_recovers_planted_direction(planted: Planted, fitted: LayerwiseLogisticProbe) -> None:
    held_out = fitted.score(planted.X_test, planted.y_test)
    assert held_out.shape == (N_LAYERS,)
    assert abs(held_out[SIGNAL_LAYER].item() - planted.optimal_auroc) < 0.03
    for layer in range(N_LAYERS):
        if layer != SIGNAL_LAYER:
            assert abs(held_out[layer].item() - 0.5) < 0.1
    coef = fitted.coef_[SIGNAL_LAYER].numpy()
    cosine = coef @ planted.direction / np.linalg.norm(coef)
    assert cosine > 0.8  # positive: higher score = trigger present


@pytest.mark.parametrize("solver", ["lbfgs", "primal"])
@pytest.mark.parametrize("C", [0.05, 1.0])
def test_matches_sklearn_per_layer(planted: Planted, C: float, solver: str) -> None:
    probe = LayerwiseLogisticProbe(C=C, tol=1e-8, solver=solver).fit(
        planted.X_train, planted.y_train
    )
    ours = probe.decision_function(planted.X_test).numpy()
    for layer in range(N_LAYERS):
        scaler = StandardScaler().fit(planted.X_train[layer])
        reference = LogisticRegression(C=C, tol=1e-10, max_iter=10_000).fit(
            scaler.transform(planted.X_train[layer]), planted.y_train
        )
        # Our coef_/intercept_ live in the original space; map back to standardised space.
        coef_std = (probe.coef_[layer] * probe.scale_[layer]).numpy()
        intercept_std = (probe.intercept_[layer] + probe.coef_[layer] @ probe.mean_[layer]).item()
        np.testing.assert_allclose(coef_std, reference.coef_[0], rtol=1e-3, atol=1e-6)
        np.testing.assert_allclose(intercept_std, reference.intercept_[0], rtol=1e-3, atol=1e-6)
        np.testing.assert_allclose(probe.mean_[layer].numpy(), scaler.mean_, rtol=1e-12)
        np.testing.assert_allclose(probe.scale_[layer].numpy(), scaler.scale_, rtol=1e-12)

        theirs = reference.decision_function(scaler.transform(planted.X_test[layer]))
        np.testing.assert_allclose(ours[layer], theirs, rtol=1e-3, atol=1e-5)
        gap = roc_auc_score(planted.y_test, ours[layer]) - roc_auc_score(planted.y_test, theirs)
        assert abs(gap) < 0.005


def test_default_stopping_rule_agrees_with_sklearns_default(planted: Planted) -> None:
    # tol=1e-4 is scikit-learn's rule on the same objective: held-out AUROC within 0.005 of a
    # default LogisticRegression, and the logits close to a tightly converged fit.
    for solver in ("lbfgs", "primal"):
        probe = LayerwiseLogisticProbe(solver=solver).fit(planted.X_train, planted.y_train)
        tight = LayerwiseLogisticProbe(solver=solver, tol=1e-10).fit(
            planted.X_train, planted.y_train
        )
        ours = probe.decision_function(planted.X_test).numpy()
        exact = tight.decision_function(planted.X_test).numpy()
        assert np.abs(ours - exact).max() < 0.05 * np.abs(exact).max()
        for layer in range(N_LAYERS):
            scaler = StandardScaler().fit(planted.X_train[layer])
            reference = LogisticRegression().fit(
                scaler.transform(planted.X_train[layer]), planted.y_train
            )
            theirs = reference.decision_function(scaler.transform(planted.X_test[layer]))
            gap = roc_auc_score(planted.y_test, ours[layer]) - roc_auc_score(planted.y_test, theirs)
            assert abs(gap) < 0.005


def test_batched_fit_equals_separate_fits(planted: Planted, fitted: LayerwiseLogisticProbe) -> None:
    for layer in range(N_LAYERS):
        single = LayerwiseLogisticProbe(C=1.0).fit(
            planted.X_train[layer : layer + 1], planted.y_train
        )
        torch.testing.assert_close(single.coef_[0], fitted.coef_[layer], rtol=1e-6, atol=1e-9)
        torch.testing.assert_close(
            single.intercept_[0], fitted.intercept_[layer], rtol=1e-6, atol=1e-9
        )


def test_decision_function_is_affine_in_original_space(
    planted: Planted, fitted: LayerwiseLogisticProbe
) -> None:
    X = torch.from_numpy(planted.X_test)
    expected = torch.einsum("lnd,ld->ln", X, fitted.coef_) + fitted.intercept_[:, None]
    torch.testing.assert_close(fitted.decision_function(X), expected)
    torch.testing.assert_close(fitted.predict_proba(X), torch.sigmoid(expected))
    assert torch.equal(fitted.predict(X), (expected > 0).long())


def test_standardisation_uses_training_statistics_only(
    planted: Planted, fitted: LayerwiseLogisticProbe
) -> None:
    torch.testing.assert_close(fitted.mean_, torch.from_numpy(planted.X_train.mean(axis=1)))
    X = torch.from_numpy(planted.X_test)
    shift = torch.linspace(-5.0, 5.0, D_MODEL, dtype=torch.float64)
    moved = fitted.decision_function(X + shift)
    expected_change = (fitted.coef_ @ shift)[:, None]
    torch.testing.assert_close(
        moved - fitted.decision_function(X), expected_change.expand_as(moved)
    )
    # One example scores the same alone as inside a batch (no test-time normalisation).
    torch.testing.assert_close(
        fitted.decision_function(X[:, :1]), fitted.decision_function(X)[:, :1]
    )


def test_numpy_and_torch_inputs_agree(planted: Planted, fitted: LayerwiseLogisticProbe) -> None:
    from_torch = LayerwiseLogisticProbe(C=1.0).fit(
        torch.from_numpy(planted.X_train), torch.from_numpy(planted.y_train)
    )
    torch.testing.assert_close(from_torch.coef_, fitted.coef_)
    float32 = LayerwiseLogisticProbe(C=1.0).fit(
        torch.from_numpy(planted.X_train).float(), planted.y_train.astype(bool)
    )
    torch.testing.assert_close(float32.coef_, fitted.coef_, rtol=1e-4, atol=1e-5)


def test_flipping_labels_flips_the_probe(planted: Planted, fitted: LayerwiseLogisticProbe) -> None:
    flipped = LayerwiseLogisticProbe(C=1.0).fit(planted.X_train, 1 - planted.y_train)
    torch.testing.assert_close(flipped.coef_, -fitted.coef_, rtol=1e-6, atol=1e-9)


def test_converges_on_separable_data_with_weak_regularisation() -> None:
    rng = np.random.default_rng(1)
    y = np.r_[np.zeros(25), np.ones(25)].astype(np.int64)
    X = rng.normal(size=(2, 50, 8))
    X[:, y == 1] += 4.0  # perfectly separable: plain Newton from zero would overshoot
    probe = LayerwiseLogisticProbe(C=1e4).fit(X, y)
    assert torch.isfinite(probe.coef_).all()
    assert (probe.n_iter_ < probe.max_iter).all()
    assert torch.equal(probe.score(X, y), torch.ones(2, dtype=torch.float64))


def test_warns_when_not_converged(planted: Planted) -> None:
    with pytest.warns(ConvergenceWarning, match="max_iter"):
        LayerwiseLogisticProbe(max_iter=1).fit(planted.X_train, planted.y_train)


def test_constant_feature_gets_unit_scale_and_no_nan() -> None:
    rng = np.random.default_rng(2)
    X = rng.normal(size=(2, 100, 4))
    X[:, :, 1] = 7.0
    y = rng.permutation(np.r_[np.zeros(50), np.ones(50)])
    probe = LayerwiseLogisticProbe().fit(X, y)
    assert torch.equal(probe.scale_[:, 1], torch.ones(2, dtype=torch.float64))
    assert torch.isfinite(probe.decision_function(X)).all()


def test_sklearn_estimator_contract() -> None:
    probe = LayerwiseLogisticProbe(C=0.5, max_iter=10)
    assert probe.get_params() == {"C": 0.5, "max_iter": 10, "tol": 1e-4, "solver": "auto"}
    assert probe.set_params(C=2.0) is probe and probe.C == 2.0
    copy = clone(probe)
    assert copy.get_params() == probe.get_params()
    assert not hasattr(copy, "coef_")


# --- errors -----------------------------------------------------------------------------


def test_rejects_non_3d_input() -> None:
    with pytest.raises(ValueError, match=r"\[layers, n, d_model\]"):
        LayerwiseLogisticProbe().fit(np.zeros((10, 4)), np.r_[np.zeros(5), np.ones(5)])


def test_rejects_label_count_mismatch(planted: Planted) -> None:
    with pytest.raises(ValueError, match="one label per example"):
        LayerwiseLogisticProbe().fit(planted.X_train, planted.y_train[:-1])


def test_rejects_non_binary_labels(planted: Planted) -> None:
    with pytest.raises(ValueError, match="binary"):
        LayerwiseLogisticProbe().fit(planted.X_train, planted.y_train * 2)


def test_rejects_one_class(planted: Planted) -> None:
    with pytest.raises(ValueError, match="both classes"):
        LayerwiseLogisticProbe().fit(planted.X_train, np.ones_like(planted.y_train))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_rejects_non_finite_activations(planted: Planted, bad: float) -> None:
    X = planted.X_train.copy()
    X[1, 5, 3] = bad
    with pytest.raises(ValueError, match="NaN or infinite"):
        LayerwiseLogisticProbe().fit(X, planted.y_train)


def test_rejects_non_finite_test_activations(
    planted: Planted, fitted: LayerwiseLogisticProbe
) -> None:
    X = planted.X_test.copy()
    X[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        fitted.decision_function(X)


def test_rejects_use_before_fit(planted: Planted) -> None:
    with pytest.raises(NotFittedError):
        LayerwiseLogisticProbe().decision_function(planted.X_test)


def test_rejects_wrong_width_naming_expected(
    planted: Planted, fitted: LayerwiseLogisticProbe
) -> None:
    with pytest.raises(ValueError, match=f"d={D_MODEL}"):
        fitted.decision_function(planted.X_test[:, :, :16])
    with pytest.raises(ValueError, match=f"{N_LAYERS} layers"):
        fitted.decision_function(planted.X_test[:2])


def test_rejects_bad_hyperparameters(planted: Planted) -> None:
    with pytest.raises(ValueError, match="C must be positive"):
        LayerwiseLogisticProbe(C=0.0).fit(planted.X_train, planted.y_train)
