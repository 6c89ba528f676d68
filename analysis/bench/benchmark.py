"""The detector benchmark: which detector, at which layer, catches the backdoor at which stage,
and at what false-positive rate, over a set of completed run folders (the user's model zoo).

For every run x stage x token position x detector x layer it fits the detector on the run's own
training questions (the split `results.json` used) and scores the held-out questions: AUROC and
average precision with 95% bootstrap intervals, and the detector as a monitor at one threshold,
calibrated for a target FPR (1%) on the run's held-out clean prompts: the TPR there and the
worst-case FPR across the task families there (`analysis.bench.cells`). Beside
them: the random-direction AUROC distribution, a label-shuffle control for each stage's best
cell, transfer (a detector fitted on one stage, or on another run of the same width, scored
unchanged on another; with `transfer_across`, only runs that differ in those settings alone,
tabulated by setting: `analysis.bench.across`), and each stage's behaviour copied from
`results.json`. Then the leaderboards of the conditions where detectors can differ
(`analysis.bench.conditions`): every site, frozen transfer from the backdoored stage, the
obfuscated stage frozen, out-of-distribution negatives and held-out trigger forms, ranked by TPR
at the target FPR beside the text baseline. Runs are scored one at a time, so that only one
run's fitted detectors are held at once.

Example::

    bench = run_bench(["runs/seed0", "runs/seed1"], "runs/bench")   # bench.json + bench.html
    bench["leaderboard"][0]        # the best cell: run, stage, detector, site, AUROC [CI], ...
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from analysis.bench.across import (
    check_keys,
    cross_run_pairs,
    flat_settings,
    run_labels,
    transfer_across_rows,
)
from analysis.bench.cells import (
    DETECTORS,
    Detector,
    fit_detector,
    logistic_per_position,
    shuffle_control,
    stage_cells,
)
from analysis.bench.cells import (  # documented as importable from here (docs/detectors.md)
    detection_summary as detection_summary,
)
from analysis.bench.condition_data import stage_extras
from analysis.bench.conditions import ConditionStage, condition_tables
from analysis.bench.tables import (
    behaviour_vs_representation,
    best_cell,
    leaderboard,
)
from analysis.bench.transfer import score_transfers, transfer_pairs
from analysis.bench.zoo import BenchRun, StageData, load_run_folder, load_stage
from analysis.errors import InputError
from analysis.folder.bench_records import (
    BenchRecord,
    ConditionTable,
    RunRecord,
    ShuffleControl,
    SkippedCondition,
    SkippedTransfer,
    StageRow,
    Transfer,
)
from backdoor_models.io.artifacts import write_json
from probes import (
    LayerwiseLogisticProbe,
    RandomDirectionBaseline,
)

log = logging.getLogger(__name__)

# The behaviour rates shown beside the detectors, as results.json names them.
BEHAVIOUR_KEYS = ("trigger_rate", "false_trigger_rate", "red_team_rate", "helpfulness")


def _check_against_results(run: BenchRun, data: StageData, points: list[float]) -> float:
    """Largest difference between this logistic AUROC per site and results.json's."""
    stored = run.results.analysed()[data.stage].probes.auroc_point
    return float(np.max(np.abs(np.asarray(points) - np.asarray(stored))))


def _unique_names(paths: Sequence[Path]) -> list[str]:
    names = [p.name for p in paths]
    return [
        name if names.count(name) == 1 else f"{name}#{i}" for i, name in enumerate(names, start=1)
    ]


def run_bench(
    run_dirs: Sequence[str | Path],
    out_dir: str | Path,
    positions: Sequence[int] = (),
    detectors: Sequence[str] = DETECTORS,
    fpr: float = 0.01,
    n_boot: int = 1000,
    n_directions: int = 1000,
    n_permutations: int = 20,
    transfer: bool = True,
    progress: bool = True,
    device: str = "cpu",
    transfer_across: Sequence[str] = (),
    stage_transfer: bool = True,
    transfer_n_boot: int | None = None,
) -> BenchRecord:
    """Benchmark every detector over the completed runs in `run_dirs`; writes
    `out_dir/bench.json` and the report `out_dir/bench.html`, and returns bench.json's content.

    `positions` adds token offsets (e.g. [-2, -3]) re-cached from each stage's checkpoint beside
    the stored last-token activations, with the checkpoints loaded on `device`. Every folder is
    checked before any work starts.

    Transfer (unless `transfer=False`) scores each detector unchanged on other stages of its run
    (`stage_transfer`) and on the same stage of other runs: every run of the same width, or with
    `transfer_across` (e.g. ("model.finetune", "model.lora_rank")) only the runs whose resolved
    configs differ from its own in those settings alone, with the same evaluation prompts; then
    bench.json's `transfer_across` holds their table by setting (`analysis.bench.across`).
    `transfer_n_boot` sets the bootstrap resamples of a transfer cell (default `n_boot`).
    """
    from analysis.report.bench import write_bench_report

    runs = _open_runs(run_dirs, detectors, device)
    settings = {r.name: flat_settings(r.folder.cfg.to_dict()) for r in runs}
    check_keys(transfer_across, settings)
    boot_transfer = n_boot if transfer_n_boot is None else transfer_n_boot
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    position_list: list[str | int] = ["last", *positions]
    jobs = _load_stages(runs, position_list, detectors, progress)
    stages = [data for _, data, _ in jobs]
    skipped: list[SkippedTransfer] = []
    if not transfer:
        pairs: list[tuple[StageData, StageData]] = []
    elif transfer_across:
        pairs = list(transfer_pairs(stages, within_runs=stage_transfer, across_runs=False))
        across, skipped = cross_run_pairs(stages, settings, transfer_across)
        pairs += across
    else:
        pairs = list(transfer_pairs(stages, within_runs=stage_transfer))

    # Run by run: a run's fitted detectors (a Mahalanobis detector holds a d x d precision per
    # site: 82 MB for 31 sites of SmolLM2's 576) are kept only while its stages, the transfers
    # from them and its conditions are scored, not for the whole zoo at once.
    stage_rows: list[StageRow] = []
    controls: list[ShuffleControl] = []
    transfers: list[Transfer] = []
    tables: list[ConditionTable] = []
    not_scored: list[SkippedCondition] = []
    for run in tqdm(runs, desc="bench: runs", disable=not progress):
        fitted = [
            FittedStage(run, data, _fit_detectors(run, data, logistic, detectors))
            for r, data, logistic in jobs
            if r is run
        ]
        rows = [_stage_row(stage, fpr, n_boot, n_directions) for stage in fitted]
        stage_rows += rows
        controls += _shuffle_controls([run], rows, fitted, n_permutations)
        from_run = [(a, b) for a, b in pairs if a.run == run.name]
        fitted_of = {(f.data.stage, f.data.position): f.detectors for f in fitted}
        transfers += score_transfers(fitted_of, from_run, boot_transfer, run.seed)
        conditions = condition_tables(
            _condition_stages(fitted), fpr, n_boot, first_index=len(tables)
        )
        tables += conditions["tables"]
        not_scored += conditions["skipped"]
        del fitted
    bench: BenchRecord = {
        "settings": {
            "runs": [str(r.path) for r in runs],
            "positions": [str(p) for p in position_list],
            "detectors": list(detectors),
            "fpr": fpr,
            "n_boot": n_boot,
            "n_directions": n_directions,
            "n_permutations": n_permutations,
            "transfer_across": list(transfer_across),
            "stage_transfer": stage_transfer,
            "transfer_n_boot": boot_transfer,
        },
        "runs": [_run_record(r) for r in runs],
        "stages": stage_rows,
        "leaderboard": leaderboard(stage_rows),
        "behaviour_vs_representation": behaviour_vs_representation(stage_rows),
        "shuffle_controls": controls,
        "transfer": transfers,
        "conditions": {"fpr": fpr, "tables": tables, "skipped": not_scored},
    }
    if transfer and transfer_across:
        labels = run_labels(settings, transfer_across)
        bench["transfer_across"] = {
            "keys": list(transfer_across),
            "runs": {name: label.across for name, label in labels.items()},
            "rows": transfer_across_rows(
                transfers, stage_rows, labels, {r.name: r.seed for r in runs}
            ),
            "skipped": skipped,
        }
    write_json(out / "bench.json", bench)
    write_bench_report(bench, out / "bench.html")
    return bench


@dataclass(frozen=True)
class FittedStage:
    """One run x stage x token position and the detectors fitted on its training rows."""

    run: BenchRun
    data: StageData
    detectors: dict[str, Detector]  # in the order asked for


def _condition_stages(fitted: Sequence[FittedStage]) -> list[ConditionStage]:
    """The stored last-token stages, with what their conditions read beside them."""
    return [
        ConditionStage(
            f.run.name, f.run.seed, f.run.C, f.data, f.detectors, stage_extras(f.run, f.data)
        )
        for f in fitted
        if f.data.position == "last"
    ]


def _open_runs(
    run_dirs: Sequence[str | Path], detectors: Sequence[str], device: str
) -> list[BenchRun]:
    """Check the detector names and every run folder, then read the runs (names made unique)."""
    unknown = [d for d in detectors if d not in DETECTORS]
    if unknown or not detectors:
        raise InputError(
            f"Unknown detectors {unknown}; choose one or more of {', '.join(DETECTORS)}."
        )
    if not run_dirs:
        raise InputError("No run folders given; pass one or more completed run folders.")
    paths = [Path(p) for p in run_dirs]
    return [load_run_folder(p, n, device) for p, n in zip(paths, _unique_names(paths), strict=True)]


def _load_stages(
    runs: Sequence[BenchRun],
    position_list: Sequence[str | int],
    detectors: Sequence[str],
    progress: bool,
) -> list[tuple[BenchRun, StageData, LayerwiseLogisticProbe | None]]:
    """Every stage of every run at every token position, with its logistic probe (fitted for
    all positions of a stage in one solve; None when "logistic" is not benchmarked)."""
    groups = [(run, stage) for run in runs for stage in run.stages]
    jobs: list[tuple[BenchRun, StageData, LayerwiseLogisticProbe | None]] = []
    for run, stage in tqdm(groups, desc="bench: loading and fitting", disable=not progress):
        per_position = [load_stage(run, stage, pos) for pos in position_list]
        logistic = logistic_per_position(per_position, run.C) if "logistic" in detectors else []
        jobs.extend(
            (run, data, logistic[i] if logistic else None) for i, data in enumerate(per_position)
        )
    return jobs


def _fit_detectors(
    run: BenchRun,
    data: StageData,
    logistic: LayerwiseLogisticProbe | None,
    detectors: Sequence[str],
) -> dict[str, Detector]:
    """Every detector fitted on `data`'s training rows; the logistic probe comes already fitted."""
    fitted: dict[str, Detector] = {}
    for kind in detectors:
        if kind == "logistic" and logistic is not None:
            fitted[kind] = logistic
        else:
            fitted[kind] = fit_detector(kind, data.X[:, data.train], data.labels[data.train], run.C)
    return fitted


def _stage_row(stage: FittedStage, fpr: float, n_boot: int, n_directions: int) -> StageRow:
    """bench.json's row of one stage: its split, its behaviour, every detector's cells and the
    random-direction AUROCs; the last token's logistic AUROCs are checked against results.json."""
    run, data = stage.run, stage.data
    cells = stage_cells(data, stage.detectors, fpr, n_boot, run.seed)
    baseline = RandomDirectionBaseline(n_directions, seed=run.seed).fit(data.X)
    random = baseline.summary(data.X[:, data.test], data.labels[data.test])
    analysed = run.results.analysed()[data.stage]  # results.json's rates, as it wrote them
    behaviour = analysed.behaviour.model_dump(mode="json", exclude_unset=True)
    row: StageRow = {
        "run": run.name,
        "stage": data.stage,
        "position": data.position,
        "sites": list(data.sites),
        "d_model": data.d_model,
        "n_train": int(data.train.size),
        "n_test": int(data.test.size),
        "families": sorted(set(data.families.tolist())),
        "test_labels": data.labels[data.test].tolist(),
        "test_families": data.families[data.test].tolist(),
        "behaviour": {k: behaviour[k] for k in BEHAVIOUR_KEYS if k in behaviour},
        "detectors": cells,
        "random_directions": {
            "mean": random["mean"].tolist(),
            "p95": random["p95"].tolist(),
            "max": random["max"].tolist(),
        },
    }
    if data.position == "last" and "logistic" in cells:
        diff = _check_against_results(run, data, cells["logistic"]["auroc_point"])
        row["results_json_max_abs_diff"] = diff
        # Runs written before the L-BFGS default (issue 18) can differ by up to ~1e-4
        # (4.4e-5 on the default run); anything larger means other data or another split.
        if diff > 1e-3:
            log.warning(
                "%s/%s: logistic AUROC differs from results.json by %.3g",
                run.name,
                data.stage,
                diff,
            )
    return row


def _shuffle_controls(
    runs: Sequence[BenchRun],
    stage_rows: Sequence[StageRow],
    fitted: Sequence[FittedStage],
    n_permutations: int,
) -> list[ShuffleControl]:
    """The label-shuffle control of each stage's best cell (any position, detector and site)."""
    controls: list[ShuffleControl] = []
    for run in runs:
        for stage in run.stages:
            best = best_cell(
                [r for r in stage_rows if r["run"] == run.name and r["stage"] == stage]
            )
            data = next(
                f.data
                for f in fitted
                if f.run is run and f.data.stage == stage and f.data.position == best.position
            )
            null = shuffle_control(
                data, best.detector, best.site_index, run.C, run.seed, n_permutations
            )
            controls.append(
                {
                    "run": run.name,
                    "stage": stage,
                    "position": best.position,
                    "auroc": best.auroc,
                    **null,
                }
            )
    return controls


def _run_record(run: BenchRun) -> RunRecord:
    return {
        "name": run.name,
        "path": str(run.path),
        "seed": run.seed,
        "preset": run.preset,
        "train_fraction": run.train_fraction,
        "C": run.C,
        "stages": list(run.stages),
    }
