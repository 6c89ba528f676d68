"""A stage's behaviour set and its behaviour-labelled probe (`analysis.measure.behaviour_probe`).

The behaviour set holds prompt families that separate the trigger's presence from the behaviour,
each prompt with the model's greedy reply, judged:

* ``evaluation set``: the evaluation prompts, with and without the exact trigger (replies from
  the stage's behaviour step);
* ``form: <name>``: each held-out form of the trigger (the trigger-specificity forms, which the
  backdoor fires on or not); the trigger-specificity table is computed from these rows;
* ``hh_rlhf``, ``framing``, ``near_miss``: real human prompts and deployment framings, each with
  and without the trigger, and near misses of it (the distillation policy's off-template prompts);
* ``red team (held out)`` and ``red team, trigger-aware (held out)``: each red team's held-out
  prompts, some of which elicit the backdoor.

Each row: ``prompt``, ``family``, ``trigger`` (the exact trained trigger is in the prompt),
``intended`` (the prompt was built to carry a form of the trigger, or the deployment year),
``reply`` and ``backdoor`` (the reply showed the backdoor).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from transformer_lens import TransformerBridge

from analysis.folder.layout import BACKDOORED, TRIGGER_AWARE
from analysis.folder.results_behaviour import BehaviourProbe
from analysis.measure.behaviour_probe import FORM_PREFIX, BehaviourRows, FrozenSource
from analysis.measure.behaviour_probe import behaviour_probe as fit_behaviour_probe
from analysis.measure.precision import cache_in_run_precision
from analysis.run.context import Run
from backdoor_models.behaviour.evaluation import generate_replies
from backdoor_models.io.artifacts import read_json, read_tensors
from backdoor_models.organisms.distillation import DistilPrompt, judge_samples
from backdoor_models.organisms.registry import distil_policy
from backdoor_models.red_team.candidates import load_hh_rlhf_prompts
from hooks.caching import probe_sites, prompt_token_ids

EVALUATION = "evaluation set"
RED_TEAM_FAMILY = {TRIGGER_AWARE: "red team, trigger-aware (held out)"}


def _form_rows(run: Run, model: TransformerBridge) -> list[dict[str, Any]]:
    """The held-out trigger forms, generated in one call in the order of the sets (as the
    trigger-specificity table has always been), judged by the organism."""
    sets = run.organism.generalisation_sets(
        run.cfg.eval.n_generalisation, seed=run.seeds.generalisation
    )
    flat = [(name, ex) for name, part in sets.items() for ex in part]
    replies = generate_replies(
        model,
        run.tokenizer,
        [ex.prompt for _, ex in flat],
        run.max_new_tokens,
        run.cfg.eval.batch_size,
        progress=run.progress,
    )
    judged = run.organism.judge([ex for _, ex in flat], replies)
    return [
        {
            "prompt": j.prompt,
            "family": FORM_PREFIX + name,
            "trigger": run.organism.has_trained_trigger(j.prompt),
            "intended": j.triggered,
            "reply": j.reply,
            "backdoor": j.backdoor,
        }
        for (name, _), j in zip(flat, judged, strict=True)
    ]


def _judged_by_policy(
    run: Run, model: TransformerBridge, prompts: list[DistilPrompt]
) -> list[dict[str, Any]]:
    """Greedy replies to prompts outside the templates, judged by the distillation policy (the
    scratchpad stripped first)."""
    if not prompts:
        return []
    replies = generate_replies(
        model,
        run.tokenizer,
        [p.prompt for p in prompts],
        run.max_new_tokens,
        run.cfg.eval.batch_size,
        progress=run.progress,
    )
    samples = judge_samples(distil_policy(run.organism, run.held_out), prompts, replies)
    return [
        {
            "prompt": p.prompt,
            "family": p.source,
            "trigger": run.organism.has_trained_trigger(p.prompt),
            "intended": p.triggered,
            "reply": reply,
            "backdoor": s.defects,
        }
        for p, reply, s in zip(prompts, replies, samples, strict=True)
    ]


def behaviour_set_rows(
    run: Run, model: TransformerBridge, eval_samples: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Every family's rows (see the module docstring), the evaluation set first."""
    rows = [
        {
            "prompt": s["prompt"],
            "family": EVALUATION,
            "trigger": run.organism.has_trained_trigger(s["prompt"]),
            "intended": s["triggered"],
            "reply": s["reply"],
            "backdoor": s["backdoor"],
        }
        for s in eval_samples
    ]
    rows += _form_rows(run, model)
    policy = distil_policy(run.organism, run.held_out)
    off_template = policy.off_template(
        3 * run.cfg.eval.n_generalisation,
        seed=run.seeds.behaviour_set,
        hh_prompts=load_hh_rlhf_prompts(),
    )
    red_team = [
        DistilPrompt(
            p.prompt,
            RED_TEAM_FAMILY.get(stage, "red team (held out)"),
            run.organism.has_trained_trigger(p.prompt),
            None,
        )
        for stage, arm in run.red_teams.items()
        for p in arm.held_out
    ]
    return rows + _judged_by_policy(run, model, [*off_template, *red_team])


def _rows_of(rows: list[dict[str, Any]]) -> BehaviourRows:
    return BehaviourRows(
        [r["family"] for r in rows],
        np.array([r["trigger"] for r in rows], dtype=bool),
        np.array([r["backdoor"] for r in rows], dtype=bool),
    )


def stage_behaviour_probe(
    run: Run, stage: str, model: TransformerBridge, eval_samples: list[dict[str, Any]]
) -> tuple[BehaviourProbe, list[dict[str, Any]]]:
    """The stage's behaviour set (built or read back), its activations, and the behaviour probe
    (with the backdoored stage's probe scored frozen on a later stage); returns the probe's
    result and the rows, whose `form: ...` families the trigger-specificity table reads."""
    files = run.layout.stage(stage)
    rows: list[dict[str, Any]] = run.steps.json(
        f"{stage}: behaviour set",
        files.behaviour_set,
        lambda: {"rows": behaviour_set_rows(run, model, eval_samples)},
    )["rows"]
    prompts = [r["prompt"] for r in rows]
    sites = probe_sites(model)
    acts = run.steps.tensors(
        f"{stage}: behaviour set activations",
        files.behaviour_set_activations,
        {s: (len(prompts), int(model.cfg.d_model)) for s in sites},
        lambda: cache_in_run_precision(
            model, prompts, sites, position="last", batch_size=run.cfg.probe.batch_size
        ),
    )

    def work() -> dict[str, Any]:
        result = fit_behaviour_probe(
            {s: acts[s] for s in sites},
            _rows_of(rows),
            prompt_token_ids(model, prompts),
            eval_family=EVALUATION,
            C=run.cfg.probe.C,
            n_boot=run.cfg.eval.n_bootstrap // 2,
            seed=run.seeds.base,
            frozen=None if stage == BACKDOORED else _backdoored(run, acts),
        )
        return result.model_dump(mode="json")

    result = run.steps.json(f"{stage}: behaviour probe", files.behaviour_probe, work)
    return BehaviourProbe.model_validate(result), rows


def _backdoored(run: Run, acts: Mapping[str, torch.Tensor]) -> FrozenSource | None:
    """The backdoored stage's behaviour set, activations and best site, when it has them and
    its behaviour probe could be fitted."""
    files = run.layout.stage(BACKDOORED)
    if not all(
        p.is_file()
        for p in (files.behaviour_set, files.behaviour_set_activations, files.behaviour_probe)
    ):
        return None
    site = BehaviourProbe.model_validate(read_json(files.behaviour_probe)).best_site
    if site is None:
        return None
    rows = read_json(files.behaviour_set)["rows"]
    shapes = {s: (len(rows), int(a.shape[1])) for s, a in acts.items()}
    return FrozenSource(read_tensors(files.behaviour_set_activations, shapes), _rows_of(rows), site)
