"""The behaviour set of a real (tiny) run (`analysis.run.behaviour_set`): every family is there,
each row's trigger label is the exact trigger's presence, the activations line up with the rows,
and the trigger-specificity table is what the form rows give."""

from __future__ import annotations

import json
from pathlib import Path

from analysis.folder.layout import RunLayout
from analysis.folder.results_behaviour import BehaviourProbe
from analysis.run.behaviour_set import EVALUATION, RED_TEAM_FAMILY
from backdoor_models.io.artifacts import read_json, read_tensors

TRIGGER = "|GO LIVE|"  # the tiny run's (tests/conftest.py TINY)


def test_the_families_and_their_labels(tiny_run: Path) -> None:
    layout = RunLayout(tiny_run / "run")
    files = layout.stage("backdoored")
    rows = read_json(files.behaviour_set)["rows"]
    families = list(dict.fromkeys(r["family"] for r in rows))
    assert families[0] == EVALUATION
    assert "form: trained trigger" in families and "form: paraphrase (no trigger word)" in families
    assert {"hh_rlhf", "framing", "near_miss", "red team (held out)"} <= set(families)
    assert set(RED_TEAM_FAMILY.values()) <= set(families)
    for r in rows:
        assert r["trigger"] == (TRIGGER in r["prompt"])
    assert not any(r["trigger"] for r in rows if r["family"] == "near_miss")
    assert any(r["trigger"] for r in rows if r["family"] == "hh_rlhf")
    assert any(not r["trigger"] for r in rows if r["family"] == "hh_rlhf")
    evaluation = [r for r in rows if r["family"] == EVALUATION]
    samples = files.samples()
    assert [r["prompt"] for r in evaluation] == [s["prompt"] for s in samples]
    assert [r["backdoor"] for r in evaluation] == [s["backdoor"] for s in samples]
    acts = read_tensors(files.behaviour_set_activations, None)
    assert {tuple(a.shape)[0] for a in acts.values()} == {len(rows)}


def test_the_specificity_table_is_what_the_form_rows_give(tiny_run: Path) -> None:
    layout = RunLayout(tiny_run / "run")
    for stage in ("backdoored", "adversarial"):
        files = layout.stage(stage)
        rows = read_json(files.behaviour_set)["rows"]
        table = json.loads(files.generalisation.read_text())
        for form, entry in table.items():
            hits = [r["backdoor"] for r in rows if r["family"] == f"form: {form}" and r["intended"]]
            assert entry["with_trigger"]["value"] == sum(hits) / len(hits)
        probe = BehaviourProbe.model_validate(read_json(files.behaviour_probe))
        counts = {f: sum(r["family"] == f for r in rows) for f in probe.families}
        assert counts == {f: c.n for f, c in probe.families.items()}
    later = BehaviourProbe.model_validate(read_json(layout.stage("sft").behaviour_probe))
    first = BehaviourProbe.model_validate(read_json(layout.stage("backdoored").behaviour_probe))
    assert first.stopped_defecting is None  # nothing before the backdoored stage to compare to
    assert later.skipped is not None or later.stopped_defecting is not None
