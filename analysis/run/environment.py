"""What a run records of the machine and libraries it ran on (`environment.json`): everything
besides the config and seed that can change its numbers. The thread count changes the sums that
matmuls and reductions make, and so the trained weights; the CPU's vector units change which
kernels run.

Example:
    >>> env = run_environment(seed=0, device="cpu")
    >>> sorted(env)
    ['cpu', 'device', 'precision', 'seed', 'threads', 'versions']
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
from pathlib import Path
from typing import Any

import torch

from analysis.config import RunConfig
from backdoor_models.models.device import choose_autocast

# CPU features that decide which kernels torch runs (bf16 and int8 matrix units, vector widths)
CPU_FLAGS = (
    "avx2",
    "avx512f",
    "avx512_bf16",
    "avx512_fp16",
    "avx512_vnni",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def library_versions() -> dict[str, str]:
    """Python, the platform and the installed versions of the libraries that compute a run."""
    names = {
        "torch": "torch",
        "transformer_lens": "transformer-lens",
        "transformers": "transformers",
        "numpy": "numpy",
        "scikit-learn": "scikit-learn",
        "tokenizers": "tokenizers",
        "peft": "peft",
    }
    versions = {"python": platform.python_version(), "platform": platform.platform()}
    versions.update({key: _version(dist) for key, dist in names.items()})
    versions["torch"] = torch.__version__  # the build, e.g. 2.13.0+cpu
    return versions


def cpu_facts(cpuinfo: Path = Path("/proc/cpuinfo")) -> dict[str, Any]:
    """The CPU's model, core count, the vector and matrix units torch can use (`CPU_FLAGS`) and
    the capability torch's kernels were dispatched for (`torch.backends.cpu`)."""
    model, flags = platform.processor() or "unknown", set[str]()
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model in ("unknown", ""):
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    return {
        "model": model,
        "cores": os.cpu_count(),
        "torch_capability": torch.backends.cpu.get_cpu_capability(),
        "flags": [f for f in CPU_FLAGS if f in flags],
    }


def run_environment(
    seed: int, device: str, autocast: str = "none", autocast_reason: str = ""
) -> dict[str, Any]:
    """environment.json: the seed, the device and its precision (with the reason), torch's
    thread counts, the CPU and versions."""
    return {
        "seed": seed,
        "device": device,
        "precision": {"autocast": autocast, "reason": autocast_reason},
        "threads": {
            "intra_op": torch.get_num_threads(),
            "inter_op": torch.get_num_interop_threads(),
        },
        "cpu": cpu_facts(),
        "versions": library_versions(),
    }


def autocast_reason(cfg: RunConfig) -> str:
    """Why the resolved config runs in its precision: the policy's reason (`choose_autocast`)
    when `model.autocast` is what `auto` picks here, else that the config asks for it."""
    policy, why = choose_autocast(cfg.model.device, pretrained=cfg.model.base is not None)
    if cfg.model.autocast == policy:
        return why
    return (
        f"model.autocast={cfg.model.autocast} set in the config (auto would pick {policy}: {why})"
    )
