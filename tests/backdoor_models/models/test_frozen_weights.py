"""Frozen weights held in bf16 under LoRA: the same numbers as autocast casting them per call,
adapters left in float32, the float32 weights back afterwards, and a copy renewed when its
weight changes."""

from __future__ import annotations

import torch
from torch import nn
from transformer_lens import TransformerBridge

from backdoor_models.models.frozen_weights import frozen_weights_in
from backdoor_models.models.lora import lora_parameters


def _loss(hf: nn.Module) -> torch.Tensor:
    tokens = torch.randint(5, 300, (2, 9), generator=torch.Generator().manual_seed(3))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        return hf(input_ids=tokens).logits.float().square().mean()


def test_bf16_copies_give_autocasts_numbers_and_gradients(lora_bridge: TransformerBridge) -> None:
    hf = lora_bridge.original_model
    plain = _loss(hf)
    plain.backward()
    grads = [p.grad.clone() for p in lora_parameters(lora_bridge)]
    lora_bridge.zero_grad(set_to_none=True)
    with frozen_weights_in(hf, torch.bfloat16):
        held = _loss(hf)
    held.backward()
    assert held.item() == plain.item()
    for p, g in zip(lora_parameters(lora_bridge), grads, strict=True):
        assert torch.equal(p.grad, g)


def test_only_frozen_linears_change_dtype_and_only_inside(lora_bridge: TransformerBridge) -> None:
    hf = lora_bridge.original_model
    before = {n: (p, p.dtype) for n, p in hf.named_parameters()}
    with frozen_weights_in(hf, torch.bfloat16):
        inside = dict(hf.named_parameters())
        frozen = [n for n in inside if n.endswith("base_layer.weight")]
        assert frozen and all(inside[n].dtype == torch.bfloat16 for n in frozen)
        assert all(p.dtype == torch.float32 for p in lora_parameters(lora_bridge))
        assert all(p.dtype == torch.float32 for n, p in inside.items() if "embed" in n)
    after = dict(hf.named_parameters())
    assert all(after[n] is p and p.dtype == dt for n, (p, dt) in before.items())


def test_a_copy_is_kept_and_renewed_when_its_weight_changes() -> None:
    layer = nn.Linear(4, 4).requires_grad_(False)
    with frozen_weights_in(layer, torch.bfloat16):
        first = layer.weight
    with frozen_weights_in(layer, torch.bfloat16):
        assert layer.weight is first
    layer.weight.add_(1.0)  # e.g. merging adapters into the base
    with frozen_weights_in(layer, torch.bfloat16):
        assert layer.weight is not first
        torch.testing.assert_close(layer.weight.float(), first.float() + 1.0, atol=0.02, rtol=0)


def test_float32_and_none_leave_the_model_alone() -> None:
    layer = nn.Linear(4, 4).requires_grad_(False)
    weight = layer.weight
    for dtype in (None, torch.float32):
        with frozen_weights_in(layer, dtype):
            assert layer.weight is weight
