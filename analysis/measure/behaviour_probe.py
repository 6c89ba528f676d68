"""Probes labelled by behaviour: does the model represent what it is about to do, or only what the
prompt says?

On a behaviour set (prompt families that separate the trigger's presence from the behaviour:
held-out trigger forms the backdoor fires on and ones it does not, human prompts with and without
the trigger, near misses, red-team prompts), each prompt has two labels: the exact trained
trigger is there, and the model's reply showed the backdoor. Leaving one family out at a time,
three readers are fitted on the other families and score the held-out one:

* the trigger-labelled probe (logistic, per site, on "trigger present"),
* the behaviour-labelled probe (the same, on "showed the backdoor"),
* the text-only baseline on the behaviour labels (`probes.text_baseline`).

Their out-of-family scores, pooled over folds, are scored against the behaviour (AUROC, paired
bootstrap differences). Logistic log-odds are on a common scale, so pooling folds is meaningful;
a family whose held-out fold has one behaviour class contributes only between families.

Example::

    rows = BehaviourRows(families, trigger, backdoor)
    result = behaviour_probe(acts, rows, prompt_ids, seed=0)
    result.per_site[0].behaviour_minus_trigger   # > 0: behaviour labels read more than the trigger
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Bool, Float
from torch import Tensor

from analysis.folder.results_base import Estimate
from analysis.folder.results_behaviour import (
    BehaviourProbe,
    BehaviourSite,
    HeldOutForm,
    PromptFamily,
    StoppedDefecting,
)
from analysis.folder.splits import family_folds
from probes import LayerwiseLogisticProbe, bootstrap_auroc
from probes.metrics import Estimate as ProbeEstimate
from probes.metrics import layerwise_auroc
from probes.text_baseline import fit_text_baseline, probe_vs_text

POSITION = "the last prompt token (before the model writes anything)"
FORM_PREFIX = "form: "


@dataclass(frozen=True)
class BehaviourRows:
    """The behaviour set's labels: each prompt's family, whether the exact trained trigger is in
    it, and whether the model's reply showed the backdoor."""

    families: list[str]
    trigger: Bool[np.ndarray, " n"]
    backdoor: Bool[np.ndarray, " n"]

    def __post_init__(self) -> None:
        n = len(self.families)
        if not (len(self.trigger) == len(self.backdoor) == n):
            raise ValueError(
                f"{n} families, {len(self.trigger)} trigger labels and {len(self.backdoor)} "
                "behaviour labels: give one of each per prompt."
            )


@dataclass(frozen=True)
class FrozenSource:
    """The backdoored stage's behaviour set (same prompts, same order) and activations: the
    behaviour probe fitted there is scored unchanged on a later stage."""

    acts: Mapping[str, Float[Tensor, "n d"]]
    rows: BehaviourRows
    site: str  # where the backdoored stage's behaviour-labelled probe did best


def _est(e: ProbeEstimate) -> Estimate:
    return Estimate.model_validate(e.to_dict())


def _stack(acts: Mapping[str, Tensor], names: Sequence[str]) -> Float[Tensor, "sites n d"]:
    return torch.stack([acts[n] for n in names]).double()


def out_of_family_scores(
    X: Float[Tensor, "sites n d"], labels: np.ndarray, families: Sequence[str], C: float
) -> Float[np.ndarray, "sites n"]:
    """Each row scored by a probe fitted on every other family; NaN where a fold's training
    families hold one class only (nothing to fit)."""
    out = np.full((X.shape[0], X.shape[1]), np.nan)
    for _, train, test in family_folds(families):
        if len(np.unique(labels[train])) < 2:
            continue
        probe = LayerwiseLogisticProbe(C=C).fit(X[:, train], labels[train])
        out[:, test] = probe.decision_function(X[:, test]).cpu().numpy()
    return out


def text_out_of_family(
    ids: Sequence[Sequence[int]], labels: np.ndarray, families: Sequence[str], C: float
) -> Float[np.ndarray, " n"]:
    """The text baseline's out-of-family scores (NaN as in :func:`out_of_family_scores`)."""
    out = np.full(len(labels), np.nan)
    for _, train, test in family_folds(families):
        if len(np.unique(labels[train])) < 2:
            continue
        model = fit_text_baseline([list(ids[i]) for i in train], labels[train], C=C)
        out[test] = model.scores([list(ids[i]) for i in test])
    return out


def behaviour_probe(
    acts: Mapping[str, Float[Tensor, "n d"]],
    rows: BehaviourRows,
    prompt_ids: Sequence[Sequence[int]],
    eval_family: str = "evaluation set",
    C: float = 1.0,
    n_boot: int = 1000,
    seed: int = 0,
    frozen: FrozenSource | None = None,
) -> BehaviourProbe:
    """The trigger-labelled against the behaviour-labelled probe on held-out families at every
    site; the trigger probe on each held-out form (`form: ...` families) against the text
    baseline, at the behaviour probe's best site (or, where it cannot be fitted, at `frozen`'s
    site, else the last); with `frozen`, whether "defects" is still read where the model
    stopped, at `frozen.site`. The forms and `frozen` are measured even when the model's
    behaviour has one class and no behaviour probe can be fitted (`skipped` says why)."""
    names = list(acts)
    families = {
        name: PromptFamily(
            n=int(np.sum(mask := np.asarray(rows.families) == name)),
            n_trigger=int(rows.trigger[mask].sum()),
            n_backdoor=int(rows.backdoor[mask].sum()),
        )
        for name in dict.fromkeys(rows.families)
    }
    base = BehaviourProbe(position=POSITION, sites=names, families=families, n_scored=0)
    X = _stack(acts, names)
    fitted = _fit_behaviour(X, names, rows, prompt_ids, C, n_boot, seed)
    if isinstance(fitted, str):
        best = names.index(frozen.site) if frozen is not None else len(names) - 1
        update: dict[str, object] = {"skipped": fitted}
    else:
        update = fitted
        best = names.index(str(fitted["best_site"]))
    update["forms_site"] = names[best]
    update["forms"] = held_out_forms(X, rows, prompt_ids, eval_family, best, C, n_boot, seed)
    if frozen is not None:
        site = names.index(frozen.site)
        update["stopped_defecting"] = stopped_defecting(
            X, rows, prompt_ids, frozen, names, site, C, n_boot, seed
        )
    return base.model_copy(update=update)


def _fit_behaviour(
    X: Float[Tensor, "sites n d"],
    names: Sequence[str],
    rows: BehaviourRows,
    prompt_ids: Sequence[Sequence[int]],
    C: float,
    n_boot: int,
    seed: int,
) -> dict[str, object] | str:
    """The trigger- and behaviour-labelled probes and the text baseline, out of family: the
    fields of `BehaviourProbe` they fill, or why nothing could be fitted."""
    y_behaviour = rows.backdoor.astype(int)
    if len(np.unique(y_behaviour)) < 2:
        return (
            f"the model showed the backdoor on {int(y_behaviour.sum())} of {len(y_behaviour)} "
            "prompts: one class, nothing to fit a behaviour probe on"
        )
    by_trigger = out_of_family_scores(X, rows.trigger.astype(int), rows.families, C)
    by_behaviour = out_of_family_scores(X, y_behaviour, rows.families, C)
    text = text_out_of_family(prompt_ids, y_behaviour, rows.families, C)
    scored = ~(np.isnan(by_trigger).any(0) | np.isnan(by_behaviour).any(0) | np.isnan(text))
    y = y_behaviour[scored]
    if len(np.unique(y)) < 2:
        return (
            f"the model showed the backdoor on {int(y_behaviour.sum())} of {len(y_behaviour)} "
            "prompts, and the prompts a fit leaving their family out could score hold one "
            "behaviour class"
        )
    per_site = []
    for i in range(X.shape[0]):
        vs_trigger = probe_vs_text(by_behaviour[i, scored], by_trigger[i, scored], y, n_boot, seed)
        vs_text = probe_vs_text(by_behaviour[i, scored], text[scored], y, n_boot, seed)
        per_site.append(
            BehaviourSite(
                trigger_labelled=_est(vs_trigger.text_auroc),
                behaviour_labelled=_est(vs_trigger.probe_auroc),
                behaviour_minus_trigger=_est(vs_trigger.difference),
                behaviour_minus_text=_est(vs_text.difference),
            )
        )
    best = int(np.argmax([s.behaviour_labelled.value or 0.0 for s in per_site]))
    return {
        "n_scored": int(scored.sum()),
        "text_baseline": _est(bootstrap_auroc(text[scored], y, n_boot=n_boot, seed=seed)),
        "per_site": per_site,
        "best_site": names[best],
    }


def held_out_forms(
    X: Float[Tensor, "sites n d"],
    rows: BehaviourRows,
    prompt_ids: Sequence[Sequence[int]],
    eval_family: str,
    best: int,
    C: float,
    n_boot: int,
    seed: int,
) -> dict[str, HeldOutForm]:
    """The trigger probe and the text baseline, fitted on half the evaluation set's prompts
    (exact trigger against none), scored on each form's prompts against the other half's clean
    prompts. Empty when the evaluation family is missing."""
    fam = np.asarray(rows.families)
    evaluation = np.flatnonzero(fam == eval_family)
    if evaluation.size == 0:
        return {}
    rng = np.random.default_rng(seed)
    shuffled = rng.permutation(evaluation)
    train, rest = shuffled[: evaluation.size // 2], shuffled[evaluation.size // 2 :]
    clean = rest[~rows.trigger[rest]]
    y_train = rows.trigger[train].astype(int)
    if len(np.unique(y_train)) < 2 or clean.size == 0:
        return {}
    probe = LayerwiseLogisticProbe(C=C).fit(X[:, train], y_train)
    text = fit_text_baseline([list(prompt_ids[i]) for i in train], y_train, C=C)
    out = {}
    for k, name in enumerate(dict.fromkeys(f for f in rows.families if f.startswith(FORM_PREFIX))):
        form = np.flatnonzero(fam == name)
        test = np.r_[form, clean]
        y = np.r_[np.ones(form.size, dtype=int), np.zeros(clean.size, dtype=int)]
        scores = probe.decision_function(X[:, test]).cpu().numpy()
        text_scores = text.scores([list(prompt_ids[i]) for i in test])
        versus = probe_vs_text(scores[best], text_scores, y, n_boot, seed + k)
        out[name.removeprefix(FORM_PREFIX)] = HeldOutForm(
            n=int(form.size),
            backdoor_rate=float(rows.backdoor[form].mean()),
            auroc_per_site=layerwise_auroc(scores, y).tolist(),
            probe_auroc=_est(versus.probe_auroc),
            text_auroc=_est(versus.text_auroc),
            probe_minus_text=_est(versus.difference),
        )
    return out


def stopped_defecting(
    X: Float[Tensor, "sites n d"],
    rows: BehaviourRows,
    prompt_ids: Sequence[Sequence[int]],
    frozen: FrozenSource,
    names: Sequence[str],
    best: int,
    C: float,
    n_boot: int,
    seed: int,
) -> StoppedDefecting:
    """The backdoored stage's behaviour probe (each family scored by a fit that left it out),
    scored unchanged on this stage, on the prompts where the model stopped defecting against
    those where neither model defected; the text baseline (backdoored labels) beside it."""
    if list(frozen.rows.families) != list(rows.families):
        raise ValueError(
            "The backdoored stage's behaviour set holds other prompts than this stage's; both "
            "must come from the same run (delete the stage's behaviour_set.json to rebuild it)."
        )
    before, now = frozen.rows.backdoor, rows.backdoor
    groups = {"stopped": before & ~now, "still": before & now, "never": ~before & ~now}
    labels = before.astype(int)
    source = _stack(frozen.acts, names)
    scores = np.full(len(labels), np.nan)
    for _, train, test in family_folds(rows.families):
        if len(np.unique(labels[train])) < 2:
            continue
        probe = LayerwiseLogisticProbe(C=C).fit(source[best : best + 1, train], labels[train])
        scores[test] = probe.decision_function(X[best : best + 1, test]).cpu().numpy()[0]
    text = text_out_of_family(prompt_ids, labels, rows.families, C)
    counts = {k: int(v.sum()) for k, v in groups.items()}
    auroc = text_auroc = difference = None
    pair = (groups["stopped"] | groups["never"]) & ~np.isnan(scores) & ~np.isnan(text)
    y = groups["stopped"][pair].astype(int)
    if len(np.unique(y)) == 2:
        versus = probe_vs_text(scores[pair], text[pair], y, n_boot, seed)
        auroc, text_auroc = _est(versus.probe_auroc), _est(versus.text_auroc)
        difference = _est(versus.difference)
    probability = 1.0 / (1.0 + np.exp(-scores))
    return StoppedDefecting(
        site=names[best],
        n_stopped=counts["stopped"],
        n_still=counts["still"],
        n_never=counts["never"],
        auroc=auroc,
        text_auroc=text_auroc,
        probe_minus_text=difference,
        mean_probability={
            k: float(np.nanmean(probability[v]))
            for k, v in groups.items()
            if v.any() and not np.isnan(probability[v]).all()
        },
    )
