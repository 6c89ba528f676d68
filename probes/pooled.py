"""Linear detectors over a variable number of tokens per example (a reply's tokens), pooled three
ways, as in Gupta and Jenner (2025) and Kramar et al. (2026):

- ``mean``: logistic regression on the masked mean of the tokens' activations;
- ``max``: a per-token linear score, the example's score its highest token's;
- ``attention``: a learned softmax attention over the tokens (``softmax(x_t·q)``) of a per-token
  linear value (``x_t·v``), the example's score the attention-weighted value.

Each fits on activations ``[n, tokens, d]`` with a ``[n, tokens]`` mask of the real tokens,
standardised by the training tokens' mean and std, with a logistic loss and an L2 penalty,
full-batch Adam on the CPU from a seeded start. A higher score means "backdoor active". The
fitted tensors never require gradients: scoring is differentiable in the activations only.

Example:
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> X, mask = torch.randn(40, 5, 8, generator=g), torch.ones(40, 5, dtype=torch.bool)
    >>> y = torch.arange(40) % 2
    >>> X[y == 1, 2, 0] += 6.0        # a signal on one token of the positives
    >>> probe = PooledProbe("max", seed=0).fit(X, mask, y)
    >>> probe.decision_function(X, mask).shape
    torch.Size([40])
"""

from __future__ import annotations

from typing import Any, Literal, get_args

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float
from torch import Tensor

from probes._threads import choose_threads, torch_threads

__all__ = ["POOLINGS", "Pooling", "PooledProbe", "masked_mean"]

Pooling = Literal["mean", "max", "attention"]
POOLINGS: tuple[str, ...] = get_args(Pooling)


def masked_mean(
    X: Float[Tensor, "n tokens d"], mask: Bool[Tensor, "n tokens"]
) -> Float[Tensor, "n d"]:
    """The mean of each row's masked tokens.

    Example:
        >>> masked_mean(torch.tensor([[[1.0], [3.0]]]), torch.tensor([[True, False]])).tolist()
        [[1.0]]
    """
    weights = mask.to(X.dtype)
    return (X * weights[..., None]).sum(1) / weights.sum(1, keepdim=True).clamp_min(1.0)


def _check(X: Tensor, mask: Tensor, y: Tensor | None = None) -> None:
    if X.ndim != 3 or mask.shape != X.shape[:2]:
        raise ValueError(
            f"PooledProbe takes activations [n, tokens, d] and a mask [n, tokens]; got "
            f"{tuple(X.shape)} and {tuple(mask.shape)}."
        )
    empty = (~mask.bool().any(1)).nonzero().flatten()
    if empty.numel():
        raise ValueError(
            f"Row {int(empty[0])} (and {empty.numel() - 1} others) has no token in the mask; "
            "every example needs at least one token to pool over."
        )
    if not torch.isfinite(X[mask.bool()]).all():
        raise ValueError("The activations contain NaN or inf at masked tokens.")
    if y is not None:
        if y.shape != (X.shape[0],):
            raise ValueError(f"Got {y.numel()} labels for {X.shape[0]} examples.")
        if set(y.unique().tolist()) != {0, 1}:
            raise ValueError("The labels must be 0 and 1, with both present.")


class PooledProbe:
    """A linear detector over a reply's tokens, pooled by `pooling` (mean, max or attention).

    `fit` returns self; the learned tensors end in ``_`` and never require gradients.

    Example:
        >>> import torch
        >>> X, mask = torch.randn(20, 4, 3), torch.ones(20, 4, dtype=torch.bool)
        >>> PooledProbe("attention", steps=20).fit(X, mask, torch.arange(20) % 2).weight_.shape
        torch.Size([3])
    """

    def __init__(
        self,
        pooling: Pooling = "mean",
        l2: float = 1e-3,
        steps: int = 300,
        lr: float = 0.05,
        seed: int = 0,
    ) -> None:
        if pooling not in POOLINGS:
            raise ValueError(f"Unknown pooling {pooling!r}; use one of {', '.join(POOLINGS)}.")
        self.pooling, self.l2, self.steps, self.lr, self.seed = pooling, l2, steps, lr, seed

    def _pooled_logit(
        self, Z: Tensor, mask: Tensor, weight: Tensor, bias: Tensor, query: Tensor | None
    ) -> Tensor:
        if self.pooling == "mean":
            return masked_mean(Z, mask) @ weight + bias if Z.ndim == 3 else Z @ weight + bias
        token = Z @ weight  # [n, tokens]
        if self.pooling == "max":
            return token.masked_fill(~mask, float("-inf")).max(1).values + bias
        assert query is not None
        attn = torch.softmax((Z @ query).masked_fill(~mask, float("-inf")), dim=1)
        return (attn * token).sum(1) + bias

    def fit(
        self, X: Float[Tensor, "n tokens d"], mask: Bool[Tensor, "n tokens"], y: Any
    ) -> PooledProbe:
        """Fit on `X`'s masked tokens with labels `y` (1 = backdoor active)."""
        labels = torch.as_tensor(y).long()
        _check(X, mask, labels)
        X, mask = X.detach().float().cpu(), mask.bool().cpu()
        tokens = X[mask]
        self.mu_ = tokens.mean(0)
        self.sigma_ = (
            tokens.std(0).clamp_min(1e-6) if tokens.shape[0] > 1 else torch.ones_like(self.mu_)
        )
        Z = (X - self.mu_) / self.sigma_
        if self.pooling == "mean":  # the pooled rows are fixed: pool once
            Z = masked_mean(Z, mask)
        d = X.shape[-1]
        g = torch.Generator().manual_seed(self.seed)
        weight = (torch.randn(d, generator=g) * 0.01).requires_grad_(True)
        bias = torch.zeros(()).requires_grad_(True)
        query = torch.zeros(d).requires_grad_(True) if self.pooling == "attention" else None
        params = [p for p in (weight, bias, query) if p is not None]
        opt = torch.optim.Adam(params, lr=self.lr)
        target = labels.float()
        work = 6 * X.shape[0] * X.shape[1] * d  # multiply-adds per step, forward and backward
        with torch.enable_grad(), torch_threads(choose_threads(work, torch.get_num_threads())):
            for _ in range(self.steps):
                opt.zero_grad()
                logit = self._pooled_logit(Z, mask, weight, bias, query)
                penalty = weight.square().sum() + (query.square().sum() if query is not None else 0)
                loss = F.binary_cross_entropy_with_logits(logit, target) + self.l2 * penalty
                loss.backward()
                opt.step()
        self.weight_ = weight.detach()
        self.bias_ = bias.detach()
        self.query_ = query.detach() if query is not None else None
        return self

    def decision_function(
        self, X: Float[Tensor, "n tokens d"], mask: Bool[Tensor, "n tokens"]
    ) -> Float[Tensor, " n"]:
        """Each example's pooled score (a logit; higher = backdoor active), differentiable in
        `X` and never in the probe's own tensors."""
        if not hasattr(self, "weight_"):
            raise RuntimeError("This PooledProbe is not fitted yet; call fit(X, mask, y) first.")
        _check(X, mask)
        device = X.device
        Z = (X.float() - self.mu_.to(device)) / self.sigma_.to(device)
        query = self.query_.to(device) if self.query_ is not None else None
        return self._pooled_logit(
            Z, mask.bool().to(device), self.weight_.to(device), self.bias_.to(device), query
        )

    def parameters(self) -> list[Tensor]:
        """The fitted tensors (standardisation, weight, bias and the attention query)."""
        return [
            t
            for t in (self.mu_, self.sigma_, self.weight_, self.bias_, self.query_)
            if t is not None
        ]
