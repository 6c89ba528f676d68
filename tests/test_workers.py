"""`make test`'s split of the default tier between pytest-xdist workers (tests/workers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.workers import SHARED_RUN, uses_shared_run, work_unit

HERE = Path(__file__).parent


def test_a_test_file_naming_the_tiny_run_counts_and_others_do_not(tmp_path: Path) -> None:
    (tmp_path / "test_uses.py").write_text("def test_it(tiny_run):\n    assert tiny_run\n")
    (tmp_path / "test_other.py").write_text("def test_it(trained):\n    assert trained\n")
    (tmp_path / "helper.py").write_text("tiny_run = None  # not a test file\n")
    assert uses_shared_run(tmp_path / "test_uses.py")
    assert not uses_shared_run(tmp_path / "test_other.py")
    assert not uses_shared_run(tmp_path / "helper.py")


def test_the_files_sharing_the_tiny_run_form_one_work_unit() -> None:
    root = HERE.parent
    golden = "tests/test_golden_results.py::test_tiny_run_results_equal_the_golden_file"
    compare = "tests/analysis/folder/test_compare.py::test_a_run_agrees_with_itself"
    assert work_unit(golden, root) == work_unit(compare, root) == SHARED_RUN
    threads = "tests/probes/test_threads.py::test_iteration_work_per_solver"
    assert work_unit(threads, root) == "tests/probes/test_threads.py"
    doctest = "probes/metrics.py::probes.metrics.auroc"
    assert work_unit(doctest, root) == "probes/metrics.py"


def test_every_collected_test_of_the_tiny_run_is_in_that_unit(
    request: pytest.FixtureRequest,
) -> None:
    """A test that reaches `tiny_run` from a file that never names it would build the run on a
    second worker: name it in the file (or in a fixture there)."""
    using = {
        Path(item.path)
        for item in request.session.items
        if SHARED_RUN in getattr(item, "fixturenames", ())
    }
    missed = sorted(
        str(path.relative_to(HERE.parent)) for path in using if not uses_shared_run(path)
    )
    assert not missed, f"these files use the tiny run without naming it: {missed}"
