"""Atomic, pickle-free artifact I/O: safetensors for tensors (here), JSON and text (from
`backdoor_models.io.atomic`, re-exported, which needs neither torch nor a model).

Every write goes to a temporary file in the same folder and is renamed into place, so a killed
run never leaves a half-written file under a finished file's name.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from backdoor_models.io.atomic import _atomic, read_json, write_json, write_text

__all__ = ["read_json", "read_tensors", "write_json", "write_tensors", "write_text"]


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
