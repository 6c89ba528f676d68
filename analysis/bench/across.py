"""Transfer across named settings: a detector fitted on one run, scored unchanged on the same
stage of a run that differs from it only in those settings (a probe fitted on a LoRA model
scored on the fully fine-tuned model of the same seed), and the table of those transfers by
setting, mean over seeds, beside the target's own detector.

Two runs are paired when their resolved configs (`config.resolved.yaml`) agree on every setting
except the named keys (a key names a setting or a whole section) and `model.device` (where a run
ran, not what it is): so the same seed, mechanism and training length. A stage of a pair is
scored only where both runs evaluated the same prompts with the same split and width;
otherwise it is skipped with the reason.

Example::

    settings = {run.name: flat_settings(run.folder.cfg.to_dict()) for run in runs}
    check_keys(["model.finetune", "model.lora_rank"], settings)
    pairs, skipped = cross_run_pairs(stages, settings, ["model.finetune", "model.lora_rank"])
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from analysis.bench.zoo import StageData
from analysis.errors import InputError
from analysis.folder.bench_records import (
    EstimateJson,
    SkippedTransfer,
    StageRow,
    Transfer,
    TransferAcrossPair,
    TransferAcrossRow,
)
from probes import Estimate, t_interval

# Settings that say where a run ran, not what it is: never a reason not to pair two runs.
IGNORED = ("model.device",)


def is_seed_key(key: str) -> bool:
    """A setting that only changes a seed (runs differing in it are repeats of one experiment)."""
    return key == "seed" or key.endswith(".seed")


def flat_settings(config: Mapping[str, object], prefix: str = "") -> dict[str, str]:
    """A resolved config as dotted keys -> its value as JSON text (lists compare as lists).

    >>> flat_settings({"seed": 0, "model": {"finetune": "lora", "betas": [0.9, 0.98]}})
    {'seed': '0', 'model.finetune': '"lora"', 'model.betas': '[0.9, 0.98]'}
    """
    out: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flat_settings(value, f"{name}."))
        else:
            out[name] = json.dumps(value)
    return out


def _under(setting: str, key: str) -> bool:
    return setting == key or setting.startswith(f"{key}.")


def unknown_keys(keys: Sequence[str], known: Iterable[str]) -> list[str]:
    """The keys that name neither a setting of `known` nor a section of them.

    >>> unknown_keys(["model", "model.finetune", "model.fine"], ["model.finetune", "seed"])
    ['model.fine']
    """
    settings = list(known)
    return [k for k in keys if not any(_under(s, k) for s in settings)]


def check_keys(keys: Sequence[str], settings: Mapping[str, Mapping[str, str]]) -> None:
    """Refuse keys that name no setting (nor section) of the runs' configs, in one error."""
    known = set().union(*(s.keys() for s in settings.values())) if settings else set()
    unknown = unknown_keys(keys, known)
    if unknown:
        sections = sorted({s.split(".")[0] for s in known})
        raise InputError(
            f"transfer across {', '.join(map(repr, unknown))}: not a setting of the runs' "
            f"configs; name one as section.key (e.g. model.finetune) in one of "
            f"{', '.join(sections)}."
        )


def differs_only_in(a: Mapping[str, str], b: Mapping[str, str], keys: Sequence[str]) -> bool:
    """Whether two runs' settings agree on everything outside `keys` (and IGNORED)."""
    free = [*keys, *IGNORED]
    for setting in set(a) | set(b):
        if any(_under(setting, k) for k in free):
            continue
        if a.get(setting) != b.get(setting):
            return False
    return True


# what a fully fine-tuned run's config still holds, unused: left out of its label
_LORA_ONLY = ("model.lora_rank", "model.lora_alpha")


def _label(settings: Mapping[str, str], chosen: Sequence[str]) -> str:
    full = _plain(settings.get("model.finetune", '""')) == "full"
    shown = [s for s in chosen if s in settings and not (full and s in _LORA_ONLY)]
    return ", ".join(f"{s}={_plain(settings[s])}" for s in shown)


def _plain(text: str) -> str:
    value = json.loads(text)
    return value if isinstance(value, str) else text


@dataclass(frozen=True)
class RunLabels:
    """What a run is in the table: its values of the keys, and of the other settings that vary
    across the benchmarked runs (seeds and IGNORED aside)."""

    across: str
    context: str


def run_labels(
    settings: Mapping[str, Mapping[str, str]], keys: Sequence[str]
) -> dict[str, RunLabels]:
    """Each run's labels (:class:`RunLabels`), naming only settings that vary across the runs
    for the context, and every setting under the keys for the label.

    >>> runs = {"a": {"seed": "0", "model.finetune": '"lora"', "train.steps": "80"},
    ...         "b": {"seed": "1", "model.finetune": '"full"', "train.steps": "80"}}
    >>> run_labels(runs, ["model.finetune"])["a"]
    RunLabels(across='model.finetune=lora', context='')
    >>> full = {"model.finetune": '"full"', "model.lora_rank": "16"}
    >>> run_labels({"c": full}, ["model.finetune", "model.lora_rank"])["c"].across
    'model.finetune=full'
    """
    every = sorted(set().union(*(s.keys() for s in settings.values()))) if settings else []
    varying = [
        s
        for s in every
        if len({v.get(s) for v in settings.values()}) > 1
        and not is_seed_key(s)
        and s not in IGNORED
        and not any(_under(s, k) for k in keys)
    ]
    under = [s for s in every if any(_under(s, k) for k in keys)]
    return {
        name: RunLabels(_label(values, under), _label(values, varying))
        for name, values in settings.items()
    }


def stage_mismatch(source: StageData, target: StageData) -> str | None:
    """Why one run's stage cannot be scored with another's detectors as the same questions
    (None when it can): other sites or width, other evaluation prompts, another split."""
    if source.sites != target.sites or source.d_model != target.d_model:
        return (
            f"other sites or width ({len(source.sites)} sites of {source.d_model} against "
            f"{len(target.sites)} of {target.d_model})"
        )
    if source.prompts != target.prompts:
        if len(source.prompts) != len(target.prompts):
            return f"other evaluation prompts ({len(source.prompts)} against {len(target.prompts)})"
        first = next(
            i for i, (a, b) in enumerate(zip(source.prompts, target.prompts, strict=True)) if a != b
        )
        return f"other evaluation prompts (the first differs at prompt {first})"
    if not (
        np.array_equal(source.train, target.train) and np.array_equal(source.test, target.test)
    ):
        return "another train/test split of the same prompts"
    return None


def cross_run_pairs(
    stages: Sequence[StageData],
    settings: Mapping[str, Mapping[str, str]],
    keys: Sequence[str],
) -> tuple[list[tuple[StageData, StageData]], list[SkippedTransfer]]:
    """Source -> target pairs of the same stage and position of two runs whose settings differ
    only in `keys` (:func:`differs_only_in`), and the stages of such runs left out, with why."""
    runs = list(dict.fromkeys(s.run for s in stages))
    by_run: dict[str, dict[tuple[str, str], StageData]] = {r: {} for r in runs}
    for s in stages:
        by_run[s.run][(s.stage, s.position)] = s
    pairs: list[tuple[StageData, StageData]] = []
    skipped: list[SkippedTransfer] = []
    for a in runs:
        for b in runs:
            if a == b or not differs_only_in(settings[a], settings[b], keys):
                continue
            for (stage, position), source in by_run[a].items():
                target = by_run[b].get((stage, position))
                reason = (
                    f"{b} has no analysed stage {stage}"
                    if target is None
                    else stage_mismatch(source, target)
                )
                if reason is not None:
                    if position == "last":  # one line per stage, not per token position
                        skipped.append(
                            {"source_run": a, "target_run": b, "stage": stage, "reason": reason}
                        )
                    continue
                assert target is not None
                pairs.append((source, target))
    return pairs, skipped


def _mover(after: EstimateJson, before: EstimateJson) -> EstimateJson:
    """after - before with the MOVER interval of the two (Newcombe 1998)."""
    a, b = float(after["value"]), float(before["value"])
    return Estimate(
        value=a - b,
        low=a - b - math.hypot(a - float(after["low"]), float(before["high"]) - b),
        high=a - b + math.hypot(float(after["high"]) - a, b - float(before["low"])),
        n=int(after["n"]),
        method="difference of two bootstrap intervals (MOVER), one seed",
    ).to_dict()


def _mean(
    values: list[EstimateJson], seeds: list[int], bounds: tuple[float, float]
) -> EstimateJson:
    """The mean over the run pairs with its t interval (over seeds, or over run pairs where
    a seed has several); one pair: that pair's own (bootstrap) estimate."""
    if len(values) == 1:
        return dict(values[0])
    what = "seeds" if len(set(seeds)) == len(seeds) else "run pairs"
    return t_interval([float(v["value"]) for v in values], bounds, what=what).to_dict()


def transfer_across_rows(
    transfers: Sequence[Transfer],
    stage_rows: Sequence[StageRow],
    labels: Mapping[str, RunLabels],
    seeds: Mapping[str, int],
) -> list[TransferAcrossRow]:
    """The table of transfer across settings: per detector, stage, position and (source
    settings -> target settings, context), the mean over the seeds' run pairs of the AUROC of
    the source's detector on the target at the source's own best site and at the target's best
    site, beside the target's own detector at its best site, and the gap (own minus transfer,
    paired by seed). `transfers` are the cross-run ones; the others are ignored."""
    rows_of = {(r["run"], r["stage"], r["position"]): r for r in stage_rows}
    groups: dict[tuple[str, str, str, str, str, str], list[TransferAcrossPair]] = {}
    for t in transfers:
        if t["source_run"] == t["target_run"] or t["source_stage"] != t["target_stage"]:
            continue
        kind, stage, position = t["detector"], t["target_stage"], t["position"]
        source = rows_of[(t["source_run"], stage, position)]["detectors"][kind]
        target = rows_of[(t["target_run"], stage, position)]["detectors"][kind]
        i, j = source["best_index"], int(np.argmax(t["auroc_point"]))
        k = target["best_index"]
        src, dst = labels[t["source_run"]], labels[t["target_run"]]
        key = (kind, stage, position, src.across, dst.across, src.context)
        groups.setdefault(key, []).append(
            {
                "seed": seeds[t["source_run"]],
                "source_run": t["source_run"],
                "target_run": t["target_run"],
                "source_site": t["sites"][i],
                "transfer": t["auroc"][i],
                "best_target_site": t["sites"][j],
                "transfer_best_target_site": t["auroc"][j],
                "target_site": t["sites"][k],
                "target_own": target["cells"][k]["auroc"],
            }
        )
    out: list[TransferAcrossRow] = []
    for (kind, stage, position, src_label, dst_label, context), pairs in groups.items():
        seed_list = [p["seed"] for p in pairs]
        if len(pairs) == 1:
            gap = _mover(pairs[0]["target_own"], pairs[0]["transfer"])
        else:
            gaps = [float(p["target_own"]["value"]) - float(p["transfer"]["value"]) for p in pairs]
            what = "seeds" if len(set(seed_list)) == len(seed_list) else "run pairs"
            gap = t_interval(gaps, (-1.0, 1.0), what=what).to_dict()
        out.append(
            {
                "detector": kind,
                "stage": stage,
                "position": position,
                "source": src_label,
                "target": dst_label,
                "context": context,
                "transfer": _mean([p["transfer"] for p in pairs], seed_list, (0.0, 1.0)),
                "transfer_best_target_site": _mean(
                    [p["transfer_best_target_site"] for p in pairs], seed_list, (0.0, 1.0)
                ),
                "target_own": _mean([p["target_own"] for p in pairs], seed_list, (0.0, 1.0)),
                "gap": gap,
                "pairs": pairs,
            }
        )
    return out
