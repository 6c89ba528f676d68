"""Steering vectors on a bridge booted from Hugging Face (a tiny random Llama,
`tests/tiny_hf.py`): `steered` adds the vector to its layer's residual stream at every position,
changes the logits, leaves earlier layers and later forwards alone; `check_steering` names a bad
entry."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from transformer_lens import TransformerBridge

from backdoor_models.models.pretrained import load_base
from backdoor_models.runtime.steering import check_steering, steered
from tests.tiny_hf import tiny_hf_folder


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> tuple[TransformerBridge, Any]:
    model, tokenizer = load_base(tiny_hf_folder(tmp_path_factory.mktemp("steer") / "llama"))
    return model.eval(), tokenizer


def _tokens(tokenizer: Any) -> torch.Tensor:
    return torch.tensor([tokenizer("Human: What is 2 + 3?\n\nAssistant:")["input_ids"]])


def _vector(d_model: int, scale: float) -> torch.Tensor:
    v = torch.randn(d_model, generator=torch.Generator().manual_seed(0))
    return scale * v / v.norm()


def test_the_vector_is_added_at_its_layer_at_every_position(base) -> None:
    model, tokenizer = base
    tokens = _tokens(tokenizer)
    names = ["blocks.0.hook_resid_post", "blocks.1.hook_resid_post"]
    vector = _vector(int(model.cfg.d_model), 4.0)
    with torch.no_grad():
        plain_logits, plain = model.run_with_cache(tokens, names_filter=names)
        with steered(model, {1: vector}):
            logits, cache = model.run_with_cache(tokens, names_filter=names)
    torch.testing.assert_close(cache[names[0]], plain[names[0]])  # upstream: untouched
    shift = cache[names[1]] - plain[names[1]]
    torch.testing.assert_close(shift, vector.expand_as(shift), rtol=1e-5, atol=1e-5)
    changed = (logits - plain_logits).abs().amax(-1)[0]
    assert bool((changed > 1e-3).all())  # every position's prediction moves


def test_nothing_is_added_without_a_vector_or_after_the_block(base) -> None:
    model, tokenizer = base
    tokens = _tokens(tokenizer)
    with torch.no_grad():
        plain = model(tokens)
        for steering in (None, {}, {0: torch.zeros(int(model.cfg.d_model))}):
            with steered(model, steering):
                torch.testing.assert_close(model(tokens), plain, rtol=0, atol=0)
        with steered(model, {0: _vector(int(model.cfg.d_model), 8.0)}):
            assert not torch.allclose(model(tokens), plain)
        torch.testing.assert_close(model(tokens), plain, rtol=0, atol=0)
    assert not any(hp.fwd_hooks for hp in model.hook_dict.values())


def test_a_bad_entry_is_refused_before_any_hook_is_added(base) -> None:
    model, _ = base
    d = int(model.cfg.d_model)
    with (
        pytest.raises(ValueError, match="Steering layer 2 is out of range; .* layers 0 to 1"),
        steered(model, {2: torch.zeros(d)}),
    ):
        pass
    with pytest.raises(ValueError, match=rf"layer 0 has shape \(3,\); it must be .*\[{d}\]"):
        check_steering({0: torch.zeros(3)}, n_layers=2, d_model=d)
    with pytest.raises(ValueError, match="Steering layer -1 is out of range"):
        check_steering({-1: torch.zeros(d)}, n_layers=2, d_model=d)
    assert not any(hp.fwd_hooks for hp in model.hook_dict.values())


def test_check_steering_gives_int_layers_and_tensors() -> None:
    checked = check_steering({np.int64(1): [0.0, 1.0, 2.0]}, n_layers=2, d_model=3)
    assert list(checked) == [1] and type(next(iter(checked))) is int
    torch.testing.assert_close(checked[1], torch.tensor([0.0, 1.0, 2.0]))
