"""A training setting declared once: its default, a one-line description and its bounds, kept in
the dataclass field's metadata. The experiment config's schema (`analysis.config`) validates
and documents the library dataclasses from these fields; nothing declares them a second time.

Example:
    >>> from dataclasses import dataclass, fields
    >>> @dataclass(frozen=True)
    ... class Demo:
    ...     steps: int = setting(10, "optimiser steps", ge=1)
    >>> Demo().steps, fields(Demo)[0].metadata["description"], fields(Demo)[0].metadata["ge"]
    (10, 'optimiser steps', 1)
"""

from __future__ import annotations

from dataclasses import field
from typing import Any

__all__ = ["setting"]


def setting(
    default: Any,
    description: str,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    strict: bool | None = None,
) -> Any:
    """A frozen-dataclass field with `default`, its description and bounds in its metadata.

    A number or a bool is strict unless `strict` says otherwise (no "5" for an integer, no 1.0
    for an integer, no "yes" for a bool; an integer is accepted where a number is expected); a
    choice (a Literal) and a tuple (which takes a list) are not."""
    if isinstance(default, list | dict | set):
        raise TypeError(f"setting {description!r}: a mutable default ({default!r}); use a tuple")
    bounds = {"ge": ge, "gt": gt, "le": le, "lt": lt}
    metadata: dict[str, Any] = {"description": description}
    metadata |= {name: value for name, value in bounds.items() if value is not None}
    if strict if strict is not None else isinstance(default, bool | int | float):
        metadata["strict"] = True
    return field(default=default, metadata=metadata)
