"""Benchmarks 1-3 of the suite, the model hot paths against their references: a training step
(``FusedNative`` vs a bare nanoGPT-style GPT), greedy generation (``FusedNative.generate`` vs the
bridge's ``generate``) and activation caching (``cache_activations`` vs a plain no-grad forward).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from benchmarks.settings import Settings, result_row
from benchmarks.timing import interleaved, matmul_peak_gflops

# -- 1. training -------------------------------------------------------------------------------


def bench_training(
    preset_name: str, tokenizer: Any, device: torch.device, s: Settings, peak_gflops: float
) -> dict[str, Any]:
    """Training tokens/s of the toolkit's step vs a bare nanoGPT-style GPT of the same shape."""
    from backdoor_models.models.presets import build_model, count_parameters, get_preset
    from backdoor_models.runtime.fused import FusedNative
    from backdoor_models.training.lm import TrainConfig, make_optimizer, response_loss
    from benchmarks.reference import BareGPT, adamw

    preset = get_preset(preset_name)
    d_vocab = len(tokenizer)
    cfg = TrainConfig()
    model = build_model(preset, tokenizer, seed=0, device=str(device))
    model.train()
    fused = FusedNative(model)
    opt = make_optimizer(model, cfg)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        ref = BareGPT(
            d_vocab, preset.n_ctx, preset.n_layers, preset.d_model, preset.n_heads, preset.d_mlp
        ).to(device)
    ref.train()
    ref_opt = adamw(ref, cfg.lr, cfg.betas, cfg.weight_decay)

    gen = torch.Generator().manual_seed(0)
    tokens = torch.randint(3, d_vocab, (s.train_batch, s.train_seq), generator=gen).to(device)
    loss_mask = torch.ones_like(tokens)

    def toolkit_step() -> None:
        loss = response_loss(fused, tokens, loss_mask)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()

    def reference_step() -> None:
        logits = ref(tokens[:, :-1])
        loss = F.cross_entropy(logits.flatten(0, 1), tokens[:, 1:].flatten())
        ref_opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(ref.parameters(), cfg.grad_clip)
        ref_opt.step()

    t_toolkit, t_ref = interleaved(
        toolkit_step, reference_step, s.train_warmup, s.train_repeats, device
    )
    # The peak is measured again next to each row: on a shared machine it drifts with the load.
    peak_here = max(peak_gflops, matmul_peak_gflops(s.matmul_n, s.matmul_repeats, device))
    n_tokens = s.train_batch * s.train_seq
    tps_toolkit, tps_ref = n_tokens / t_toolkit, n_tokens / t_ref
    n_params = count_parameters(model)
    n_params_ref = sum(p.numel() for p in ref.parameters())
    attention_flops = 12 * preset.n_layers * preset.d_model * (s.train_seq - 1)
    gflops_6n = 6 * n_params * tps_toolkit / 1e9
    gflops_attn = (6 * n_params + attention_flops) * tps_toolkit / 1e9
    return result_row(
        "training",
        f"{preset_name}, {s.train_batch}x{s.train_seq} tokens, {n_params / 1e6:.2f}M params",
        tps_toolkit,
        tps_ref,
        "tokens/s",
        tps_toolkit / tps_ref,
        preset=preset_name,
        n_params=n_params,
        n_params_reference=n_params_ref,
        step_seconds_toolkit=t_toolkit,
        step_seconds_reference=t_ref,
        achieved_gflops_6n=gflops_6n,
        achieved_gflops_6n_plus_attention=gflops_attn,
        matmul_peak_gflops=peak_here,
        fraction_of_matmul_peak=gflops_attn / peak_here,
        flops_formula=(
            "per token: 6 * n_params (all trainable parameters, embeddings included) "
            "+ 12 * n_layers * d_model * (seq - 1) for attention scores and values (nanoGPT)"
        ),
        step="forward + loss + backward + clip_grad_norm(1.0) + AdamW step, both sides",
    )


# -- 2. generation -----------------------------------------------------------------------------


def bench_generation(
    preset_name: str, tokenizer: Any, device: torch.device, s: Settings
) -> dict[str, Any]:
    """Greedy new tokens/s of `FusedNative.generate` vs the bridge's `generate`; outputs compared."""
    from backdoor_models.models.presets import build_model
    from backdoor_models.runtime.fused import FusedNative

    model = build_model(preset_name, tokenizer, seed=0, device=str(device))
    model.eval()
    fused = FusedNative(model)
    n_distinct = 4
    gen = torch.Generator().manual_seed(1)
    distinct = torch.randint(3, len(tokenizer), (n_distinct, s.gen_prompt_len - 1), generator=gen)
    bos = torch.full((n_distinct, 1), int(tokenizer.bos_token_id))
    base = torch.cat([bos, distinct], dim=1)
    tokens = base[torch.arange(s.gen_batch) % n_distinct].to(device)
    prompts = tokens.tolist()
    new = s.gen_new_tokens
    outs: dict[str, Any] = {}

    def toolkit(max_new: int = new) -> None:
        outs["toolkit"] = fused.generate(prompts, max_new, eos_token_id=-1)

    def reference(max_new: int = new) -> None:
        outs["reference"] = model.generate(
            tokens,
            max_new_tokens=max_new,
            do_sample=False,
            verbose=False,
            stop_at_eos=False,
            return_type="tokens",
        )

    toolkit()  # warm-up (full length: it is cheap)
    reference(2)  # warm-up (short: the bridge re-runs the whole sequence each step)
    t_toolkit, t_ref = interleaved(toolkit, reference, 0, s.gen_repeats, device)
    ref_new = outs["reference"][:, s.gen_prompt_len :].tolist()
    equal = ref_new == outs["toolkit"]
    n_new = s.gen_batch * new
    tps_toolkit, tps_ref = n_new / t_toolkit, n_new / t_ref
    return result_row(
        "generation",
        f"{preset_name}, batch {s.gen_batch} x {new} new, {s.gen_prompt_len}-token prompts, greedy",
        tps_toolkit,
        tps_ref,
        "new tokens/s",
        tps_toolkit / tps_ref,
        preset=preset_name,
        outputs_equal=equal,
        seconds_toolkit=t_toolkit,
        seconds_reference=t_ref,
        repeats=s.gen_repeats,
    )


# -- 3. caching --------------------------------------------------------------------------------


def bench_caching(
    preset_name: str, tokenizer: Any, prompts: list[str], device: torch.device, s: Settings
) -> dict[str, Any]:
    """`cache_activations` (every resid_post, last position) vs a plain no-grad bridge forward."""
    from backdoor_models.models.presets import build_model
    from hooks.caching import cache_activations_from_tokens, resid_post_names, tokenize_prompts

    model = build_model(preset_name, tokenizer, seed=0, device=str(device))
    model.eval()
    names = resid_post_names(model)
    batch_size = 64  # cache_activations' default
    tokens, lengths = tokenize_prompts(model, prompts)
    batches = [
        tokens[i : i + batch_size, : int(lengths[i : i + batch_size].max())].to(device)
        for i in range(0, len(prompts), batch_size)
    ]

    def toolkit() -> None:
        cache_activations_from_tokens(model, tokens, lengths, names, "last", batch_size)

    @torch.no_grad()
    def reference() -> None:
        for batch in batches:
            model(batch)

    t_toolkit, t_ref = interleaved(toolkit, reference, s.cache_warmup, s.cache_repeats, device)
    return result_row(
        "caching",
        f"{preset_name}, {len(prompts)} prompts, {len(names)} resid_post hooks, last position",
        t_toolkit,
        t_ref,
        "s",
        t_ref / t_toolkit,
        preset=preset_name,
        note="both sides get the same token tensors (tokenizing strings costs ~0.012 s more)",
    )
