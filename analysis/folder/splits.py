"""The trigger probe's labels and its train/test split over a run's evaluation set, in one place:
the pipeline fits its probes with these, and so do the notebooks, `bench` and user scripts
(through `RunFolder.probe_split`), so a probe fitted outside the pipeline sees the same split.

The split is by question: the triggered and clean versions of a question always land in the
same split, so a probe cannot pass by recognising a question it has seen.

Example:
    >>> train, test = split_by_group([0, 0, 1, 1, 2, 2, 3, 3], 0.5, seed=0)
    >>> sorted(set(train.tolist()) | set(test.tolist())) == list(range(8))
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from jaxtyping import Int

from backdoor_models.behaviour.backdoor import BackdoorExample


def split_by_group(
    groups: Sequence[int], train_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the train and test examples; every group lands wholly in one split."""
    unique = np.unique(np.asarray(groups))
    rng = np.random.default_rng(seed)
    shuffled = rng.permutation(unique)
    n_train = int(round(train_fraction * len(unique)))
    if n_train < 1 or n_train >= len(unique):
        raise ValueError(
            f"{len(unique)} questions cannot be split {train_fraction:.0%}/{1 - train_fraction:.0%} "
            "with both splits non-empty; use more evaluation questions."
        )
    train_groups = set(shuffled[:n_train].tolist())
    in_train = np.array([g in train_groups for g in groups])
    return np.flatnonzero(in_train), np.flatnonzero(~in_train)


def labels_and_groups(eval_set: Sequence[BackdoorExample]) -> tuple[list[bool], list[int]]:
    """The trigger probe's labels (trigger present) and groups (one per question, so both
    versions of a question land in the same split), as the stage analysis fits them."""
    questions = {q: i for i, q in enumerate(dict.fromkeys(ex.base.question for ex in eval_set))}
    return [ex.triggered for ex in eval_set], [questions[ex.base.question] for ex in eval_set]


@dataclass(frozen=True)
class ProbeSplit:
    """Labels (1 = trigger present) for each evaluation prompt, and the rows of the probe's
    train and test split, as a run fitted its probes (`probes.json`)."""

    labels: Int[np.ndarray, " n"]
    groups: Int[np.ndarray, " n"]
    train: Int[np.ndarray, " n_train"]
    test: Int[np.ndarray, " n_test"]


def probe_split(
    eval_set: Sequence[BackdoorExample], train_fraction: float, seed: int
) -> ProbeSplit:
    """The probe's labels and split over `eval_set` (`RunFolder.probe_split` fills in the run's
    `probe.train_fraction` and seed)."""
    labels, groups = labels_and_groups(eval_set)
    train, test = split_by_group(groups, train_fraction, seed)
    return ProbeSplit(np.asarray(labels, dtype=int), np.asarray(groups), train, test)


def family_folds(families: Sequence[str]) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Leave-one-family-out folds: for each family (in order of first appearance), its name, the
    rows of every other family (train) and its own rows (test). No family is ever on both sides
    of a fold, and every row is tested exactly once.

    Example:
        >>> [(name, test.tolist()) for name, _, test in family_folds(["a", "b", "a"])]
        [('a', [0, 2]), ('b', [1])]
    """
    names = np.asarray(list(families), dtype=object)
    unique = list(dict.fromkeys(names.tolist()))
    if len(unique) < 2:
        raise ValueError(
            f"Leave-one-family-out needs at least two prompt families, got {unique}; add prompts "
            "of another family (e.g. held-out trigger forms, or human prompts)."
        )
    return [(name, np.flatnonzero(names != name), np.flatnonzero(names == name)) for name in unique]
