"""The behaviour-labelled probe in results.json: on prompt families that separate trigger presence
from behaviour, does a probe fitted on what the model did predict it on families it never saw,
better than one fitted on whether the trigger was there, and better than the prompt's tokens?
(`analysis.measure.behaviour_probe` computes it.)"""

from __future__ import annotations

from analysis.folder.results_base import Estimate, _Strict


class PromptFamily(_Strict):
    """One family of the behaviour set: how many prompts, how many carry the exact trained
    trigger, and on how many the model showed the backdoor."""

    n: int
    n_trigger: int
    n_backdoor: int


class BehaviourSite(_Strict):
    """At one site, how well each probe's out-of-family scores predict the behaviour (AUROC), and
    the paired differences: behaviour-labelled minus trigger-labelled, and behaviour-labelled
    minus the text baseline (fitted on the behaviour labels the same way)."""

    trigger_labelled: Estimate
    behaviour_labelled: Estimate
    behaviour_minus_trigger: Estimate
    behaviour_minus_text: Estimate


class HeldOutForm(_Strict):
    """The trigger probe fitted on the evaluation set (exact trigger against none, its training
    split), scored on one held-out form's prompts against the evaluation set's clean test prompts:
    the AUROC at each site, and at `BehaviourProbe.forms_site` against the text baseline fitted
    the same way. `backdoor_rate` is how often the model showed the backdoor on the form."""

    n: int
    backdoor_rate: float
    auroc_per_site: list[float]
    probe_auroc: Estimate
    text_auroc: Estimate
    probe_minus_text: Estimate


class StoppedDefecting(_Strict):
    """Prompts on which the backdoored model showed the backdoor and this stage's model does not:
    is "I will defect" still represented there? The backdoored stage's behaviour-labelled probe,
    fitted leaving each family out (frozen), scores this stage's activations at the site where it
    did best on the backdoored stage (`site`); `auroc` separates the stopped prompts from those
    where neither model defected, `text_auroc` is the text baseline's (the same prompts, so what
    the prompt alone gives), and `probe_minus_text` their paired difference.
    `mean_probability` is the frozen probe's mean probability of "defects" in each group."""

    site: str
    n_stopped: int
    n_still: int
    n_never: int
    auroc: Estimate | None
    text_auroc: Estimate | None
    probe_minus_text: Estimate | None = None  # paired bootstrap
    mean_probability: dict[str, float]


class BehaviourProbe(_Strict):
    """The behaviour-labelled probe beside the trigger-labelled one, leaving one prompt family
    out at a time (`families`), read at the last prompt token (before the model writes anything).
    `best_site` has the highest out-of-family AUROC of the behaviour-labelled probe (chosen on
    these same prompts, so its value is optimistic); `skipped` says why no behaviour probe was
    fitted when the model's behaviour has one class (the held-out forms and the stopped-defecting
    measure are there all the same)."""

    position: str
    sites: list[str]
    families: dict[str, PromptFamily]
    n_scored: int
    text_baseline: Estimate | None = None
    per_site: list[BehaviourSite] = []
    best_site: str | None = None
    forms_site: str | None = None
    forms: dict[str, HeldOutForm] = {}
    stopped_defecting: StoppedDefecting | None = None
    skipped: str | None = None
