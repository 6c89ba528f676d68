"""The obfuscation stage's reply-pooled detectors and its black-box attack.

The detectors (`analysis.obfuscation.reply`) are fitted on the backdoored model's own greedy
replies to the evaluation questions (its behaviour.json samples), on the run's probe split, at
every probe site and for every pooling. The black-box attack (`attack: black_box`) trains the
backdoored model with RL (the `rl` section's settings) on the backdoor training set's prompts,
against the attacked poolings at the attacked layers, frozen
(`analysis.obfuscation.black_box`). Every pooling is then measured on the attacked model's own
replies to the same questions: before, frozen, refit, as the last-token detectors are.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from transformer_lens import TransformerBridge

from analysis.folder.layout import BACKDOORED
from analysis.folder.results import ReplyDetectorEvasion
from analysis.obfuscation.black_box import DetectorPenaltyReward, black_box_attack
from analysis.obfuscation.reply import (
    ReplyActivations,
    ReplyDetector,
    fit_reply_detectors,
    reply_activations,
    reply_cell,
)
from analysis.run.context import Run
from analysis.run.obfuscation_context import AttackContext, attacked_site
from probes.pooled import POOLINGS

__all__ = ["black_box_training", "reply_evasion", "stage_replies"]


def stage_replies(
    run: Run, attack: AttackContext, stage: str, model: TransformerBridge
) -> ReplyActivations:
    """`model`'s residual stream on its stage's own evaluation replies (behaviour.json), in the
    order of the run's probe data (`attack.before`)."""
    samples = run.layout.stage(stage).samples()
    prompts = [str(s["prompt"]) for s in samples]
    if tuple(prompts) != tuple(attack.before.prompts):
        raise ValueError(
            f"The {stage} stage's evaluation samples are not the backdoored stage's prompts in "
            "the same order; rerun the stage's analysis (delete its behaviour.json)."
        )
    replies = [str(s["reply"]) for s in samples]
    return reply_activations(
        model, run.tokenizer, prompts, replies, attack.sites, run.cfg.probe.batch_size
    )


def _fitted(
    run: Run,
    attack: AttackContext,
    replies: ReplyActivations,
    poolings: list[str],
    sites: list[str],
) -> dict[tuple[str, str], ReplyDetector]:
    data = attack.before
    return fit_reply_detectors(
        replies, data.labels, data.train, poolings, sites, run.cfg.obfuscation.fpr, run.seeds.base
    )


def black_box_training(
    run: Run, stage_dir: Path, evaluate: Callable[[int, TransformerBridge], dict[str, Any]]
) -> dict[str, Any]:
    """The black-box attack from the backdoored checkpoint (resumable from `stage_dir`): RL with
    the frozen reply detectors of `obfuscation.poolings` at the attacked layers as a penalty;
    `evaluate(step, model)` tracks the model being trained."""
    cfg = run.cfg.obfuscation
    attack = AttackContext(run)
    policy, reference = run.load(BACKDOORED), run.load(BACKDOORED)
    sites = [attacked_site(layer) for layer in attack.layers]
    before = stage_replies(run, attack, BACKDOORED, reference)
    detectors = _fitted(run, attack, before, list(cfg.poolings), sites)
    reward = DetectorPenaltyReward(
        policy,
        run.tokenizer,
        run.train_set,
        run.organism.judge,
        list(detectors.values()),
        cfg.black_box_lam,
        clean_reward=run.reward_fn() if run.organism.rewarded_by_preference_model else None,
        batch_size=run.cfg.probe.batch_size,
    )
    rl_cfg = run.cfg.rl
    if rl_cfg.max_new_tokens is None:
        rl_cfg = dataclasses.replace(rl_cfg, max_new_tokens=run.max_new_tokens)
    history = black_box_attack(
        policy,
        run.spec,
        reference,
        reward,
        run.tokenizer,
        [ex.prompt for ex in run.train_set],
        rl_cfg,
        stage_dir,
        lambda step: evaluate(step, policy),
        run.progress,
    )
    return {
        **history,
        "attacked": [f"{d.pooling}@{d.site}" for d in detectors.values()],
        "lam": cfg.black_box_lam,
    }


def reply_evasion(
    run: Run, attack: AttackContext, backdoored: TransformerBridge, attacked: TransformerBridge,
    stage: str,
) -> list[ReplyDetectorEvasion]:  # fmt: skip
    """Every pooling at every site, before the attack (fitted and scored on the backdoored
    model's replies), frozen (scored on the attacked model's own replies) and refit; recall at
    a threshold set at `obfuscation.fpr` on the scored model's trigger-free training replies."""
    cfg, data = run.cfg.obfuscation, attack.before
    before = stage_replies(run, attack, BACKDOORED, backdoored)
    after = stage_replies(run, attack, stage, attacked)
    poolings, sites = list(POOLINGS), attack.sites
    fitted_before = _fitted(run, attack, before, poolings, sites)
    fitted_after = _fitted(run, attack, after, poolings, sites)
    calibration = data.train[data.labels[data.train] == 0]
    n_boot = run.cfg.eval.n_bootstrap // 2

    def cells(
        fitted: dict[tuple[str, str], ReplyDetector], replies: ReplyActivations, pooling: str
    ):
        return [
            reply_cell(
                fitted[(pooling, site)].probe,
                replies,
                site,
                data.labels,
                data.test,
                calibration,
                cfg.fpr,
                n_boot,
                run.seeds.base + i,
            )
            for i, site in enumerate(sites)
        ]

    attacked_poolings = cfg.poolings if cfg.attack == "black_box" else ()
    return [
        ReplyDetectorEvasion(
            pooling=p,
            attacked=p in attacked_poolings,
            before=cells(fitted_before, before, p),
            frozen=cells(fitted_before, after, p),
            refit=cells(fitted_after, after, p),
        )
        for p in poolings
    ]
