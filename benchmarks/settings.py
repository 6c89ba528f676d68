"""What the benchmark suite measures: the sizes and repeat counts of each mode (smoke, quick,
full), the goal of each benchmark, and the row every benchmark returns, judged against its goal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Probes (issue 26): at least as fast as scikit-learn's loop on the same threads, every shape.
# The pretrained path (issue 27): at least as fast as plain peft + transformers on the same base.
GOALS = {
    "training": 0.95,
    "generation": 5.0,
    "caching": 0.9,
    "probes": 1.0,
    "pretrained training": 1.0,
    "pretrained generation": 1.0,
}
# Each pretrained row runs in float32 and under bf16 autocast (`autocast_forwards`'s modes).
PRETRAINED_PRECISIONS = ("none", "bf16")
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
# The synthetic grid has the default run's real grid's shape: 5 sites x 3 positions, 300
# training prompts, d_model 128 (times REAL_GRID_CS).
SYNTHETIC_GRID_SHAPE = (5 * len(REAL_GRID_POSITIONS), 300, 128)


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
    probe_grid_shape: tuple[int, int, int]  # the synthetic grid's (layers, n_train, d)
    probe_warmup: int
    probe_repeats: int
    matmul_n: int
    matmul_repeats: int
    # the pretrained path (benchmarks.pretrained_paths): LoRA training and HF generation
    pretrained_batch: int
    pretrained_seq: int
    pretrained_warmup: int
    pretrained_repeats: int
    pretrained_gen_prompts: int
    pretrained_gen_new_tokens: int
    pretrained_gen_repeats: int
    pretrained_precisions: tuple[str, ...] = PRETRAINED_PRECISIONS


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
        probe_grid_shape=(2, 100, 16),
        probe_warmup=0,
        probe_repeats=1,
        matmul_n=256,
        matmul_repeats=2,
        pretrained_batch=2,
        pretrained_seq=16,
        pretrained_warmup=0,
        pretrained_repeats=1,
        pretrained_gen_prompts=4,
        pretrained_gen_new_tokens=4,
        pretrained_gen_repeats=1,
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
        probe_grid_shape=SYNTHETIC_GRID_SHAPE,
        probe_warmup=1,
        probe_repeats=5,
        matmul_n=2048,
        matmul_repeats=5,
        pretrained_batch=8,
        pretrained_seq=64,
        pretrained_warmup=1,
        pretrained_repeats=5,
        pretrained_gen_prompts=16,
        pretrained_gen_new_tokens=32,
        pretrained_gen_repeats=3,
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
        probe_grid_shape=SYNTHETIC_GRID_SHAPE,
        probe_warmup=2,
        probe_repeats=11,
        matmul_n=2048,
        matmul_repeats=10,
        pretrained_batch=8,
        pretrained_seq=64,
        pretrained_warmup=2,
        pretrained_repeats=9,
        pretrained_gen_prompts=16,
        pretrained_gen_new_tokens=32,
        pretrained_gen_repeats=5,
    ),
}


def result_row(
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
