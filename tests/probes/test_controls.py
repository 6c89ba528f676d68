"""The label-shuffle control sits at chance where the real probe finds the planted signal."""

from __future__ import annotations

import numpy as np
import pytest

from probes import LayerwiseLogisticProbe
from probes.controls import shuffled_label_auroc, shuffled_label_null
from tests.probes.conftest import N_LAYERS, SIGNAL_LAYER, Planted


def test_shuffled_labels_give_chance_auroc(planted: Planted) -> None:
    real = LayerwiseLogisticProbe().fit(planted.X_train, planted.y_train)
    assert real.score(planted.X_test, planted.y_test)[SIGNAL_LAYER].item() > 0.9
    control = shuffled_label_auroc(
        planted.X_train, planted.y_train, planted.X_test, planted.y_test, seed=0
    )
    assert control.shape == (N_LAYERS,)
    assert np.all(np.abs(control - 0.5) < 0.1)


def test_shuffled_control_is_seeded_and_leaves_inputs_alone(planted: Planted) -> None:
    y_train = planted.y_train.copy()
    args = (planted.X_train, y_train, planted.X_test, planted.y_test)
    first = shuffled_label_auroc(*args, seed=3)
    np.testing.assert_array_equal(first, shuffled_label_auroc(*args, seed=3))
    assert not np.array_equal(first, shuffled_label_auroc(*args, seed=4))
    np.testing.assert_array_equal(y_train, planted.y_train)


def test_null_fits_every_permutation_as_its_own_probe(planted: Planted) -> None:
    # One batched solve over the permutations gives each permutation's own probe.
    from probes import layerwise_auroc

    null = shuffled_label_null(
        planted.X_train, planted.y_train, planted.X_test, planted.y_test, seed=5, n_permutations=3
    )
    assert null.shape == (3, N_LAYERS)
    for k in range(3):
        permuted = np.random.default_rng(5 + k).permutation(planted.y_train)
        probe = LayerwiseLogisticProbe().fit(planted.X_train, permuted)
        expected = layerwise_auroc(probe.decision_function(planted.X_test), planted.y_test)
        np.testing.assert_allclose(null[k], expected, atol=1e-9)


def test_the_control_is_the_mean_of_the_permutation_null(planted: Planted) -> None:
    args = (planted.X_train, planted.y_train, planted.X_test, planted.y_test)
    spread = shuffled_label_null(*args, seed=7, n_permutations=4)
    averaged = shuffled_label_auroc(*args, seed=7, n_permutations=4)
    np.testing.assert_allclose(averaged, spread.mean(axis=0))
    real = LayerwiseLogisticProbe().fit(planted.X_train, planted.y_train)
    assert real.score(planted.X_test, planted.y_test)[SIGNAL_LAYER].item() > spread.max() + 0.2
    with pytest.raises(ValueError, match="n_permutations must be at least 1, got 0"):
        shuffled_label_null(*args, n_permutations=0)
