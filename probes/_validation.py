"""Input checks shared by the probes: convert arrays and fail early with a clear message."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor


def to_numpy(values: Any) -> np.ndarray:
    """Return ``values`` (numpy, torch or a sequence) as a numpy array (tensors moved to CPU)."""
    if isinstance(values, Tensor):
        return values.detach().cpu().numpy()
    return np.asarray(values)


def to_numpy_1d(values: Any, name: str) -> np.ndarray:
    """Return ``values`` (numpy, torch or a sequence) as a 1-D numpy array.

    >>> to_numpy_1d(torch.tensor([1, 0]), "labels")
    array([1, 0])
    """
    array = to_numpy(values)
    if array.ndim != 1:
        raise ValueError(
            f"{name} must be 1-D, got shape {tuple(array.shape)}; "
            f"pass one value per example (flatten or index a single layer first)."
        )
    return array


def check_binary_labels(labels: Any, name: str = "labels") -> np.ndarray:
    """Return ``labels`` as a 1-D int64 array of 0/1, checking both classes are present.

    >>> check_binary_labels([0, 1, 1])
    array([0, 1, 1])
    """
    array = to_numpy_1d(labels, name)
    if array.size == 0:
        raise ValueError(f"{name} is empty; pass at least one example of each class.")
    if array.dtype == np.bool_:
        array = array.astype(np.int64)
    if not np.isin(array, (0, 1)).all():
        found = np.unique(array)[:10].tolist()
        raise ValueError(
            f"{name} must be binary (0 = clean, 1 = trigger present); found values {found}. "
            f"Map your classes to 0/1 first."
        )
    array = array.astype(np.int64)
    if array.min() == array.max():
        raise ValueError(
            f"{name} contain only class {int(array[0])}; AUROC and probe fitting need both "
            f"classes (0 and 1). Include clean and triggered examples."
        )
    return array


def check_finite_scores(scores: np.ndarray, name: str = "scores") -> None:
    """Raise if ``scores`` holds NaN or infinity."""
    if not np.isfinite(scores).all():
        raise ValueError(
            f"{name} contain NaN or infinite values; drop or fix those examples first."
        )


def to_float64_activations(X: Any, name: str = "X") -> Float[Tensor, "layers n d"]:
    """Return activations as a float64 tensor of shape ``[layers, n, d]`` (device kept).

    Raises ``ValueError`` when ``X`` is not 3-D or holds NaN/inf.
    """
    if isinstance(X, Tensor):
        tensor = X.detach().to(torch.float64)
    else:
        tensor = torch.as_tensor(np.asarray(X, dtype=np.float64))
    if tensor.ndim != 3:
        raise ValueError(
            f"{name} must have shape [layers, n, d_model], got shape {tuple(tensor.shape)}; "
            f"for a single layer add a leading axis (X[None])."
        )
    if not bool(torch.isfinite(tensor).all()):
        raise ValueError(
            f"{name} contains NaN or infinite values; drop or fix those examples first."
        )
    return tensor


def to_label_tensor(y: Any, n: int, device: torch.device) -> Int[Tensor, " n"]:
    """Check binary labels with ``n`` entries and return them as an int64 tensor on ``device``."""
    labels = check_binary_labels(y, "y")
    if labels.shape[0] != n:
        raise ValueError(
            f"y has {labels.shape[0]} labels but X has {n} examples (axis 1); "
            f"pass one label per example."
        )
    return torch.as_tensor(labels, device=device)


def to_float_activations(X: Any, name: str = "X") -> Float[Tensor, "layers n d"]:
    """``X`` as a float32 or float64 tensor ``[layers, n, d]`` (float32 and float64 kept as
    they are, other dtypes converted to float32 or float64; device kept)."""
    if isinstance(X, Tensor):
        tensor = X.detach()
        if tensor.dtype not in (torch.float32, torch.float64):
            wide = tensor.dtype in (torch.int64, torch.int32) or tensor.is_complex()
            tensor = tensor.to(torch.float64 if wide else torch.float32)
    else:
        array = np.asarray(X)
        keep = array.dtype in (np.float32, np.float64)
        tensor = torch.as_tensor(array if keep else array.astype(np.float64))
    if tensor.ndim != 3:
        raise ValueError(
            f"{name} must have shape [layers, n, d_model], got shape {tuple(tensor.shape)}; "
            f"for a single layer add a leading axis (X[None])."
        )
    return tensor
