"""The benchmark suite: the toolkit's hot paths against reference implementations, side by side.

Usage::

    python -m benchmarks --quick                 # under 3 minutes on 2 CPU cores
    python -m benchmarks                         # full: more presets and repeats
    python -m benchmarks --run-dir runs/default  # also the stage times and the real probe grid
    python -m benchmarks --device cuda --threads 2 --out runs/benchmarks.json

Absolute times are noisy on a shared machine, so every benchmark runs the toolkit and its
reference in the same process, interleaved (A B A B ...) after warm-up runs, and reports the
ratio of medians. ``ratio`` is always toolkit speed / reference speed (higher is better).

1. training: tokens/s of a ``FusedNative`` forward + ``response_loss`` + backward + gradient
   clipping + AdamW step (``make_optimizer``) vs a bare nanoGPT-style GPT of the same shape
   (``benchmarks.reference``), same batch of random ids. Also achieved FLOP/s against a measured
   fp32 matmul peak (measured at the start and again next to each training row; the best counts).
2. generation: new tokens/s of ``FusedNative.generate`` vs the bridge's ``generate`` (greedy,
   no early stop) on the same equal-length prompts; the new tokens must be equal.
3. caching: ``cache_activations`` of every layer's residual stream at the last position vs a
   plain ``torch.no_grad()`` bridge forward over the same token batches.
4. probes: ``LayerwiseLogisticProbe.fit`` vs a per-layer scikit-learn loop on synthetic data
   (three shapes), and ``fit_logistic_grid`` over a finished run's sites x token positions x C
   values vs scikit-learn's loop over the same grid (``--run-dir``). Each row names the solver
   the toolkit picked and the largest held-out AUROC difference from scikit-learn.
5. stages: wall time per stage from a finished run's ``timing.json`` (``--run-dir``).

The table goes to stdout, progress to stderr, and everything to a JSON file. The exit status is
1 when generation outputs differ (a correctness failure), else 0, whether or not goals are met.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

GOALS = {"training": 0.95, "generation": 5.0, "caching": 0.9, "probes": 10.0}
# (layers, n_train, d): the original benchmark shape; the default run (5 sites x 300 training
# prompts x d_model 128); and a wider model with fewer examples than features.
PROBE_SHAPES = ((8, 2000, 256), (5, 300, 128), (5, 300, 512))
STAGES_NOT_MEASURED = "not measured (pass --run-dir of a finished run)"
REAL_GRID_NOT_MEASURED = "not measured (pass --run-dir of a finished run)"
# The real grid: one stage's stored last-token activations and two earlier tokens (re-cached
# from the stage's checkpoint) at every probed site, times these C values.
REAL_GRID_STAGE = "backdoored"
REAL_GRID_POSITIONS: tuple[str | int, ...] = ("last", -2, -3)
REAL_GRID_CS = (0.01, 0.1, 1.0, 10.0, 100.0)


@dataclass(frozen=True)
class Settings:
    """Sizes and repeat counts of one mode (smoke, quick or full)."""

    train_presets: tuple[str, ...]
    train_batch: int
    train_seq: int
    train_warmup: int
    train_repeats: int
    gen_presets: tuple[str, ...]
    gen_batch: int
    gen_new_tokens: int
    gen_prompt_len: int
    gen_repeats: int
    cache_presets: tuple[str, ...]
    cache_prompts: int
    cache_warmup: int
    cache_repeats: int
    probe_shapes: tuple[tuple[int, int, int], ...]  # (layers, n_train, d)
    probe_warmup: int
    probe_repeats: int
    matmul_n: int
    matmul_repeats: int


SETTINGS: dict[str, Settings] = {
    "smoke": Settings(
        train_presets=("tiny",),
        train_batch=4,
        train_seq=32,
        train_warmup=1,
        train_repeats=2,
        gen_presets=("tiny",),
        gen_batch=8,
        gen_new_tokens=8,
        gen_prompt_len=12,
        gen_repeats=1,
        cache_presets=("tiny",),
        cache_prompts=16,
        cache_warmup=0,
        cache_repeats=1,
        probe_shapes=((2, 200, 16), (2, 40, 64)),
        probe_warmup=0,
        probe_repeats=1,
        matmul_n=256,
        matmul_repeats=2,
    ),
    "quick": Settings(
        train_presets=("tiny", "small", "base"),
        train_batch=32,
        train_seq=96,
        train_warmup=2,
        train_repeats=5,
        gen_presets=("small",),
        gen_batch=64,
        gen_new_tokens=64,
        gen_prompt_len=12,
        gen_repeats=1,
        cache_presets=("small",),
        cache_prompts=256,
        cache_warmup=1,
        cache_repeats=5,
        probe_shapes=PROBE_SHAPES,
        probe_warmup=1,
        probe_repeats=5,
        matmul_n=2048,
        matmul_repeats=5,
    ),
    "full": Settings(
        train_presets=("tiny", "small", "base", "medium"),
        train_batch=32,
        train_seq=96,
        train_warmup=3,
        train_repeats=11,
        gen_presets=("tiny", "small"),
        gen_batch=64,
        gen_new_tokens=64,
        gen_prompt_len=12,
        gen_repeats=3,
        cache_presets=("small", "base", "medium"),
        cache_prompts=512,
        cache_warmup=1,
        cache_repeats=7,
        probe_shapes=PROBE_SHAPES,
        probe_warmup=2,
        probe_repeats=11,
        matmul_n=2048,
        matmul_repeats=10,
    ),
}


# -- timing ------------------------------------------------------------------------------------


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_once(fn: Callable[[], object], device: torch.device) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def interleaved(
    toolkit: Callable[[], object],
    reference: Callable[[], object],
    warmup: int,
    repeats: int,
    device: torch.device,
) -> tuple[float, float]:
    """Median seconds of `toolkit` and `reference`, run A B A B ... after `warmup` rounds."""
    for _ in range(warmup):
        toolkit()
        reference()
    a, b = [], []
    for _ in range(repeats):
        a.append(_time_once(toolkit, device))
        b.append(_time_once(reference, device))
    return statistics.median(a), statistics.median(b)


def matmul_peak_gflops(n: int, repeats: int, device: torch.device) -> float:
    """Measured fp32 matmul throughput: best of `repeats` timings of an n x n @ n x n `torch.mm`."""
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=gen).to(device)
    b = torch.randn(n, n, generator=gen).to(device)
    torch.mm(a, b)
    best = min(_time_once(lambda: torch.mm(a, b), device) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def _row(
    name: str,
    config: str,
    toolkit_value: float | None,
    reference_value: float | None,
    unit: str,
    ratio: float | None,
    **extra: Any,
) -> dict[str, Any]:
    goal = GOALS.get(name)
    met = None if ratio is None or goal is None else bool(ratio >= goal)
    return {
        "name": name,
        "config": config,
        "toolkit_value": toolkit_value,
        "reference_value": reference_value,
        "unit": unit,
        "ratio": ratio,
        "goal": goal,
        "met": met,
        **extra,
    }


# -- 1. training -------------------------------------------------------------------------------


def bench_training(
    preset_name: str, tokenizer: Any, device: torch.device, s: Settings, peak_gflops: float
) -> dict[str, Any]:
    """Training tokens/s of the toolkit's step vs a bare nanoGPT-style GPT of the same shape."""
    from backdoor_models.fused import FusedNative
    from backdoor_models.presets import build_model, count_parameters, get_preset
    from backdoor_models.training import TrainConfig, make_optimizer, response_loss
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
    return _row(
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
    from backdoor_models.fused import FusedNative
    from backdoor_models.presets import build_model

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
    return _row(
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
    from backdoor_models.presets import build_model
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
    return _row(
        "caching",
        f"{preset_name}, {len(prompts)} prompts, {len(names)} resid_post hooks, last position",
        t_toolkit,
        t_ref,
        "s",
        t_ref / t_toolkit,
        preset=preset_name,
        note="both sides get the same token tensors (tokenizing strings costs ~0.012 s more)",
    )


# -- 4. probes ---------------------------------------------------------------------------------


def _probe_data(
    layers: int, n: int, d: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Gaussian features with a planted direction per layer whose strength grows with depth."""
    rng = np.random.default_rng(seed)
    direction = rng.standard_normal((layers, d))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    strength = np.linspace(0.3, 2.0, layers)
    scales = rng.uniform(0.5, 3.0, size=(layers, 1, d))  # uneven feature scales

    def sample(m: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, 2, size=m)
        shift = (2 * y - 1)[None, :, None] * strength[:, None, None] * direction[:, None, :] / 2
        X = (rng.standard_normal((layers, m, d)) + shift) * scales
        return X.astype(np.float32), y

    X_train, y_train = sample(n)
    X_test, y_test = sample(n // 2)
    return X_train, y_train, X_test, y_test


def _interleaved_same_threads(
    toolkit: Callable[[], None], reference: Callable[[], None], s: Settings
) -> tuple[list[float], list[float], list[float]]:
    """Warm both up, then time them in turns on the CPU, scikit-learn's BLAS held to torch's
    thread count: (toolkit seconds, reference seconds, per-round ratios)."""
    from threadpoolctl import threadpool_limits

    cpu = torch.device("cpu")
    with threadpool_limits(limits=torch.get_num_threads()):
        for _ in range(s.probe_warmup):
            toolkit()
            reference()
        a, b = [], []
        for _ in range(s.probe_repeats):
            a.append(_time_once(toolkit, cpu))
            b.append(_time_once(reference, cpu))
    return a, b, [ref / tk for tk, ref in zip(a, b, strict=True)]


def _probe_row(
    config: str,
    timings: tuple[list[float], list[float], list[float]],
    s: Settings,
    **extra: Any,
) -> dict[str, Any]:
    """A probes row from `_interleaved_same_threads`'s timings: medians, the ratio's spread and
    the threads both sides had."""
    a, b, ratios = timings
    return _row(
        "probes",
        config,
        statistics.median(a),
        statistics.median(b),
        "s",
        statistics.median(ratios),
        ratio_min=min(ratios),
        ratio_max=max(ratios),
        repeats=s.probe_repeats,
        reference_blas_threads=torch.get_num_threads(),
        **extra,
    )


def bench_probes(s: Settings, shape: tuple[int, int, int]) -> dict[str, Any]:
    """`LayerwiseLogisticProbe.fit` vs a per-layer StandardScaler + LogisticRegression loop.

    Both sides get the same threads: the reference's BLAS pool is limited to torch's thread
    count (left alone, OpenBLAS spins its threads against other jobs on a shared machine and
    the reference slows down 10-30x, which would flatter the toolkit). The ratio is the median
    of the per-round ratios; its spread (min, max over rounds) is reported beside it.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.preprocessing import StandardScaler

    from probes.logistic import LayerwiseLogisticProbe

    layers, n, d = shape
    X_train, y_train, X_test, y_test = _probe_data(layers, n, d, seed=0)
    X_train_t = torch.from_numpy(X_train)
    fitted: dict[str, Any] = {}

    def toolkit() -> None:
        fitted["toolkit"] = LayerwiseLogisticProbe(C=1.0).fit(X_train_t, y_train)

    def reference() -> None:
        models = []
        for layer in range(layers):
            scaler = StandardScaler().fit(X_train[layer])
            clf = LogisticRegression(C=1.0, max_iter=1000)
            clf.fit(scaler.transform(X_train[layer]), y_train)
            models.append((scaler, clf))
        fitted["reference"] = models

    a, b, ratios = _interleaved_same_threads(toolkit, reference, s)
    auroc_toolkit = np.asarray(fitted["toolkit"].score(torch.from_numpy(X_test), y_test))
    auroc_ref = np.array(
        [
            roc_auc_score(y_test, clf.decision_function(scaler.transform(X_test[layer])))
            for layer, (scaler, clf) in enumerate(fitted["reference"])
        ]
    )
    probe = fitted["toolkit"]
    return _probe_row(
        f"{layers} layers x {n} x {d}, C=1.0, CPU, {probe.solver_}",
        (a, b, ratios),
        s,
        solver=probe.solver_,
        shape=list(shape),
        toolkit_iterations=[int(k) for k in probe.n_iter_],
        reference_lbfgs_iterations=[int(clf.n_iter_[0]) for _, clf in fitted["reference"]],
        max_abs_auroc_difference=float(np.abs(auroc_toolkit - auroc_ref).max()),
        held_out_auroc_toolkit=[round(float(x), 6) for x in auroc_toolkit],
        held_out_n=int(len(y_test)),
    )


def _real_grid_data(
    run_dir: str, stage: str, positions: tuple[str | int, ...]
) -> tuple[torch.Tensor, np.ndarray, torch.Tensor, np.ndarray, str]:
    """One stage's activations at every site and position, stacked as ``[sites x positions,
    n, d]`` float32 (as stored), split by the run's own train/test questions."""
    from analysis.bench.zoo import load_run_folder, load_stage

    run = load_run_folder(run_dir)
    if stage not in run.stages:
        stage = run.stages[0]
    data = [load_stage(run, stage, pos) for pos in positions]
    X = torch.cat([item.X for item in data]).float()
    first = data[0]
    y = first.labels
    described = f"{run.name}/{stage}: {len(first.sites)} sites x {len(positions)} positions"
    return X[:, first.train], y[first.train], X[:, first.test], y[first.test], described


def bench_probe_grid(s: Settings, run_dir: str | None) -> dict[str, Any]:
    """`fit_logistic_grid` over a finished run's sites x positions x C values vs scikit-learn's
    loop over the same grid (one StandardScaler per site and position, one LogisticRegression
    per C), same threads, same process, interleaved."""
    if run_dir is None:
        return _row("probes", f"real grid: {REAL_GRID_NOT_MEASURED}", None, None, "s", None)
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.preprocessing import StandardScaler

    from probes.logistic_grid import fit_logistic_grid

    X_train, y_train, X_test, y_test, described = _real_grid_data(
        run_dir, REAL_GRID_STAGE, REAL_GRID_POSITIONS
    )
    X_train_np, X_test_np = X_train.numpy(), X_test.numpy()
    Cs = REAL_GRID_CS
    fitted: dict[str, Any] = {}

    def toolkit() -> None:
        fitted["toolkit"] = fit_logistic_grid(X_train, y_train, C=Cs)

    def reference() -> None:
        models = []
        for site in range(X_train_np.shape[0]):
            scaler = StandardScaler().fit(X_train_np[site])
            Z = scaler.transform(X_train_np[site])
            fits = [LogisticRegression(C=c, max_iter=1000).fit(Z, y_train) for c in Cs]
            models.append((scaler, fits))
        fitted["reference"] = models

    a, b, ratios = _interleaved_same_threads(toolkit, reference, s)
    grid = fitted["toolkit"]
    auroc_toolkit = grid.score(X_test, y_test).numpy()  # [sites x positions, C]
    auroc_ref = np.array(
        [
            [
                roc_auc_score(y_test, clf.decision_function(scaler.transform(X_test_np[i])))
                for clf in fits
            ]
            for i, (scaler, fits) in enumerate(fitted["reference"])
        ]
    )
    layers, n, d = X_train.shape
    return _probe_row(
        f"real grid, {described} x {len(Cs)} C, {n} x {d}, CPU, {grid.solver}",
        (a, b, ratios),
        s,
        solver=grid.solver,
        shape=[layers, n, d],
        grid_C=list(Cs),
        positions=[str(p) for p in REAL_GRID_POSITIONS],
        toolkit_iterations=grid.n_iter.tolist(),
        reference_lbfgs_iterations=[[int(c.n_iter_[0]) for c in f] for _, f in fitted["reference"]],
        max_abs_auroc_difference=float(np.abs(auroc_toolkit - auroc_ref).max()),
        held_out_n=int(len(y_test)),
    )


# -- 5. stages ---------------------------------------------------------------------------------


def read_stages(run_dir: str | None) -> tuple[dict[str, Any], dict[str, float]]:
    """The stage-timing row and the per-stage seconds from `run_dir/timing.json` (if given)."""
    if run_dir is None:
        return _row("stages", STAGES_NOT_MEASURED, None, None, "s", None), {}
    timing_file = Path(run_dir) / "timing.json"
    if not timing_file.is_file():
        note = f"not measured ({timing_file} not found; pass --run-dir of a finished run)"
        return _row("stages", note, None, None, "s", None), {}
    stages = {str(k): float(v) for k, v in json.loads(timing_file.read_text()).items()}
    total = sum(stages.values())
    config = f"{run_dir}: {len(stages)} stages, sum of wall times"
    return _row("stages", config, total, None, "s", None), stages


# -- output ------------------------------------------------------------------------------------


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "s":
        return f"{value:.3g} s"
    short = unit.replace("tokens", "tok").replace("new tok", "new tok")
    if value >= 1e3:
        return f"{value / 1e3:.3g}k {short}"
    return f"{value:.3g} {short}"


def format_table(rows: list[dict[str, Any]]) -> str:
    """A plain-text table: benchmark, config, toolkit, reference, ratio, goal, met?."""
    header = ["benchmark", "config", "toolkit", "reference", "ratio", "goal", "met?"]
    lines = [header]
    for r in rows:
        met = "-" if r["met"] is None else ("yes" if r["met"] else "NO")
        lines.append(
            [
                r["name"],
                r["config"],
                _fmt(r["toolkit_value"], r["unit"]),
                _fmt(r["reference_value"], r["unit"]),
                "-" if r["ratio"] is None else f"{r['ratio']:.2f}x",
                "-" if r["goal"] is None else f">= {r['goal']:g}x",
                met,
            ]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)) for line in lines]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return str(torch.cuda.get_device_name(device))
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "cpu"


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _caching_prompts(world_corpus: list[str], n: int) -> list[str]:
    """`n` lines spread evenly over the corpus (each well within n_ctx)."""
    step = max(1, len(world_corpus) // n)
    return [line[:300] for line in world_corpus[::step][:n]]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark the toolkit's hot paths against reference implementations.",
    )
    parser.add_argument("--quick", action="store_true", help="fewer presets and repeats (< 3 min)")
    parser.add_argument("--smoke", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--device",
        default="cuda" if torch.cuda.is_available() else "cpu",
        help="torch device (default: cuda if available, else cpu)",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads value")
    parser.add_argument("--out", default="runs/benchmarks.json", help="JSON output file")
    parser.add_argument(
        "--run-dir", default=None, help="a finished run folder (stage times, real probe grid)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the suite, print the table and write the JSON; 1 if generation outputs differ."""
    args = parse_args(argv)
    if args.threads is not None:
        if args.threads < 1:
            raise SystemExit(f"--threads must be at least 1, got {args.threads}.")
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda was asked for but CUDA is not available; use --device cpu.")
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    s = SETTINGS[mode]
    start = time.perf_counter()

    from backdoor_models.tokenizer import train_tokenizer
    from backdoor_models.world import ChatWorld

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        _log("training a tokenizer (vocab 1024) ...")
        corpus = ChatWorld(0).corpus()
        tokenizer = train_tokenizer(corpus, tmp, vocab_size=1024)
        _log("measuring the fp32 matmul peak ...")
        peak = matmul_peak_gflops(s.matmul_n, s.matmul_repeats, device)
        for name in s.train_presets:
            _log(f"training step: {name} ...")
            rows.append(bench_training(name, tokenizer, device, s, peak))
        for name in s.gen_presets:
            _log(f"generation: {name} ...")
            rows.append(bench_generation(name, tokenizer, device, s))
        prompts = _caching_prompts(corpus, s.cache_prompts)
        for name in s.cache_presets:
            _log(f"caching: {name} ...")
            rows.append(bench_caching(name, tokenizer, prompts, device, s))
    for shape in s.probe_shapes:
        _log(f"probes: {shape} ...")
        rows.append(bench_probes(s, shape))
    _log("probes: real grid ...")
    rows.append(bench_probe_grid(s, args.run_dir))
    stage_row, stages = read_stages(args.run_dir)
    rows.append(stage_row)
    total = time.perf_counter() - start

    result = {
        "device": str(device),
        "device_name": _device_name(device),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "quick": mode != "full",
        "mode": mode,
        "matmul_peak_gflops": max([peak] + [r.get("matmul_peak_gflops", 0.0) for r in rows]),
        "matmul_size": s.matmul_n,
        "settings": asdict(s),
        "rows": rows,
        "stages": stages,
        "total_seconds": total,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")

    print(
        f"device: {device} ({result['device_name']}), threads: {result['threads']}, "
        f"torch {torch.__version__}, mode: {mode}"
    )
    print(
        f"fp32 matmul peak ({s.matmul_n}x{s.matmul_n} torch.mm, best of {s.matmul_repeats}, max over the run): "
        f"{result['matmul_peak_gflops']:.1f} GFLOP/s"
    )
    print()
    print(format_table(rows))
    print()
    for r in rows:
        if r["name"] == "training":
            print(
                f"training {r['preset']}: {r['achieved_gflops_6n_plus_attention']:.1f} GFLOP/s "
                f"(6N + attention; 6N only: {r['achieved_gflops_6n']:.1f}), "
                f"{100 * r['fraction_of_matmul_peak']:.0f}% of the matmul peak"
            )
        elif r["name"] == "probes" and r["ratio"] is not None:
            where = "x".join(map(str, r["shape"]))
            if "grid_C" in r:
                where = f"real grid {where} x {len(r['grid_C'])} C"
            print(
                f"probes {where}: ratio {r['ratio']:.2f}x (min {r['ratio_min']:.2f}x, max "
                f"{r['ratio_max']:.2f}x over {r['repeats']} rounds), solver {r['solver']}, "
                f"max |AUROC difference| vs scikit-learn: {r['max_abs_auroc_difference']:.2e}"
            )
    for stage, seconds in stages.items():
        print(f"stage {stage}: {seconds:.1f} s")
    print(f"total: {total:.1f} s; JSON: {out}")

    unequal = [r for r in rows if r["name"] == "generation" and not r["outputs_equal"]]
    if unequal:
        print(
            "FAILED: FusedNative.generate and the bridge's generate gave different tokens for "
            + ", ".join(r["preset"] for r in unequal),
            file=sys.stderr,
        )
        return 1
    return 0
