"""How `make test` shares the default tier between its pytest-xdist workers (`-n 2 --dist loadfile`).

`--dist loadfile` sends each test file to one worker, so a file's module fixtures are built once.
`SharedRunScheduling` also sends every file that uses the shared tiny run (`tiny_run` in
tests/conftest.py, the costliest fixture: 60-80 s) to the same worker, so the run is built
once and not once per worker. The controller sees node ids, not fixtures, so a file counts as
using the run when its source names `tiny_run`.

(`--dist loadgroup` with `xdist_group` marks would say this per test, but under pytest 9.2 it
silently stops grouping: pytest-dev/pytest-xdist#1386.)
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from xdist.scheduler import LoadFileScheduling

SHARED_RUN = "tiny_run"


@cache
def uses_shared_run(path: Path) -> bool:
    """Whether the test file at `path` names the shared tiny run (a doctest's module: no)."""
    return path.name.startswith("test_") and SHARED_RUN in path.read_text()


def work_unit(nodeid: str, root: Path) -> str:
    """The work unit of a test: its file, or SHARED_RUN for a file that uses the tiny run.

    Example:
        >>> work_unit("probes/metrics.py::probes.metrics.auroc", Path("."))
        'probes/metrics.py'
    """
    file = nodeid.split("::", 1)[0]
    return SHARED_RUN if uses_shared_run(root / file) else file


class SharedRunScheduling(LoadFileScheduling):
    """`--dist loadfile`, with every file that uses the shared tiny run in one work unit."""

    def _split_scope(self, nodeid: str) -> str:
        return work_unit(nodeid, Path(self.config.rootpath))
