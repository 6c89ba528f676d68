"""The run report sets the trigger probe beside the text-only baseline, with the verdict, on a
real (tiny) run's results; a run made before the baseline existed still renders without it."""

from __future__ import annotations

import json
from pathlib import Path

from analysis.folder.results import Stage, check_results
from analysis.report.run_tables import summary_rows
from tests.analysis.real_results import real_results

GOLDEN = Path(__file__).resolve().parents[2] / "golden" / "tiny_results.json"


def test_each_stage_shows_the_baseline_and_whether_the_probe_beats_it() -> None:
    data = json.loads(GOLDEN.read_text())["results"]  # the golden file leaves out run_dir
    results = check_results({**data, "run_dir": "tiny"}, str(GOLDEN))
    rows = dict(summary_rows(results))
    for stage, s in results.stages.items():
        assert isinstance(s, Stage)
        probes = s.probes
        assert probes.text_baseline is not None and probes.probe_vs_text is not None
        # the baseline's threshold is set where the probes' operating points are
        assert probes.text_baseline.threshold_from == "calibration"
        assert len(probes.probe_vs_text) == len(probes.sites)
        value = rows[f"[{stage}] best-layer probe minus text baseline, AUROC (paired)"]
        versus = probes.probe_vs_text[probes.sites.index(probes.best_site)]
        verdict = "reads the prompt" if versus.reads_the_prompt else "beats the text baseline"
        assert value.endswith(verdict)
        assert f"[{stage}] text-only baseline AUROC (prompt token counts)" in rows


def test_a_run_without_the_baseline_has_no_baseline_rows() -> None:
    rows = dict(summary_rows(real_results()))
    assert not any("text baseline" in label for label in rows)
