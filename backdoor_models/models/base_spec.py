"""A pretrained base and how a run fine-tunes it: the pretrained counterpart of a `ModelPreset`.

A run on a native preset builds a fresh model from the preset; a run on a pretrained base loads
the base (:func:`backdoor_models.models.pretrained.load_base`) and, for LoRA, adds fresh adapters
(:func:`backdoor_models.models.lora.add_lora`). A checkpoint of a LoRA run holds the adapter tensors
only (`model.safetensors` of a few MB) and names its base in `model.json`, so every stage of a
run on a 0.5 GB base costs a few MB on disk.

Example:
    >>> spec = BaseSpec(path="/models/smollm2", name="smollm2-135m")
    >>> BaseSpec.from_dict(spec.to_dict()) == spec
    True
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformer_lens import TransformerBridge

from backdoor_models.models.lora import DEFAULT_LORA_TARGETS, add_lora
from backdoor_models.models.pretrained import load_base
from backdoor_models.text.chat_format import chat_tokenizer

__all__ = ["BaseSpec"]


@dataclass(frozen=True)
class BaseSpec:
    """A local Hugging Face causal-LM folder (`path`), what the user called it (`name`), and
    how it is fine-tuned: `finetune` "lora" (adapters of `lora_rank`, `lora_alpha` on
    `lora_targets`) or "full"."""

    path: str
    name: str = ""
    finetune: str = "lora"
    lora_rank: int = 16
    lora_alpha: int = 32
    lora_targets: tuple[str, ...] = field(default=DEFAULT_LORA_TARGETS)

    def __post_init__(self) -> None:
        if self.finetune not in ("lora", "full"):
            raise ValueError(f"finetune must be 'lora' or 'full', got {self.finetune!r}.")

    @property
    def lora(self) -> bool:
        return self.finetune == "lora"

    def build(self, seed: int = 0, device: str = "cpu") -> TransformerBridge:
        """The base as a bridge whose `prompt_tokenizer` reads the toolkit's prompts in the base's
        chat template, with fresh LoRA adapters (drawn from `seed`) when fine-tuning by LoRA."""

        model, tokenizer = load_base(Path(self.path), device=device)
        # what hooks.caching tokenizes prompts with (the bridge's own `tokenizer` must stay a
        # transformers tokenizer)
        model.prompt_tokenizer = chat_tokenizer(tokenizer)
        if self.lora:
            add_lora(model, self.lora_rank, self.lora_alpha, self.lora_targets, seed=seed)
        return model

    def build_untrained(self, seed: int = 0, device: str = "cpu") -> TransformerBridge:
        """The base's architecture and prompt format with random weights drawn from `seed` and
        no adapters: the untrained-model control (what a probe reads from the input alone)."""

        model, tokenizer = load_base(Path(self.path), device=device, random_init_seed=seed)
        model.prompt_tokenizer = chat_tokenizer(tokenizer)
        return model

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["lora_targets"] = list(self.lora_targets)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BaseSpec:
        return cls(**{**d, "lora_targets": tuple(d.get("lora_targets", DEFAULT_LORA_TARGETS))})
