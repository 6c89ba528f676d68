"""Behaviour of the batched detectors (mass-mean, LDA, Mahalanobis, random) and their I/O."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from sklearn.base import BaseEstimator, clone

from probes.detector_io import load_detector, save_detector
from probes.detectors import (
    DiffMeansProbe,
    LDAProbe,
    MahalanobisDetector,
    RandomDirectionBaseline,
)
from probes.logistic import LayerwiseLogisticProbe
from tests.probes.conftest import N_LAYERS, SEPARATION, SIGNAL_LAYER, Planted


def _phi(z: float) -> float:
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def test_optimal_auroc_formula(planted: Planted) -> None:
    # Projections N(0, 1) vs N(Δ, 1): AUROC = P(N(Δ, 2) > 0) = Φ(Δ/√2) (not Φ(Δ/2)).
    assert planted.optimal_auroc == pytest.approx(_phi(SEPARATION / math.sqrt(2.0)))
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=4000), rng.normal(size=4000) + SEPARATION
    empirical = (b[:, None] > a[None, :]).mean()
    assert abs(empirical - planted.optimal_auroc) < 0.01


@pytest.mark.parametrize("probe", [DiffMeansProbe(), LDAProbe(shrinkage=0.1)])
def test_recovers_planted_direction(planted: Planted, probe: BaseEstimator) -> None:
    probe = clone(probe).fit(planted.X_train, planted.y_train)
    held_out = probe.score(planted.X_test, planted.y_test)
    assert held_out.shape == (N_LAYERS,)
    assert abs(held_out[SIGNAL_LAYER].item() - planted.optimal_auroc) < 0.03
    for layer in range(N_LAYERS):
        if layer != SIGNAL_LAYER:
            assert abs(held_out[layer].item() - 0.5) < 0.1
    coef = probe.coef_[SIGNAL_LAYER].numpy()
    assert coef @ planted.direction / np.linalg.norm(coef) > 0.8  # sign: higher = trigger
    accuracy = (probe.predict(planted.X_test)[SIGNAL_LAYER].numpy() == planted.y_test).mean()
    assert accuracy > _phi(SEPARATION / 2) - 0.03  # midpoint-threshold accuracy Φ(Δ/2)


def _correlated_noise(seed: int, n: int, d: int = 16, delta: float = 2.0) -> tuple:
    """Signal along e0; noise std 5 along (e0 + e1)/√2, unit elsewhere (2 layers, same data)."""
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.r_[np.zeros(n // 2), np.ones(n - n // 2)]).astype(np.int64)
    v = np.zeros(d)
    v[:2] = 1 / math.sqrt(2.0)
    noise = rng.normal(size=(2, n, d))
    noise += 4.0 * np.einsum("lnd,d->ln", noise, v)[..., None] * v  # std along v: 1 + 4 = 5
    X = noise
    X[:, :, 0] += delta * y
    return X, y


def test_lda_beats_diffmeans_on_correlated_anisotropic_noise() -> None:
    X_train, y_train = _correlated_noise(0, 1000)
    X_test, y_test = _correlated_noise(1, 4000)
    dm = DiffMeansProbe().fit(X_train, y_train).score(X_test, y_test).numpy()
    lda = LDAProbe(shrinkage=0.1).fit(X_train, y_train).score(X_test, y_test).numpy()
    # Theory (Δ=2, Σ = I + 24 vvᵀ): mass-mean Φ(Δ/√26) ≈ 0.65, LDA Φ(Δ√0.52/√2) ≈ 0.85.
    assert np.allclose(dm, _phi(2.0 / math.sqrt(26.0)), atol=0.04)
    assert np.all(lda > 0.82)
    assert np.all(lda - dm > 0.15)


@pytest.mark.parametrize("probe", [DiffMeansProbe(), LDAProbe()])
def test_shuffled_labels_sit_at_chance(planted: Planted, probe: BaseEstimator) -> None:
    """Chance on average. On the signal layer a single shuffle can reach ~0.25 from 0.5: the
    shuffled class means still differ slightly along the high-variance planted direction,
    with a random sign, so only the average over shuffles is pinned to 0.5."""
    runs = np.stack(
        [
            clone(probe)
            .fit(planted.X_train, np.random.default_rng(seed).permutation(planted.y_train))
            .score(planted.X_test, planted.y_test)
            .numpy()
            for seed in range(20)
        ]
    )
    assert np.all(np.abs(runs.mean(axis=0) - 0.5) < 0.05)
    noise_layers = [layer for layer in range(N_LAYERS) if layer != SIGNAL_LAYER]
    assert np.all(np.abs(runs[:, noise_layers] - 0.5) < 0.1)


def test_lda_probabilities_are_sigmoid_of_score(planted: Planted) -> None:
    probe = LDAProbe().fit(planted.X_train, planted.y_train)
    proba = probe.predict_proba(planted.X_test)
    torch.testing.assert_close(proba, torch.sigmoid(probe.decision_function(planted.X_test)))
    assert not hasattr(DiffMeansProbe(), "predict_proba")


def test_diffmeans_uncentred_is_raw_projection(planted: Planted) -> None:
    probe = DiffMeansProbe(center=False).fit(planted.X_train, planted.y_train)
    expected = torch.einsum("lnd,ld->ln", torch.as_tensor(planted.X_test), probe.coef_)
    torch.testing.assert_close(probe.decision_function(planted.X_test), expected)
    with pytest.raises(ValueError, match="center=True"):
        probe.predict(planted.X_test)


def test_mahalanobis_flags_shifted_cloud_and_refuses_positives(planted: Planted) -> None:
    rng = np.random.default_rng(2)
    d = 32
    trusted = rng.normal(size=(2, 800, d))
    shift = rng.normal(size=d)
    clean = rng.normal(size=(2, 500, d))
    anomalous = rng.normal(size=(2, 500, d)) + 6.0 * shift / np.linalg.norm(shift)
    X = np.concatenate([clean, anomalous], axis=1)
    y = np.r_[np.zeros(500), np.ones(500)].astype(np.int64)
    detector = MahalanobisDetector(shrinkage=0.1).fit(trusted)
    assert np.all(detector.score(X, y).numpy() > 0.9)
    MahalanobisDetector().fit(trusted, np.zeros(800))  # all-zero labels are fine
    with pytest.raises(ValueError, match="trusted"):
        MahalanobisDetector().fit(planted.X_train, planted.y_train)
    # The score is the squared distance under the shrunk covariance (check one layer).
    mu = trusted[0].mean(0)
    cov = np.cov(trusted[0], rowvar=False)
    shrunk = 0.9 * cov + 0.1 * np.trace(cov) / d * np.eye(d)
    diff = X[0, :5] - mu
    expected = np.einsum("nd,de,ne->n", diff, np.linalg.inv(shrunk), diff)
    np.testing.assert_allclose(detector.decision_function(X)[0, :5].numpy(), expected, rtol=1e-8)


def test_wide_layers_are_solved_right_after_the_thread_count_is_set() -> None:
    """torch 2.13's batched LU (MKL) solves a batch of wide matrices wrongly once
    `torch.set_num_threads` has been called with two threads (as every probe fit does): LDA's
    and Mahalanobis's solves must match numpy's, layer by layer, after such a call."""
    rng = np.random.default_rng(5)
    n_layers, n, d = 3, 120, 300
    X = rng.normal(size=(n_layers, n, d)) * rng.uniform(0.5, 2.0, size=(n_layers, 1, d))
    y = np.tile([0, 1], n // 2)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        lda = LDAProbe().fit(X, y)
        maha = MahalanobisDetector().fit(X[:, y == 0])
    finally:
        torch.set_num_threads(threads)
    for layer in range(n_layers):
        centred = X[layer] - np.where(
            y[:, None] == 1, X[layer, y == 1].mean(0), X[layer, y == 0].mean(0)
        )
        cov = centred.T @ centred / (n - 2)
        shrunk = 0.9 * cov + 0.1 * np.trace(cov) / d * np.eye(d)
        gap = X[layer, y == 1].mean(0) - X[layer, y == 0].mean(0)
        np.testing.assert_allclose(
            lda.coef_[layer].numpy(), np.linalg.solve(shrunk, gap), rtol=1e-7, atol=1e-10
        )
        clean = X[layer, y == 0]
        trusted = np.cov(clean, rowvar=False)
        precision = np.linalg.inv(0.9 * trusted + 0.1 * np.trace(trusted) / d * np.eye(d))
        np.testing.assert_allclose(maha.precision_[layer].numpy(), precision, rtol=1e-7, atol=1e-10)


def test_random_directions_are_a_chance_reference(planted: Planted) -> None:
    baseline = RandomDirectionBaseline(n_directions=500, seed=0).fit(planted.X_train)
    assert baseline.directions_.shape == (N_LAYERS, 500, planted.X_train.shape[2])
    torch.testing.assert_close(
        baseline.directions_.norm(dim=-1), torch.ones(N_LAYERS, 500, dtype=torch.float64)
    )
    dist = baseline.auroc_distribution(planted.X_test, planted.y_test)
    assert dist.shape == (N_LAYERS, 500)
    summary = baseline.summary(planted.X_test, planted.y_test)
    assert set(summary) == {"mean", "p95", "max"}
    assert np.all(np.abs(summary["mean"] - 0.5) < 0.03)
    assert np.all(summary["mean"] <= summary["p95"]) and np.all(summary["p95"] <= summary["max"])
    trained = LDAProbe().fit(planted.X_train, planted.y_train).score(planted.X_test, planted.y_test)
    assert summary["max"][SIGNAL_LAYER] < trained[SIGNAL_LAYER].item() - 0.05
    again = RandomDirectionBaseline(n_directions=500, seed=0).fit(planted.X_train)
    assert torch.equal(again.directions_, baseline.directions_)
    other = RandomDirectionBaseline(n_directions=500, seed=1).fit(planted.X_train)
    assert not torch.equal(other.directions_, baseline.directions_)
    assert not hasattr(baseline, "decision_function")


def test_input_errors(planted: Planted) -> None:
    probe = LDAProbe().fit(planted.X_train, planted.y_train)
    with pytest.raises(ValueError, match="width"):
        probe.decision_function(planted.X_test[:, :, :5])
    with pytest.raises(ValueError, match="layers"):
        probe.decision_function(planted.X_test[:2])
    with pytest.raises(ValueError, match="shape"):
        LDAProbe().fit(planted.X_train[0], planted.y_train)
    bad = planted.X_train.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        DiffMeansProbe().fit(bad, planted.y_train)
    with pytest.raises(ValueError, match="only class"):
        DiffMeansProbe().fit(planted.X_train, np.zeros_like(planted.y_train))
    with pytest.raises(ValueError, match="shrinkage"):
        LDAProbe(shrinkage=1.5).fit(planted.X_train, planted.y_train)
    with pytest.raises(ValueError, match="singular"):
        MahalanobisDetector(shrinkage=0.0).fit(planted.X_train[:, :10])  # n < d


def test_a_constant_layer_scores_every_example_alike_beside_the_others(planted: Planted) -> None:
    """A layer whose features never vary (a rotary model's embedding at a prompt's fixed last
    token) has a zero covariance: shrunk towards I it is invertible, its scores are constant
    (AUROC 0.5), and the other layers are fitted exactly as without it."""
    X_train, X_test = planted.X_train.copy(), planted.X_test.copy()
    X_train[0], X_test[0] = 1.5, 1.5
    lda = LDAProbe().fit(X_train, planted.y_train)
    alone = LDAProbe().fit(planted.X_train[1:], planted.y_train)
    torch.testing.assert_close(lda.coef_[1:], alone.coef_)
    assert torch.count_nonzero(lda.coef_[0]) == 0
    clean = X_train[:, planted.y_train == 0]
    maha = MahalanobisDetector().fit(clean)
    for detector in (lda, maha):
        scores = detector.decision_function(X_test)
        assert torch.unique(scores[0]).numel() == 1
        assert float(detector.score(X_test, planted.y_test)[0]) == 0.5
    with pytest.raises(ValueError, match="singular"):  # no shrinkage: still refused
        LDAProbe(shrinkage=0.0).fit(X_train, planted.y_train)


@pytest.mark.parametrize(
    "detector",
    [
        DiffMeansProbe(center=False),
        LDAProbe(shrinkage=0.3),
        MahalanobisDetector(shrinkage=0.2),
        RandomDirectionBaseline(n_directions=7, seed=3),
        LayerwiseLogisticProbe(C=0.5),
    ],
)
def test_clone_and_round_trip(planted: Planted, detector: BaseEstimator, tmp_path: Path) -> None:
    cloned = clone(detector)
    assert cloned.get_params() == detector.get_params() and cloned is not detector
    if isinstance(cloned, MahalanobisDetector):
        fitted = cloned.fit(planted.X_train[:, planted.y_train == 0])
    else:
        fitted = cloned.fit(planted.X_train, planted.y_train)
    stem = save_detector(fitted, tmp_path / "det")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["det.json", "det.safetensors"]
    loaded = load_detector(tmp_path / "det.safetensors")
    assert type(loaded) is type(fitted) and loaded.get_params() == fitted.get_params()
    assert loaded.n_features_in_ == fitted.n_features_in_
    if isinstance(fitted, RandomDirectionBaseline):
        assert torch.equal(loaded.directions_, fitted.directions_)
        np.testing.assert_array_equal(
            loaded.auroc_distribution(planted.X_test, planted.y_test),
            fitted.auroc_distribution(planted.X_test, planted.y_test),
        )
    else:
        assert torch.equal(
            loaded.decision_function(planted.X_test), fitted.decision_function(planted.X_test)
        )
    assert load_detector(stem) is not None


def _retamper(stem: Path, name: str, tensor: torch.Tensor) -> None:
    """Replace one tensor and make the metadata consistent, so only semantics can catch it."""
    tensors = load_file(f"{stem}.safetensors")
    tensors[name] = tensor
    save_file(tensors, f"{stem}.safetensors")
    meta = json.loads(Path(f"{stem}.json").read_text())
    meta["tensors"].setdefault(name, {})["shape"] = list(tensor.shape)
    meta["sha256"] = hashlib.sha256(Path(f"{stem}.safetensors").read_bytes()).hexdigest()
    Path(f"{stem}.json").write_text(json.dumps(meta))


def test_load_refuses_bad_files(planted: Planted, tmp_path: Path) -> None:
    probe = LDAProbe().fit(planted.X_train, planted.y_train)
    stem = save_detector(probe, tmp_path / "lda")

    torch.save({"coef_": probe.coef_}, tmp_path / "lda.pt")
    with pytest.raises(ValueError, match="safetensors"):
        load_detector(tmp_path / "lda.pt")

    meta = json.loads(Path(f"{stem}.json").read_text())
    meta["class"] = "os.system"
    Path(tmp_path / "unknown.json").write_text(json.dumps(meta))
    Path(tmp_path / "unknown.safetensors").write_bytes(Path(f"{stem}.safetensors").read_bytes())
    with pytest.raises(ValueError, match="Unknown detector class"):
        load_detector(tmp_path / "unknown")

    _retamper(stem, "coef_", torch.zeros(N_LAYERS, 5, dtype=torch.float64))
    with pytest.raises(ValueError, match="misshapen"):
        load_detector(stem)

    stem = save_detector(probe, tmp_path / "lda")
    _retamper(stem, "extra_", torch.zeros(1, dtype=torch.float64))
    with pytest.raises(ValueError, match="extra"):
        load_detector(stem)

    stem = save_detector(probe, tmp_path / "lda")
    Path(f"{stem}.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="SHA-256"):
        load_detector(stem)

    with pytest.raises(ValueError, match="not fitted|fitted"):
        save_detector(LDAProbe(), tmp_path / "unfitted")
