"""Where a run computes and in what precision: `model.device` (`--device`) and `model.autocast`.

Devices are ``cpu`` (the default), ``cuda``, ``cuda:N`` and ``auto`` (``cuda`` when torch sees
a GPU, else ``cpu``). Models are built on the CPU from their seed and then moved, so a seed
gives the same initial weights on every device; every tensor a model consumes is moved to the
model's device where it is consumed, and every result comes back to the CPU before it is saved,
judged or probed. Checkpoints are written from CPU copies and load on any device.

Autocast is ``none`` or ``bf16``, and ``auto`` (the default) picks one by :func:`choose_autocast`:
bf16 on a CUDA GPU that has it, and on a CPU with native bf16 units (AMX or AVX-512 BF16) for a
pretrained base, where it was measured 1.9-3x faster; float32 for the native toy models on the
CPU, whose training was measured slower in bf16 (155 s against 131 s). Weights, gradients,
optimizer state and checkpoints stay
float32 either way; with ``bf16`` the forward passes of training (backdoor, SFT, adversarial,
the preference model, RL) and of generation run under ``torch.autocast(device, bfloat16)``:
matrix products and attention in bf16, the loss and the softmax that samples in float32, the
backward pass outside autocast. On CUDA bf16 runs those products on the tensor cores and halves
activation memory, and training at these sizes does not need float32's mantissa (on the CPU,
logits under bf16 stay within 5% of float32's and training still learns:
tests/backdoor_models/models/test_device.py; GPU timings are not measured yet).

The hooked analysis forwards (activation caching, patching, the contrast probe's answer
log-probabilities) are not autocast: they are one pass per prompt, cheap beside training, and
the probes and patching effects then read the model's float32 activations exactly.

Example:
    >>> resolve_device("cpu"), choose_autocast("cpu", pretrained=False)[0]
    ('cpu', 'none')
    >>> with autocast_forwards("none"):
    ...     forward_dtype() is None
    True
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar
from pathlib import Path

import torch

__all__ = [
    "AUTOCAST_MODES",
    "DeviceError",
    "autocast_forwards",
    "check_device",
    "choose_autocast",
    "cpu_bf16_units",
    "describe_device",
    "forward_autocast",
    "forward_dtype",
    "is_device_name",
    "resolve_device",
]

AUTOCAST_MODES: dict[str, torch.dtype | None] = {"none": None, "bf16": torch.bfloat16}
_DEVICE = re.compile(r"cpu|cuda|cuda:\d+|auto")
# the dtype the forward passes of training and generation are autocast to (None: float32)
_FORWARD_DTYPE: ContextVar[torch.dtype | None] = ContextVar("forward_dtype", default=None)


class DeviceError(ValueError):
    """A device or autocast setting this machine cannot run; the message names the fix."""


def is_device_name(name: str) -> bool:
    """Whether `name` is a device the config accepts: cpu, cuda, cuda:N or auto."""
    return _DEVICE.fullmatch(name) is not None


def resolve_device(name: str) -> str:
    """`auto` as ``cuda`` when torch sees a GPU, else ``cpu``; any other name unchanged."""
    if not is_device_name(name):
        raise DeviceError(f"Unknown device {name!r}; use cpu, cuda, cuda:N or auto.")
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


# CPU flags of units that compute bf16 matrix products natively (Intel AMX, AVX-512 BF16)
NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16")


def cpu_bf16_units(cpuinfo: Path = Path("/proc/cpuinfo")) -> list[str]:
    """The native bf16 units this CPU reports (`NATIVE_BF16_FLAGS`); empty where none (or where
    there is no /proc/cpuinfo to read)."""
    if not cpuinfo.is_file():
        return []
    for line in cpuinfo.read_text(errors="replace").splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            flags = set(value.split())
            return [f for f in NATIVE_BF16_FLAGS if f in flags]
    return []


def _gpu_lacks_bf16() -> bool:
    """True only where a usable GPU says it has no bf16: a config resolved on a machine without
    a GPU keeps bf16, and `check_device` refuses what the machine cannot run."""
    try:
        return torch.cuda.is_available() and not torch.cuda.is_bf16_supported()
    except (AssertionError, RuntimeError):  # a CPU-only build asked about a GPU
        return False


def choose_autocast(device: str, pretrained: bool) -> tuple[str, str]:
    """`model.autocast=auto`: the precision for a run on `device` (``auto`` resolved first), and
    why. bf16 where the device computes it natively and it measurably helps; float32 elsewhere.

    Example:
        >>> choose_autocast("cpu", pretrained=False)
        ('none', 'a native model on the CPU: its training was measured slower in bf16 (155 s against 131 s)')
    """
    if resolve_device(device).startswith("cuda"):
        if _gpu_lacks_bf16():
            return "none", "a CUDA GPU without bf16 support"
        return "bf16", "a CUDA GPU: bf16 runs on its tensor cores and halves activation memory"
    if not pretrained:
        return "none", (
            "a native model on the CPU: its training was measured slower in bf16 (155 s against "
            "131 s)"
        )
    units = cpu_bf16_units()
    if not units:
        return "none", "a pretrained base on a CPU without native bf16 (no AMX or AVX-512 BF16)"
    return "bf16", (
        f"a pretrained base on a CPU with native bf16 ({', '.join(units)}): SmolLM2's forward "
        "and backward were measured 1.9-2.4x faster, its generation 3x"
    )


def check_device(device: str, autocast: str) -> torch.device:
    """The torch device for `device`, or a `DeviceError` saying why this machine cannot use it
    (no CUDA, a GPU index that does not exist, bf16 on a GPU without it) and what to run
    instead."""
    name = resolve_device(device)
    if autocast not in AUTOCAST_MODES:
        raise DeviceError(f"Unknown autocast {autocast!r}; use one of {sorted(AUTOCAST_MODES)}.")
    if not name.startswith("cuda"):
        return torch.device(name)
    if not torch.cuda.is_available():
        build = (
            f"this torch ({torch.__version__}) is a CPU-only build"
            if torch.version.cuda is None
            else f"this torch ({torch.__version__}, CUDA {torch.version.cuda}) finds no GPU"
        )
        raise DeviceError(
            f"model.device={device} asks for a CUDA GPU, but {build} "
            "(torch.cuda.is_available() is False). Run on the CPU with --device cpu "
            "(--set model.device=cpu), or install a CUDA build of torch on a machine with an "
            "NVIDIA GPU (https://pytorch.org/get-started/locally/)."
        )
    index = int(name.split(":")[1]) if ":" in name else 0
    count = torch.cuda.device_count()
    if index >= count:
        raise DeviceError(
            f"model.device={device}: this machine has {count} CUDA device(s), numbered 0 to "
            f"{count - 1}; pick one of them (--device cuda:0)."
        )
    if autocast == "bf16" and not torch.cuda.is_bf16_supported():
        raise DeviceError(
            f"model.autocast=bf16: {torch.cuda.get_device_name(index)} has no bfloat16 support; "
            "run in float32 with --set model.autocast=none."
        )
    return torch.device(name)


def describe_device(device: torch.device) -> str:
    """The device as the run's environment.json records it, e.g. ``cuda:0 (NVIDIA H200)``."""
    if device.type != "cuda":
        return str(device)
    index = device.index if device.index is not None else 0
    return f"cuda:{index} ({torch.cuda.get_device_name(index)})"


@contextmanager
def autocast_forwards(mode: str) -> Iterator[None]:
    """Within this block, the forward passes of training and generation (the engines and the
    preference model, through `forward_autocast`) run under `mode`'s autocast; ``none`` keeps
    them float32. Scoped to the block (and the thread or task that entered it)."""
    if mode not in AUTOCAST_MODES:
        raise DeviceError(f"Unknown autocast {mode!r}; use one of {sorted(AUTOCAST_MODES)}.")
    token = _FORWARD_DTYPE.set(AUTOCAST_MODES[mode])
    try:
        yield
    finally:
        _FORWARD_DTYPE.reset(token)


def forward_dtype() -> torch.dtype | None:
    """The dtype forward passes are autocast to here (None: no autocast)."""
    return _FORWARD_DTYPE.get()


def forward_autocast(device: torch.device) -> AbstractContextManager[object]:
    """What one forward pass on `device` runs under: ``torch.autocast`` when an enclosing
    `autocast_forwards` asks for it, else nothing (the float32 computation, unchanged)."""
    dtype = _FORWARD_DTYPE.get()
    if dtype is None:
        return nullcontext()
    return torch.autocast(device.type, dtype=dtype)
