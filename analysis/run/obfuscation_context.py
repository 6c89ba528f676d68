"""What every attack of a run's obfuscation stage shares (:class:`AttackContext`): the attacked
layers and sites, the backdoored stage's activations and the detectors fitted on them (frozen
into tensors for the attack), the backdoor data and its triggered prompts, and the attack's
training settings. The stage and its measurements are in `analysis.run.obfuscation`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from transformer_lens import TransformerBridge

from analysis.bench.cells import Detector
from analysis.bench.evasion import fit_all
from analysis.bench.zoo import StageData, stage_data
from analysis.contrast.pairs import DEFAULT_PAIRS, resolve_pairs
from analysis.contrast.probe import contrast_directions
from analysis.errors import InputError
from analysis.folder.layout import BACKDOORED
from analysis.measure.precision import cache_in_run_precision
from analysis.obfuscation.attack import AttackHistory, obfuscate
from analysis.run.context import Run, tokenized
from backdoor_models.training.lm import TrainConfig
from hooks.caching import probe_sites, tokenize_prompts
from probes.frozen import FrozenDetector

__all__ = [
    "DETECTORS",
    "AttackContext",
    "attack_train_config",
    "attacked_layers",
    "attacked_site",
    "contrast_dirs",
    "stage_activations",
]

DETECTORS = ("logistic", "diff_means", "lda", "mahalanobis")  # bench's, plus contrast


def attacked_layers(run: Run, model: TransformerBridge) -> list[int]:
    """`obfuscation.layers`, or the middle block; an out-of-range layer is refused."""
    n_layers = int(model.cfg.n_layers)
    layers = list(run.cfg.obfuscation.layers or [n_layers // 2])
    bad = [layer for layer in layers if layer >= n_layers]
    if bad:
        raise InputError(
            f"obfuscation.layers {bad} are out of range: the model has blocks 0 to "
            f"{n_layers - 1}. Set obfuscation.layers to blocks in that range (or null for the "
            "middle one)."
        )
    return layers


def attacked_site(layer: int) -> str:
    return f"blocks.{layer}.hook_resid_post"


def stage_activations(run: Run, stage: str, sites: list[str], acts: Any = None) -> StageData:
    """A stage's activations on the evaluation questions with the run's probe split; `acts`
    (re-cached activations of the same prompts) instead of the stored ones."""
    return stage_data(
        run.layout.root.name,
        stage,
        run.layout.stage(BACKDOORED if acts is not None else stage),
        sites,
        run.cfg.probe.train_fraction,
        run.seeds.base,
        acts,
    )


def _frozen(
    fitted: Mapping[str, Detector], kinds: list[str], layers: list[int], data: StageData
) -> list[FrozenDetector]:
    """The attacked detectors as tensors, each standardised by its scores on the trigger-free
    training prompts of `data` (the stage it was fitted on)."""
    clean_rows = data.train[data.labels[data.train] == 0]
    out = []
    for kind in kinds:
        scores = fitted[kind].decision_function(data.X[:, clean_rows])
        for layer in layers:
            i = data.sites.index(attacked_site(layer))
            center, scale = float(scores[i].mean()), float(scores[i].std())
            det: Any = fitted[kind]  # a fitted linear or quadratic detector (probes.detectors)
            if kind == "mahalanobis":
                out.append(
                    FrozenDetector.quadratic(
                        kind, layer, det.mean_[i], det.precision_[i], center, scale
                    )
                )
            else:
                weight, bias = det.coef_[i], float(det.intercept_[i])
                out.append(FrozenDetector.linear(kind, layer, weight, bias, center, scale))
    return out


def contrast_dirs(run: Run, model: TransformerBridge, sites: list[str]) -> torch.Tensor | None:
    if not run.cfg.probe.contrast:
        return None
    pairs = resolve_pairs(run.cfg.probe.contrast_pairs or None, DEFAULT_PAIRS)
    dirs = contrast_directions(model, pairs, sites, batch_size=run.cfg.probe.batch_size)
    return torch.stack([dirs[s].double() for s in sites])


def _detector_kinds(run: Run) -> list[str]:
    return [*DETECTORS, *(["contrast"] if run.cfg.probe.contrast else [])]


def attack_train_config(run: Run, steps: int, seed_offset: int = 0) -> TrainConfig:
    cfg = run.cfg.obfuscation
    return TrainConfig(
        steps=steps,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        warmup_steps=min(cfg.warmup_steps, steps),
        eval_every=cfg.eval_every,
        checkpoint_every=cfg.eval_every,
        seed=run.cfg.seed + seed_offset,
    )


class AttackContext:
    """What every attack of the run shares: the backdoored stage's data, the sites, the backdoor
    data and the triggered training prompts."""

    def __init__(self, run: Run) -> None:
        backdoored = run.load(BACKDOORED)
        self.run = run
        self.layers = attacked_layers(run, backdoored)
        self.sites = probe_sites(backdoored)
        self.before = stage_activations(run, BACKDOORED, self.sites)
        self.kinds = _detector_kinds(run)
        self.fitted_before = fit_all(
            self.before, self.kinds, run.cfg.probe.C, contrast_dirs(run, backdoored, self.sites)
        )
        self.data = tokenized(run, run.train_set)
        triggered = [ex.prompt for ex in run.train_set if ex.triggered]
        if not triggered:
            raise InputError("The backdoor training set has no triggered prompt to attack with.")
        self.triggered = tokenize_prompts(backdoored, triggered)

    def frozen(self, fitted: Mapping[str, Detector], data: StageData) -> list[FrozenDetector]:
        return _frozen(fitted, list(self.run.cfg.obfuscation.detectors), self.layers, data)

    def train(
        self,
        model: TransformerBridge,
        detectors: list[FrozenDetector],
        lam: float,
        cfg: TrainConfig,
        directory: Path,
        desc: str,
        evaluate: Callable[[int], dict[str, float]] | None = None,
    ) -> AttackHistory:
        return obfuscate(
            model,
            self.run.spec,
            self.data,
            self.triggered,
            detectors,
            lam,
            cfg,
            directory,
            evaluate,
            self.run.progress,
            desc=desc,
        )

    def acts(self, model: TransformerBridge, sites: list[str] | None = None) -> Any:
        prompts = list(self.before.prompts)
        return cache_in_run_precision(
            model, prompts, sites or self.sites, "last", self.run.cfg.probe.batch_size
        )
