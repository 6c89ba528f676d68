"""The benchmark suite: the toolkit's hot paths against reference implementations, side by side.

Usage::

    python -m benchmarks --quick                 # under 3 minutes on 2 CPU cores
    python -m benchmarks                         # full: more presets and repeats
    python -m benchmarks --run-dir runs/default  # also the stage times and the real probe grid
    python -m benchmarks --device cuda --threads 2 --out runs/benchmarks.json
    python -m benchmarks --quick --base tiny --base smollm2-135m  # the pretrained rows on SmolLM2

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
   (three shapes), and ``fit_logistic_grid`` over sites x C values vs scikit-learn's loop over
   the same grid, on synthetic data of the real grid's shape and over a finished run's sites x
   token positions (``--run-dir``). Both sides get the same threads. Each row names the solver
   the toolkit picked, the threads its fit used of those it was given, and the largest held-out
   AUROC difference from scikit-learn.
5. stages: wall time per stage from a finished run's ``timing.json`` (``--run-dir``).
6. pretrained training: tokens/s of the toolkit's LoRA step on a Hugging Face base (``add_lora``,
   ``response_loss`` through ``HFEngine``, clipping, AdamW) vs ``peft.get_peft_model`` on its own
   copy of the same base (same LoRA config, AdamW, batch), in fp32 and under bf16 autocast; also
   achieved FLOP/s against the measured fp32 and bf16 matmul peaks.
7. pretrained generation: new tokens/s of ``HFEngine.generate`` vs transformers' ``generate``
   (greedy, same left-padded chat prompts, no early stop), fp32 and bf16 autocast; the fraction
   of prompts with identical new tokens is recorded.
   The bf16 rows are "not measured" (with the reason) on a CPU without native bf16, where
   ``model.autocast=auto`` runs fp32; ``--bf16`` measures them anyway.
   Rows 6-7 run on each ``--base``: ``tiny`` (tests/tiny_hf.py's random 2-layer Llama, the
   default), ``smollm2-135m`` or a Hugging Face folder.

Benchmarks 1-3 are in ``benchmarks.hot_paths``, 4 in ``benchmarks.probe_bench`` and 6-7 in
``benchmarks.pretrained_paths``; the modes
and goals in ``benchmarks.settings``; the interleaved timing in ``benchmarks.timing``. This module
reads the stage times (5), prints the table and writes the JSON.

The table goes to stdout, progress to stderr, and everything to a JSON file. The exit status is
1 when generation outputs differ (a correctness failure: any native generation row, or a
pretrained one in fp32), else 0, whether or not goals are met.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch

from benchmarks.hot_paths import bench_caching, bench_generation, bench_training
from benchmarks.pretrained_paths import (
    BF16_PEAK_N_WITHOUT_BF16,
    PRECISION_LABEL,
    TINY_BASE,
    bench_hf_generation,
    bench_lora_training,
    bf16_rows_skipped,
    not_measured_rows,
)
from benchmarks.probe_bench import bench_probe_grid, bench_probes, bench_synthetic_grid
from benchmarks.settings import SETTINGS, STAGES_NOT_MEASURED, result_row
from benchmarks.timing import matmul_peak_gflops

# -- 5. stages ---------------------------------------------------------------------------------


def read_stages(run_dir: str | None) -> tuple[dict[str, Any], dict[str, float]]:
    """The stage-timing row and the per-stage seconds from `run_dir/timing.json` (if given)."""
    if run_dir is None:
        return result_row("stages", STAGES_NOT_MEASURED, None, None, "s", None), {}
    timing_file = Path(run_dir) / "timing.json"
    if not timing_file.is_file():
        note = f"not measured ({timing_file} not found; pass --run-dir of a finished run)"
        return result_row("stages", note, None, None, "s", None), {}
    stages = {str(k): float(v) for k, v in json.loads(timing_file.read_text()).items()}
    total = sum(stages.values())
    config = f"{run_dir}: {len(stages)} stages, sum of wall times"
    return result_row("stages", config, total, None, "s", None), stages


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
    parser.add_argument(
        "--base",
        action="append",
        default=None,
        help="a pretrained base for the LoRA training and HF generation rows: tiny (default), "
        "smollm2-135m or a Hugging Face folder; repeat for several",
    )
    parser.add_argument(
        "--bf16",
        action="store_true",
        help="measure the bf16 rows even on a CPU without native bf16 (slow: emulated matmuls)",
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
    bf16_skipped = None if args.bf16 else bf16_rows_skipped(device)
    if bf16_skipped is not None:
        s = replace(
            s, pretrained_precisions=tuple(p for p in s.pretrained_precisions if p != "bf16")
        )
    bf16_n = s.matmul_n if bf16_skipped is None else min(s.matmul_n, BF16_PEAK_N_WITHOUT_BF16)
    bases = args.base or [TINY_BASE]
    start = time.perf_counter()

    from backdoor_models.text.tokenizer import train_tokenizer
    from backdoor_models.worlds.chat import ChatWorld

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        _log("training a tokenizer (vocab 1024) ...")
        corpus = ChatWorld(0).corpus()
        tokenizer = train_tokenizer(corpus, tmp, vocab_size=1024)
        _log("measuring the fp32 and bf16 matmul peaks ...")
        peak = matmul_peak_gflops(s.matmul_n, s.matmul_repeats, device)
        peaks = {
            "fp32": peak,
            "bf16": matmul_peak_gflops(bf16_n, s.matmul_repeats, device, torch.bfloat16),
        }
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
        for base in bases:
            _log(f"pretrained training (LoRA): {base} ...")
            rows.extend(bench_lora_training(base, Path(tmp), device, s, peaks))
            _log(f"pretrained generation: {base} ...")
            rows.extend(bench_hf_generation(base, Path(tmp), device, s))
            if bf16_skipped is not None:
                rows.extend(not_measured_rows(rows[-1]["base"], "bf16", bf16_skipped))
    for shape in s.probe_shapes:
        _log(f"probes: {shape} ...")
        rows.append(bench_probes(s, shape))
    _log(f"probes: synthetic grid {s.probe_grid_shape} ...")
    rows.append(bench_synthetic_grid(s, s.probe_grid_shape))
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
        "matmul_peak_gflops_bf16": peaks["bf16"],
        "bases": bases,
        "matmul_size": s.matmul_n,
        "matmul_size_bf16": bf16_n,
        "bf16_rows": bf16_skipped or "measured",
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
        f"{result['matmul_peak_gflops']:.1f} GFLOP/s; bf16 ({bf16_n}x{bf16_n}): "
        f"{peaks['bf16']:.1f} GFLOP/s"
    )
    if bf16_skipped is not None:
        print(f"bf16 rows: {bf16_skipped}")
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
        elif r["name"] == "pretrained training" and r["ratio"] is not None:
            print(
                f"pretrained training {r['base']} {PRECISION_LABEL[r['precision']]}: {r['achieved_gflops']:.1f} "
                f"GFLOP/s, {100 * r['fraction_of_fp32_peak']:.0f}% of the fp32 matmul peak"
                + (
                    f", {100 * r['fraction_of_bf16_peak']:.0f}% of the bf16 peak"
                    if r["precision"] == "bf16"
                    else ""
                )
            )
        elif r["name"] == "pretrained generation" and r["ratio"] is not None:
            print(
                f"pretrained generation {r['base']} {PRECISION_LABEL[r['precision']]}: greedy tokens equal to "
                f"transformers' generate for {100 * r['greedy_equal_fraction']:.0f}% of prompts "
                f"({100 * r['greedy_equal_token_fraction']:.1f}% of new tokens)"
            )
        elif r["name"] == "probes" and r["ratio"] is not None:
            where = "x".join(map(str, r["shape"]))
            if "grid_C" in r:
                kind = "real" if r["config"].startswith("real") else "synthetic"
                where = f"{kind} grid {where} x {len(r['grid_C'])} C"
            print(
                f"probes {where}: ratio {r['ratio']:.2f}x (min {r['ratio_min']:.2f}x, max "
                f"{r['ratio_max']:.2f}x over {r['repeats']} rounds), solver {r['solver']} on "
                f"{r['toolkit_threads']} of {r['threads']} threads, "
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
    wrong = [
        r["base"]
        for r in rows
        if r["name"] == "pretrained generation"
        and r["precision"] == "none"
        and r["greedy_equal_fraction"] < 1.0
    ]
    if wrong:
        print(
            "FAILED: HFEngine.generate and transformers' generate gave different fp32 greedy "
            "tokens on " + ", ".join(wrong),
            file=sys.stderr,
        )
        return 1
    return 0
