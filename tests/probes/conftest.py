"""Shared synthetic data for the probe tests: a trigger direction planted in one layer."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest

N_LAYERS, D_MODEL = 3, 32
N_TRAIN, N_TEST = 600, 2000
SIGNAL_LAYER = 2
SEPARATION = 2.0  # distance between class means along the planted unit direction


@dataclass(frozen=True)
class Planted:
    X_train: np.ndarray  # [layers, n_train, d]
    y_train: np.ndarray  # [n_train]
    X_test: np.ndarray  # [layers, n_test, d]
    y_test: np.ndarray  # [n_test]
    direction: np.ndarray  # [d], unit norm
    optimal_auroc: float  # Bayes-optimal AUROC on the signal layer


def _split(rng: np.random.Generator, n: int, direction: np.ndarray) -> tuple[np.ndarray, ...]:
    y = rng.permutation(np.r_[np.zeros(n // 2), np.ones(n - n // 2)]).astype(np.int64)
    X = rng.normal(size=(N_LAYERS, n, D_MODEL))
    # Layer 0: no signal but an offset and a large scale, so standardisation matters.
    X[0] = 10.0 * X[0] + 3.0
    # Layer 2: class means differ by SEPARATION along `direction` (unit-variance noise).
    X[SIGNAL_LAYER] += SEPARATION * np.outer(y, direction)
    return X, y


def make_planted(seed: int = 0) -> Planted:
    rng = np.random.default_rng(seed)
    direction = rng.normal(size=D_MODEL)
    direction /= np.linalg.norm(direction)
    X_train, y_train = _split(rng, N_TRAIN, direction)
    X_test, y_test = _split(rng, N_TEST, direction)
    # Projections onto the direction are N(0, 1) vs N(Δ, 1): AUROC = Φ(Δ / √2).
    optimal = 0.5 * (1.0 + math.erf(SEPARATION / math.sqrt(2.0) / math.sqrt(2.0)))
    return Planted(X_train, y_train, X_test, y_test, direction, optimal)


@pytest.fixture(scope="session")
def planted() -> Planted:
    return make_planted(seed=0)
