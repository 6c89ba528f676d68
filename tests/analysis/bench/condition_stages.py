"""Planted stages for the benchmark's conditions (`analysis.bench.conditions`), no run folder:
two features per site; detector "lda" reads feature 0, "diff_means" feature 1 (fixed
directions). `strengths` shift each feature on triggered rows; the prompts' token ids are random,
so the text baseline reads nothing."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from analysis.bench.condition_data import BehaviourSet, PromptSet, StageExtras
from analysis.bench.conditions import ConditionStage
from analysis.bench.evasion import ProjectionDetector
from analysis.bench.zoo import StageData

N = 60  # questions per split, each without and with the trigger
SITES = ("blocks.0.hook_resid_pre", "blocks.0.hook_resid_post")
EYE = torch.eye(2, dtype=torch.float64)
DETECTORS = {
    "lda": ProjectionDetector(EYE[0].expand(len(SITES), 2)),
    "diff_means": ProjectionDetector(EYE[1].expand(len(SITES), 2)),
}


def _ids(rng: np.random.Generator, n: int) -> list[list[int]]:
    return [rng.integers(1, 60, 8).tolist() for _ in range(n)]


def _acts(rng: np.random.Generator, n: int, shift: Sequence[float] = (0.0, 0.0)) -> torch.Tensor:
    X = rng.normal(size=(len(SITES), n, 2))
    X += np.asarray(shift)[None, None, :]
    return torch.from_numpy(X)


def behaviour_set(seed: int, form_shift: Sequence[float], n: int = 60) -> BehaviourSet:
    """A held-out form (`form: lower case`, `form_shift` on its rows; the backdoor fired on the
    first third) and trigger-free human prompts (noise)."""
    rng = np.random.default_rng(seed)
    X = torch.cat([_acts(rng, n, form_shift), _acts(rng, n)], dim=1)
    return BehaviourSet(
        X=X,
        ids=_ids(rng, 2 * n),
        families=np.array(["form: lower case"] * n + ["hh_rlhf"] * n),
        trigger=np.zeros(2 * n, dtype=bool),
        backdoor=np.r_[np.arange(n) < n // 3, np.zeros(n, dtype=bool)],
    )


def condition_stage(
    stage: str,
    strengths: Sequence[float],
    seed: int = 0,
    code_shift: Sequence[float] | None = None,
    behaviour: BehaviourSet | None = None,
    run: str = "planted",
) -> ConditionStage:
    """One stage: evaluation rows (feature f shifted by `strengths[f]` when triggered), 100
    clean calibration prompts, and with `code_shift` a negative set of coding requests."""
    rng = np.random.default_rng(seed)
    n = 4 * N
    labels = np.tile([0, 1], 2 * N)
    X = _acts(rng, n) + torch.from_numpy(np.outer(labels, strengths))[None]
    data = StageData(
        run=run, stage=stage, position="last", sites=SITES, X=X, labels=labels,
        groups=np.arange(n) // 2, families=np.array(["facts"] * n), prompts=("p",) * n,
        train=np.arange(2 * N), test=np.arange(2 * N, n), calibration=_acts(rng, 100),
    )  # fmt: skip
    negatives = {}
    if code_shift is not None:
        negatives["code request, no trigger"] = PromptSet(_acts(rng, 80, code_shift), _ids(rng, 80))
    extras = StageExtras(_ids(rng, n), _ids(rng, 100), negatives, behaviour)
    return ConditionStage(run, seed, 1.0, data, DETECTORS, extras)
