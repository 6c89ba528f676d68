"""LoRA adapters (peft) on the Hugging Face model that a `TransformerBridge` runs.

`TransformerBridge.boot_transformers` wraps the HF model's submodules in place: each
`q_proj` of a Llama becomes a `LinearBridge` whose `_original_component` is the `nn.Linear`.
peft refuses a `LinearBridge` as a target, so LoRA goes onto the wrapped `nn.Linear`s
themselves (`...q_proj._original_component`). The bridge then calls peft's LoRA layer inside
its own hook points, so logits, `run_with_cache` activations (`hook_q`, `hook_resid_post`, ...)
and hooks all see the adapted model. One caveat: weight properties (`bridge.blocks[0].attn.W_Q`)
read the base weight until `merge_lora`.

Full fine-tuning needs nothing from this module: a booted bridge's parameters are all trainable.

Adapter tensors are named as in the HF model (`model.layers.0.self_attn.q_proj.lora_A.weight`),
without the bridge's `_original_component` levels or peft's adapter name, so an adapter file is
small (the base is not in it) and readable.

Example:
    >>> bridge = TransformerBridge.boot_transformers("hf_model_dir")  # doctest: +SKIP
    >>> add_lora(bridge, rank=16, alpha=32)                          # doctest: +SKIP
    >>> optimizer = torch.optim.AdamW(lora_parameters(bridge), lr=1e-4)  # doctest: +SKIP
    >>> save_lora(bridge, "run/adapter.safetensors")                 # doctest: +SKIP
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn
from transformer_lens import TransformerBridge

from backdoor_models.io.artifacts import read_tensors, write_tensors

try:
    from peft import LoraConfig, inject_adapter_in_model
    from peft.tuners.lora import LoraLayer
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError(
        "LoRA needs peft, which is not installed. Install it with "
        "`pip install 'peft>=0.21,<1'` (a dependency of the project: `make setup`)."
    ) from err

# The projections of a Llama-style block (what peft calls target modules).
DEFAULT_LORA_TARGETS: tuple[str, ...] = (
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
)


LLAMA_TARGETS = DEFAULT_LORA_TARGETS  # q/k/v/o and the gated MLP projections
_ADAPTER = "default"
_WRAPPER = "._original_component"


def _hf_model(bridge: TransformerBridge) -> nn.Module:
    model = getattr(bridge, "original_model", None)
    if not isinstance(model, nn.Module):
        raise TypeError(
            f"Expected a TransformerBridge with an `original_model`; got {type(bridge).__name__}."
        )
    return model


def _clean(name: str) -> str:
    """A module or parameter name as the HF model spells it (no bridge wrappers, no adapter)."""
    name = name.replace(_WRAPPER, "")
    return re.sub(rf"\.(lora_[AB])\.{_ADAPTER}\.", r".\1.", name)


def has_lora(bridge: TransformerBridge) -> bool:
    """Whether the bridge's model carries LoRA layers."""
    return any(isinstance(m, LoraLayer) for m in _hf_model(bridge).modules())


def _targets(model: nn.Module, target_modules: Sequence[str]) -> list[str]:
    """Full names of the `nn.Linear`s whose HF name ends in one of `target_modules`."""
    linears = {
        name: _clean(name) for name, m in model.named_modules() if type(m) is nn.Linear and name
    }
    found = [
        name
        for name, clean in linears.items()
        if any(clean == t or clean.endswith("." + t) for t in target_modules)
    ]
    missing = [
        t
        for t in target_modules
        if not any(c == t or c.endswith("." + t) for c in linears.values())
    ]
    if missing:
        leaves = sorted({c.rsplit(".", 1)[-1] for c in linears.values()})
        raise ValueError(
            f"No linear layer named {missing} in this model; it has {leaves}. "
            "Pass target_modules from that list."
        )
    return found


def add_lora(
    bridge: TransformerBridge,
    rank: int = 16,
    alpha: int = 32,
    target_modules: Sequence[str] = LLAMA_TARGETS,
    dropout: float = 0.0,
    seed: int = 0,
) -> TransformerBridge:
    """Add LoRA adapters to the bridge's HF model, in place; freeze everything else.

    `target_modules` are the HF names of linear layers (`q_proj`, `down_proj`, ...; GPT-2's
    are `c_attn`, `c_proj`, `c_fc`, which are `Conv1D` and not wrapped as `nn.Linear`, so this
    function serves Llama-style models). `lora_A` is drawn from `seed` (Kaiming-uniform, as
    peft does), `lora_B` starts at zero, so the adapted model starts equal to the base. The
    caller's global random state is left alone. Returns the same bridge.
    """
    if rank < 1:
        raise ValueError(f"rank must be at least 1; got {rank}.")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1); got {dropout}.")
    if isinstance(target_modules, str) or not target_modules:
        raise ValueError(
            f"target_modules must be a non-empty list of layer names, e.g. {list(LLAMA_TARGETS)}; "
            f"got {target_modules!r}."
        )
    if has_lora(bridge):
        raise ValueError(
            "This bridge already has LoRA adapters. Call merge_lora(bridge) first to fold them "
            "into the weights, or boot a fresh bridge."
        )
    model = _hf_model(bridge)
    names = _targets(model, target_modules)
    config = LoraConfig(
        r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=names, bias="none"
    )
    devices = sorted({p.device.index or 0 for p in model.parameters() if p.device.type == "cuda"})
    with torch.random.fork_rng(devices=devices):
        inject_adapter_in_model(config, model, adapter_name=_ADAPTER)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in sorted(model.named_parameters()):
            if ".lora_A." in name:
                weight = torch.empty(param.shape, dtype=torch.float32)
                nn.init.kaiming_uniform_(weight, a=math.sqrt(5), generator=generator)
                param.copy_(weight)
    return bridge


def lora_parameters(bridge: TransformerBridge) -> list[nn.Parameter]:
    """The LoRA parameters, for an optimiser (empty when the bridge has none)."""
    return [p for n, p in _hf_model(bridge).named_parameters() if ".lora_" in n]


def count_trainable(bridge: TransformerBridge) -> int:
    """The number of parameters with `requires_grad` (after `add_lora`: the LoRA ones only)."""
    return sum(p.numel() for p in bridge.parameters() if p.requires_grad)


def _lora_params_by_clean_name(bridge: TransformerBridge) -> dict[str, nn.Parameter]:
    return {_clean(n): p for n, p in _hf_model(bridge).named_parameters() if ".lora_" in n}


def lora_state_dict(bridge: TransformerBridge) -> dict[str, torch.Tensor]:
    """The adapter's tensors (detached CPU copies), named as in the HF model."""
    params = _lora_params_by_clean_name(bridge)
    if not params:
        raise ValueError("This bridge has no LoRA adapters; call add_lora(bridge, ...) first.")
    return {k: p.detach().to("cpu").clone() for k, p in sorted(params.items())}


def load_lora_state_dict(bridge: TransformerBridge, state: Mapping[str, torch.Tensor]) -> None:
    """Copy adapter tensors into the bridge's LoRA layers; every name and shape must match."""
    params = _lora_params_by_clean_name(bridge)
    if not params:
        raise ValueError(
            "This bridge has no LoRA adapters to load into; call add_lora(bridge, rank=..., "
            "target_modules=...) with the adapter's settings first."
        )
    missing = sorted(set(params) - set(state))
    extra = sorted(set(state) - set(params))
    if missing or extra:
        raise ValueError(
            f"The adapter does not fit this bridge's LoRA layers: {len(missing)} missing "
            f"(e.g. {missing[:2]}), {len(extra)} unexpected (e.g. {extra[:2]}). Call add_lora "
            "with the target_modules the adapter was trained with."
        )
    wrong = [(k, tuple(state[k].shape), tuple(p.shape)) for k, p in params.items()]
    wrong = [w for w in wrong if w[1] != w[2]]
    if wrong:
        k, got, want = wrong[0]
        raise ValueError(
            f"{len(wrong)} adapter tensors have the wrong shape, e.g. {k}: {got} in the adapter, "
            f"{want} in the bridge. Call add_lora with the rank the adapter was trained with."
        )
    with torch.no_grad():
        for k, p in params.items():
            p.copy_(state[k].to(device=p.device, dtype=p.dtype))


def save_lora(bridge: TransformerBridge, path: str | Path) -> None:
    """Write the adapter's tensors to one safetensors file, atomically (the base is not saved)."""
    write_tensors(path, lora_state_dict(bridge))


def load_lora(bridge: TransformerBridge, path: str | Path) -> None:
    """Load an adapter file written by `save_lora` into a bridge prepared with `add_lora`."""
    load_lora_state_dict(bridge, read_tensors(path))


def merge_lora(bridge: TransformerBridge) -> TransformerBridge:
    """Fold the adapters into the base weights and remove the LoRA layers, in place.

    Afterwards the bridge runs plain `nn.Linear`s again (weight properties such as `W_Q` show
    the merged weights) and every parameter is trainable, as after booting. Returns the bridge.
    """
    model = _hf_model(bridge)
    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, LoraLayer)]
    if not layers:
        raise ValueError("This bridge has no LoRA adapters to merge; call add_lora first.")
    for name, layer in layers:
        layer.merge()
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, layer.get_base_layer())
    for param in model.parameters():
        param.requires_grad_(True)
    return bridge
