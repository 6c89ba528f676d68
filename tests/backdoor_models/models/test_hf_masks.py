"""The attention-mask guard on a bridge booted from Hugging Face (a tiny random Llama,
`tests/tiny_hf.py`), run on a left-padded batch: under bf16 autocast the unguarded bridge gives
NaN logits on the padded row's real tokens; guarded, they are finite and close to float32, and
outside autocast the guard changes nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from transformer_lens import TransformerBridge
from transformers import AutoTokenizer

from backdoor_models.models.hf_masks import guard_attention_masks
from backdoor_models.models.pretrained import load_hf_causal_lm
from backdoor_models.runtime.hf_generation import left_pad
from tests.tiny_hf import tiny_hf_folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_hf_folder(tmp_path_factory.mktemp("masks") / "llama")


def _unguarded_bridge(folder: Path) -> tuple[TransformerBridge, Any]:
    """What `load_base` builds, without its call to `guard_attention_masks`."""
    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    hf_model = load_hf_causal_lm(folder).eval()
    bridge = TransformerBridge.boot_transformers(
        str(folder), hf_model=hf_model, tokenizer=tokenizer, device="cpu", dtype=torch.float32
    )
    return bridge.eval(), tokenizer


def _logits(bridge: TransformerBridge, batch: tuple[torch.Tensor, ...], bf16: bool) -> torch.Tensor:
    ids, mask, positions = batch
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        out = bridge.original_model(input_ids=ids, attention_mask=mask, position_ids=positions)
    return out.logits.float()


def test_a_left_padded_batch_stays_finite_under_bf16_once_guarded(folder: Path) -> None:
    bridge, tokenizer = _unguarded_bridge(folder)
    prompts = ["hi", "the cat sat on the mat and the dog sat on the log"]
    batch = left_pad([tokenizer(p)["input_ids"] for p in prompts], tokenizer.pad_token_id)
    real = batch[1].bool()
    assert not bool(real[0].all())  # the first row is padded

    fp32 = _logits(bridge, batch, bf16=False)
    before = _logits(bridge, batch, bf16=True)
    # the failure the guard exists for (if TransformerLens stops casting the float32 mask to
    # bf16, this line fails and the guard may be dropped)
    assert not bool(torch.isfinite(before[0][real[0]]).all())

    assert guard_attention_masks(bridge) == bridge.cfg.n_layers  # one per attention module
    after = _logits(bridge, batch, bf16=True)
    assert bool(torch.isfinite(after[real]).all())
    torch.testing.assert_close(after[real], fp32[real], rtol=0.05, atol=0.1)  # bf16 precision
    # outside autocast the guard is a no-op
    torch.testing.assert_close(_logits(bridge, batch, bf16=False), fp32, rtol=0, atol=0)
