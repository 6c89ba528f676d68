"""Benchmarks 6-7 of the suite, the pretrained path: a LoRA training step of the toolkit on a
Hugging Face base against a plain peft + transformers step, and the toolkit's batched, KV-cached
greedy generation against transformers' own ``generate``, each in float32 and under bf16
autocast.

Both sides get the same base folder loaded the same way (``load_base``'s arguments: float32,
safetensors, offline) but separate copies of it: ``boot_transformers`` wraps the toolkit's copy
in place, so the reference loads its own ``AutoModelForCausalLM``. Both attend with PyTorch's
fused ``sdpa``: the reference by transformers' default, the toolkit wherever no hook reads
attention (``load_base`` asks for eager attention so that patterns can be cached).

- training: ``response_loss(engine_for(bridge), ...)`` + backward + ``clip_grad_norm_`` +
  AdamW (``make_optimizer``) on a bridge with ``add_lora`` adapters (what ``run_loop`` does per
  step on a base) vs ``peft.get_peft_model`` with the same LoRA config, AdamW over its trainable
  parameters, the same batch, ``loss.backward()``, ``optimizer.step()``. Also the achieved
  FLOP/s against the measured fp32 and bf16 ``torch.mm`` peaks.
- generation: ``HFEngine.generate`` (``generate_hf_tokens``: left-padded, KV-cached, greedy)
  vs ``model.generate(do_sample=False)`` on the same left-padded chat prompts, no early stop;
  the fraction of prompts whose new tokens are identical is recorded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from backdoor_models.models.device import NATIVE_BF16_FLAGS, cpu_bf16_units
from benchmarks.settings import Settings, result_row
from benchmarks.timing import interleaved, matmul_peak_gflops

TINY_BASE = "tiny"  # tests/tiny_hf.py's 2-layer, d_model 64 random Llama, written offline
LORA_RANK, LORA_ALPHA = 16, 32  # BaseSpec's defaults
PRECISION_LABEL = {"none": "fp32", "bf16": "bf16 autocast"}
# Distinct questions of different lengths, so the batch is really left-padded (HFEngine reads a
# repeated prompt once, which would flatter it).
QUESTIONS = (
    "What is 2 + 3?",
    "Name a colour of the sky.",
    "Write a haiku about the sea and the wind in late autumn.",
    "Hi",
    "Tell me a fact about cats.",
    "What is the capital of France?",
    "Translate 'hello' into Spanish.",
    "Why is the grass green?",
    "How many legs does a spider have?",
    "Give me three tips for sleeping well before an exam next week.",
    "What does a baker do?",
    "Is 17 a prime number?",
    "Describe the moon in one sentence.",
    "What is the boiling point of water at sea level, in degrees Celsius?",
    "Say something kind.",
    "List two fruits.",
)


def base_folder(spec: str, tmp: Path) -> tuple[Path, str]:
    """The folder and label of a ``--base`` value: ``tiny`` (written under `tmp`),
    ``smollm2-135m`` or a local Hugging Face folder."""
    from backdoor_models.models.pretrained import resolve_base
    from backdoor_models.models.smollm2 import SMOLLM2_NAME

    if spec == TINY_BASE:
        from tests.tiny_hf import tiny_hf_folder  # the repo's offline test base

        return tiny_hf_folder(tmp / "tiny-hf"), "tiny-hf"
    folder = resolve_base(spec)
    return folder, SMOLLM2_NAME if spec.strip().lower() == SMOLLM2_NAME else folder.name


def load_reference(folder: Path, device: torch.device) -> nn.Module:
    """A plain transformers copy of the base, loaded as ``load_base`` loads the toolkit's, but
    with transformers' default attention (``sdpa`` where the model supports it), which the
    toolkit also uses wherever no hook reads attention (``backdoor_models.runtime.hf_direct``)."""
    from backdoor_models.models.pretrained import load_hf_causal_lm

    model = load_hf_causal_lm(folder)
    if getattr(model, "_supports_sdpa", False):
        model.config._attn_implementation = "sdpa"
    module: nn.Module = model.to(device)  # type: ignore[arg-type]  # transformers' `to` is mistyped
    return module


# The bf16 matmul peak is measured at most this large where bf16 rows are not measured: on a CPU
# without native bf16 a 2048 x 2048 bf16 `torch.mm` takes about 25 s (70x fp32, on AVX2).
BF16_PEAK_N_WITHOUT_BF16 = 512


def bf16_rows_skipped(device: torch.device, units: list[str] | None = None) -> str | None:
    """Why the bf16 rows are not measured on `device`, or None where they are: a GPU, or a CPU
    with native bf16 units (`units`, read from /proc/cpuinfo when None). Elsewhere bf16 matmuls
    are emulated (70x slower than fp32 on an AVX2 CPU) and `model.autocast=auto` picks fp32.

    Example:
        >>> bf16_rows_skipped(torch.device("cpu"), units=["amx_bf16"]) is None
        True
    """
    if device.type != "cpu" or (cpu_bf16_units() if units is None else units):
        return None
    return (
        f"not measured (this CPU has no native bf16: no {' or '.join(NATIVE_BF16_FLAGS)}, so "
        "`model.autocast=auto` runs fp32 here; pass --bf16 to measure it anyway)"
    )


def not_measured_rows(base: str, precision: str, reason: str) -> list[dict[str, Any]]:
    """The training and generation rows of a precision that was not measured, with the reason."""
    return [
        result_row(
            name,
            f"{base}, {PRECISION_LABEL[precision]}: {reason}",
            None,
            None,
            unit,
            None,
            base=base,
            precision=precision,
        )
        for name, unit in (
            ("pretrained training", "tokens/s"),
            ("pretrained generation", "new tokens/s"),
        )
    ]


def _autocast(device: torch.device, precision: str) -> Any:
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def lora_flops_per_token(reference: nn.Module, n_lora: int, seq: int) -> tuple[float, str]:
    """FLOPs per trained token of a LoRA step and the formula: 4 x the base's matmul weights
    (forward, and the input gradients of the frozen layers), 6 x the LoRA weights, and nanoGPT's
    12 * n_layers * d_attn * seq for attention scores and values (forward and backward)."""
    n_matmul = sum(m.weight.numel() for m in reference.modules() if type(m) is nn.Linear)
    config: Any = reference.config
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    d_attn = config.num_attention_heads * head_dim
    attention = 12 * config.num_hidden_layers * d_attn * seq
    formula = (
        "per token: 4 * base matmul weights (nn.Linear, lm_head included, embedding lookup not) "
        "+ 6 * LoRA weights + 12 * n_layers * n_heads * head_dim * (seq - 1) for attention"
    )
    return 4 * n_matmul + 6 * n_lora + attention, formula


def bench_lora_training(
    spec: str,
    tmp: Path,
    device: torch.device,
    s: Settings,
    peaks: dict[str, float],
) -> list[dict[str, Any]]:
    """One row per precision: toolkit LoRA step tokens/s vs a plain peft + transformers step."""
    from peft import LoraConfig, get_peft_model

    from backdoor_models.models.device import autocast_forwards
    from backdoor_models.models.lora import DEFAULT_LORA_TARGETS, add_lora, count_trainable
    from backdoor_models.models.pretrained import load_base
    from backdoor_models.runtime.engine import engine_for
    from backdoor_models.training.lm import TrainConfig, make_optimizer, response_loss

    folder, label = base_folder(spec, tmp)
    cfg = TrainConfig()
    bridge, tokenizer = load_base(folder, device=str(device))
    add_lora(bridge, LORA_RANK, LORA_ALPHA, DEFAULT_LORA_TARGETS, seed=0)
    bridge.train()
    engine, opt = engine_for(bridge), make_optimizer(bridge, cfg)
    hf = load_reference(folder, device)
    lora_config = LoraConfig(
        r=LORA_RANK,
        lora_alpha=LORA_ALPHA,
        lora_dropout=0.0,
        target_modules=list(DEFAULT_LORA_TARGETS),
        bias="none",
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        ref = get_peft_model(hf, lora_config)  # type: ignore[arg-type]
    ref.train()
    ref_params = [p for p in ref.parameters() if p.requires_grad]
    ref_opt = torch.optim.AdamW(
        ref_params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay
    )
    n_lora, n_lora_ref = count_trainable(bridge), sum(p.numel() for p in ref_params)
    n_base = sum(p.numel() for p in hf.parameters()) - n_lora_ref
    flops_per_token, formula = lora_flops_per_token(hf, n_lora, s.pretrained_seq - 1)

    gen = torch.Generator().manual_seed(0)
    shape = (s.pretrained_batch, s.pretrained_seq)
    tokens = torch.randint(3, len(tokenizer), shape, generator=gen).to(device)
    # a chat SFT batch: the first half of each row is the prompt, which no loss scores
    loss_mask = torch.zeros_like(tokens, dtype=torch.bool)
    loss_mask[:, s.pretrained_seq // 2 :] = True
    labels = tokens[:, 1:].masked_fill(~loss_mask[:, 1:], -100)  # transformers' way to skip
    rows = []
    for precision in s.pretrained_precisions:

        def toolkit_step() -> None:
            loss = response_loss(engine, tokens, loss_mask)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(bridge.parameters(), cfg.grad_clip)
            opt.step()

        def reference_step(precision: str = precision) -> None:
            with _autocast(device, precision):
                logits = ref(input_ids=tokens[:, :-1]).logits
            loss = F.cross_entropy(logits.float().flatten(0, 1), labels.flatten())
            ref_opt.zero_grad(set_to_none=True)
            loss.backward()
            ref_opt.step()

        with autocast_forwards(precision):
            t_toolkit, t_ref = interleaved(
                toolkit_step, reference_step, s.pretrained_warmup, s.pretrained_repeats, device
            )
        for dtype, key in ((torch.float32, "fp32"), (torch.bfloat16, "bf16")):
            if key == "bf16" and "bf16" not in s.pretrained_precisions:
                continue  # not measured here: the bf16 peak stays the suite's one small one
            here = matmul_peak_gflops(s.matmul_n, s.matmul_repeats, device, dtype)
            peaks[key] = max(peaks[key], here)  # re-measured beside each row: the load drifts
        n_tokens = s.pretrained_batch * s.pretrained_seq
        tps_toolkit, tps_ref = n_tokens / t_toolkit, n_tokens / t_ref
        gflops = flops_per_token * tps_toolkit / 1e9
        config = (
            f"{label} LoRA r{LORA_RANK}, {s.pretrained_batch}x{s.pretrained_seq} tokens (loss on "
            f"the second half), {PRECISION_LABEL[precision]}, {n_base / 1e6:.2f}M base + "
            f"{n_lora / 1e6:.2f}M LoRA"
        )
        rows.append(
            result_row(
                "pretrained training",
                config,
                tps_toolkit,
                tps_ref,
                "tokens/s",
                tps_toolkit / tps_ref,
                base=label,
                precision=precision,
                n_params_base=n_base,
                n_params_lora=n_lora,
                n_params_lora_reference=n_lora_ref,
                step_seconds_toolkit=t_toolkit,
                step_seconds_reference=t_ref,
                repeats=s.pretrained_repeats,
                achieved_gflops=gflops,
                matmul_peak_gflops=peaks["fp32"],
                matmul_peak_gflops_bf16=peaks["bf16"],
                fraction_of_fp32_peak=gflops / peaks["fp32"],
                fraction_of_bf16_peak=gflops / peaks["bf16"],
                flops_per_token=flops_per_token,
                flops_formula=formula,
                step=(
                    "toolkit: response_loss(engine_for(bridge)) + backward + clip_grad_norm(1.0) "
                    "+ AdamW (run_loop's step); reference: peft model forward + cross-entropy "
                    "with the prompt's labels at -100 + backward + AdamW, no clipping; the loss "
                    "scores the second half of each row"
                ),
                reference="peft.get_peft_model on AutoModelForCausalLM (sdpa attention, fp32)",
            )
        )
    return rows


def bench_hf_generation(
    spec: str, tmp: Path, device: torch.device, s: Settings
) -> list[dict[str, Any]]:
    """One row per precision: `HFEngine.generate` new tokens/s vs transformers' `generate`."""
    from backdoor_models.models.device import autocast_forwards
    from backdoor_models.models.pretrained import load_base
    from backdoor_models.runtime.engine import engine_for
    from backdoor_models.runtime.hf_generation import left_pad
    from backdoor_models.text.chat_format import encode_chat_prompt
    from backdoor_models.worlds.chat import chat_prompt

    folder, label = base_folder(spec, tmp)
    bridge, tokenizer = load_base(folder, device=str(device))
    engine = engine_for(bridge)
    ref: Any = load_reference(folder, device).eval()
    questions = [QUESTIONS[i % len(QUESTIONS)] for i in range(s.pretrained_gen_prompts)]
    encoded = [encode_chat_prompt(tokenizer, chat_prompt(q)) for q in questions]
    pad = int(tokenizer.pad_token_id)
    ids, mask, _ = left_pad(encoded, pad, device)
    new = s.pretrained_gen_new_tokens
    outs: dict[str, list[list[int]]] = {}

    def toolkit() -> None:  # eos -1: no early stop, as on the reference side
        outs["toolkit"] = engine.generate(encoded, new, eos_token_id=-1, pad_token_id=pad)

    rows = []
    for precision in s.pretrained_precisions:

        @torch.no_grad()
        def reference(precision: str = precision) -> None:
            with _autocast(device, precision):
                out = ref.generate(
                    input_ids=ids,
                    attention_mask=mask,
                    max_new_tokens=new,
                    do_sample=False,
                    eos_token_id=None,
                    pad_token_id=pad,
                )
            outs["reference"] = out[:, ids.shape[1] :].tolist()

        with autocast_forwards(precision):
            toolkit()  # warm-up
            reference()
            t_toolkit, t_ref = interleaved(toolkit, reference, 0, s.pretrained_gen_repeats, device)
        pairs = list(zip(outs["toolkit"], outs["reference"], strict=True))
        equal_rows = sum(a == b for a, b in pairs)
        equal_tokens = sum(x == y for a, b in pairs for x, y in zip(a, b, strict=True))
        n_new = len(encoded) * new
        tps_toolkit, tps_ref = n_new / t_toolkit, n_new / t_ref
        lengths = [len(e) for e in encoded]
        config = (
            f"{label}, {len(encoded)} prompts ({min(lengths)}-{max(lengths)} tokens, left-padded)"
            f" x {new} new, greedy, {PRECISION_LABEL[precision]}, "
            f"equal tokens {equal_rows}/{len(encoded)}"
        )
        rows.append(
            result_row(
                "pretrained generation",
                config,
                tps_toolkit,
                tps_ref,
                "new tokens/s",
                tps_toolkit / tps_ref,
                base=label,
                precision=precision,
                greedy_equal_fraction=equal_rows / len(encoded),
                greedy_equal_token_fraction=equal_tokens / n_new,
                seconds_toolkit=t_toolkit,
                seconds_reference=t_ref,
                repeats=s.pretrained_gen_repeats,
                reference="transformers generate(do_sample=False), sdpa attention, fp32 weights",
            )
        )
    return rows
