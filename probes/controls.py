"""Negative controls: probes fitted where there should be nothing to find."""

from __future__ import annotations

from typing import Any

import numpy as np
from jaxtyping import Float

from probes._validation import check_binary_labels
from probes.logistic import LayerwiseLogisticProbe
from probes.metrics import layerwise_auroc


def shuffled_label_auroc(
    X_train: Any, y_train: Any, X_test: Any, y_test: Any, seed: int = 0, C: float = 1.0
) -> Float[np.ndarray, " layers"]:
    """Held-out AUROC per layer of a probe trained on randomly permuted training labels.

    The permutation breaks any link between activations and labels, so the result should sit
    near 0.5 on every layer; a layer well above 0.5 points to leakage between train and test
    (or a bug), not to a real trigger representation. ``X_*`` are ``[layers, n, d]``,
    ``y_*`` are ``[n]`` 0/1 labels; the test AUROC uses the TRUE ``y_test``.

    Example::

        control = shuffled_label_auroc(X_train, y_train, X_test, y_test, seed=0)
        # compare with LayerwiseLogisticProbe().fit(X_train, y_train).score(X_test, y_test)
    """
    labels = check_binary_labels(y_train, "y_train")
    permuted = np.random.default_rng(seed).permutation(labels)
    probe = LayerwiseLogisticProbe(C=C).fit(X_train, permuted)
    return layerwise_auroc(probe.decision_function(X_test), y_test)
