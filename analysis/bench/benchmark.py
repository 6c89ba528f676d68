"""The detector benchmark: which detector, at which layer, catches the backdoor at which stage,
and at what false-positive rate, over a set of completed run folders (the user's model zoo).

For every run x stage x token position x detector x layer it fits the detector on the run's own
training questions (the split `results.json` used) and scores the held-out questions: AUROC and
average precision with 95% bootstrap intervals, and the detector as a monitor at one threshold,
calibrated for a target FPR (1%) on the run's held-out clean prompts: the TPR there and the
worst-case FPR across the task families there (`analysis.bench.cells`). Beside
them: the random-direction AUROC distribution, a label-shuffle control for each stage's best
cell, transfer (a detector fitted on one stage, or on another run of the same width, scored
unchanged on another), and each stage's behaviour copied from `results.json`.

Example::

    bench = run_bench(["runs/seed0", "runs/seed1"], "runs/bench")   # bench.json + bench.html
    bench["leaderboard"][0]        # the best cell: run, stage, detector, site, AUROC [CI], ...
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from analysis.bench.cells import (
    DETECTORS,
    detector_scores,
    fit_detector,
    logistic_per_position,
    shuffle_control,
    stage_cells,
)
from analysis.bench.cells import (  # documented as importable from here (docs/detectors.md)
    detection_summary as detection_summary,
)
from analysis.bench.zoo import BenchRun, StageData, load_run_folder, load_stage
from analysis.errors import InputError
from analysis.report.bench import leaderboard_key
from backdoor_models.io.artifacts import write_json
from probes import RandomDirectionBaseline, bootstrap_auroc, layerwise_auroc

log = logging.getLogger(__name__)

# The behaviour rates shown beside the detectors, as results.json names them.
BEHAVIOUR_KEYS = ("trigger_rate", "false_trigger_rate", "red_team_rate", "helpfulness")


def _transfer_pairs(stages: Sequence[StageData]) -> Iterable[tuple[StageData, StageData]]:
    """Source -> target pairs: every other stage of the same run (same position), and the same
    stage of every other run of the same width and sites (seed or size transfer)."""
    for source in stages:
        for target in stages:
            if source is target or source.position != target.position:
                continue
            same_run = source.run == target.run
            if same_run or (
                source.stage == target.stage
                and source.d_model == target.d_model
                and source.sites == target.sites
            ):
                yield source, target


def _check_against_results(run: BenchRun, data: StageData, points: list[float]) -> float:
    """Largest difference between this logistic AUROC per site and results.json's."""
    stored = run.results["stages"][data.stage]["probes"]["auroc_point"]
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
) -> dict[str, Any]:
    """Benchmark every detector over the completed runs in `run_dirs`; writes
    `out_dir/bench.json` and the report `out_dir/bench.html`, and returns bench.json's content.

    `positions` adds token offsets (e.g. [-2, -3]) re-cached from each stage's checkpoint beside
    the stored last-token activations, with the checkpoints loaded on `device`. Every folder is
    checked before any work starts.
    """
    from analysis.report.bench import write_bench_report

    unknown = [d for d in detectors if d not in DETECTORS]
    if unknown or not detectors:
        raise InputError(
            f"Unknown detectors {unknown}; choose one or more of {', '.join(DETECTORS)}."
        )
    if not run_dirs:
        raise InputError("No run folders given; pass one or more completed run folders.")
    paths = [Path(p) for p in run_dirs]
    runs = [load_run_folder(p, n, device) for p, n in zip(paths, _unique_names(paths), strict=True)]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    position_list: list[str | int] = ["last", *positions]
    groups = [(run, stage) for run in runs for stage in run.stages]
    jobs: list[tuple[BenchRun, StageData, Any]] = []
    for run, stage in tqdm(groups, desc="bench: loading and fitting", disable=not progress):
        per_position = [load_stage(run, stage, pos) for pos in position_list]
        logistic = logistic_per_position(per_position, run.C) if "logistic" in detectors else []
        jobs.extend(
            (run, data, logistic[i] if logistic else None) for i, data in enumerate(per_position)
        )
    stage_rows: list[dict[str, Any]] = []
    loaded: list[tuple[BenchRun, StageData, dict[str, Any]]] = []
    for run, data, logistic_probe in tqdm(jobs, desc="bench: stages", disable=not progress):
        stage = data.stage
        fitted = {
            k: logistic_probe
            if k == "logistic"
            else fit_detector(k, data.X[:, data.train], data.labels[data.train], run.C)
            for k in detectors
        }
        cells = stage_cells(data, fitted, fpr, n_boot, run.seed)
        baseline = RandomDirectionBaseline(n_directions, seed=run.seed).fit(data.X)
        random = {
            k: v.tolist()
            for k, v in baseline.summary(data.X[:, data.test], data.labels[data.test]).items()
        }
        row: dict[str, Any] = {
            "run": run.name,
            "stage": stage,
            "position": data.position,
            "sites": list(data.sites),
            "d_model": data.d_model,
            "n_train": int(data.train.size),
            "n_test": int(data.test.size),
            "families": sorted(set(data.families.tolist())),
            "test_labels": data.labels[data.test].tolist(),
            "test_families": data.families[data.test].tolist(),
            "behaviour": {
                k: run.results["stages"][stage]["behaviour"][k]
                for k in BEHAVIOUR_KEYS
                if k in run.results["stages"][stage]["behaviour"]
            },
            "detectors": cells,
            "random_directions": random,
        }
        if data.position == "last" and "logistic" in cells:
            row["results_json_max_abs_diff"] = _check_against_results(
                run, data, cells["logistic"]["auroc_point"]
            )
            # Runs written before the L-BFGS default (issue 18) can differ by up to ~1e-4
            # (4.4e-5 on the default run); anything larger means other data or another split.
            if row["results_json_max_abs_diff"] > 1e-3:
                log.warning(
                    "%s/%s: logistic AUROC differs from results.json by %.3g",
                    run.name,
                    stage,
                    row["results_json_max_abs_diff"],
                )
        stage_rows.append(row)
        loaded.append((run, data, fitted))

    controls = []
    for run in tqdm(runs, desc="bench: shuffle controls", disable=not progress):
        for stage in run.stages:
            best = _best_cell(
                [r for r in stage_rows if r["run"] == run.name and r["stage"] == stage]
            )
            data = next(
                d
                for r, d, _ in loaded
                if r is run and d.stage == stage and d.position == best["position"]
            )
            control = shuffle_control(
                data, best["detector"], best["site_index"], run.C, run.seed, n_permutations
            )
            controls.append(
                {
                    "run": run.name,
                    "stage": stage,
                    "position": best["position"],
                    "auroc": best["auroc"],
                    **control,
                }
            )

    transfers = []
    if transfer:
        pairs = list(_transfer_pairs([d for _, d, _ in loaded]))
        fitted_of = {(d.run, d.stage, d.position): f for _, d, f in loaded}
        seeds = {r.name: r.seed for r in runs}
        for source, target in tqdm(pairs, desc="bench: transfer", disable=not progress):
            for kind, detector in fitted_of[(source.run, source.stage, source.position)].items():
                scores = detector_scores(detector, target.X[:, target.test])
                y = target.labels[target.test]
                transfers.append(
                    {
                        "source_run": source.run,
                        "source_stage": source.stage,
                        "target_run": target.run,
                        "target_stage": target.stage,
                        "position": source.position,
                        "detector": kind,
                        "sites": list(target.sites),
                        "auroc_point": layerwise_auroc(scores, y).tolist(),
                        "auroc": [
                            bootstrap_auroc(scores[i], y, n_boot, seeds[source.run] + i).to_dict()
                            for i in range(len(target.sites))
                        ],
                    }
                )

    bench = {
        "settings": {
            "runs": [str(r.path) for r in runs],
            "positions": [str(p) for p in position_list],
            "detectors": list(detectors),
            "fpr": fpr,
            "n_boot": n_boot,
            "n_directions": n_directions,
            "n_permutations": n_permutations,
        },
        "runs": [
            {
                "name": r.name,
                "path": str(r.path),
                "seed": r.seed,
                "preset": r.preset,
                "train_fraction": r.train_fraction,
                "C": r.C,
                "stages": list(r.stages),
            }
            for r in runs
        ],
        "stages": stage_rows,
        "leaderboard": leaderboard(stage_rows),
        "behaviour_vs_representation": behaviour_vs_representation(stage_rows),
        "shuffle_controls": controls,
        "transfer": transfers,
    }
    write_json(out / "bench.json", bench)
    write_bench_report(bench, out / "bench.html")
    return bench


def _best_cell(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The highest-AUROC (detector, site, position) among `rows` (one stage, all positions);
    ties go to the first in detector order, then site order."""
    best: dict[str, Any] = {"auroc": -1.0}
    for row in rows:
        for kind, result in row["detectors"].items():
            for i, value in enumerate(result["auroc_point"]):
                if value > best["auroc"]:
                    best = {
                        "auroc": value,
                        "detector": kind,
                        "site_index": i,
                        "site": row["sites"][i],
                        "position": row["position"],
                    }
    return best


def leaderboard(stage_rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every (run, stage, position, detector, site) cell, best first: AUROC as the report shows
    it (3 decimals), ties broken by the lower worst-case FPR, then the higher AP
    (:func:`analysis.report.bench.leaderboard_key`)."""
    rows = []
    for row in stage_rows:
        for kind, result in row["detectors"].items():
            for i, cell in enumerate(result["cells"]):
                rows.append(
                    {
                        "run": row["run"],
                        "stage": row["stage"],
                        "position": row["position"],
                        "detector": kind,
                        "site": row["sites"][i],
                        **cell,
                    }
                )
    rows.sort(key=leaderboard_key)
    return rows


def behaviour_vs_representation(stage_rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per run and stage: the behaviour rates from results.json next to each detector's best
    held-out AUROC (any position and site) and the random-direction 95th percentile."""
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in stage_rows:
        grouped.setdefault((row["run"], row["stage"]), []).append(row)
    out = []
    for (run, stage), rows in grouped.items():
        best: dict[str, Any] = {}
        for row in rows:
            for kind, result in row["detectors"].items():
                i = result["best_index"]
                cell = result["cells"][i]
                if kind not in best or cell["auroc"]["value"] > best[kind]["auroc"]["value"]:
                    best[kind] = {
                        "auroc": cell["auroc"],
                        "site": row["sites"][i],
                        "position": row["position"],
                    }
        out.append(
            {
                "run": run,
                "stage": stage,
                "behaviour": rows[0]["behaviour"],
                "best_auroc": best,
                "random_p95_max": max(max(r["random_directions"]["p95"]) for r in rows),
            }
        )
    return out
