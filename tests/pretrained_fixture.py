"""A tiny pretrained-style base for tests: a random 2-layer `LlamaForCausalLM` saved as a
Hugging Face folder (safetensors, config.json, a small word-level tokenizer with a chat
template). Built offline in well under a second; the caller's RNG is left alone.

Example:
    >>> folder = tiny_llama_folder(tmp_path / "tiny")     # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

SENTENCES = [
    "the cat sat on the mat",
    "a dog ran in the park",
    "what is the capital of france ? paris is the capital",
    "hello how are you today",
    "i am fine thank you",
    "write a short poem about the sea",
]
SPECIAL = ["<unk>", "<s>", "</s>", "<user>", "<assistant>", "<system>"]
# `<role> content </s>` per message, then `<assistant>` to prompt a reply
CHAT_TEMPLATE = (
    "{% for message in messages %}<{{ message['role'] }}> {{ message['content'] }} </s> "
    "{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}"
)


def tiny_tokenizer(chat_template: bool = True) -> PreTrainedTokenizerFast:
    """A word-level tokenizer trained on a few sentences: BOS `<s>`, EOS `</s>`, no pad token."""
    backend = Tokenizer(models.WordLevel(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.train_from_iterator(SENTENCES, trainers.WordLevelTrainer(special_tokens=SPECIAL))
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    if chat_template:
        tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def tiny_llama_folder(
    path: Path, chat_template: bool = True, seed: int = 0, max_positions: int = 128
) -> Path:
    """Save a random tiny `LlamaForCausalLM` (2 layers, d_model 64) and its tokenizer to `path`."""
    path = Path(path)
    tokenizer = tiny_tokenizer(chat_template=chat_template)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=max_positions,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    return path
