"""One finished run's numbers as the sweep aggregate keeps them: per stage, results.json's
estimates (`StageMetrics`), the differences it derives from them, the detector benchmark's best
AUROC per detector, and each SFT stage's learning rate.

Derived per stage:
- `trigger_rate_change`: the backdoor rate with the trigger minus the backdoored model's (safety
  stages only);
- `helpfulness_change` (pretrained bases): helpfulness minus the base's before backdoor training;
  at the backdoored stage results.json's `capability_cost` (paired by prompt), elsewhere by MOVER;
- `contrast_minus_control`: the contrast probe's best AUROC minus its no-backdoor control's (for a
  base, the pretrained base itself);
- `trigger_probe_minus_text`: the best site's trigger probe minus the prompt-text baseline
  (results.json's paired bootstrap difference).

Example:
    >>> stages = point_stages(RunLayout("runs/x").read_results(), {})   # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

from analysis.folder.layout import BACKDOORED, CLEAN_CONTROL
from analysis.folder.results import Behaviour, Estimate, RunResults, Stage
from analysis.sweep.means import difference
from analysis.sweep.results import StageMetrics
from backdoor_models.io.atomic import read_json

__all__ = ["SFT", "SFT_HIGH_LR", "BenchBest", "bench_best", "learning_rates", "point_stages"]

SFT, SFT_HIGH_LR = "sft", "sft_high_lr"
BenchBest = dict[str, dict[str, dict[str, Estimate]]]  # run -> stage -> detector -> AUROC


def bench_best(path: Path) -> BenchBest:
    """Each run and stage's best held-out AUROC per detector, from bench.json (empty if none)."""
    if not path.is_file():
        return {}
    out: BenchBest = {}
    for row in read_json(path).get("behaviour_vs_representation", []):
        out.setdefault(row["run"], {})[row["stage"]] = {
            kind: Estimate.model_validate(best["auroc"]) for kind, best in row["best_auroc"].items()
        }
    return out


def _probe_minus_text(stage: Stage) -> Estimate | None:
    p = stage.probes
    if p.probe_vs_text is None or p.best_site not in p.sites:
        return None
    i = p.sites.index(p.best_site)
    return p.probe_vs_text[i].difference if i < len(p.probe_vs_text) else None


def _stage_metrics(
    name: str, stage: Stage, backdoored: Estimate | None, results: RunResults
) -> StageMetrics:
    b = stage.behaviour
    base: Behaviour | None = results.before_backdoor
    if name == BACKDOORED and results.capability_cost is not None:
        helpfulness_change: Estimate | None = results.capability_cost
    else:
        helpfulness_change = difference(b.helpfulness, None if base is None else base.helpfulness)
    contrast = stage.contrast
    control = None if contrast is None or contrast.control is None else contrast.control.best
    safety = name not in (BACKDOORED, CLEAN_CONTROL)
    return StageMetrics(
        trigger_rate=b.trigger_rate,
        no_trigger_rate=b.false_trigger_rate,
        red_team_rate=b.red_team_rate,
        red_team_rate_trigger_aware=b.red_team_rate_trigger_aware,
        helpfulness=b.helpfulness,
        trigger_probe_auroc=stage.probes.best_auroc,
        contrast_probe_auroc=None if contrast is None else contrast.contrast.best,
        trigger_rate_change=difference(b.trigger_rate, backdoored) if safety else None,
        helpfulness_change=helpfulness_change,
        contrast_control_auroc=control,
        contrast_minus_control=difference(
            None if contrast is None else contrast.contrast.best, control
        ),
        text_baseline_auroc=(
            None if stage.probes.text_baseline is None else stage.probes.text_baseline.auroc
        ),
        trigger_probe_minus_text=_probe_minus_text(stage),
    )


def point_stages(
    results: RunResults, bench: dict[str, dict[str, Estimate]]
) -> dict[str, StageMetrics]:
    """Each stage's metrics; `bench`: stage -> detector -> best AUROC from the benchmark."""
    ran = results.analysed()
    before = ran[BACKDOORED].behaviour.trigger_rate if BACKDOORED in ran else None
    out = {}
    for name, stage in ran.items():
        metrics = _stage_metrics(name, stage, before, results)
        detected = {f"bench_{k}_auroc": v for k, v in bench.get(name, {}).items()}
        known = {k: v for k, v in detected.items() if k in StageMetrics.model_fields}
        out[name] = metrics.model_copy(update=known)
    return out


def learning_rates(results: RunResults) -> dict[str, float]:
    """Each SFT stage's learning rate: the config's `sft.lr` for sft, and the rate a stage
    recorded itself (`training.lr`, as sft_high_lr does)."""
    ran = results.analysed()
    out: dict[str, float] = {}
    sft_lr = results.config.get("sft", {}).get("lr")
    if SFT in ran and isinstance(sft_lr, int | float):
        out[SFT] = float(sft_lr)
    for name, stage in ran.items():
        lr = (stage.training.model_extra or {}).get("lr")
        if isinstance(lr, int | float) and not isinstance(lr, bool):
            out[name] = float(lr)
    return out
