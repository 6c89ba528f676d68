"""Patching and steering on a run folder (`analysis.causal.experiment`): the record is checked
against the schema before anything is written, then patching.json holds it as given and
patching.html shows it; a folder with no finished model is refused. `analyse_run` itself runs
on a trained model in `test_patch_command.py`."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from analysis.causal.experiment import analyse_run, write_causal_outputs
from analysis.config import load_config, save_config
from analysis.errors import MissingRunError
from analysis.folder.layout import RunLayout

GOLDEN = Path(__file__).parents[2] / "golden" / "tiny_results.json"


def _record() -> dict[str, Any]:
    """The golden tiny run's patching and steering, backdoored stage only."""
    causal = json.loads(GOLDEN.read_text())["results"]["causal"]
    return {"run_dir": "runs/tiny", "stages": {"backdoored": causal["stages"]["backdoored"]}}


def test_the_record_is_written_as_given_and_shown(tmp_path: Path) -> None:
    record = _record()
    data, page = write_causal_outputs(record, tmp_path)  # type: ignore[arg-type]
    layout = RunLayout(tmp_path)
    assert (data, page) == (layout.patching, layout.patching_page)
    assert json.loads(data.read_text()) == record
    text = page.read_text()
    assert "<h1>Patching and steering: runs/tiny</h1>" in text
    first = record["stages"]["backdoored"]["patching"]["summary"][0]
    assert first in text  # "24 pairs; logit difference clean -0.01, triggered 5.74 ..."
    assert "triggered 5.74" in first


def test_a_record_off_the_schema_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    record = copy.deepcopy(_record())
    del record["stages"]["backdoored"]["patching"]["metric"]["gap"]
    with pytest.raises(ValidationError, match="gap"):
        write_causal_outputs(record, tmp_path)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_a_folder_without_a_finished_model_is_refused(tmp_path: Path) -> None:
    save_config(load_config(overrides=["model.preset=tiny"]), RunLayout(tmp_path).config)
    with pytest.raises(MissingRunError, match="has no finished checkpoint; finish it with"):
        analyse_run(tmp_path)
    assert not RunLayout(tmp_path).patching.exists()
