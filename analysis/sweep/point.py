"""One point of a sweep: the sweep folder's layout, and running (or resuming) one point's run
in its own folder under a lock. The body of a Ray task and of the in-process loop alike."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NotRequired, TypedDict

from analysis.config import RunConfig
from analysis.errors import InputError, RunExistsError
from analysis.folder.layout import RunLayout
from analysis.sweep.spec import Value
from backdoor_models.io.atomic import read_json

log = logging.getLogger(__name__)


class PointStatus(TypedDict):
    """A point's entry in status.json: its state (pending, submitted, running, done, failed) and
    settings; once done its seconds, once failed the error and its traceback."""

    state: str
    settings: dict[str, Value]
    seconds: NotRequired[float]
    error: NotRequired[str]
    traceback: NotRequired[str]


@dataclass(frozen=True)
class SweepLayout:
    """The sweep folder: the sweep as run (`sweep.yaml`), each run's state (`status.json`), the
    runs (`runs/<point>/`), the aggregate (`sweep.json`, `sweep.html`) and `bench/`."""

    root: Path

    @property
    def spec(self) -> Path:
        return self.root / "sweep.yaml"

    @property
    def status(self) -> Path:
        return self.root / "status.json"

    @property
    def results(self) -> Path:
        return self.root / "sweep.json"

    @property
    def report(self) -> Path:
        return self.root / "sweep.html"

    @property
    def bench(self) -> Path:
        return self.root / "bench"

    def run(self, name: str) -> Path:
        return self.root / "runs" / name


def run_finished(run_dir: Path) -> bool:
    """The run wrote its report (its last step)."""
    return "report" in RunLayout(run_dir).read_timing()


def check_same_config(run_dir: Path, cfg: RunConfig, name: str) -> None:
    """A partial run folder must hold this point's run, not another config's. The saved config
    is read as this version reads it (keys added since it was written take their defaults), so
    a sweep started by an older version resumes."""
    layout = RunLayout(run_dir)
    if not layout.config.is_file():
        return
    saved = layout.read_config().to_dict()
    wanted = cfg.to_dict()
    if saved != wanted:
        keys = sorted(
            f"{section}.{k}"
            for section, values in wanted.items()
            if isinstance(values, dict)
            for k in values
            if (saved.get(section) or {}).get(k) != values[k]
        ) or sorted(k for k in wanted if saved.get(k) != wanted[k])
        raise InputError(
            f"point {name}: {run_dir} holds a run with another config (differs in "
            f"{', '.join(keys[:5])}). Move that folder away, or run the sweep in a new folder."
        )


def run_point(cfg: RunConfig, run_dir: str, threads: int) -> float:
    """Run (or resume) one point's experiment with `threads` torch threads; its seconds. The
    body of a Ray task, and of the in-process loop; called again on a partial folder (a retried
    task, a restarted sweep), it resumes the run from its last finished step."""
    import torch

    from analysis.run.experiment import run_experiment

    folder = Path(run_dir)
    if not folder.parent.is_dir():  # the driver made runs/ before submitting anything
        raise InputError(
            f"the sweep folder {folder.parent.parent} is not visible on {socket.gethostname()}: "
            "on a Ray cluster, put the sweep folder on a file system every node mounts at the "
            "same path."
        )
    start = time.perf_counter()
    with _point_lock(folder):
        if run_finished(folder):  # finished by another process while this one waited
            return 0.0
        resume = RunLayout(folder).config.is_file()
        if not resume and folder.is_dir():
            _clear_unstarted(folder)
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            run_experiment(cfg, folder, resume=resume, progress=False)
        finally:
            torch.set_num_threads(before)  # the in-process executor leaves this process as it was
    return time.perf_counter() - start


def _clear_unstarted(folder: Path) -> None:
    """A run killed before its config was written leaves at most an empty folder and the
    temporary file of that first write: clear them so the run starts again. A folder holding
    anything else is not this point's run, and is left as it is."""
    for leftover in folder.glob(".*.tmp"):
        leftover.unlink(missing_ok=True)
    others = sorted(p.name for p in folder.iterdir())
    if others:
        raise RunExistsError(
            f"{folder} holds files that are not this point's run ({', '.join(others[:3])}"
            f"{', ...' if len(others) > 3 else ''}): move them away, then run the sweep again."
        )
    folder.rmdir()


@contextmanager
def _point_lock(folder: Path) -> Iterator[None]:
    """Hold `runs/.<point>.lock` while the point runs (waiting for another holder); the lock
    goes with its process, however that process ends."""
    try:
        import fcntl
    except ImportError:  # not on POSIX: no lock
        yield
        return
    with open(folder.parent / f".{folder.name}.lock", "a") as handle:
        waited = locked = False
        while not locked:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                locked = True
            except BlockingIOError:
                if not waited:
                    log.warning("sweep: %s is running in another process; waiting", folder.name)
                    waited = True
                time.sleep(0.5)
            except OSError as err:  # a file system without locks
                log.warning("sweep: cannot lock %s (%s); running unlocked", folder.name, err)
                break
        try:
            yield
        finally:
            if locked:
                fcntl.flock(handle, fcntl.LOCK_UN)


def read_status(sweep_dir: str | Path) -> dict[str, PointStatus]:
    """status.json of a sweep folder."""
    return dict(read_json(SweepLayout(Path(sweep_dir)).status))
