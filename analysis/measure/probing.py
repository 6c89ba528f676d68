"""What the activations show: a logistic probe per layer for "trigger present", scored on held-out
questions, beside two controls (shuffled labels; the prompt's length alone).

The split is by question (`analysis.folder.splits`): the triggered and clean versions of a question
are always in the same split, so the probe cannot pass by recognising a question it has seen.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from analysis.folder.splits import split_by_group
from analysis.measure.monitoring import MonitorActs, operating_points
from analysis.measure.records import (
    ProbeVsTextRecord,
    TextBaselineRecord,
    TriggerProbeRecord,
    estimate_record,
)
from probes import LayerwiseLogisticProbe, bootstrap_auroc, layerwise_auroc, shuffled_label_null
from probes.metrics import auroc
from probes.text_baseline import probe_vs_text, text_baseline_result


def probe_layers(
    activations: Mapping[str, Float[Tensor, "n d"]],
    labels: Sequence[bool],
    groups: Sequence[int],
    prompt_lengths: Sequence[int],
    train_fraction: float = 0.5,
    C: float = 1.0,
    seed: int = 0,
    n_boot: int = 1000,
    n_permutations: int = 20,
    monitor: MonitorActs | None = None,
    prompt_ids: Sequence[Sequence[int]] | None = None,
    calibration_ids: Sequence[Sequence[int]] | None = None,
) -> TriggerProbeRecord:
    """Fit one probe per activation site at once; AUROC on the held-out split with intervals.

    Controls: the mean (and 2.5-97.5 percentile range) of held-out AUROC over `n_permutations`
    shuffles of the training labels, and the AUROC of the prompt's token count alone (the
    trigger lengthens the prompt, so anything that reads position can look like a detector).
    With `monitor`, also each site's operating point (`analysis.measure.monitoring`): TPR at 1% FPR on
    held-out clean prompts and the worst-case FPR across the test sets. With `prompt_ids` (each
    prompt's token ids), the text-only baseline on the same split (`probes.text_baseline`) and
    each site's probe against it: a probe that does not beat it reads the prompt. With
    `calibration_ids` (the monitor's clean calibration prompts' token ids) the baseline's TPR
    threshold is set on them, as the probes' operating points are; otherwise on the test
    negatives.
    """
    names = list(activations)
    X = torch.stack([activations[n] for n in names]).double()  # [layers, n, d]
    y = np.asarray(labels, dtype=int)
    train, test = split_by_group(groups, train_fraction, seed)
    for split, idx in (("train", train), ("test", test)):
        if len(np.unique(y[idx])) < 2:
            raise ValueError(
                f"The {split} split has only one class; use more evaluation questions."
            )
    probe = LayerwiseLogisticProbe(C=C).fit(X[:, train], y[train])
    scores = probe.decision_function(X[:, test]).cpu().numpy()  # [layers, n_test]
    point = layerwise_auroc(scores, y[test])
    intervals = [
        estimate_record(bootstrap_auroc(scores[i], y[test], n_boot=n_boot, seed=seed + i))
        for i in range(len(names))
    ]
    null = shuffled_label_null(
        X[:, train], y[train], X[:, test], y[test], seed=seed, C=C, n_permutations=n_permutations
    )  # [permutations, layers]
    lengths = np.asarray(prompt_lengths, dtype=float)
    best = int(np.argmax(point))
    out: TriggerProbeRecord = {
        "sites": names,
        "auroc": intervals,
        "auroc_point": point.tolist(),
        "shuffled_label_auroc": null.mean(axis=0).tolist(),
        "shuffled_label_auroc_95": np.percentile(null, [2.5, 97.5], axis=0).T.tolist(),
        "n_permutations": n_permutations,
        "length_only_auroc": auroc(lengths[test], y[test]),
        "best_site": names[best],
        "best_auroc": intervals[best],
        "n_train": int(len(train)),
        "n_test": int(len(test)),
        "best_site_test_scores": scores[best].tolist(),
        "test_labels": y[test].tolist(),
    }
    if monitor is not None:

        def score(acts: Mapping[str, Tensor]) -> np.ndarray:
            stacked = torch.stack([acts[n] for n in names]).double()
            return probe.decision_function(stacked).cpu().numpy()

        points = operating_points(
            scores,
            y[test],
            [monitor.test_set_names[i] for i in test],
            score(monitor.calibration),
            {name: score(acts) for name, acts in monitor.negatives.items()},
            n_boot=n_boot,
            seed=seed,
        )
        out["operating_points"] = points
        out["best_operating_point"] = points[best]
    if prompt_ids is not None:
        text, versus = _against_text(
            prompt_ids, y, train, test, scores, C, n_boot, seed, calibration_ids
        )
        out["text_baseline"], out["probe_vs_text"] = text, versus
    return out


def _against_text(
    prompt_ids: Sequence[Sequence[int]],
    y: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    scores: Float[np.ndarray, "sites n_test"],
    C: float,
    n_boot: int,
    seed: int,
    calibration_ids: Sequence[Sequence[int]] | None = None,
) -> tuple[TextBaselineRecord, list[ProbeVsTextRecord]]:
    """The text baseline on the probe's split, and each site's probe against it."""
    if len(prompt_ids) != len(y):
        raise ValueError(f"{len(prompt_ids)} prompts' token ids for {len(y)} labels.")
    ids = [list(prompt_ids[i]) for i in range(len(y))]
    b = text_baseline_result(
        [ids[i] for i in train], y[train], [ids[i] for i in test], y[test], C=C,
        n_boot=n_boot, seed=seed,
        calibration_ids=None if calibration_ids is None else [list(c) for c in calibration_ids],
    )  # fmt: skip
    text: TextBaselineRecord = {
        "auroc": estimate_record(b.auroc),
        "tpr": estimate_record(b.tpr),
        "target_fpr": b.target_fpr,
        "threshold": b.threshold,
        "threshold_from": b.threshold_from,
        "fpr_on_test_negatives": b.fpr_on_test_negatives,
        "n_train": b.n_train,
        "n_features": b.n_features,
        "C": b.C,
    }
    versus: list[ProbeVsTextRecord] = []
    for i, site in enumerate(scores):
        v = probe_vs_text(site, b.test_scores, y[test], n_boot=n_boot, seed=seed + i)
        versus.append(
            {
                "probe_auroc": estimate_record(v.probe_auroc),
                "text_auroc": estimate_record(v.text_auroc),
                "difference": estimate_record(v.difference),
                "reads_the_prompt": v.reads_the_prompt,
            }
        )
    return text, versus


def transfer_auroc(
    source: Mapping[str, Float[Tensor, "n d"]],
    target: Mapping[str, Float[Tensor, "n d"]],
    labels: Sequence[bool],
    groups: Sequence[int],
    train_fraction: float = 0.5,
    C: float = 1.0,
    seed: int = 0,
) -> list[float]:
    """Fit the probe on `source` activations (train split), score it unchanged on `target`
    activations of the same prompts (test split): does one model's trigger direction still
    separate the classes in another (e.g. the backdoored model's probe after safety training)?

    Results follow the order of `target`'s sites (a mapping loaded from safetensors comes back
    sorted by name, so the order of `source` is not trusted).
    """
    names = list(target)
    if set(source) != set(names):
        raise ValueError(
            f"Source and target have different sites: {sorted(names)} vs {sorted(target)}."
        )
    y = np.asarray(labels, dtype=int)
    train, test = split_by_group(groups, train_fraction, seed)
    X_src = torch.stack([source[n] for n in names]).double()
    X_tgt = torch.stack([target[n] for n in names]).double()
    probe = LayerwiseLogisticProbe(C=C).fit(X_src[:, train], y[train])
    return layerwise_auroc(probe.decision_function(X_tgt[:, test]).cpu().numpy(), y[test]).tolist()
