"""Batched Newton solvers for L2 logistic regression, one independent problem per layer.

Both minimise, per layer, ``sum_i logloss(y_i, z_i) + ||w||² / (2C)`` with ``z = X w + b``
(intercept ``b`` not penalised) and stop once the gradient's max-norm over ``(w, b)`` is below
``tol``, so both reach the same optimum; they differ only in how a Newton step is computed.

- :func:`primal_newton` builds the ``(d+1) x (d+1)`` Hessian ``Xᵀ W X + I/C`` (in float32; it
  only steers the step) and solves it by Cholesky: ``n d²`` work per step. Best when ``n > d``.
- :func:`dual_newton` keeps ``w = Xᵀ a`` in the span of the examples and solves an ``n x n``
  system built from the kernel ``K = X Xᵀ`` (computed once): ``n³ / 3`` work per step. Best when
  ``n < d``.

Gradients, the stopping test and the line search are in float64. The line search moves along
``z + t Δz`` with ``Δz = X Δβ`` computed once per step, so trying a step size costs ``O(n)``,
not a pass over ``X``.

Example::

    beta, n_iter, converged = primal_newton(Xa, y, penalty, max_iter=50, tol=1e-6)
"""

from __future__ import annotations

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

_ARMIJO = 1e-4  # sufficient-decrease constant of the line search
_MAX_HALVINGS = 60  # step halvings tried per step before a layer keeps its current point
_EPS = torch.finfo(torch.float64).eps


def _logloss_sum(z: Float[Tensor, "layers n"], y: Float[Tensor, "1 n"]) -> Float[Tensor, " layers"]:
    return (torch.logaddexp(torch.zeros_like(z), z) - y * z).sum(-1)


def _line_search(
    z: Float[Tensor, "layers n"],
    dz: Float[Tensor, "layers n"],
    y: Float[Tensor, "1 n"],
    pen0: Float[Tensor, " layers"],
    pen1: Float[Tensor, " layers"],
    pen2: Float[Tensor, " layers"],
    slope: Float[Tensor, " layers"],
) -> Float[Tensor, " layers"]:
    """Armijo backtracking per layer on ``φ(t) = loss(z + t dz) + (pen0 + 2t pen1 + t² pen2) / 2``.

    Returns the accepted step per layer (0 where no halving gave a sufficient decrease).
    """
    f_old = _logloss_sum(z, y) + 0.5 * pen0
    slack = 16 * _EPS * (1.0 + f_old.abs())  # tolerate rounding near the optimum
    step = torch.ones_like(f_old)
    accepted = torch.zeros_like(f_old, dtype=torch.bool)
    for _ in range(_MAX_HALVINGS):
        t = step[:, None]
        f_new = _logloss_sum(z + t * dz, y) + 0.5 * (pen0 + 2 * step * pen1 + step * step * pen2)
        accepted |= f_new <= f_old + _ARMIJO * step * slope + slack
        if bool(accepted.all()):
            return step
        step = torch.where(accepted, step, step / 2)
    return torch.where(accepted, step, torch.zeros_like(step))


def _project(
    x: Float[Tensor, "layers n"], v: Float[Tensor, "layers n"]
) -> Float[Tensor, "layers n"]:
    """``(I - v vᵀ) x`` per layer, for unit vectors ``v``."""
    return x - v * (v * x).sum(-1, keepdim=True)


def _spd_solve(
    H: Float[Tensor, "batch k k"], rhs: Float[Tensor, "batch k"]
) -> Float[Tensor, "batch k"]:
    """Solve ``H x = rhs`` by Cholesky; layers where float32 rounding broke positive
    definiteness (e.g. all weights underflowed) are solved again with a growing jitter on the
    diagonal. (Not by batched LU: on torch 2.13's CPU build it can return wrong solutions for
    matrices wider than about 128 once several threads have been set.)"""
    factor, info = torch.linalg.cholesky_ex(H)
    out = torch.cholesky_solve(rhs[..., None], factor).squeeze(-1)
    bad = info != 0
    if bool(bad.any()):
        Hb = H[bad]
        scale = Hb.diagonal(dim1=-2, dim2=-1).abs().amax(-1).clamp(min=1.0)
        eye = torch.eye(H.shape[-1], dtype=H.dtype, device=H.device)
        for jitter in (1e-10, 1e-8, 1e-6, 1e-4, 1e-2):
            factor, info = torch.linalg.cholesky_ex(Hb + (jitter * scale)[:, None, None] * eye)
            if not bool((info != 0).any()):
                break
        out[bad] = torch.cholesky_solve(rhs[bad][..., None], factor).squeeze(-1)
    return out


def primal_newton(
    Xa: Float[Tensor, "layers n k"],
    y: Float[Tensor, "1 n"],
    penalty: Float[Tensor, " k"],
    max_iter: int,
    tol: float,
) -> tuple[Float[Tensor, "layers k"], Int[Tensor, " layers"], Bool[Tensor, " layers"]]:
    """Damped Newton in the ``k = d + 1`` coefficients (intercept = last column of ``Xa``,
    all ones, with ``penalty[-1] == 0``). Returns (coefficients, steps per layer, converged)."""
    n_layers, _, k = Xa.shape
    Xa32 = Xa.float()
    beta = torch.zeros(n_layers, k, dtype=torch.float64, device=Xa.device)
    z = torch.zeros(n_layers, Xa.shape[1], dtype=torch.float64, device=Xa.device)
    n_iter = torch.zeros(n_layers, dtype=torch.int64, device=Xa.device)
    converged = torch.zeros(n_layers, dtype=torch.bool, device=Xa.device)
    for step_index in range(max_iter + 1):
        p = torch.sigmoid(z)
        grad = torch.bmm((p - y)[:, None, :], Xa).squeeze(1) + penalty * beta
        converged = grad.abs().amax(dim=-1) < tol
        if bool(converged.all()) or step_index == max_iter:
            break
        active = torch.nonzero(~converged).flatten()
        every = active.numel() == n_layers
        X32 = Xa32 if every else Xa32[active]
        w32 = (p * (1.0 - p)).float()
        w32 = w32 if every else w32[active]
        hessian = torch.bmm((X32 * w32[..., None]).transpose(1, 2), X32).double()
        hessian.diagonal(dim1=-2, dim2=-1).add_(penalty)
        direction = torch.zeros_like(beta)
        direction[active] = _spd_solve(hessian, -grad[active])
        dz = torch.bmm(Xa, direction[..., None]).squeeze(-1)
        pd = penalty * direction
        t = _line_search(
            z,
            dz,
            y,
            pen0=(penalty * beta * beta).sum(-1),
            pen1=(pd * beta).sum(-1),
            pen2=(pd * direction).sum(-1),
            slope=(grad * direction).sum(-1),
        )
        beta += t[:, None] * direction
        z += t[:, None] * dz
        n_iter[active] += 1
    return beta, n_iter, converged


def dual_newton(
    A: Float[Tensor, "layers n d"],
    y: Float[Tensor, "1 n"],
    C: float,
    max_iter: int,
    tol: float,
) -> tuple[
    Float[Tensor, "layers d"],
    Float[Tensor, " layers"],
    Int[Tensor, " layers"],
    Bool[Tensor, " layers"],
]:
    """Damped Newton with ``w = Aᵀ a``: each step solves an ``n x n`` SPD system.

    With ``r = p - y``, ``W = diag(p(1-p))``, ``s = ΣW``, ``λ = 1/C``, eliminating the intercept
    step gives ``(M K + λI) u = q`` with ``M = W - W11ᵀW/s`` and ``q = -(r + λa) + W1·Σr/s``.
    Writing ``M = BBᵀ``, ``B = W^½(I - vvᵀ)``, ``v = W^½1/√s``, the solution is
    ``u = (q - Bc)/λ`` where ``(λI + BᵀKB) c = BᵀKq`` (SPD, solved by Cholesky).
    Returns (w, b, steps per layer, converged).
    """
    n_layers, n, _ = A.shape
    lam = 1.0 / C
    K = torch.bmm(A, A.transpose(1, 2))
    a = torch.zeros(n_layers, n, dtype=torch.float64, device=A.device)
    b = torch.zeros(n_layers, dtype=torch.float64, device=A.device)
    z = torch.zeros_like(a)
    n_iter = torch.zeros(n_layers, dtype=torch.int64, device=A.device)
    converged = torch.zeros(n_layers, dtype=torch.bool, device=A.device)
    tiny = torch.finfo(torch.float64).tiny
    for step_index in range(max_iter + 1):
        p = torch.sigmoid(z)
        r = p - y
        rho = r + lam * a
        grad_b = r.sum(-1)
        grad_w = torch.bmm(rho[:, None, :], A).squeeze(1)
        converged = torch.maximum(grad_w.abs().amax(-1), grad_b.abs()) < tol
        if bool(converged.all()) or step_index == max_iter:
            break
        weights = (p * (1.0 - p)).clamp(min=tiny)
        s = weights.sum(-1)
        root = weights.sqrt()
        v = root / s.sqrt()[:, None]
        q = -rho + weights * (grad_b / s)[:, None]

        # S = λI + P D K D P with P = I - vvᵀ, D = diag(root), built in place as
        # DKD - v cᵀ - c vᵀ + λI where c = DKDv - (vᵀDKDv / 2) v.
        S = K.mul(root[:, :, None]).mul_(root[:, None, :])
        DKDv = torch.bmm(S, v[..., None]).squeeze(-1)
        c_vec = DKDv - 0.5 * (v * DKDv).sum(-1, keepdim=True) * v
        S.baddbmm_(v[:, :, None], c_vec[:, None, :], alpha=-1.0)
        S.baddbmm_(c_vec[:, :, None], v[:, None, :], alpha=-1.0)
        S.diagonal(dim1=-2, dim2=-1).add_(lam)
        Kq = torch.bmm(K, q[..., None]).squeeze(-1)
        c = _spd_solve(S, _project(root * Kq, v))
        u = (q - root * _project(c, v)) / lam
        u = torch.where(converged[:, None], torch.zeros_like(u), u)
        Ku = torch.bmm(K, u[..., None]).squeeze(-1)
        db = torch.where(converged, torch.zeros_like(s), -(grad_b + (weights * Ku).sum(-1)) / s)
        dz = Ku + db[:, None]
        Ka = z - b[:, None]
        t = _line_search(
            z,
            dz,
            y,
            pen0=lam * (a * Ka).sum(-1),
            pen1=lam * (u * Ka).sum(-1),
            pen2=lam * (u * Ku).sum(-1),
            slope=(r * dz).sum(-1) + lam * (u * Ka).sum(-1),
        )
        a += t[:, None] * u
        b += t * db
        z += t[:, None] * dz
        n_iter[~converged] += 1
    w = torch.bmm(a[:, None, :], A).squeeze(1)
    return w, b, n_iter, converged
