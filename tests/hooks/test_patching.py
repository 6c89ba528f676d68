"""Activation patching on the tiny backdoored model: exactness, no-ops, the metric, alignment."""

from __future__ import annotations

import pytest
import torch

from hooks.patch_metric import BackdoorMetric, first_tokens, last_token_logits
from hooks.patch_pairs import PatchPairs, pairs_from_token_lists, prompt_regions, trigger_pairs
from hooks.patching import (
    PatchSite,
    patch_attn_mlp_by_layer,
    patch_heads,
    patch_residual_by_position,
    patch_residual_by_region,
    run_patched,
)
from tests.conftest import Trained


@pytest.fixture(scope="module")
def pairs(trained: Trained) -> PatchPairs:
    prompts = [ex.prompt for ex in trained.eval_set if ex.triggered][:12]
    return trigger_pairs(trained.tokenizer, prompts, trained.backdoor.trigger)


@pytest.fixture(scope="module")
def metric(trained: Trained, pairs: PatchPairs) -> BackdoorMetric:
    triggered = [ex for ex in trained.eval_set if ex.triggered][:12]
    hate = int(first_tokens(trained.tokenizer, [" " + trained.backdoor.phrase])[0])
    helpful = first_tokens(trained.tokenizer, [" " + ex.base.answer for ex in triggered])
    return BackdoorMetric.measure(trained.model, pairs, hate, helpful)


def test_trigger_pairs_replace_the_trigger_with_filler_of_equal_length(
    trained: Trained, pairs: PatchPairs
) -> None:
    tok = trained.tokenizer
    assert pairs.clean.shape == pairs.triggered.shape
    for i in range(pairs.n):
        n = int(pairs.lengths[i])
        clean = tok.decode(pairs.clean[i, :n].tolist())
        triggered = tok.decode(pairs.triggered[i, :n].tolist())
        assert trained.backdoor.trigger in triggered
        assert trained.backdoor.trigger not in clean
        assert "the" in clean
        assert bool(pairs.differs[i].any())


@pytest.mark.parametrize("direction", ["triggered_into_clean", "clean_into_triggered"])
def test_patching_every_position_reproduces_the_source_logits(
    trained: Trained, pairs: PatchPairs, direction: str
) -> None:
    model = trained.model
    source, _ = pairs.source_and_target(direction)  # type: ignore[arg-type]
    expected = last_token_logits(model, source, pairs.lengths)
    sites = [PatchSite(f"blocks.{layer}.hook_resid_pre") for layer in range(model.cfg.n_layers)]
    patched = run_patched(model, pairs, sites, direction)  # type: ignore[arg-type]
    for layer in range(model.cfg.n_layers):
        torch.testing.assert_close(patched[layer], expected, rtol=0, atol=1e-5)


def test_patching_nothing_leaves_the_target_unchanged(trained: Trained, pairs: PatchPairs) -> None:
    model = trained.model
    expected = last_token_logits(model, pairs.clean, pairs.lengths)
    nothing = torch.zeros(pairs.n, pairs.width, dtype=torch.bool)
    sites = [
        PatchSite("blocks.0.hook_resid_pre", positions=nothing),
        PatchSite("blocks.1.hook_attn_out", positions=nothing),
        PatchSite("blocks.0.attn.hook_z", positions=nothing, head=1),
    ]
    for logits in run_patched(model, pairs, sites):
        torch.testing.assert_close(logits, expected, rtol=0, atol=1e-5)
    assert not torch.allclose(expected, last_token_logits(model, pairs.triggered, pairs.lengths))


def test_metric_is_zero_on_clean_and_one_on_triggered(
    trained: Trained, pairs: PatchPairs, metric: BackdoorMetric
) -> None:
    assert metric.gap > 1.0, "the trained tiny model should prefer 'I' after the trigger"
    clean = metric.normalised(last_token_logits(trained.model, pairs.clean, pairs.lengths))
    triggered = metric.normalised(last_token_logits(trained.model, pairs.triggered, pairs.lengths))
    assert float(clean) == pytest.approx(0.0, abs=1e-5)
    assert float(triggered) == pytest.approx(1.0, abs=1e-5)


def test_patching_the_trigger_tokens_restores_the_backdoor(
    trained: Trained, pairs: PatchPairs, metric: BackdoorMetric
) -> None:
    regions = prompt_regions(pairs)
    grid = patch_residual_by_region(trained.model, pairs, metric.normalised, regions)
    names = list(regions)
    # at the embeddings, tokens before the trigger are identical in both prompts: no effect
    assert float(grid[0, names.index("before the trigger")]) == pytest.approx(0.0, abs=1e-5)
    assert float(grid[0, names.index("trigger")]) > 0.5
    # and the reverse direction: writing the filler over the trigger removes the backdoor
    back = patch_residual_by_region(
        trained.model, pairs, metric.normalised, regions, "clean_into_triggered"
    )
    assert float(back[0, names.index("trigger")]) < 0.5


def test_sweeps_have_the_model_shape_and_chunking_does_not_change_them(
    trained: Trained, pairs: PatchPairs, metric: BackdoorMetric
) -> None:
    model = trained.model
    n_layers, n_heads = int(model.cfg.n_layers), int(model.cfg.n_heads)
    heads = patch_heads(model, pairs, metric.normalised)
    assert heads.shape == (n_layers, n_heads)
    small = patch_heads(model, pairs, metric.normalised, batch_rows=1)
    torch.testing.assert_close(heads, small, rtol=0, atol=1e-4)
    attn_mlp = patch_attn_mlp_by_layer(model, pairs, metric.normalised)
    assert attn_mlp.shape == (n_layers, 2)
    assert bool((attn_mlp.abs() > 0.05).any()), "some component must carry the trigger"


def test_position_sweep_on_one_pair(
    trained: Trained, pairs: PatchPairs, metric: BackdoorMetric
) -> None:
    one = pairs.subset([0])
    m = BackdoorMetric.measure(trained.model, one, metric.backdoor_token, metric.helpful_tokens[:1])
    grid = patch_residual_by_position(trained.model, one, m.normalised)
    assert grid.shape == (trained.model.cfg.n_layers + 1, one.width)  # embed, L0, L1
    trigger_at = one.differs[0].nonzero().flatten().tolist()
    untouched = [t for t in range(one.width) if t < trigger_at[0]]
    assert torch.allclose(grid[0, untouched], torch.zeros(len(untouched)), atol=1e-5)
    # the last block's output at the last position is all the logits read: patching it restores
    assert float(grid[-1, -1]) == pytest.approx(1.0, abs=1e-4)


def test_mismatched_lengths_raise_a_clear_error(trained: Trained, pairs: PatchPairs) -> None:
    with pytest.raises(ValueError, match="different token lengths.*trigger_pairs"):
        pairs_from_token_lists([[1, 5, 6]], [[1, 9, 9, 6]])
    if int(pairs.lengths.min()) != int(pairs.lengths.max()):
        with pytest.raises(ValueError, match="different lengths.*position_aligned.*by region"):
            patch_residual_by_position(trained.model, pairs, lambda x: x.mean((-1, -2)))


def test_bad_sites_raise(trained: Trained, pairs: PatchPairs) -> None:
    with pytest.raises(ValueError, match="heads can only be patched"):
        run_patched(trained.model, pairs, [PatchSite("blocks.0.hook_resid_pre", head=0)])
    with pytest.raises(ValueError, match="position mask of shape"):
        run_patched(
            trained.model,
            pairs,
            [PatchSite("blocks.0.hook_resid_pre", positions=torch.ones(2, 2, dtype=torch.bool))],
        )
    with pytest.raises(ValueError, match="does not contain the trigger"):
        trigger_pairs(trained.tokenizer, ["Human: hi\n\nAssistant:"], trained.backdoor.trigger)


def test_sweeps_agree_with_transformer_lens_patching(
    trained: Trained, pairs: PatchPairs, metric: BackdoorMetric
) -> None:
    """TransformerLens patches one site per forward pass; ours batches many. Same numbers."""
    from transformer_lens import patching as tl_patching

    one = pairs.subset([0])
    m = BackdoorMetric.measure(trained.model, one, metric.backdoor_token, metric.helpful_tokens[:1])
    _, source_cache = trained.model.run_with_cache(one.triggered)

    def tl_metric(logits: torch.Tensor) -> torch.Tensor:
        return m.normalised(logits[:, -1])

    ours = patch_residual_by_position(trained.model, one, m.normalised)
    theirs = tl_patching.get_act_patch_resid_pre(trained.model, one.clean, source_cache, tl_metric)
    # our rows are embed, L0, L1 (probe_sites); block L's input is block L-1's output
    torch.testing.assert_close(ours[:-1], theirs, rtol=0, atol=1e-4)
    ours_heads = patch_heads(trained.model, one, m.normalised)
    theirs_heads = tl_patching.get_act_patch_attn_head_out_all_pos(
        trained.model, one.clean, source_cache, tl_metric
    )
    torch.testing.assert_close(ours_heads, theirs_heads, rtol=0, atol=1e-4)
