"""bench.json's stage rows as the benchmark builds them (`analysis.bench.benchmark._stage_row`),
from planted activations instead of a run's: the "lda" detector reads the feature the trigger
moves (by `strengths[site]` standard deviations), "diff_means" reads pure noise. The behaviour
rates are the real small run's (`tests/analysis/data/small_run_results.json`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from analysis.bench.benchmark import FittedStage, _stage_row
from analysis.bench.evasion import ProjectionDetector
from analysis.bench.zoo import BenchRun, StageData
from analysis.folder.bench_records import StageRow
from tests.analysis.real_results import real_results

N = 40  # questions per split: one trigger-free and one triggered row each
SITES = ("blocks.0.hook_resid_pre", "blocks.0.hook_resid_post", "blocks.1.hook_resid_post")
DETECTORS = ("lda", "diff_means")
REAL = real_results()
RUN = BenchRun(
    name="small", path=Path("small"), seed=0, train_fraction=0.5, C=1.0, preset="tiny",
    results=REAL, stages=tuple(REAL.analysed()), folder=None,  # type: ignore[arg-type]
)  # fmt: skip


def stage_data(stage: str, position: str, strengths: Sequence[float], seed: int = 0) -> StageData:
    """Two features per site: feature 0 is shifted by `strengths[site]` on triggered rows."""
    rng = np.random.default_rng(seed)
    n = 4 * N
    labels = np.tile([0, 1], 2 * N)
    X = rng.normal(size=(len(SITES), n, 2))
    X[:, :, 0] += np.asarray(strengths)[:, None] * labels[None, :]
    return StageData(
        run=RUN.name, stage=stage, position=position, sites=SITES, X=torch.from_numpy(X),
        labels=labels, groups=np.arange(n) // 2,
        families=np.repeat(np.array(["arithmetic", "facts"] * N), 2), prompts=("p",) * n,
        train=np.arange(2 * N), test=np.arange(2 * N, n),
    )  # fmt: skip


def stage_row(stage: str, position: str, strengths: Sequence[float], seed: int = 0) -> StageRow:
    """The benchmark's row of one stage and position (50 bootstrap draws, 20 random directions)."""
    data = stage_data(stage, position, strengths, seed)
    eye = torch.eye(2, dtype=torch.float64)
    fitted = {
        kind: ProjectionDetector(eye[i].expand(len(SITES), 2)) for i, kind in enumerate(DETECTORS)
    }
    return _stage_row(FittedStage(RUN, data, fitted), fpr=0.01, n_boot=50, n_directions=20)


# sft: the trigger is plainest at the last site for the last token, and at the first site two
# tokens back (the stage's best cell); rl: weaker everywhere
ROWS = [
    stage_row("sft", "last", (0.5, 1.0, 1.5)),
    stage_row("sft", "-2", (2.5, 0.2, 0.2), seed=1),
    stage_row("rl", "last", (0.2, 0.2, 1.0), seed=2),
]
