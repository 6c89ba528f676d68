"""Pooled reply-token detectors: each pooling finds a planted direction at a subset of tokens,
max and attention pooling catch a one-token signal that mean pooling dilutes, the mask is obeyed,
fits are seeded, and no gradient ever reaches the fitted tensors."""

from __future__ import annotations

import pytest
import torch

from probes.metrics import auroc
from probes.pooled import POOLINGS, PooledProbe, masked_mean

D, TOKENS = 16, 20


def _one_token_signal(n: int, seed: int, size: float = 4.0) -> tuple[torch.Tensor, ...]:
    """Positives carry `size` along a fixed direction on one random token of 20."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, TOKENS, D, generator=g)
    y = torch.arange(n) % 2
    where = torch.randint(TOKENS, (n,), generator=g)
    direction = torch.zeros(D)
    direction[3] = 1.0
    X[torch.arange(n), where] += size * y[:, None].float() * direction
    return X, torch.ones(n, TOKENS, dtype=torch.bool), y


def _diffuse_signal(n: int, seed: int) -> tuple[torch.Tensor, ...]:
    """Positives carry a small shift on every token, and rows have different lengths."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, TOKENS, D, generator=g)
    y = torch.arange(n) % 2
    X[..., 5] += 1.0 * y[:, None].float()
    lengths = torch.randint(4, TOKENS + 1, (n,), generator=g)
    mask = torch.arange(TOKENS)[None, :] < lengths[:, None]
    return X, mask, y


def _held_out_auroc(pooling: str, data: tuple[torch.Tensor, ...], test: tuple[torch.Tensor, ...]):
    probe = PooledProbe(pooling, seed=0).fit(*data)  # type: ignore[arg-type]
    scores = probe.decision_function(test[0], test[1])
    return auroc(scores.numpy(), test[2].numpy())


def test_max_and_attention_catch_a_one_token_signal_that_mean_dilutes() -> None:
    train, test = _one_token_signal(400, seed=0), _one_token_signal(400, seed=1)
    got = {p: _held_out_auroc(p, train, test) for p in POOLINGS}
    assert got["max"] > 0.9, got
    assert got["attention"] > 0.85, got
    assert got["max"] > got["mean"] + 0.1, got  # the mean over 20 tokens dilutes one token


def test_every_pooling_finds_a_diffuse_signal_over_variable_lengths() -> None:
    train, test = _diffuse_signal(400, seed=2), _diffuse_signal(400, seed=3)
    got = {p: _held_out_auroc(p, train, test) for p in POOLINGS}
    assert got["mean"] > 0.95, got
    assert min(got.values()) > 0.8, got


@pytest.mark.parametrize("pooling", POOLINGS)
def test_masked_out_tokens_are_ignored(pooling: str) -> None:
    X, mask, y = _diffuse_signal(200, seed=4)
    probe = PooledProbe(pooling, seed=0).fit(X, mask, y)
    scrambled = X.clone()
    scrambled[~mask] = 1e3  # padding with huge values changes nothing
    assert torch.allclose(
        probe.decision_function(X, mask), probe.decision_function(scrambled, mask)
    )


@pytest.mark.parametrize("pooling", POOLINGS)
def test_seeded_and_no_gradient_reaches_the_probe(pooling: str) -> None:
    X, mask, y = _one_token_signal(100, seed=5)
    a = PooledProbe(pooling, steps=50, seed=7).fit(X, mask, y)
    b = PooledProbe(pooling, steps=50, seed=7).fit(X, mask, y)
    assert torch.equal(a.decision_function(X, mask), b.decision_function(X, mask))
    acts = X.clone().requires_grad_(True)
    a.decision_function(acts, mask).sum().backward()
    assert acts.grad is not None and acts.grad.abs().sum() > 0  # differentiable in the acts
    assert all(not t.requires_grad and t.grad is None for t in a.parameters())


def test_masked_mean_and_refusals() -> None:
    X = torch.tensor([[[1.0], [3.0], [100.0]]])
    assert masked_mean(X, torch.tensor([[True, True, False]])).item() == 2.0
    with pytest.raises(ValueError, match="no token in the mask"):
        PooledProbe().fit(torch.zeros(2, 3, 4), torch.tensor([[True] * 3, [False] * 3]), [0, 1])
    with pytest.raises(ValueError, match=r"\[n, tokens, d\]"):
        PooledProbe().fit(torch.zeros(2, 4), torch.ones(2, 4, dtype=torch.bool), [0, 1])
    with pytest.raises(ValueError, match="0 and 1"):
        PooledProbe().fit(torch.zeros(2, 3, 4), torch.ones(2, 3, dtype=torch.bool), [1, 1])
    with pytest.raises(ValueError, match="Unknown pooling"):
        PooledProbe("median")  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="not fitted"):
        PooledProbe().decision_function(torch.zeros(2, 3, 4), torch.ones(2, 3, dtype=torch.bool))
