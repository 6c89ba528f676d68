import numpy as np
import pytest

from analysis.representation import probe_layers, split_by_group
from hooks.caching import cache_activations, resid_post_names, tokenize_prompts
from tests.conftest import Trained


def test_split_keeps_groups_together() -> None:
    groups = [i // 2 for i in range(40)]
    train, test = split_by_group(groups, 0.5, seed=0)
    assert not {groups[i] for i in train} & {groups[i] for i in test}
    assert len(train) == len(test) == 20


def test_probe_detects_trigger_in_trained_model(trained: Trained) -> None:
    prompts = [e.prompt for e in trained.eval_set]
    sites = ["blocks.0.hook_resid_pre", *resid_post_names(trained.model)]
    acts = cache_activations(trained.model, prompts, sites)
    _, lengths = tokenize_prompts(trained.model, prompts)
    result = probe_layers(
        acts,
        [e.triggered for e in trained.eval_set],
        [i // 2 for i in range(len(prompts))],
        lengths.tolist(),
        seed=0,
        n_boot=200,
    )
    assert result["best_auroc"]["value"] >= 0.95
    assert result["best_site"] != "blocks.0.hook_resid_pre"
    assert all(abs(a - 0.5) < 0.15 for a in result["shuffled_label_auroc"])  # mean of 20 shuffles


def test_one_class_split_raises() -> None:
    acts = {"a": np.random.default_rng(0).normal(size=(20, 4))}
    import torch

    with pytest.raises(ValueError, match="one class"):
        probe_layers({"a": torch.tensor(acts["a"])}, [True] * 20, list(range(20)), [5] * 20)
