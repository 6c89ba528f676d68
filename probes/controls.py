"""Negative controls: probes fitted where there should be nothing to find."""

from __future__ import annotations

from typing import Any

import numpy as np
from jaxtyping import Float

from probes._validation import check_binary_labels
from probes.logistic_grid import fit_logistic_grid
from probes.metrics import layerwise_auroc


def shuffled_label_auroc(
    X_train: Any,
    y_train: Any,
    X_test: Any,
    y_test: Any,
    seed: int = 0,
    C: float = 1.0,
    n_permutations: int = 1,
) -> Float[np.ndarray, " layers"]:
    """Held-out AUROC per layer of a probe trained on randomly permuted training labels,
    averaged over `n_permutations` permutations.

    The permutation breaks any link between activations and labels, so the result should sit
    near 0.5 on every layer; a layer well above 0.5 points to leakage between train and test
    (or a bug), not to a real trigger representation. ``X_*`` are ``[layers, n, d]``,
    ``y_*`` are ``[n]`` 0/1 labels; the test AUROC uses the TRUE ``y_test``.

    One permutation is a noisy control: when one direction dominates the activations (a
    strongly represented trigger), a permutation that happens to correlate with the truth
    yields a probe far from 0.5 in either direction. Use `shuffled_label_null` for the spread.

    Example::

        control = shuffled_label_auroc(X_train, y_train, X_test, y_test, seed=0)
        # compare with LayerwiseLogisticProbe().fit(X_train, y_train).score(X_test, y_test)
    """
    null = shuffled_label_null(X_train, y_train, X_test, y_test, seed, C, n_permutations)
    return null.mean(axis=0)


def shuffled_label_null(
    X_train: Any,
    y_train: Any,
    X_test: Any,
    y_test: Any,
    seed: int = 0,
    C: float = 1.0,
    n_permutations: int = 20,
) -> Float[np.ndarray, "permutations layers"]:
    """Held-out AUROC per layer for each of `n_permutations` label permutations of the training
    set (the permutation null distribution); permutation k uses `default_rng(seed + k)`."""
    if n_permutations < 1:
        raise ValueError(f"n_permutations must be at least 1, got {n_permutations}.")
    labels = check_binary_labels(y_train, "y_train")
    permuted = np.stack(
        [np.random.default_rng(seed + k).permutation(labels) for k in range(n_permutations)]
    )
    # Every permutation of every layer in one solve (the same probes as fitting
    # LayerwiseLogisticProbe(C=C) once per permutation).
    grid = fit_logistic_grid(X_train, permuted, C=C)
    scores = grid.decision_function(X_test)  # [layers, permutations, n_test]
    n_layers, _, n_test = scores.shape
    flat = layerwise_auroc(scores.transpose(0, 1).reshape(-1, n_test), y_test)
    return flat.reshape(n_permutations, n_layers)
