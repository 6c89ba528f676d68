"""The trigger probe's text-only baseline in results.json: logistic regression on the prompt's
token counts on the probe's split (`probes.text_baseline`), and each site's probe against it."""

from __future__ import annotations

from analysis.folder.results_base import Estimate, _Strict


class TextBaseline(_Strict):
    """The text-only baseline: logistic regression on the prompt's token unigram and bigram
    counts, on the probe's own split; TPR at `target_fpr` with the threshold set where
    `threshold_from` says: on the monitor's clean calibration prompts, as the probes' operating
    points are ("calibration"; runs before 2026-12-07 set it on the "test negatives")."""

    auroc: Estimate
    tpr: Estimate
    target_fpr: float
    threshold: float
    threshold_from: str
    fpr_on_test_negatives: float
    n_train: int
    n_features: int
    C: float


class ProbeVsText(_Strict):
    """A site's probe against the text baseline on the same test prompts: the AUROC difference
    (probe minus text) with a paired bootstrap; `reads_the_prompt` when it does not exceed 0."""

    probe_auroc: Estimate
    text_auroc: Estimate
    difference: Estimate
    reads_the_prompt: bool
