"""Turning pydantic's validation errors on the config schema into one list of plain messages.

Each message names the key path, the bad value and the fix; unknown keys get a did-you-mean.
Cross-field rules are model validators (they raise RuleProblems); pydantic runs a model's rules
only when all its fields are valid, so `problems_of` also checks the rules on the raw values
(ill-typed ones left at their defaults) to list every problem at once.
"""

from __future__ import annotations

import contextlib
import difflib
import types
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from analysis.errors import InputError

_TYPE_WORDS = {
    "int": "an integer",
    "float": "a number",
    "bool": "true/false",
    "string": "a string",
    "tuple": "a list",
    "list": "a list",
    "model": "a mapping of settings",
    "dataclass": "a mapping of settings",
    "dict": "a mapping of settings",
}
# A config (or one section of it) as written, in YAML/JSON or by --set, before validation: any
# key, any value. Validation turns it into a RunConfig; rules see a section's values this way.
ConfigData = dict[str, Any]
# ge/gt/le/lt of a field
Bounds = dict[str, float]

_BOUNDS = {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}
_KEEP_RAW = _BOUNDS | {"literal_error", "value_error"}  # raw value still usable by the rules


class ConfigError(InputError):
    """A config with problems; `problems` lists every one of them."""

    def __init__(self, problems: list[str], source: str = "config") -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{len(problems)} problem(s) in {source}:\n{lines}")


class RuleProblems(ValueError):
    """Raised by a model validator: the broken cross-field rules, as (key, message) pairs."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{k}: {m}" for k, m in problems))


class OverrideText(str):
    """A `--set key=value` value: raw text, typed by the field it sets (so `trigger=[[go]]` stays text)."""


def fields_of(cls: Any) -> dict[str, FieldInfo]:
    """The schema fields of a pydantic model or pydantic dataclass, in order."""
    return dict(cls.__pydantic_fields__)


def section_class(info: FieldInfo | None) -> type | None:
    """The model class of a section field (None for a plain value)."""
    ann = info.annotation if info is not None else None
    return ann if isinstance(ann, type) and hasattr(ann, "__pydantic_fields__") else None


def unwrap_optional(ann: Any) -> tuple[Any, bool]:
    """(annotation without `| None` and Annotated, whether None is allowed)."""
    if get_origin(ann) in (Union, types.UnionType) and type(None) in get_args(ann):
        (inner,) = [a for a in get_args(ann) if a is not type(None)]
        return unwrap_optional(inner)[0], True
    if get_origin(ann) is Annotated:
        return get_args(ann)[0], False
    return ann, False


def choices(ann: Any) -> tuple[Any, ...]:
    """The allowed values of a Literal (or of the items of a list of Literals)."""
    ann, _ = unwrap_optional(ann)
    if get_origin(ann) is Literal:
        return get_args(ann)
    if get_origin(ann) is tuple and get_args(ann):
        return choices(get_args(ann)[0])
    return ()


def bounds(metadata: list[Any]) -> Bounds:
    """ge/gt/le/lt from a field's constraint metadata (annotated_types or nested FieldInfo)."""
    out: Bounds = {}
    for m in metadata:
        if isinstance(m, FieldInfo):
            out.update(bounds(m.metadata))
        for name in ("ge", "gt", "le", "lt"):
            if getattr(m, name, None) is not None:
                out[name] = getattr(m, name)
    return out


def field_bounds(info: FieldInfo) -> Bounds:
    """The bounds of a field, or of each item of a fixed-length list field."""
    found = bounds(info.metadata)
    ann, _ = unwrap_optional(info.annotation)
    if not found and get_origin(ann) is tuple:
        for item in get_args(ann):
            found.update(bounds(list(getattr(item, "__metadata__", ()))))
    return found


def range_text(b: Mapping[str, Any]) -> str:
    """'between 1 and 200', 'in (0, 1)', 'at least 16', ... ('' without bounds)."""
    lo = ("ge", b["ge"]) if "ge" in b else ("gt", b["gt"]) if "gt" in b else None
    hi = ("le", b["le"]) if "le" in b else ("lt", b["lt"]) if "lt" in b else None
    if lo and hi:
        if lo[0] == "ge" and hi[0] == "le" and isinstance(lo[1], int) and isinstance(hi[1], int):
            return f"between {lo[1]} and {hi[1]}"
        return f"in {'[' if lo[0] == 'ge' else '('}{lo[1]}, {hi[1]}{']' if hi[0] == 'le' else ')'}"
    if lo:
        return f"at least {lo[1]}" if lo[0] == "ge" else f"> {lo[1]}"
    if hi:
        return f"at most {hi[1]}" if hi[0] == "le" else f"< {hi[1]}"
    return ""


def _is_text(info: FieldInfo) -> bool:
    ann = info.annotation
    return ann is str or (
        get_origin(ann) is Literal and all(isinstance(a, str) for a in get_args(ann))
    )


def _typed(text: OverrideText, info: FieldInfo | None) -> Any:
    if info is not None and _is_text(info):
        return str(text)
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return str(text)
    if info is not None and unwrap_optional(info.annotation)[0] is float and isinstance(value, str):
        try:  # YAML 1.1 reads 1e-3 as text
            return float(value)
        except ValueError:
            pass
    return value


def type_overrides(data: Any, cls: Any) -> Any:
    """`data` with each OverrideText typed by the field it sets (YAML for non-text fields)."""
    if not isinstance(data, dict):
        return data
    fields = fields_of(cls)
    out: dict[Any, Any] = {}
    for key, value in data.items():
        info = fields.get(key) if isinstance(key, str) else None
        if isinstance(value, OverrideText):
            value = _typed(value, info)
        sub = section_class(info)
        out[key] = type_overrides(value, sub) if sub is not None else value
    return out


def _lookup(cls: Any, loc: tuple[Any, ...]) -> tuple[Any, FieldInfo | None]:
    """(the model holding the field at `loc`, the field's info); ints (list items) are skipped."""
    parent, info = cls, None
    for part in loc:
        if isinstance(part, int):
            break
        if info is not None:
            parent = section_class(info)
            if parent is None:
                return None, None
        info = fields_of(parent).get(part)
        if info is None:
            return parent, None
    return parent, info


def _path(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc if not isinstance(p, int))


def _raw(data: Any, loc: tuple[Any, ...]) -> Any:
    for part in loc:
        if isinstance(part, int) or not isinstance(data, dict) or part not in data:
            break
        data = data[part]
    return data


def _did_you_mean(value: Any, options: list[str]) -> str:
    close = difflib.get_close_matches(str(value), options, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _message(err: ErrorDetails, data: Any, cls: Any) -> list[str]:
    loc, kind = tuple(err["loc"]), err["type"]
    path = _path(loc) or "config"
    parent, info = _lookup(cls, loc)
    value = err["input"]
    if kind in ("extra_forbidden", "unexpected_keyword_argument"):
        names = list(fields_of(parent)) if parent is not None else []
        hint = _did_you_mean(loc[-1], names)
        return [f"{path}: unknown setting{hint}; valid: {', '.join(names)}"]
    if kind == "value_error" and isinstance(err["ctx"]["error"], RuleProblems):
        prefix = f"{_path(loc)}." if _path(loc) else ""
        return [f"{prefix}{k}: {m}" for k, m in err["ctx"]["error"].problems]
    if kind == "value_error":
        return [f"{path}: {err['ctx']['error']}"]
    if kind == "literal_error" and info is not None:
        options = [str(c) for c in choices(info.annotation)]
        hint = _did_you_mean(value, options)
        if isinstance(loc[-1], int):
            item = (info.json_schema_extra or {}).get("item", "value")  # type: ignore[union-attr]
            return [f"{path}: unknown {item} {value!r}{hint}; valid: {', '.join(options)}"]
        return [f"{path}: {value!r} is not one of {', '.join(options)}{hint}"]
    if kind in _BOUNDS and info is not None:
        _, nullable = unwrap_optional(info.annotation)
        rng = range_text(field_bounds(info)) or range_text(err.get("ctx", {}))
        each = "each " if isinstance(loc[-1], int) else ""
        got = _raw(data, loc) if each else value
        null = " (or null)" if nullable else ""
        return [f"{path}: {each}must be {rng}{null}, got {got!r} ({info.description})"]
    ann, _ = unwrap_optional(info.annotation) if info is not None else (None, False)
    if get_origin(ann) is tuple and (isinstance(loc[-1], int) or kind in ("too_short", "too_long")):
        size = len(get_args(ann)) if get_args(ann)[-1] is not Ellipsis else None
        what = f"a list of {size} numbers" if size else "a list"
        return [f"{path}: expected {what}, got {_raw(data, loc)!r}"]
    word = _TYPE_WORDS.get(kind.split("_")[0])
    if word:
        return [f"{path}: expected {word}, got {value!r}"]
    return [f"{path}: {err['msg']}, got {value!r}"]


def _values(obj: Any) -> ConfigData:
    return dict(vars(obj))


def _lenient(default: Any, raw: Any, loc: tuple[Any, ...], bad: set[tuple[Any, ...]]) -> Any:
    """`default` (a model instance) updated with the usable raw values, as a plain namespace."""
    values = _values(default)
    for key, value in values.items():
        here = (*loc, key)
        given = raw.get(key, None) if isinstance(raw, dict) else None
        has = isinstance(raw, dict) and key in raw and here not in bad
        if hasattr(type(value), "__pydantic_fields__"):
            # as in validation: a section that is given starts from its class's defaults
            start = type(value)() if has and isinstance(given, dict) else value
            values[key] = _lenient(start, given if has else None, here, bad)
        elif has:
            values[key] = given
    ns = types.SimpleNamespace(**values)
    ns.__dict__["_cls"] = type(default)
    return ns


def _rule_problems(ns: Any, prefix: str) -> list[str]:
    cls = ns.__dict__["_cls"]
    values = {k: v for k, v in vars(ns).items() if k != "_cls"}
    out: list[str] = []
    for key, value in values.items():
        if isinstance(value, types.SimpleNamespace):
            out += _rule_problems(value, f"{prefix}{key}.")
    rules = getattr(cls, "RULES", None)
    if rules is not None:
        with contextlib.suppress(TypeError, AttributeError, ValueError):  # too broken to judge
            out += [f"{prefix}{k}: {m}" for k, m in rules(values)]
    return out


def problems_of(err: ValidationError, data: Any, cls: Any) -> list[str]:
    """Every problem in `data` as a plain message: pydantic's errors, then the cross-field rules
    that pydantic did not get to run (checked on the raw values, ill-typed ones at defaults)."""
    problems: list[str] = []
    bad: set[tuple[Any, ...]] = set()
    for e in err.errors():
        for msg in _message(e, data, cls):
            if msg not in problems:
                problems.append(msg)
        if e["type"] not in _KEEP_RAW:
            loc = tuple(e["loc"])
            cut = next((i for i, p in enumerate(loc) if isinstance(p, int)), len(loc))
            bad.add(loc[:cut])
    if isinstance(data, dict):
        for msg in _rule_problems(_lenient(cls(), data, (), bad), ""):
            if msg not in problems:
                problems.append(msg)
    return problems
