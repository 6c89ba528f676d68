"""Where a run computes and in what precision: `model.device` (`--device`) and `model.autocast`.

Devices are ``cpu`` (the default), ``cuda``, ``cuda:N`` and ``auto`` (``cuda`` when torch sees
a GPU, else ``cpu``). Models are built on the CPU from their seed and then moved, so a seed
gives the same initial weights on every device; every tensor a model consumes is moved to the
model's device where it is consumed, and every result comes back to the CPU before it is saved,
judged or probed. Checkpoints are written from CPU copies and load on any device.

Autocast is ``none`` or ``bf16``. Weights, gradients, optimizer state and checkpoints stay
float32 either way; with ``bf16`` the forward passes of training (backdoor, SFT, adversarial,
the preference model, RL) and of generation run under ``torch.autocast(device, bfloat16)``:
matrix products and attention in bf16, the loss and the softmax that samples in float32, the
backward pass outside autocast. It is the default on CUDA, where bf16 runs those products on
the tensor cores and halves activation memory, and training at these sizes does not need
float32's mantissa (on the CPU, logits under bf16 stay within 5% of float32's and training still
learns: tests/backdoor_models/test_device.py; GPU timings are not measured yet). On the CPU it
is off by default: it exists there to be tested, not to be fast.

The hooked analysis forwards (activation caching, patching, the contrast probe's answer
log-probabilities) are not autocast: they are one pass per prompt, cheap beside training, and
the probes and patching effects then read the model's float32 activations exactly.

Example:
    >>> resolve_device("cpu"), default_autocast("cuda:1")
    ('cpu', 'bf16')
    >>> with autocast_forwards("none"):
    ...     forward_dtype() is None
    True
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar

import torch

__all__ = [
    "AUTOCAST_MODES",
    "DeviceError",
    "autocast_forwards",
    "check_device",
    "default_autocast",
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


def default_autocast(device: str) -> str:
    """bf16 on a CUDA device, none on the CPU (``auto`` is resolved first)."""
    return "bf16" if resolve_device(device).startswith("cuda") else "none"


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
