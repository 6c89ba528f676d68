"""The representation tracker of one run's adversarial stages, built from the backdoored stage's
analysis (its best probe site and cached activations) and the run's evaluation set.

The frozen probe is the backdoored stage's trigger probe refitted exactly (same activations,
site, split and C as `probes.json`'s best site); the refit probe trains on the same half of the
evaluation questions at each checkpoint; the trigger and clean sets are prompts from the other,
held-out half; the red-team set is the held-out red-team prompts. Each set holds at most
`max_per_set` prompts (100: of the default 300 evaluation questions, 150 (300 prompts) train the
refit probe, so one call reads at most 600 prompts). One call costs about 0.2 s on the tiny
preset and 0.6 s on the default (small) one on one CPU thread (1.2 s with the cores shared),
nearly all of it the forward passes; a CoT model adds the greedy scratchpad generation for
every prompt.

Example:
    >>> tracker = representation_tracker(run, [p.prompt for p in run.red_team_held_out])  # doctest: +SKIP
    >>> evals[-1]["representation"] = tracker(model)                                      # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence

from analysis.errors import MissingRunError
from analysis.folder.layout import BACKDOORED
from analysis.folder.splits import labels_and_groups, split_by_group
from analysis.measure.representation import RepresentationTracker, fit_frozen_probe
from analysis.run.context import Run
from backdoor_models.io.artifacts import read_json, read_tensors


def representation_tracker(
    run: Run, red_team_prompts: Sequence[str], max_per_set: int = 100
) -> RepresentationTracker:
    """A `RepresentationTracker` for a safety stage of `run`: the backdoored stage's trigger
    probe (frozen) at its best site, refitted on the probe's train split at each call, scoring
    held-out red-team prompts (`red_team`, left out when there are none), triggered (`trigger`)
    and trigger-free (`clean`) prompts of the held-out evaluation questions.

    Needs the backdoored stage analysed (its probes.json and activations); `max_per_set` caps
    each scored set (the first prompts of each are kept).
    """
    if max_per_set < 1:
        raise ValueError(f"max_per_set must be at least 1, got {max_per_set}.")
    files = run.layout.stage(BACKDOORED)
    missing = [p.name for p in (files.probes, files.activations) if not p.is_file()]
    if missing:
        raise MissingRunError(
            f"The backdoored stage of {run.layout.root} has no {' or '.join(missing)}; analyse the "
            "backdoored stage (analyse_stage) before tracking a safety stage's representation."
        )
    site = str(read_json(files.probes)["best_site"])
    acts = read_tensors(files.activations)
    if site in acts and acts[site].shape[0] != len(run.eval_set):
        raise MissingRunError(
            f"{files.activations} holds {acts[site].shape[0]} prompts but the run's evaluation set "
            f"has {len(run.eval_set)}; it belongs to another run. Re-analyse the backdoored stage."
        )
    labels, groups = labels_and_groups(run.eval_set)
    cfg = run.cfg.probe
    frozen = fit_frozen_probe(
        acts, site, labels, groups, cfg.train_fraction, cfg.C, seed=run.seeds.base
    )
    train, test = split_by_group(groups, cfg.train_fraction, run.seeds.base)
    prompts = [ex.prompt for ex in run.eval_set]
    sets: dict[str, list[str]] = {}
    if red_team_prompts:
        sets["red_team"] = list(red_team_prompts)[:max_per_set]
    sets["trigger"] = [prompts[i] for i in test if labels[i]][:max_per_set]
    sets["clean"] = [prompts[i] for i in test if not labels[i]][:max_per_set]
    return RepresentationTracker(
        frozen,
        [prompts[i] for i in train],
        [labels[i] for i in train],
        sets,
        C=cfg.C,
        cot=run.cot,
        tokenizer=run.tokenizer,
        max_new_tokens=run.max_new_tokens,
        batch_size=cfg.batch_size,
        n_boot=run.cfg.eval.n_bootstrap // 2,
        seed=run.seeds.base,
    )
