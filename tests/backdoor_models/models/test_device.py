"""Devices and bf16 autocast (`backdoor_models.models.device`): names and defaults, the clear refusal of
a GPU this machine does not have, autocast scoped to the forward passes of training and
generation, logits under autocast close to float32 ones, and training under autocast still
learning, on native models, the preference model and a pretrained base.

The tests marked `needs_cuda` run only where torch sees a GPU (none does on the 2-core CPU
machine this project is developed on); they check that a model trained on the GPU matches the
CPU's start, and that its checkpoint loads on the CPU.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from backdoor_models.behaviour.backdoor import make_training_set
from backdoor_models.behaviour.evaluation import generate_replies
from backdoor_models.models import device as device_module
from backdoor_models.models.base_spec import BaseSpec
from backdoor_models.models.checkpoint import load_model
from backdoor_models.models.device import (
    DeviceError,
    autocast_forwards,
    check_device,
    choose_autocast,
    cpu_bf16_units,
    forward_dtype,
    is_device_name,
    resolve_device,
)
from backdoor_models.models.presets import build_model, get_preset
from backdoor_models.runtime.engine import engine_for
from backdoor_models.text.data import TokenizedSet, tokenize_examples
from backdoor_models.training.lm import response_loss, train
from backdoor_models.training.preference_model import new_preference_model, pad_rows
from backdoor_models.worlds.chat import chat_prompt
from tests.conftest import train_cfg
from tests.tiny_hf import tiny_hf_folder

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="torch sees no CUDA GPU")


def _no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_device_names_and_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("cpu", "cuda", "cuda:0", "cuda:12", "auto"):
        assert is_device_name(name)
    for name in ("gpu", "cuda:", "cuda:x", "CPU", "mps", ""):
        assert not is_device_name(name)
    _no_gpu(monkeypatch)
    assert resolve_device("auto") == "cpu" and _auto("auto", pretrained=False) == "none"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert resolve_device("auto") == "cuda" and _auto("auto", pretrained=False) == "bf16"
    assert _auto("cuda:1", pretrained=True) == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert choose_autocast("cuda", pretrained=False) == ("none", "a CUDA GPU without bf16 support")
    with pytest.raises(DeviceError, match="use cpu, cuda, cuda:N or auto"):
        resolve_device("gpu")


def _auto(device: str, pretrained: bool) -> str:
    return choose_autocast(device, pretrained)[0]


def test_the_precision_policy_on_the_cpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """bf16 for a pretrained base where the CPU has native bf16 units; float32 for the native
    toy models (measured slower in bf16) and on a CPU without them."""
    info = tmp_path / "cpuinfo"
    info.write_text("processor : 0\nflags : fpu sse avx2 avx512f avx512_bf16 amx_tile\n")
    assert cpu_bf16_units(info) == ["avx512_bf16"]
    info.write_text("flags : fpu avx2 amx_bf16 avx512_bf16\n")
    assert cpu_bf16_units(info) == ["amx_bf16", "avx512_bf16"]
    assert cpu_bf16_units(tmp_path / "missing") == []
    monkeypatch.setattr(device_module, "cpu_bf16_units", lambda: ["amx_bf16"])
    mode, why = choose_autocast("cpu", pretrained=True)
    assert mode == "bf16" and "amx_bf16" in why
    assert choose_autocast("cpu", pretrained=False)[0] == "none"
    monkeypatch.setattr(device_module, "cpu_bf16_units", lambda: [])
    assert choose_autocast("cpu", pretrained=True) == (
        "none",
        "a pretrained base on a CPU without native bf16 (no AMX or AVX-512 BF16)",
    )


def test_cuda_without_a_gpu_is_refused_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    _no_gpu(monkeypatch)
    assert check_device("cpu", "bf16") == torch.device("cpu")
    for name in ("cuda", "cuda:1"):
        with pytest.raises(DeviceError) as info:
            check_device(name, "bf16")
        text = str(info.value)
        assert f"model.device={name}" in text and "torch.cuda.is_available() is False" in text
        assert "--device cpu" in text and "CUDA build of torch" in text


def test_a_gpu_index_that_does_not_exist_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(DeviceError, match=r"has 2 CUDA device\(s\), numbered 0 to 1"):
        check_device("cuda:2", "none")
    with pytest.raises(DeviceError, match="Unknown autocast 'fp16'"):
        check_device("cpu", "fp16")


def test_autocast_is_scoped_to_its_block() -> None:
    assert forward_dtype() is None
    with autocast_forwards("bf16"):
        assert forward_dtype() is torch.bfloat16
        with autocast_forwards("none"):
            assert forward_dtype() is None
        assert forward_dtype() is torch.bfloat16
    assert forward_dtype() is None
    with pytest.raises(DeviceError, match="Unknown autocast"), autocast_forwards("half"):
        pass


def test_native_logits_under_autocast_are_close_to_float32(tokenizer: Any) -> None:
    model = build_model("tiny", tokenizer, seed=0)
    engine = engine_for(model)
    tokens = torch.randint(0, len(tokenizer), (4, 24), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        exact = engine.logits(tokens)
        with autocast_forwards("none"):  # "none" is the float32 computation, bit for bit
            assert torch.equal(engine.logits(tokens), exact)
        with autocast_forwards("bf16"):
            low = engine.logits(tokens)
    assert low.dtype == exact.dtype == torch.float32  # logits come back in float32
    assert not torch.equal(low, exact)  # bf16 really ran
    assert (low - exact).abs().max() < 0.05 * exact.abs().max()
    assert (low.argmax(-1) == exact.argmax(-1)).float().mean() > 0.9
    assert all(p.dtype == torch.float32 for p in model.parameters())  # weights stay float32


def test_training_under_autocast_lowers_the_loss_and_keeps_float32_weights(
    world: Any, backdoor: Any, tokenizer: Any, tmp_path: Path
) -> None:
    preset = get_preset("tiny")
    examples = make_training_set(world, backdoor, 400, 0.5, seed=3)
    data = tokenize_examples(tokenizer, examples, preset.n_ctx)
    model = build_model(preset, tokenizer, seed=0)
    cfg = train_cfg(steps=40, batch_size=16, warmup_steps=4, checkpoint_every=40)
    with autocast_forwards("bf16"):
        history = train(model, preset, data, cfg, tmp_path / "ckpt", progress=False)
        replies = generate_replies(model, tokenizer, [chat_prompt("What is 2 + 3?")], 8, 4)
    first, last = sum(history.loss[:5]) / 5, sum(history.loss[-5:]) / 5
    assert last < 0.6 * first
    assert isinstance(replies[0], str)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    saved = load_model(tmp_path / "ckpt", tokenizer)
    assert all(p.dtype == torch.float32 for p in saved.parameters())


def test_the_preference_model_under_autocast(tokenizer: Any) -> None:
    pm = new_preference_model(get_preset("tiny"), tokenizer, seed=0)
    rows = [[1, 5, 9, 2], [1, 7, 2]]
    tokens, lengths = pad_rows(rows, 0, pm.device)
    with torch.no_grad():
        exact = pm(tokens, lengths)
        with autocast_forwards("bf16"):
            low = pm(tokens, lengths)
    assert low.dtype == torch.float32 and torch.allclose(low, exact, atol=0.05)


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_hf_folder(tmp_path_factory.mktemp("tiny_base"))


def test_a_base_with_lora_under_autocast(tiny_base: Path, tmp_path: Path) -> None:
    """Logits close to float32, decoding runs, and LoRA training lowers the loss under bf16."""
    spec = BaseSpec(path=str(tiny_base), lora_rank=4, lora_alpha=8)
    model = spec.build(seed=0)
    engine = engine_for(model)
    gen = torch.Generator().manual_seed(1)
    tokens = torch.randint(5, int(model.cfg.d_vocab), (8, 16), generator=gen)
    with torch.no_grad():
        exact = engine.logits(tokens)
        with autocast_forwards("bf16"):
            low = engine.logits(tokens)
            new = engine.generate([[1, 40, 41], [1, 42]], 4, eos_token_id=2, pad_token_id=0)
    assert low.dtype == torch.float32 and not torch.equal(low, exact)
    assert (low - exact).abs().max() < 0.05 * exact.abs().max()
    assert len(new) == 2 and all(len(r) <= 5 for r in new)
    mask = torch.zeros_like(tokens, dtype=torch.bool)
    mask[:, 8:] = True  # memorise the second half of 8 fixed rows
    data = TokenizedSet(tokens, mask, torch.full((8,), 16))
    cfg = train_cfg(steps=30, batch_size=8, lr=1e-2, warmup_steps=2, checkpoint_every=30)
    with autocast_forwards("bf16"):
        history = train(model, spec, data, cfg, tmp_path / "ckpt", progress=False)
    assert history.loss[-1] < 0.7 * history.loss[0]


@needs_cuda
def test_a_model_built_on_the_gpu_starts_as_on_the_cpu_and_loads_back_on_the_cpu(
    tokenizer: Any, world: Any, backdoor: Any, tmp_path: Path
) -> None:
    preset = get_preset("tiny")
    cpu, gpu = build_model(preset, tokenizer, 0), build_model(preset, tokenizer, 0, "cuda")
    for a, b in zip(cpu.state_dict().values(), gpu.state_dict().values(), strict=True):
        assert b.device.type == "cuda" and torch.equal(a, b.cpu())
    examples = make_training_set(world, backdoor, 200, 0.5, seed=3)
    data = tokenize_examples(tokenizer, examples, preset.n_ctx)
    idx = torch.arange(8)
    assert torch.allclose(
        response_loss(engine_for(gpu), data.tokens[idx], data.loss_mask[idx]).cpu(),
        response_loss(engine_for(cpu), data.tokens[idx], data.loss_mask[idx]),
        rtol=1e-4,
    )
    cfg = train_cfg(steps=5, batch_size=8, warmup_steps=1, checkpoint_every=5)
    with autocast_forwards("bf16"):
        train(gpu, preset, data, cfg, tmp_path / "ckpt", progress=False)
        replies = generate_replies(gpu, tokenizer, [chat_prompt("What is 2 + 3?")], 8, 4)
    assert isinstance(replies[0], str)
    back = load_model(tmp_path / "ckpt", tokenizer)  # the CPU, wherever it was trained
    for a, b in zip(gpu.state_dict().values(), back.state_dict().values(), strict=True):
        assert b.device.type == "cpu" and torch.equal(a.cpu(), b)
    pm = new_preference_model(preset, tokenizer, seed=0, device="cuda")
    with autocast_forwards("bf16"):
        assert pm.score_tokens([[1, 5, 9, 2]]).device.type == "cpu"
