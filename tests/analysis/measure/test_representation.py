import numpy as np
import pytest

from analysis.folder.splits import split_by_group
from analysis.measure.probing import probe_layers
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


def test_transfer_of_a_probe_to_itself_equals_its_fit(trained: Trained) -> None:
    from analysis.measure.probing import transfer_auroc

    prompts = [e.prompt for e in trained.eval_set]
    acts = cache_activations(trained.model, prompts, resid_post_names(trained.model))
    labels, groups = [e.triggered for e in trained.eval_set], [i // 2 for i in range(len(prompts))]
    _, lengths = tokenize_prompts(trained.model, prompts)
    fitted = probe_layers(acts, labels, groups, lengths.tolist(), seed=0, n_boot=100)
    assert transfer_auroc(acts, acts, labels, groups, seed=0) == pytest.approx(
        fitted["auroc_point"]
    )
    # scored on activations with the trigger direction destroyed (labels shuffled in the rows), the
    # transferred probe falls to chance
    rng = np.random.default_rng(0)
    shuffled = {k: v[rng.permutation(len(prompts))] for k, v in acts.items()}
    assert max(transfer_auroc(acts, shuffled, labels, groups, seed=0)) < 0.75


def test_transfer_follows_the_target_site_order(trained: Trained) -> None:
    from analysis.measure.probing import transfer_auroc

    prompts = [e.prompt for e in trained.eval_set]
    sites = ["blocks.0.hook_resid_pre", *resid_post_names(trained.model)]
    acts = cache_activations(trained.model, prompts, sites)
    labels, groups = [e.triggered for e in trained.eval_set], [i // 2 for i in range(len(prompts))]
    in_order = transfer_auroc(acts, acts, labels, groups, seed=0)
    sorted_source = {k: acts[k] for k in sorted(acts)}  # as safetensors returns them
    assert transfer_auroc(sorted_source, acts, labels, groups, seed=0) == in_order
