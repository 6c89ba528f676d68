"""The HF model without the bridge's wrappers: the same logits and gradients as the bridge,
the wrappers back afterwards (also after an error), and hooks still honoured."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformer_lens import TransformerBridge

from backdoor_models.hf_direct import direct_model, is_hooked
from backdoor_models.lora import add_lora, lora_parameters
from backdoor_models.pretrained import load_base
from tests.tiny_hf import tiny_hf_folder


@pytest.fixture()
def bridge(tmp_path: Path) -> TransformerBridge:
    model, _ = load_base(tiny_hf_folder(tmp_path / "tiny"))
    add_lora(model, rank=4, alpha=8)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in lora_parameters(model):  # B starts at zero: make the adapters matter
            p.normal_(0, 0.2)
    return model


def _tokens() -> torch.Tensor:
    return torch.randint(5, 300, (3, 11), generator=torch.Generator().manual_seed(1))


def _module_types(model: torch.nn.Module) -> list[str]:
    return [type(m).__name__ for m in model.modules()]


def test_direct_logits_and_gradients_equal_the_bridges(bridge: TransformerBridge) -> None:
    tokens = _tokens()
    wrapped = bridge(tokens, return_type="logits")
    wrapped.square().mean().backward()
    grads = [p.grad.clone() for p in lora_parameters(bridge)]
    bridge.zero_grad(set_to_none=True)
    with direct_model(bridge) as hf:
        assert not any(t.endswith("Bridge") for t in _module_types(hf))
        direct = hf(input_ids=tokens).logits
    direct.square().mean().backward()
    torch.testing.assert_close(direct, wrapped, rtol=1e-5, atol=1e-5)
    for p, g in zip(lora_parameters(bridge), grads, strict=True):
        torch.testing.assert_close(p.grad, g, rtol=1e-4, atol=1e-6)


def test_the_wrappers_come_back_after_an_error(bridge: TransformerBridge) -> None:
    before = _module_types(bridge)
    with pytest.raises(RuntimeError, match="boom"), direct_model(bridge):
        raise RuntimeError("boom")
    assert _module_types(bridge) == before
    _, cache = bridge.run_with_cache(_tokens(), names_filter="blocks.0.hook_resid_post")
    assert "blocks.0.hook_resid_post" in cache


def test_a_hooked_bridge_keeps_its_wrappers_and_its_hooks_fire(bridge: TransformerBridge) -> None:
    tokens = _tokens()
    clean = bridge(tokens, return_type="logits")

    def zero(act: torch.Tensor, hook: object) -> torch.Tensor:
        return torch.zeros_like(act)

    with bridge.hooks(fwd_hooks=[("blocks.0.hook_resid_post", zero)]):
        assert is_hooked(bridge)
        with direct_model(bridge) as hf:
            hooked = hf(input_ids=tokens).logits
    assert not is_hooked(bridge)
    assert (hooked - clean).abs().max() > 1e-3


def test_the_response_loss_unembeds_only_where_it_scores(bridge: TransformerBridge) -> None:
    from backdoor_models.engine import HFEngine
    from backdoor_models.training import response_loss

    tokens = _tokens()
    mask = torch.zeros_like(tokens, dtype=torch.bool)
    mask[0, 4:9], mask[1, 2:11], mask[2, 7:10] = True, True, True
    engine = HFEngine(bridge)
    picked = response_loss(engine, tokens, mask)
    picked.backward()
    grads = [p.grad.clone() for p in lora_parameters(bridge)]
    bridge.zero_grad(set_to_none=True)
    logits = engine.logits(tokens[:, :10])  # the whole-sequence path: every position unembedded
    losses = torch.nn.functional.cross_entropy(
        logits.flatten(0, 1), tokens[:, 1:11].flatten(), reduction="none"
    )
    full = (losses * mask[:, 1:11].flatten()).sum() / mask[:, 1:11].sum()
    full.backward()
    torch.testing.assert_close(picked, full, rtol=1e-5, atol=1e-6)
    for p, g in zip(lora_parameters(bridge), grads, strict=True):
        torch.testing.assert_close(p.grad, g, rtol=1e-4, atol=1e-6)
