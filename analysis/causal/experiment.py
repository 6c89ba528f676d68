"""Patching and steering on every stage of a run folder -> RUN/patching.json and RUN/patching.html.

Example:
    >>> results = analyse_run("runs/default")                        # doctest: +SKIP
    >>> write_causal_outputs(results, "runs/default")                # doctest: +SKIP
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

from analysis.causal.patching import patching_experiment
from analysis.causal.records import CausalRecord, CausalStageRecord
from analysis.causal.steering import DEFAULT_SCALES, steer_stage
from analysis.folder.layout import RunLayout
from analysis.folder.reader import RunFolder
from analysis.folder.results_causal import Causal
from analysis.report.causal import write_causal_page
from backdoor_models.io.artifacts import write_json

log = logging.getLogger(__name__)


def analyse_run(
    run_dir: str | Path,
    stages: list[str] | None = None,
    n_pairs: int = 32,
    steering: bool = True,
    steer_layers: Sequence[int] | None = None,
    scales: Sequence[float] = DEFAULT_SCALES,
    seed: int = 0,
    direction_from: str | None = None,
    device: str = "cpu",
) -> CausalRecord:
    """Patching (and steering, unless `steering=False`) for each finished stage of the run.

    Steering uses each stage's own trigger direction, or `direction_from`'s for every stage.
    The checkpoints are loaded on `device` (the CPU by default, wherever they were trained)."""
    run = RunFolder.open(run_dir, device=device)
    run.check_patchable()
    stages = run.check_stages(stages)
    out: CausalRecord = {"run_dir": str(run_dir), "stages": {}}
    for stage in stages:
        start = time.perf_counter()
        model = run.model(stage)
        entry: CausalStageRecord = {
            "patching": patching_experiment(
                model, run.tokenizer, run.backdoor, run.eval_set, n_pairs=n_pairs
            )
        }
        if steering:
            entry["steering"] = steer_stage(
                run, stage, steer_layers, scales, seed=seed, direction_from=direction_from
            )
        entry["seconds"] = round(time.perf_counter() - start, 1)
        log.info(
            "%s: patching%s in %.1f s", stage, " and steering" if steering else "", entry["seconds"]
        )
        out["stages"][stage] = entry
    return out


def write_causal_outputs(results: CausalRecord, run_dir: str | Path) -> tuple[Path, Path]:
    """Write RUN/patching.json and RUN/patching.html (atomically); returns both paths."""
    layout = RunLayout(Path(run_dir))
    causal = Causal.model_validate(results)  # checked against the schema before anything is written
    write_json(layout.patching, results)
    return layout.patching, write_causal_page(causal, layout.patching_page)
