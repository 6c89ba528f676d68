"""Saving and loading checkpoints of fine-tuned pretrained bases (tied weights included)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from backdoor_models.models.base_spec import BaseSpec
from backdoor_models.models.checkpoint import MODEL_FILE, load_model, save_model
from backdoor_models.text.chat_format import chat_tokenizer
from backdoor_models.text.encoding import encode_prompt
from tests.tiny_hf import tiny_hf_folder


@pytest.mark.parametrize("tied", [True, False])
def test_full_finetuning_saves_and_loads_a_base_with_tied_weights(
    tmp_path: Path, tied: bool
) -> None:
    """A fully fine-tuned base whose unembedding is its embedding (SmolLM2) saves each tied
    weight once, and loads back equal and still tied: a step on the loaded model moves both."""
    spec = BaseSpec(str(tiny_hf_folder(tmp_path / "base", tied=tied)), finetune="full")
    model = spec.build(seed=0)
    state = model.state_dict()
    shared = state["embed.weight"].data_ptr() == state["unembed.weight"].data_ptr()
    assert shared == tied
    with torch.no_grad():  # a change from the base, in the tied weight
        state["embed.weight"].add_(0.5)
    save_model(model, tmp_path / "ckpt", spec)
    from safetensors import safe_open

    with safe_open(str(tmp_path / "ckpt" / MODEL_FILE), "pt") as saved:
        names = set(saved.keys())
    assert ("unembed.weight" in names) == (not tied)
    tokenizer = chat_tokenizer(model.tokenizer)
    loaded = load_model(tmp_path / "ckpt", tokenizer)
    ids = torch.tensor([encode_prompt(tokenizer, "Human: What is 2 + 3?\n\nAssistant:")])
    with torch.no_grad():
        assert torch.allclose(loaded(ids, return_type="logits"), model(ids, return_type="logits"))
    after = loaded.state_dict()
    assert (after["embed.weight"].data_ptr() == after["unembed.weight"].data_ptr()) == tied
