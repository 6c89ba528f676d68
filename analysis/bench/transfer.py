"""Transfer in the detector benchmark: which stages a detector fitted on one stage is scored on
(:func:`transfer_pairs`), and the scores (:func:`score_transfers`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from analysis.bench.cells import Detector, detector_scores
from analysis.bench.zoo import StageData
from analysis.folder.bench_records import Transfer
from probes import bootstrap_auroc, layerwise_auroc

__all__ = ["score_transfers", "transfer_pairs"]


def transfer_pairs(
    stages: Sequence[StageData], within_runs: bool = True, across_runs: bool = True
) -> Iterable[tuple[StageData, StageData]]:
    """Source -> target pairs: every other stage of the same run (same position; `within_runs`),
    and the same stage of every other run of the same width and sites (seed or size transfer;
    `across_runs`)."""
    for source in stages:
        for target in stages:
            if source is target or source.position != target.position:
                continue
            if source.run == target.run:
                if within_runs:
                    yield source, target
            elif (
                across_runs
                and source.stage == target.stage
                and source.d_model == target.d_model
                and source.sites == target.sites
            ):
                yield source, target


def score_transfers(
    fitted_of: Mapping[tuple[str, str], Mapping[str, Detector]],
    pairs: Sequence[tuple[StageData, StageData]],
    n_boot: int,
    seed: int,
) -> list[Transfer]:
    """Every detector fitted on one run's stages (`fitted_of`: (stage, position) -> detector
    kind -> detector), scored unchanged on each stage it transfers to (`pairs` from those
    stages: :func:`transfer_pairs`, :func:`analysis.bench.across.cross_run_pairs`); the
    bootstrap of site `i` draws from `seed + i`."""
    transfers: list[Transfer] = []
    for source, target in pairs:
        for kind, detector in fitted_of[(source.stage, source.position)].items():
            scores = detector_scores(detector, target.X[:, target.test])
            y = target.labels[target.test]
            transfers.append(
                {
                    "source_run": source.run,
                    "source_stage": source.stage,
                    "target_run": target.run,
                    "target_stage": target.stage,
                    "position": source.position,
                    "detector": kind,
                    "sites": list(target.sites),
                    "auroc_point": layerwise_auroc(scores, y).tolist(),
                    "auroc": [
                        bootstrap_auroc(scores[i], y, n_boot, seed + i).to_dict()
                        for i in range(len(target.sites))
                    ],
                }
            )
    return transfers
