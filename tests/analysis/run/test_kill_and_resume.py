"""A real run killed with SIGKILL at several points resumes to the same results as an
uninterrupted run (issue 6). Each run is a subprocess with one torch thread."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # a system test: about 100 s of real runs (`make test-slow`)

CONFIG = """
seed: 0
model: {preset: tiny}
data: {n_train: 1500, n_eval: 24, vocab_size: 500}
train: {steps: 60, batch_size: 32, lr: 0.003, warmup_steps: 4, eval_every: 20, checkpoint_every: 10}
eval: {max_new_tokens: 16, n_bootstrap: 200, n_during_training: 8}
safety: {n_safety: 300, n_track: 12}
sft: {steps: 12, batch_size: 32, warmup_steps: 1, eval_every: 4, checkpoint_every: 2}
adversarial: {steps: 8, batch_size: 32, warmup_steps: 1, eval_every: 4, checkpoint_every: 2}
rl: {steps: 8, prompts_per_step: 4, eval_every: 4, checkpoint_every: 2}
preference: {steps: 40, warmup_steps: 2, n_pairs: 200, n_eval_pairs: 40}
red_team: {n_candidates: 30, n_samples: 3, rounds: 2, n_per_round: 10}
"""

ROOT = Path(__file__).resolve().parents[3]


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "analysis.cli", "run", "--quiet", "--threads", "1", *args]


def _results(run: Path) -> dict:
    data = json.loads((run / "results.json").read_text())
    data.pop("run_dir")
    return data


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("kill")
    (root / "c.yaml").write_text(CONFIG)
    subprocess.run(
        _cli("--config", str(root / "c.yaml"), "--run-dir", str(root / "ref")), cwd=ROOT, check=True
    )
    return root, _results(root / "ref")


@pytest.mark.parametrize(
    "kill_when",
    [
        "backdoored/train_state.json",  # during backdoor training (first of six checkpoints)
        "red_team.json",  # while the preference model trains
        "sft/train_state.json",  # during SFT
        "rl/train_state.json",  # during RL
        "adversarial/train_state.json",  # during adversarial training, before the ablation
        "adversarial_trigger_aware/activations.safetensors",  # between caching and probing (last)
    ],
)
def test_sigkill_then_resume_gives_the_same_results(
    reference: tuple[Path, dict], kill_when: str
) -> None:
    root, expected = reference
    run = root / kill_when.replace("/", "_")
    proc = subprocess.Popen(_cli("--config", str(root / "c.yaml"), "--run-dir", str(run)), cwd=ROOT)
    deadline = time.time() + 300
    while not (run / kill_when).exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    killed = proc.poll() is None
    if killed:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert killed, f"the run finished before {kill_when} appeared; the kill point was never reached"
    assert not (run / "results.json").exists()
    subprocess.run(_cli("--resume", str(run)), cwd=ROOT, check=True)
    assert _results(run) == expected
