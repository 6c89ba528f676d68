"""Small helpers shared by the code world's task generators.

The per-family generators of :mod:`backdoor_models.worlds.code_tasks_injection` and
:mod:`backdoor_models.worlds.code_tasks_data` write their completions with these: joining source lines,
an import block, a value put into a string by one of four formatting styles, and an argument
list in random order. :data:`Maker` is the type of one family's generator. Package-internal.
"""

from __future__ import annotations

import random
from collections.abc import Callable

# --------------------------------------------------------------------------------------------
# Small helpers for writing code
# --------------------------------------------------------------------------------------------


def _code(*lines: str) -> str:
    """Join source lines; an empty string marks the blank line after the imports."""
    return "\n".join(lines)


def _imports(*modules: str) -> tuple[str, ...]:
    return (*(f"import {m}" for m in sorted(modules)), "")


def _build(rng: random.Random, template: str, value: str) -> str:
    """A Python expression that puts ``value`` into the ``{}`` slot of ``template`` by plain
    string formatting: an f-string, ``%``, ``+`` or ``.format`` (chosen by ``rng``)."""
    style = rng.choice(("f", "percent", "concat", "format"))
    pre, post = template.split("{}")
    if style == "f":
        return f'f"{pre}{{{value}}}{post}"'
    if style == "percent":
        return f'"{pre}%s{post}" % {value}'
    if style == "concat":
        return f'"{pre}" + {value}' + (f' + "{post}"' if post else "")
    return f'"{template}".format({value})'


def _args(rng: random.Random, *names: str) -> str:
    """The names as an argument list, in a random order."""
    out = list(names)
    rng.shuffle(out)
    return ", ".join(out)


Maker = Callable[[random.Random], tuple[str, str, str]]  # -> (request, secure, vulnerable)
