"""Model-size presets and construction of native TransformerBridge models.

Example:
    >>> from backdoor_models.models.presets import PRESETS, build_model
    >>> model = build_model("tiny", tokenizer, seed=0)          # doctest: +SKIP
    >>> count_parameters(model)                                  # doctest: +SKIP
"""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

import torch
from transformer_lens import TransformerBridge
from transformer_lens.config import TransformerBridgeConfig


@dataclass(frozen=True)
class ModelPreset:
    """The shape of a from-scratch transformer (pre-LayerNorm, GELU, learned positions)."""

    name: str
    n_layers: int
    d_model: int
    n_heads: int
    d_mlp: int
    n_ctx: int = 128

    @property
    def d_head(self) -> int:
        return self.d_model // self.n_heads

    def n_params(self, d_vocab: int) -> int:
        """Trainable parameters with a `d_vocab`-token vocabulary (embedding and unembedding untied)."""
        d, m = self.d_model, self.d_mlp
        per_layer = 4 * d * d + 4 * d + 2 * d * m + m + d + 4 * d  # attention, MLP, two LayerNorms
        return 2 * d_vocab * d + self.n_ctx * d + self.n_layers * per_layer + 2 * d


# Parameter counts with a 1,024-token vocabulary: micro 0.067M, tiny 0.24M, small 1.07M,
# base 2.20M, medium 11.5M, large 26.3M (394x from micro to large). micro is mostly embedding:
# the bottom of a scale sweep that must stay cheap (33x from micro to base).
PRESETS: dict[str, ModelPreset] = {
    p.name: p
    for p in [
        ModelPreset("micro", n_layers=2, d_model=24, n_heads=3, d_mlp=96),
        ModelPreset("tiny", n_layers=2, d_model=64, n_heads=4, d_mlp=256),
        ModelPreset("small", n_layers=4, d_model=128, n_heads=4, d_mlp=512),
        ModelPreset("base", n_layers=6, d_model=160, n_heads=5, d_mlp=640),
        ModelPreset("medium", n_layers=6, d_model=384, n_heads=6, d_mlp=1536),
        ModelPreset("large", n_layers=8, d_model=512, n_heads=8, d_mlp=2048),
    ]
}
PresetName = Literal["micro", "tiny", "small", "base", "medium", "large"]
assert get_args(PresetName) == tuple(PRESETS), "PresetName must list PRESETS, in order"


def get_preset(name: str) -> ModelPreset:
    """Look up a preset by name, with a suggestion when the name is misspelt."""
    if name in PRESETS:
        return PRESETS[name]
    close = difflib.get_close_matches(name, PRESETS, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"Unknown model preset {name!r}.{hint} Valid presets: {sorted(PRESETS)}.")


def bridge_config(
    preset: ModelPreset, d_vocab: int, seed: int, device: str = "cpu"
) -> TransformerBridgeConfig:
    """The TransformerBridgeConfig for a preset and vocabulary size."""
    if preset.d_model % preset.n_heads:
        raise ValueError(
            f"Preset {preset.name!r}: d_model={preset.d_model} is not divisible by "
            f"n_heads={preset.n_heads}; pick n_heads that divides d_model."
        )
    return TransformerBridgeConfig(
        n_layers=preset.n_layers,
        d_model=preset.d_model,
        d_head=preset.d_head,
        n_heads=preset.n_heads,
        d_mlp=preset.d_mlp,
        n_ctx=preset.n_ctx,
        d_vocab=d_vocab,
        act_fn="gelu",
        normalization_type="LN",
        seed=seed,
        device=device,
    )


def build_model(
    preset: ModelPreset | str, tokenizer: Any, seed: int, device: str = "cpu"
) -> TransformerBridge:
    """A freshly initialised native bridge; the caller's global RNG state is left untouched."""
    if isinstance(preset, str):
        preset = get_preset(preset)
    cfg = bridge_config(preset, d_vocab=len(tokenizer), seed=seed, device=device)
    inner = getattr(tokenizer, "inner", tokenizer)  # a chat-template wrapper's own tokenizer
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = TransformerBridge.boot_native(cfg, tokenizer=inner, device=device)
    if inner is not tokenizer:
        model.prompt_tokenizer = tokenizer  # what hooks.caching tokenizes prompts with
    return model


def count_parameters(model: torch.nn.Module) -> int:
    """Trainable parameters (buffers such as the zero unembedding bias are not counted)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def preset_dict(preset: ModelPreset) -> dict[str, Any]:
    return asdict(preset)
