"""A griffe extension for the API pages: read the project's `Example:` blocks as examples.

The project's docstrings are plain prose with `Example:` (or reST-style `Example::`) blocks of
`>>>` lines. Griffe's Google-style parser only knows the plural `Examples:` section; the singular
becomes an admonition whose `>>>` lines are rendered as Markdown (block quotes, and `x["a"]`
read as a link). This extension rewrites the docstring text at load time, for the docs only:

- `Example:` -> `Examples:` (so `>>>` lines become highlighted code);
- `Example::` followed by an indented block -> `Examples:` with that block fenced as Python;
- a bare `>>>` block in the prose (no heading) -> an `Examples:` section holding it.

The source files are not changed.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_SINGULAR = re.compile(r"^(?P<indent>[ \t]*)Example:[ \t]*$", re.MULTILINE)
_RST = re.compile(r"^(?P<indent>[ \t]*)Example::[ \t]*$")


def _fence_rst_examples(text: str) -> str:
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        match = _RST.match(lines[i])
        if not match:
            out.append(lines[i])
            i += 1
            continue
        indent = match.group("indent")
        out.append(f"{indent}Examples:")
        i += 1
        while i < len(lines) and not lines[i].strip():
            i += 1
        block: list[str] = []
        while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > len(indent)):
            block.append(lines[i])
            i += 1
        while block and not block[-1].strip():
            block.pop()
        inner = indent + "    "
        out.append(f"{inner}```python")
        width = min((len(b) - len(b.lstrip()) for b in block if b.strip()), default=0)
        out.extend(inner + b[width:] if b.strip() else "" for b in block)
        out.append(f"{inner}```")
        out.append("")
    return "\n".join(out)


def _section_bare_doctests(text: str) -> str:
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith(">>>") and (i == 0 or not lines[i - 1].strip()):
            out.append("Examples:")
            while i < len(lines) and lines[i].strip():
                out.append("    " + lines[i])
                i += 1
            continue
        out.append(line)
        i += 1
    return "\n".join(out)


class ExampleSections(griffe.Extension):
    """Rewrite `Example:` / `Example::` blocks as Google-style `Examples:` sections."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        docstring = obj.docstring
        if docstring is None:
            return
        text = _fence_rst_examples(docstring.value)
        text = _section_bare_doctests(text)
        text = _SINGULAR.sub(lambda m: f"{m.group('indent')}Examples:", text)
        docstring.value = text
