"""The factors of a sweep: the settings keys that make one x axis each, and how points are
labelled by them.

A factor is a set of keys that vary together. The sweep file may name them (`factors:`, checked by
`analysis.sweep.spec.check_factors`); otherwise, when the sweep has no size axis, every varying
setting that is neither a seed nor a size is a factor of its own, except that a key some points
leave out joins the key whose value says whether it is there (full fine-tuning has no LoRA rank:
model.finetune and model.lora_rank make one factor, "fine-tuning", with values "LoRA r4", ...,
"full"). A sweep with a size axis draws its other settings as lines over size, and has factors
only where its file names them.

A factor's values keep the order in which the sweep's points first list them.

Example:
    >>> value_label(["model.finetune", "model.lora_rank"], {"model.finetune": "lora",
    ...     "model.lora_rank": 16}), value_label(["model.finetune", "model.lora_rank"],
    ...     {"model.finetune": "full"})
    ('LoRA r16', 'full')
    >>> value_label(["train.steps"], {"train.steps": 80})
    '80'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from analysis.sweep.results import Factor, PointResult
from analysis.sweep.spec import SweepPoint, SweepSpec, Value

__all__ = [
    "dimension_settings",
    "split_by",
    "FINE_TUNING",
    "Dimension",
    "dimensions",
    "dimensions_label",
    "factor_name",
    "find_factors",
    "setting_text",
    "settings_label",
    "value_label",
]

FINE_TUNING = ("model.finetune", "model.lora_rank")
# a name and the keys it covers: a factor, or one varying key of its own
Dimension = tuple[str, list[str]]


def setting_text(value: Value) -> str:
    """A setting's value as text (`null` for a key a point leaves out)."""
    if isinstance(value, list):
        return "[" + ", ".join(setting_text(v) for v in value) + "]"
    return "null" if value is None else str(value)


def settings_label(settings: Mapping[str, Value], keys: Iterable[str]) -> str:
    """`key=value, ...` for `keys`."""
    return ", ".join(f"{k}={setting_text(settings.get(k))}" for k in keys)


def factor_name(keys: list[str]) -> str:
    """A found factor's name: its key, "fine-tuning" for model.finetune with model.lora_rank,
    else its keys joined by `+`."""
    if set(keys) == set(FINE_TUNING):
        return "fine-tuning"
    return "+".join(keys)


def value_label(keys: list[str], settings: Mapping[str, Value]) -> str:
    """A point's value of the factor made of `keys` (see the module docstring)."""
    if set(keys) <= set(FINE_TUNING) and FINE_TUNING[0] in keys:
        finetune, rank = settings.get(FINE_TUNING[0]), settings.get(FINE_TUNING[1])
        if finetune == "lora":
            return "LoRA" if rank is None or FINE_TUNING[1] not in keys else f"LoRA r{rank}"
        return setting_text(finetune)
    if len(keys) == 1:
        return setting_text(settings.get(keys[0]))
    return settings_label(settings, keys)


def _merged(keys: list[str], points: list[SweepPoint]) -> list[list[str]]:
    """`keys` in groups: a key some points leave out joins the first key (present in every point)
    whose value says whether it is there."""
    parent = {k: k for k in keys}
    everywhere = [k for k in keys if all(k in p.settings for p in points)]
    for key in keys:
        if key in everywhere:
            continue
        for owner in everywhere:
            has: dict[str, set[bool]] = {}
            for p in points:
                has.setdefault(setting_text(p.settings[owner]), set()).add(key in p.settings)
            if all(len(seen) == 1 for seen in has.values()):
                parent[key] = parent[owner]
                break
    groups: dict[str, list[str]] = {}
    for key in keys:
        groups.setdefault(parent[key], []).append(key)
    return list(groups.values())


def _values(keys: list[str], points: list[SweepPoint]) -> list[str]:
    return list(dict.fromkeys(value_label(keys, p.settings) for p in points))


def find_factors(
    spec: SweepSpec, points: list[SweepPoint], free_keys: list[str], has_size: bool
) -> list[Factor]:
    """The sweep's factors: those its file names, else (with no size axis) those found from the
    points; `free_keys`: the varying settings that are neither seed nor size."""
    if spec.factors:
        named = spec.factors.items()
        return [
            Factor(name=name, keys=keys, values=_values(keys, points), declared=True)
            for name, keys in named
        ]
    if has_size:
        return []
    return [
        Factor(name=factor_name(keys), keys=keys, values=_values(keys, points), declared=False)
        for keys in _merged(free_keys, points)
    ]


def dimensions(factors: list[Factor], keys: list[str]) -> list[Dimension]:
    """The factors, then each of `keys` (the varying non-seed settings) that no factor covers."""
    covered = {k for f in factors for k in f.keys}
    return [(f.name, f.keys) for f in factors] + [(k, [k]) for k in keys if k not in covered]


def dimensions_label(settings: Mapping[str, Value], dims: list[Dimension]) -> str:
    """`name=value, ...` over `dims` (a factor by its value label); "all points" for none."""
    return ", ".join(f"{name}={value_label(keys, settings)}" for name, keys in dims) or "all points"


def split_by(points: list[PointResult], dims: list[Dimension]) -> dict[str, list[PointResult]]:
    """The points split by their label over `dims` (:func:`dimensions_label`), in the order they
    come."""
    out: dict[str, list[PointResult]] = {}
    for p in points:
        out.setdefault(dimensions_label(p.settings, dims), []).append(p)
    return out


def dimension_settings(point: PointResult, dims: list[Dimension]) -> dict[str, Value]:
    """The point's settings of every key under `dims`."""
    return {k: point.settings.get(k) for _, keys in dims for k in keys}
