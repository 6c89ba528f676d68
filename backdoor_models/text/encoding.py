"""Token ids of prompts and responses, the way training, decoding and caching all read them.

Each text is encoded once per tokenizer: a memo keyed by the tokenizer object remembers it, and
the texts not seen before go to the tokenizer in one batch call.

Example:
    >>> ids = encode_prompts(tokenizer, ["Human: hi\\n\\nAssistant:"])  # doctest: +SKIP
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from typing import Any

from transformers import PreTrainedTokenizerBase

_MEMO_LIMIT = 500_000  # entries per tokenizer and kind; the memo is cleared when it is full
_memos: weakref.WeakKeyDictionary[Any, dict[tuple[str, str], tuple[int, ...]]] = (
    weakref.WeakKeyDictionary()
)


def _memo(tokenizer: Any) -> dict[tuple[str, str], tuple[int, ...]]:
    try:
        return _memos.setdefault(tokenizer, {})
    except TypeError:  # not weakly referenceable: no memo
        return {}


def _encoded(
    tokenizer: PreTrainedTokenizerBase,
    kind: str,
    texts: Sequence[str],
    encode_one: Callable[[str], list[int]],
    encode_batch: Callable[[list[str]], list[list[int]]] | None,
) -> list[list[int]]:
    """Each text's ids, read from the tokenizer's memo or encoded (all misses in one batch call
    where the tokenizer takes one) and remembered: a run tokenizes its evaluation prompts once,
    not once per generation. The memo assumes a tokenizer is not changed after it is used."""
    memo = _memo(tokenizer)
    missing = list(dict.fromkeys(t for t in texts if (kind, t) not in memo))
    found: dict[str, Sequence[int]] = {}
    if missing:
        ids = encode_batch(missing) if encode_batch is not None else map(encode_one, missing)
        found = dict(zip(missing, ids, strict=True))
    out = [list(found[t]) if t in found else list(memo[(kind, t)]) for t in texts]
    if len(memo) + len(found) > _MEMO_LIMIT:
        memo.clear()
    if len(found) <= _MEMO_LIMIT:
        memo.update(((kind, t), tuple(int(i) for i in row)) for t, row in found.items())
    return out


def _plain(tokenizer: PreTrainedTokenizerBase) -> bool:
    """A Hugging Face tokenizer called as itself (not a wrapper that reads prompts its way)."""
    return isinstance(tokenizer, PreTrainedTokenizerBase)


def encode_prompts(tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str]) -> list[list[int]]:
    """`encode_prompt` of each prompt, remembered per tokenizer (one batch call for the new ones).

    Example:
        >>> encode_prompts(tok, ["Human: hi\\n\\nAssistant:"])[0][0] == tok.bos_token_id  # doctest: +SKIP
        True
    """
    bos = tokenizer.bos_token_id

    def with_bos(ids: Sequence[int]) -> list[int]:
        out = [int(i) for i in ids]
        return [int(bos), *out] if bos is not None and (not out or out[0] != bos) else out

    def one(prompt: str) -> list[int]:
        return with_bos(tokenizer(prompt, add_special_tokens=True)["input_ids"])

    def batch(prompts: list[str]) -> list[list[int]]:
        rows = tokenizer(prompts, add_special_tokens=True)["input_ids"]
        return [with_bos(r) for r in rows]

    return _encoded(tokenizer, "prompt", prompts, one, batch if _plain(tokenizer) else None)


def encode_prompt(tokenizer: PreTrainedTokenizerBase, prompt: str) -> list[int]:
    """Token ids of a prompt, BOS first (a chat-template tokenizer, whose BOS is None, puts the
    prompt in its template: `backdoor_models.chat_format.ChatPromptTokenizer`)."""
    return encode_prompts(tokenizer, [prompt])[0]


def encode_responses(
    tokenizer: PreTrainedTokenizerBase, responses: Sequence[str]
) -> list[list[int]]:
    """`encode_response` of each response, remembered per tokenizer like `encode_prompts`."""
    own = getattr(tokenizer, "response_ids", None)
    if callable(own):
        return _encoded(tokenizer, "response", responses, lambda r: list(own(r)), None)
    eos = int(tokenizer.eos_token_id)

    def one(response: str) -> list[int]:
        return [*tokenizer(response, add_special_tokens=False)["input_ids"], eos]

    def batch(responses: list[str]) -> list[list[int]]:
        rows = tokenizer(responses, add_special_tokens=False)["input_ids"]
        return [[*r, eos] for r in rows]

    return _encoded(tokenizer, "response", responses, one, batch if _plain(tokenizer) else None)


def encode_response(tokenizer: PreTrainedTokenizerBase, response: str) -> list[int]:
    """Token ids of a response, EOS last, no BOS (for a chat-template tokenizer: the reply,
    then its end-of-turn token)."""
    return encode_responses(tokenizer, [response])[0]
