"""The label-shuffle control sits at chance where the real probe finds the planted signal."""

from __future__ import annotations

import numpy as np

from probes import LayerwiseLogisticProbe, shuffled_label_auroc
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
