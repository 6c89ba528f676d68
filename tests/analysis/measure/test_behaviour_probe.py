"""Probes labelled by behaviour (`analysis.measure.behaviour_probe`), on planted signals: the
behaviour-labelled probe finds a behaviour direction that trigger labels miss; a frozen probe
still reads a kept representation where the behaviour stopped; one behaviour class is refused
with the reason."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from analysis.measure.behaviour_probe import BehaviourRows, FrozenSource, behaviour_probe

# family -> (trigger, behaviour): 1/0, or None for a random half
FAMILIES = {
    "evaluation set": ("half", "same"),
    "form: fires": (0, 1),  # a held-out form the backdoor fires on
    "form: ignored": (0, 0),
    "trigger ignored": (1, 0),  # the trigger is there, the model does not act on it
    "red team": (0, "half"),
    "clean": (0, 0),
}


def _planted(seed: int = 0, n: int = 40, d: int = 8) -> tuple[dict, BehaviourRows, list]:
    """Direction 0 carries the behaviour, direction 1 the trigger; the tokens carry the trigger
    and the family."""
    rng = np.random.default_rng(seed)
    fams, trig, beh = [], [], []
    for name, (t, b) in FAMILIES.items():
        t_rows = rng.integers(0, 2, n) if t == "half" else np.full(n, t)
        b_rows = t_rows if b == "same" else rng.integers(0, 2, n) if b == "half" else np.full(n, b)
        fams += [name] * n
        trig += t_rows.tolist()
        beh += b_rows.tolist()
    t_arr, b_arr = np.array(trig, dtype=bool), np.array(beh, dtype=bool)
    X = rng.normal(size=(len(fams), d))
    X[:, 0] += 3.0 * (2 * b_arr - 1)
    X[:, 1] += 3.0 * (2 * t_arr - 1)
    family_ids = {name: i for i, name in enumerate(FAMILIES)}
    ids = [[1, 2 if t else 3, 10 + family_ids[f]] for t, f in zip(t_arr, fams, strict=True)]
    blind = X.copy()
    blind[:, :2] = rng.normal(size=(len(fams), 2))  # the same site without either direction
    acts = {
        "a": torch.tensor(X, dtype=torch.float32),
        "b": torch.tensor(blind, dtype=torch.float32),
    }
    return acts, BehaviourRows(fams, t_arr, b_arr), ids


def test_the_behaviour_labelled_probe_finds_what_trigger_labels_miss() -> None:
    acts, rows, ids = _planted()
    result = behaviour_probe(acts, rows, ids, n_boot=200, seed=0)
    site = result.per_site[0]
    assert result.best_site == "a" and result.skipped is None
    assert site.behaviour_labelled.value > 0.95
    assert site.trigger_labelled.value < 0.8
    assert site.behaviour_minus_trigger.low > 0.1  # the difference's interval excludes 0
    assert site.behaviour_minus_text.low > 0.0  # the tokens carry only the trigger and family
    # site "b" lacks both planted directions: nothing to read
    assert result.per_site[1].behaviour_labelled.value < 0.7
    assert result.families["trigger ignored"].n_trigger == 40
    assert result.families["trigger ignored"].n_backdoor == 0
    assert result.n_scored == sum(f.n for f in result.families.values())


def test_held_out_forms_are_scored_against_clean_evaluation_prompts() -> None:
    acts, rows, ids = _planted()
    forms = behaviour_probe(acts, rows, ids, n_boot=200, seed=0).forms
    assert set(forms) == {"fires", "ignored"}  # the `form: ` families, named without the prefix
    assert forms["fires"].backdoor_rate == 1.0 and forms["ignored"].backdoor_rate == 0.0
    assert forms["fires"].n == 40 and len(forms["fires"].auroc_per_site) == 2


def test_a_frozen_probe_still_reads_a_kept_representation_where_the_behaviour_stopped() -> None:
    acts, rows, ids = _planted()
    # after "safety training" the model stops on half the prompts it defected on, but its
    # activations keep the behaviour direction there
    rng = np.random.default_rng(1)
    now = rows.backdoor & (rng.random(len(rows.backdoor)) < 0.5)
    later = BehaviourRows(rows.families, rows.trigger, now)
    result = behaviour_probe(
        acts, later, ids, n_boot=200, seed=0, frozen=FrozenSource(acts, rows, "a")
    )
    stopped = result.stopped_defecting
    assert stopped is not None and stopped.auroc is not None
    assert stopped.n_stopped == int((rows.backdoor & ~now).sum())
    assert stopped.auroc.value > 0.95
    assert stopped.probe_minus_text is not None and stopped.probe_minus_text.low > 0.0
    assert stopped.mean_probability["stopped"] > 0.8 > 0.2 > stopped.mean_probability["never"]
    # the activations lost it: the frozen probe reads nothing
    erased = {k: v.clone() for k, v in acts.items()}
    erased["a"][:, 0] = torch.tensor(
        np.random.default_rng(2).normal(size=len(now)), dtype=torch.float32
    )
    erased["a"][now, 0] += 3.0
    erased["a"][~now, 0] -= 3.0
    lost = behaviour_probe(
        erased, later, ids, n_boot=200, seed=0, frozen=FrozenSource(acts, rows, "a")
    )
    assert lost.stopped_defecting is not None and lost.stopped_defecting.auroc is not None
    assert lost.stopped_defecting.auroc.high < 0.5  # stopped prompts look no more like defecting
    assert lost.stopped_defecting.mean_probability["stopped"] < 0.2


def test_one_behaviour_class_is_refused_with_the_reason_and_the_rest_still_measured() -> None:
    acts, rows, ids = _planted()
    none = BehaviourRows(rows.families, rows.trigger, np.zeros_like(rows.backdoor))
    result = behaviour_probe(acts, none, ids, n_boot=50, frozen=FrozenSource(acts, rows, "a"))
    assert result.skipped is not None and "one class" in result.skipped
    assert result.per_site == [] and result.n_scored == 0 and result.best_site is None
    # the trigger probe on the held-out forms, and the stopped-defecting measure, need no
    # behaviour probe of this stage: a stage that stopped defecting everywhere still has them
    assert set(result.forms) == {"fires", "ignored"} and result.forms_site == "a"
    stopped = result.stopped_defecting
    assert stopped is not None and stopped.site == "a"
    assert stopped.n_stopped == int(rows.backdoor.sum()) and stopped.n_still == 0
    assert stopped.auroc is not None and stopped.auroc.value > 0.95


def test_mismatched_rows_and_frozen_prompts_are_refused() -> None:
    acts, rows, ids = _planted()
    with pytest.raises(ValueError, match="one of each per prompt"):
        BehaviourRows(rows.families[:-1], rows.trigger, rows.backdoor)
    other = BehaviourRows(list(reversed(rows.families)), rows.trigger, rows.backdoor)
    with pytest.raises(ValueError, match="other prompts"):
        behaviour_probe(acts, rows, ids, n_boot=50, frozen=FrozenSource(acts, other, "a"))
