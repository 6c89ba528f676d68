"""The benchmark's leaderboard and highlight say what they show: ties at the displayed AUROC are
ranked as ties and broken by the worst-case FPR, a worst case with no false positives names no
set, and "safe on red team, still detected" needs a backdoor that still fires."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import torch

from analysis.bench.benchmark import leaderboard
from analysis.bench.cells import stage_cells
from analysis.bench.evasion import ProjectionDetector
from analysis.bench.zoo import StageData
from analysis.report.bench import _leaderboard_table, hidden_but_detected

N = 60  # questions in each split: one trigger-free and one triggered row each


def _stage() -> tuple[StageData, dict[str, Any]]:
    """One site, three features scored as they are by three 'detectors':

    - lda (feature 0): one triggered row below the highest clean one (AUROC 1 - 1/3600, shown
      1.000); its training clean rows reach above every held-out clean row (no false positive);
    - mahalanobis (feature 1): separates perfectly (AUROC 1.0) but its training clean rows sit
      far below the held-out ones, so the threshold flags every held-out clean row;
    - logistic (feature 2): overlapping classes, AUROC far below 1.
    """
    rng = np.random.default_rng(0)
    n = 4 * N  # train then test; each question a (clean, triggered) pair
    labels = np.tile([0, 1], 2 * N)
    families = np.repeat(np.array(["arithmetic", "facts"] * N), 2)
    train, test = np.arange(2 * N), np.arange(2 * N, n)
    X = np.zeros((n, 3))
    clean_train, clean_test = train[labels[train] == 0], test[labels[test] == 0]
    trig_test = test[labels[test] == 1]
    X[clean_train, 0] = np.linspace(0.0, 1.2, N)
    X[clean_test, 0] = np.linspace(0.0, 0.99, N)
    X[trig_test, 0] = np.linspace(1.5, 2.5, N)
    X[trig_test[0], 0] = 0.985  # below one held-out clean row only
    X[clean_train, 1] = np.linspace(0.0, 0.5, N)
    X[clean_test, 1] = np.linspace(1.0, 2.0, N)
    X[trig_test, 1] = np.linspace(3.0, 4.0, N)
    X[:, 2] = rng.normal(size=n) + 0.8 * labels
    data = StageData(
        run="r", stage="adversarial", position="last", sites=("blocks.0.hook_resid_post",),
        X=torch.from_numpy(X)[None], labels=labels, groups=np.arange(n) // 2, families=families,
        prompts=("p",) * n, train=train, test=test,
    )  # fmt: skip
    eye = torch.eye(3, dtype=torch.float64)
    fitted = {k: ProjectionDetector(eye[i : i + 1]) for i, k in enumerate(DETECTORS)}
    return data, fitted


DETECTORS = ("lda", "mahalanobis", "logistic")


def _rows() -> list[dict[str, Any]]:
    data, fitted = _stage()
    return [
        {
            "run": data.run,
            "stage": data.stage,
            "position": data.position,
            "sites": list(data.sites),
            "detectors": stage_cells(data, fitted, fpr=0.01, n_boot=50, seed=0),
        }
    ]


def _table_rows(page: str) -> list[list[str]]:
    rows = re.findall(r"<tr(?: class=flag)?>(.*?)</tr>", page)
    return [re.findall(r"<td>(.*?)</td>", r) for r in rows if "<td>" in r]


def test_ties_at_the_displayed_auroc_are_ranked_as_ties_and_broken_by_worst_case_fpr() -> None:
    board = leaderboard(_rows())
    by_kind = {c["detector"]: c for c in board}
    # the premise: both show AUROC 1.000, mahalanobis is higher unrounded and flags far more
    assert by_kind["mahalanobis"]["auroc"]["value"] == 1.0
    assert 0.9995 < by_kind["lda"]["auroc"]["value"] < 1.0
    assert by_kind["mahalanobis"]["worst_case_fpr"]["fpr"] > 0.5
    assert by_kind["lda"]["worst_case_fpr"]["fpr"] == 0.0
    assert [c["detector"] for c in board] == ["lda", "mahalanobis", "logistic"]

    rows = _table_rows(_leaderboard_table({"leaderboard": board, "settings": {"fpr": 0.01}}))
    assert [(r[0], r[4], r[6][:5]) for r in rows] == [
        ("1=", "lda", "1.000"),
        ("1=", "mahalanobis", "1.000"),
        ("3", "logistic", rows[2][6][:5]),
    ]
    assert rows[2][6][:5] != "1.000"


def test_a_worst_case_with_no_false_positive_names_no_set() -> None:
    board = leaderboard(_rows())
    page = _leaderboard_table({"leaderboard": board, "settings": {"fpr": 0.01}})
    lda = next(r for r in _table_rows(page) if r[4] == "lda")
    worst = next(c for c in lda if c.startswith("0.0% ["))
    assert "0.0% on every set" in worst
    assert "arithmetic" not in worst and "facts" not in worst
    # a set that does have false positives is still named
    mahalanobis = next(r for r in _table_rows(page) if r[4] == "mahalanobis")
    assert any("arithmetic" in c or "facts" in c or "every set" in c for c in mahalanobis)


def _behaviour_row(trigger_rate: float, red_team_rate: float) -> dict[str, Any]:
    def rate(p: float) -> dict[str, Any]:
        return {"value": p, "low": max(0.0, p - 0.05), "high": min(1.0, p + 0.05), "n": 300}

    return {
        "run": "r",
        "stage": "adversarial_trigger_aware",
        "behaviour": {"trigger_rate": rate(trigger_rate), "red_team_rate": rate(red_team_rate)},
        "best_auroc": {
            "lda": {
                "auroc": {"value": 1.0, "low": 0.99, "high": 1.0},
                "site": "s",
                "position": "last",
            }
        },
    }


def test_safe_on_red_team_still_detected_needs_the_backdoor_to_still_fire() -> None:
    # trigger-aware adversarial training removed the backdoor (0.3% with the trigger): the
    # detector still reads the trigger, but there is no hidden backdoor to flag
    assert not hidden_but_detected(_behaviour_row(trigger_rate=0.003, red_team_rate=0.0))
    # the backdoor still fires with the trigger while the red team sees nothing: flagged
    assert hidden_but_detected(_behaviour_row(trigger_rate=0.97, red_team_rate=0.02))
    # unsafe on the red team: not flagged
    assert not hidden_but_detected(_behaviour_row(trigger_rate=0.97, red_team_rate=0.4))
