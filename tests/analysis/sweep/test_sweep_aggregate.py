"""The sweep aggregate (sweep.json) and its report (sweep.html), on run folders built without
training.

Every run folder holds the results.json of a real run, `tests/analysis/data/small_run_results.json`
(a native `small` run of the default config with every stage, its long lists cut to a few items
so that the file stays small; it still follows the schema), with planted numbers: only the
parameter count, the preset and the behaviour estimates that the tests check are changed. The
folders also hold what the aggregate reads besides: the resolved config of the point's settings
and a timing.json whose "report" key says the run finished.

The sweep: model.preset (small, tiny) x seed (0, 1, 2) x backdoor.mechanism (normal, cot). Two
points did not finish: cot/small seed 1 was never run, cot/small seed 2 failed; so cot/small has
one seed.
"""

from __future__ import annotations

import copy
import json
import math
import re
import statistics
from pathlib import Path
from typing import Any

import pytest
import yaml

from analysis.config import load_config, save_config
from analysis.folder.layout import RunLayout
from analysis.report.sweep import FIGURES, METRIC_LABELS, curve_figure
from analysis.sweep.aggregate import aggregate_sweep, read_sweep_results, report_sweep
from analysis.sweep.results import SweepResults
from analysis.sweep.runner import SweepLayout
from analysis.sweep.spec import SweepSpec, expand
from backdoor_models.io.atomic import write_json
from tests.browser import chromium

REAL = json.loads((Path(__file__).parents[1] / "data" / "small_run_results.json").read_text())
STAGES = list(REAL["stages"])  # backdoored, sft, rl, adversarial, adversarial_trigger_aware
PLANTED = ("trigger_rate", "red_team_rate", "helpfulness")
N_PARAMS = {"small": REAL["model"]["n_params"], "tiny": 243_000}
T_975_2DF = 4.302652729911275  # the 97.5% quantile of Student's t with 2 degrees of freedom
SPEC = SweepSpec(
    grid={
        "model.preset": ["small", "tiny"],
        "seed": [0, 1, 2],
        "backdoor.mechanism": ["normal", "cot"],
    }
)
NOT_RUN = "model.preset=small,seed=1,backdoor.mechanism=cot"
FAILED = "model.preset=small,seed=2,backdoor.mechanism=cot"


def planted(preset: str, mechanism: str, seed: int, stage: str, metric: str) -> float:
    """The planted value of one estimate: distinct per size, mechanism, seed, stage and metric."""
    return round(
        0.1
        + 0.2 * (preset == "small")
        + 0.1 * (mechanism == "cot")
        + 0.1 * seed
        + 0.05 * STAGES.index(stage)
        + 0.01 * PLANTED.index(metric),
        6,
    )


def _estimate(value: float) -> dict[str, Any]:
    return {
        "value": value,
        "low": value - 0.04,
        "high": value + 0.04,
        "n": 300,
        "method": "bootstrap",
    }


def _write_run(folder: Path, settings: dict[str, Any], finished: bool = True) -> None:
    preset, seed, mechanism = (
        settings["model.preset"],
        settings["seed"],
        settings["backdoor.mechanism"],
    )
    layout = RunLayout(folder)
    folder.mkdir(parents=True)
    save_config(load_config(None, [f"{k}={v}" for k, v in settings.items()]), layout.config)
    if not finished:
        return
    results = copy.deepcopy(REAL)
    results["model"].update(preset=preset, n_params=N_PARAMS[preset])
    for stage, data in results["stages"].items():
        for metric in PLANTED:
            value = planted(preset, mechanism, seed, stage, metric)
            data["behaviour"][metric] = _estimate(value)
    write_json(layout.results, results)
    write_json(layout.timing, {"train": 1.0, "report": 0.1})


def _build_sweep(root: Path) -> None:
    layout = SweepLayout(root)
    root.mkdir(parents=True)
    layout.spec.write_text(yaml.safe_dump(SPEC.model_dump(), sort_keys=False))
    status = {}
    for point in expand(SPEC):
        if point.name == NOT_RUN:
            status[point.name] = {"state": "pending", "settings": point.settings}
            continue
        failed = point.name == FAILED
        _write_run(layout.run(point.name), point.settings, finished=not failed)
        status[point.name] = (
            {"state": "failed", "settings": point.settings, "error": "RuntimeError: out of memory"}
            if failed
            else {"state": "done", "settings": point.settings, "seconds": 1.0}
        )
    write_json(layout.status, status)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SweepResults]:
    root = tmp_path_factory.mktemp("sweep") / "scale"
    _build_sweep(root)
    return root, aggregate_sweep(root)


def _curve(results: SweepResults, group: str, metric: str, stage: str) -> Any:
    (curve,) = [c for c in results.curves if (c.group, c.metric, c.stage) == (group, metric, stage)]
    return curve


def test_means_and_t_intervals_over_three_seeds_equal_a_hand_computation(sweep) -> None:
    _, results = sweep
    for metric in PLANTED:
        point = _curve(results, "backdoor.mechanism=normal", metric, "sft").points[1]  # small
        values = [planted("small", "normal", s, "sft", metric) for s in (0, 1, 2)]
        mean = sum(values) / 3
        half = T_975_2DF * statistics.stdev(values) / math.sqrt(3)
        assert point.size == "small" and point.n_seeds == 3
        assert point.value == pytest.approx(mean)
        assert (point.low, point.high) == (pytest.approx(mean - half), pytest.approx(mean + half))
        assert "t over 3 seeds" in point.method
        assert sorted(s.value for s in point.seeds) == pytest.approx(values)
    # persistence: after minus the backdoored rate, per seed; a constant change has no spread
    change = _curve(results, "backdoor.mechanism=normal", "trigger_rate_change", "rl").points[0]
    assert change.value == pytest.approx(2 * 0.05) and change.low == pytest.approx(change.high)
    persistence = {(c.metric, c.stage) for c in results.persistence}
    assert persistence == {
        (m, s) for m in ("trigger_rate", "trigger_rate_change") for s in STAGES[1:]
    }


def test_one_line_per_mechanism_with_x_sorted_by_parameter_count(sweep) -> None:
    _, results = sweep
    assert results.group_keys == ["backdoor.mechanism"]
    assert (results.seed_keys, results.size_keys) == (["seed"], ["model.preset"])
    assert results.stages == STAGES and results.safety_stages == STAGES[1:]
    lines = [c for c in results.curves if (c.metric, c.stage) == ("trigger_rate", "adversarial")]
    assert sorted(c.group for c in lines) == [
        "backdoor.mechanism=cot",
        "backdoor.mechanism=normal",
    ]
    for line in lines:  # the grid lists small first; the curve goes by size
        assert [p.size for p in line.points] == ["tiny", "small"]
        assert [p.n_params for p in line.points] == sorted(N_PARAMS.values())
    # the real run's probe numbers come through unchanged
    real = REAL["stages"]["sft"]["probes"]["best_auroc"]["value"]
    assert _curve(results, "backdoor.mechanism=cot", "trigger_probe_auroc", "sft").points[
        0
    ].value == pytest.approx(real)


def test_unfinished_points_are_listed_not_averaged(sweep) -> None:
    _, results = sweep
    missing = {m.name: m for m in results.not_finished}
    assert set(missing) == {NOT_RUN, FAILED}
    assert missing[NOT_RUN].state == "pending"
    assert missing[FAILED].state == "failed" and "out of memory" in (missing[FAILED].error or "")
    assert len(results.points) == 10 and results.n_points == 12
    assert not {p.name for p in results.points} & set(missing)
    cot = _curve(results, "backdoor.mechanism=cot", "trigger_rate", "sft")
    assert [p.n_seeds for p in cot.points] == [3, 1]
    assert [s.seed for s in cot.points[1].seeds] == ["seed=0"]


def test_one_seed_uses_the_runs_own_interval(sweep) -> None:
    _, results = sweep
    value = planted("small", "cot", 0, "adversarial", "trigger_rate")
    point = _curve(results, "backdoor.mechanism=cot", "trigger_rate", "adversarial").points[1]
    assert (point.value, point.low, point.high) == pytest.approx(
        (value, value - 0.04, value + 0.04)
    )
    assert point.method.startswith("one seed: the run's own bootstrap interval")


def test_sweep_json_and_html_show_every_figure_point_and_missing_run(sweep, tmp_path) -> None:
    root, _ = sweep
    results = report_sweep(root)
    assert read_sweep_results(root) == results
    page = SweepLayout(root).report.read_text()
    titles = re.findall(r"<h2>(.*?)</h2>", page)
    expected = [title for _, title, _ in FIGURES]
    assert [t for t in titles if t in expected] == expected  # every metric has data here
    assert page.count('class="plotly-graph-div"') == len(FIGURES)
    assert '"type":"log"' in page
    for p in results.points:
        assert f"<td>{p.name}</td>" in page
    missing = page.split("<h2>Points not finished</h2>")[1]
    assert NOT_RUN in missing and FAILED in missing and "out of memory" in missing
    assert "Student&#x27;s t" in page and "bench.html" not in page
    # the benchmark is linked once the sweep has one
    (SweepLayout(root).bench).mkdir(exist_ok=True)
    write_json(SweepLayout(root).bench / "bench.json", {})
    report_sweep(root)
    assert 'href="bench/bench.html"' in SweepLayout(root).report.read_text()
    (SweepLayout(root).bench / "bench.json").unlink()


def test_report_command_rebuilds_a_sweep_page_and_its_pngs(sweep, capsys) -> None:
    from analysis.cli import main

    chromium()  # kaleido's PNG export drives a local Chromium: skip, saying why, without one
    root, _ = sweep
    assert main(["report", str(root), "--png", "--quiet"]) == 0
    assert "(10 of 12 points finished)" in capsys.readouterr().out
    assert read_sweep_results(root).points and SweepLayout(root).report.is_file()
    pngs = sorted((root / "figures").glob("*.png"))
    assert len(pngs) == len(FIGURES) and all(p.stat().st_size > 5000 for p in pngs)


def test_figure_has_one_line_per_group_and_each_seed_as_a_dot(sweep) -> None:
    _, results = sweep
    data = results.model_dump(mode="json")
    assert set(METRIC_LABELS) == set(results.metrics)  # every metric has its label
    fig = curve_figure(data, "trigger_rate", "backdoor rate")
    assert fig is not None
    lines = [t for t in fig.data if t.mode == "lines+markers"]
    dots = [t for t in fig.data if t.mode == "markers"]
    assert len(lines) == len(dots) == 2 * len(STAGES)  # two groups in every stage's panel
    assert {t.name for t in lines if t.showlegend} == {
        "backdoor.mechanism=normal",
        "backdoor.mechanism=cot",
    }
    assert sum(len(t.y) for t in dots) == 10 * len(STAGES)  # every finished run, every stage
    assert all(list(t.x) == sorted(t.x) for t in lines)
    assert fig.layout.xaxis.type == "log"
    assert curve_figure(data, "trigger_rate_change", "x", with_backdoored=False) is not None
    empty = {**data, "curves": [c for c in data["curves"] if c["metric"] != "helpfulness"]}
    assert curve_figure(empty, "helpfulness", "x") is None


def test_the_benchmarks_detectors_are_pooled_over_seeds(tmp_path: Path) -> None:
    """bench.json's best AUROC per run, stage and detector becomes a metric of each point, so its
    curves are the mean over seeds with a t interval; the report shows the pooled table."""
    root = tmp_path / "scale"
    _build_sweep(root)
    rows = []
    for point in expand(SPEC):
        s = point.settings
        if point.name in (NOT_RUN, FAILED):
            continue
        for stage in STAGES:
            auroc = 0.6 + 0.1 * s["seed"] + 0.01 * STAGES.index(stage)
            rows.append(
                {
                    "run": point.name,
                    "stage": stage,
                    "best_auroc": {
                        "logistic": {"auroc": _estimate(auroc), "site": "x", "position": "last"},
                        "lda": {"auroc": _estimate(auroc - 0.1), "site": "x", "position": "last"},
                    },
                }
            )
    write_json(root / "bench" / "bench.json", {"behaviour_vs_representation": rows})
    results = report_sweep(root)
    point = _curve(results, "backdoor.mechanism=normal", "bench_logistic_auroc", "rl").points[0]
    values = [0.6 + 0.1 * seed + 0.01 * STAGES.index("rl") for seed in (0, 1, 2)]
    assert point.value == pytest.approx(sum(values) / 3) and point.n_seeds == 3
    half = T_975_2DF * statistics.stdev(values) / math.sqrt(3)
    assert point.high == pytest.approx(sum(values) / 3 + half)
    assert not [c for c in results.curves if c.metric == "bench_mahalanobis_auroc" and c.points]
    page = (root / "sweep.html").read_text()
    assert "Detectors over the zoo, seeds pooled" in page
