"""The run report's behaviour-probe section (`analysis.report.behaviour_probe`) on a real (tiny)
run's results: each stage's row, the stopped-defecting table after the backdoored stage, the
held-out forms; a run made before the behaviour probe existed renders without it."""

from __future__ import annotations

import json
from pathlib import Path

from analysis.folder.results import check_results
from analysis.report.behaviour_probe import (
    behaviour_probe_section,
    behaviour_probes,
    behaviour_summary_rows,
)
from analysis.report.run_tables import summary_rows
from tests.analysis.real_results import real_results

GOLDEN = Path(__file__).resolve().parents[2] / "golden" / "tiny_results.json"


def test_every_stage_has_its_row_and_later_stages_the_stopped_table() -> None:
    data = json.loads(GOLDEN.read_text())["results"]  # the golden file leaves out run_dir
    results = check_results({**data, "run_dir": "tiny"}, str(GOLDEN))
    probes = behaviour_probes(results)
    assert list(probes) == list(results.stages)
    page = behaviour_probe_section(results)
    for stage in probes:
        assert f"<td>{stage}</td>" in page
    assert "still read?" in page and "trigger forms it never saw" in page
    rows = dict(summary_rows(results))
    for stage, b in probes.items():
        mine = behaviour_summary_rows(stage, b)
        assert mine and all(rows[label] == value for label, value in mine)


def test_a_run_without_behaviour_probes_has_no_section() -> None:
    results = real_results()
    assert behaviour_probes(results) == {}
    assert behaviour_probe_section(results) == ""
    assert not any("behaviour-labelled" in label for label, _ in summary_rows(results))
