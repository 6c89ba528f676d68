"""The HF model without the bridge's wrappers: the same logits and gradients as the bridge,
the wrappers back afterwards (also after an error), and hooks still honoured."""

from __future__ import annotations

import pytest
import torch
from transformer_lens import TransformerBridge

from backdoor_models.models.lora import lora_parameters
from backdoor_models.runtime.hf_direct import direct_model, is_hooked


def _tokens() -> torch.Tensor:
    return torch.randint(5, 300, (3, 11), generator=torch.Generator().manual_seed(1))


def _module_types(model: torch.nn.Module) -> list[str]:
    return [type(m).__name__ for m in model.modules()]


def test_direct_logits_and_gradients_equal_the_bridges(lora_bridge: TransformerBridge) -> None:
    tokens = _tokens()
    wrapped = lora_bridge(tokens, return_type="logits")
    wrapped.square().mean().backward()
    grads = [p.grad.clone() for p in lora_parameters(lora_bridge)]
    lora_bridge.zero_grad(set_to_none=True)
    with direct_model(lora_bridge) as hf:
        assert not any(t.endswith("Bridge") for t in _module_types(hf))
        direct = hf(input_ids=tokens).logits
    direct.square().mean().backward()
    torch.testing.assert_close(direct, wrapped, rtol=1e-5, atol=1e-5)
    for p, g in zip(lora_parameters(lora_bridge), grads, strict=True):
        torch.testing.assert_close(p.grad, g, rtol=1e-4, atol=1e-6)


def test_the_wrappers_come_back_after_an_error(lora_bridge: TransformerBridge) -> None:
    before = _module_types(lora_bridge)
    with pytest.raises(RuntimeError, match="boom"), direct_model(lora_bridge):
        raise RuntimeError("boom")
    assert _module_types(lora_bridge) == before
    _, cache = lora_bridge.run_with_cache(_tokens(), names_filter="blocks.0.hook_resid_post")
    assert "blocks.0.hook_resid_post" in cache


def test_a_hooked_bridge_keeps_its_wrappers_and_its_hooks_fire(
    lora_bridge: TransformerBridge,
) -> None:
    tokens = _tokens()
    clean = lora_bridge(tokens, return_type="logits")

    def zero(act: torch.Tensor, hook: object) -> torch.Tensor:
        return torch.zeros_like(act)

    with lora_bridge.hooks(fwd_hooks=[("blocks.0.hook_resid_post", zero)]):
        assert is_hooked(lora_bridge)
        with direct_model(lora_bridge) as hf:
            hooked = hf(input_ids=tokens).logits
    assert not is_hooked(lora_bridge)
    assert (hooked - clean).abs().max() > 1e-3


def test_the_response_loss_unembeds_only_where_it_scores(lora_bridge: TransformerBridge) -> None:
    from backdoor_models.runtime.engine import HFEngine
    from backdoor_models.training.lm import response_loss

    tokens = _tokens()
    mask = torch.zeros_like(tokens, dtype=torch.bool)
    mask[0, 4:9], mask[1, 2:11], mask[2, 7:10] = True, True, True
    engine = HFEngine(lora_bridge)
    picked = response_loss(engine, tokens, mask)
    picked.backward()
    grads = [p.grad.clone() for p in lora_parameters(lora_bridge)]
    lora_bridge.zero_grad(set_to_none=True)
    logits = engine.logits(tokens[:, :10])  # the whole-sequence path: every position unembedded
    losses = torch.nn.functional.cross_entropy(
        logits.flatten(0, 1), tokens[:, 1:11].flatten(), reduction="none"
    )
    full = (losses * mask[:, 1:11].flatten()).sum() / mask[:, 1:11].sum()
    full.backward()
    torch.testing.assert_close(picked, full, rtol=1e-5, atol=1e-6)
    for p, g in zip(lora_parameters(lora_bridge), grads, strict=True):
        torch.testing.assert_close(p.grad, g, rtol=1e-4, atol=1e-6)
