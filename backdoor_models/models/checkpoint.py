"""Save and load models: `model.safetensors` + `model.json` (+ the run's tokenizer folder).

A native model saves all its weights and its preset. A model fine-tuned from a pretrained base
(`BaseSpec`) saves its LoRA adapters only (or all its weights, for full fine-tuning) and the
spec, and loads by booting the base again.

Example:
    >>> save_model(model, "runs/x/backdoored", extra={"stage": "backdoored"})   # doctest: +SKIP
    >>> model = load_model("runs/x/backdoored", tokenizer)                       # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from transformer_lens import TransformerBridge

from backdoor_models.io.artifacts import read_json, read_tensors, write_json, write_tensors
from backdoor_models.models.base_spec import BaseSpec
from backdoor_models.models.lora import has_lora, load_lora, lora_state_dict
from backdoor_models.models.presets import ModelPreset, build_model, preset_dict
from backdoor_models.models.pretrained import is_pretrained

ModelSpec = ModelPreset | BaseSpec  # what a model is built from

MODEL_FILE = "model.safetensors"
META_FILE = "model.json"


def save_model(
    model: TransformerBridge,
    directory: str | Path,
    preset: ModelSpec,
    extra: dict[str, Any] | None = None,
) -> None:
    """Weights, then the JSON that marks the checkpoint complete (both atomic)."""
    directory = Path(directory)
    if isinstance(preset, BaseSpec):
        if preset.lora:
            write_tensors(directory / MODEL_FILE, lora_state_dict(model))
        else:  # full fine-tuning: every weight, a tied one once (e.g. SmolLM2's embeddings)
            write_tensors(directory / MODEL_FILE, _unique_tensors(model.state_dict()))
        spec: dict[str, Any] = {"base": preset.to_dict()}
    else:
        write_tensors(directory / MODEL_FILE, model.state_dict())
        spec = {"preset": preset_dict(preset)}
    meta = {**spec, "d_vocab": int(model.cfg.d_vocab), **(extra or {})}
    write_json(directory / META_FILE, meta)


def is_complete(directory: str | Path) -> bool:
    directory = Path(directory)
    return (directory / META_FILE).is_file() and (directory / MODEL_FILE).is_file()


def load_model(directory: str | Path, tokenizer: Any, device: str = "cpu") -> TransformerBridge:
    """Rebuild the model from its JSON and load its safetensors weights (shapes checked)."""
    directory = Path(directory)
    if not is_complete(directory):
        raise FileNotFoundError(
            f"No complete checkpoint in {directory} (needs {MODEL_FILE} and {META_FILE})."
        )
    meta = read_json(directory / META_FILE)
    if int(meta["d_vocab"]) != len(tokenizer):
        raise ValueError(
            f"{directory} was saved with a {meta['d_vocab']}-token vocabulary but the tokenizer has "
            f"{len(tokenizer)}; load it with the tokenizer folder of the same run."
        )
    seed = int(meta.get("seed", 0))
    if "base" in meta:
        model = BaseSpec.from_dict(meta["base"]).build(seed=seed, device=device)
    else:
        preset = ModelPreset(**meta["preset"])
        model = build_model(preset, tokenizer, seed=seed, device=device)
    load_weights(model, directory / MODEL_FILE)
    model.eval()
    return model


def load_weights(model: TransformerBridge, path: str | Path) -> None:
    """Load a safetensors state dict into `model`, refusing missing, extra or misshapen tensors
    (a model with LoRA adapters loads its adapters)."""
    if is_pretrained(model) and has_lora(model):
        load_lora(model, path)
        return
    state = model.state_dict()
    kept = _unique_tensors(state)
    expected = {k: tuple(v.shape) for k, v in kept.items()}
    tensors = read_tensors(path, expected)
    # a name tied to a saved one (its alias) gets the same tensor, so the model stays tied
    by_storage = {_storage(v): k for k, v in kept.items()}
    tied = {k: tensors[by_storage[_storage(v)]] for k, v in state.items() if k not in kept}
    model.load_state_dict({**tensors, **tied}, strict=True)


def _storage(tensor: torch.Tensor) -> tuple[int, int, tuple[int, ...]]:
    return tensor.untyped_storage().data_ptr(), int(tensor.storage_offset()), tuple(tensor.shape)


def _unique_tensors(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`state` with every tensor that shares memory with an earlier one left out: tied weights
    (an embedding and the unembedding) are saved once, under the first name, as safetensors
    requires."""
    seen: set[tuple[int, int, tuple[int, ...]]] = set()
    out = {}
    for name, tensor in state.items():
        key = _storage(tensor)
        if key not in seen:
            seen.add(key)
            out[name] = tensor
    return out
