"""Published claims against a sweep (analysis.sweep.claims): the verdict rules, the claim's
validation, and the claims checked on the zoo sweep built without training and changed by hand
(tests/analysis/sweep/test_sweep_contrasts), including every claim of sweeps/pretrained.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from analysis.config.errors import ConfigError
from analysis.errors import InputError
from analysis.sweep.aggregate import aggregate_sweep
from analysis.sweep.claims import check_claims, verdict
from analysis.sweep.results import ClaimCheck, SweepResults
from analysis.sweep.spec import ClaimSpec, load_sweep
from tests.analysis.sweep.test_sweep_contrasts import build_changed_zoo
from tests.analysis.sweep.zoo_sweep import SPEC

PRETRAINED = Path(__file__).parents[3] / "sweeps" / "pretrained.yaml"
NORMAL_80 = "backdoor training steps=80, backdoor.mechanism=normal"


def _claim(**fields: Any) -> ClaimSpec:
    return ClaimSpec(
        **{"source": "s", "claim": "c", "metric": "trigger_rate", "stages": ["sft"]} | fields
    )


ABOVE = _claim(expect="above", value=0.1)
BELOW = _claim(expect="below", value=0.1)
ABOUT = _claim(expect="about", value=-0.25, tolerance=0.1)


@pytest.mark.parametrize(
    ("claim", "low", "high", "n_seeds", "expected"),
    [
        (ABOVE, 0.11, 0.5, 3, "agrees"),
        (ABOVE, 0.0, 0.05, 3, "disagrees"),
        (ABOVE, 0.05, 0.5, 3, "cannot tell"),
        (ABOVE, 0.1, 0.5, 3, "cannot tell"),  # touching the value is not above it
        (BELOW, 0.0, 0.09, 2, "agrees"),
        (BELOW, 0.2, 0.3, 2, "disagrees"),
        (BELOW, 0.0, 0.2, 2, "cannot tell"),
        (ABOUT, -0.3, -0.2, 3, "agrees"),
        (ABOUT, -0.35, -0.15, 3, "agrees"),  # the band's edges belong to it
        (ABOUT, -0.03, 0.01, 3, "disagrees"),
        (ABOUT, -0.5, -0.36, 3, "disagrees"),
        (ABOUT, -0.2, 0.0, 3, "cannot tell"),
        (ABOVE, 0.5, 0.9, 1, "cannot tell"),  # one seed: an interval over prompts only
        (ABOVE, None, None, 3, "cannot tell"),
    ],
)
def test_the_verdict_comes_from_the_interval_over_seeds(
    claim: ClaimSpec, low: float | None, high: float | None, n_seeds: int, expected: str
) -> None:
    assert verdict(low, high, n_seeds, claim) == expected


def test_a_claim_is_refused_when_about_has_no_tolerance_or_another_expect_has_one() -> None:
    with pytest.raises(ValidationError, match="needs a `tolerance`"):
        _claim(expect="about")
    with pytest.raises(ValidationError, match="only `about` takes one"):
        _claim(expect="above", tolerance=0.1)
    with pytest.raises(ValidationError):
        _claim(expect="higher")
    with pytest.raises(ValidationError):
        _claim(expect="above", stages=[])
    assert _claim(expect="above", comparison="full - LoRA r16").comparison == "full − LoRA r16"


def test_a_sweep_file_with_a_wrong_claim_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "sweep.yaml"
    path.write_text(
        "grid: {seed: [0]}\nclaims:\n  - {source: s, claim: c, metric: trigger_rate, "
        "stages: [sft], expect: about}\n"
    )
    with pytest.raises(ConfigError, match=r"claims\.0.*tolerance"):
        load_sweep(path)


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> SweepResults:
    """The changed zoo with the zoo file's factors and references and a claim, aggregated."""
    root = tmp_path_factory.mktemp("zoo") / "zoo"
    pretrained = load_sweep(PRETRAINED)
    spec = SPEC.model_copy(
        update={
            "factors": pretrained.factors,
            "references": pretrained.references,
            "claims": [_claim(comparison="full − LoRA r4", stages=["sft"], expect="above")],
        }
    )
    build_changed_zoo(root, spec)
    return aggregate_sweep(root)


def _checks(zoo: SweepResults, claims: list[ClaimSpec]) -> tuple[SweepResults, list[ClaimCheck]]:
    return zoo, check_claims(claims, zoo.contrasts, zoo.groups)


def test_a_comparison_claim_is_checked_against_each_of_its_paired_contrasts(
    zoo: SweepResults,
) -> None:
    claim = _claim(comparison="full − LoRA r16", stages=["sft", "rl"], expect="above")
    results, (check,) = _checks(zoo, [claim])
    contrasts = [
        c
        for c in results.contrasts
        if c.comparison == "full − LoRA r16"
        and c.metric == "trigger_rate"
        and c.stage in ("sft", "rl")
    ]
    assert len(contrasts) >= 4 and len(check.rows) == len(contrasts)
    for row, c in zip(check.rows, contrasts, strict=True):
        assert (row.configuration, row.stage, row.n_seeds) == (c.others, c.stage, c.n_seeds)
        assert (row.value, row.low, row.high) == (c.difference, c.low, c.high)
    by = {(r.configuration, r.stage): r for r in check.rows}
    # at sft full fine-tuning's planted rate is 0.10 above rank 16's at every seed
    assert by[NORMAL_80, "sft"].value == pytest.approx(0.10)
    assert by[NORMAL_80, "sft"].verdict == "agrees"
    # after RL the changed zoo moved full's rate by 0, +0.07, -0.02: the t interval over three
    # seeds reaches below 0
    rl = by[NORMAL_80, "rl"]
    assert rl.n_seeds == 3 and rl.low is not None and rl.low < 0 < rl.value
    assert rl.verdict == "cannot tell"
    assert check.counts == {
        v: sum(r.verdict == v for r in check.rows) for v in ("agrees", "disagrees", "cannot tell")
    }
    assert check.note is None


def test_a_stage_claim_agrees_where_the_high_lr_removed_more_and_disagrees_where_it_did_not(
    zoo: SweepResults,
) -> None:
    claim = _claim(comparison="sft_high_lr − sft", stages=["sft_high_lr"], expect="below")
    _, (check,) = _checks(zoo, [claim])
    by = {r.configuration: r for r in check.rows}
    # full fine-tuning's sft_high_lr was set to 0.02-0.06, well below its sft (0.21-0.33)
    full = by[f"fine-tuning=full, {NORMAL_80}"]
    assert full.value is not None and full.value < -0.15 and full.verdict == "agrees"
    # LoRA r4's planted sft_high_lr is its sft + 0.01 at every seed
    r4 = by[f"fine-tuning=LoRA r4, {NORMAL_80}"]
    assert r4.value == pytest.approx(0.01) and r4.verdict == "disagrees"


def test_a_claim_without_a_comparison_is_checked_against_each_configuration(
    zoo: SweepResults,
) -> None:
    claim = _claim(stages=["sft"], expect="below", value=0.1)
    results, (check,) = _checks(zoo, [claim])
    groups = [g for g in results.groups if g.stage == "sft" and "trigger_rate" in g.metrics]
    assert [r.configuration for r in check.rows] == [g.group for g in groups]
    for row, group in zip(check.rows, groups, strict=True):
        mean = group.metrics["trigger_rate"]
        assert (row.value, row.low, row.high, row.n_seeds) == (
            mean.value,
            mean.low,
            mean.high,
            mean.n_seeds,
        )
        assert row.verdict == verdict(mean.low, mean.high, mean.n_seeds, claim)
    assert check.counts["disagrees"] >= 1


def test_a_claim_the_sweep_has_no_estimate_for_says_so_and_a_wrong_metric_is_refused(
    zoo: SweepResults,
) -> None:
    missing = _claim(comparison="LoRA r8 − LoRA r16", expect="below")
    _, (check,) = _checks(zoo, [missing])
    assert check.rows == [] and sum(check.counts.values()) == 0
    assert check.note is not None
    assert "'LoRA r8 − LoRA r16'" in check.note and "'full − LoRA r16'" in check.note
    with pytest.raises(InputError, match=r"claims\[1\]\.metric: 'trigger_rat' .*trigger_rate"):
        _checks(zoo, [missing, _claim(metric="trigger_rat", expect="above")])
    with pytest.raises(InputError, match="not a metric of a paired contrast"):
        _checks(
            zoo,
            [_claim(metric="trigger_probe_auroc", comparison="full − LoRA r16", expect="above")],
        )


def test_every_claim_of_the_zoo_file_finds_its_estimates_in_a_zoo_shaped_sweep(
    zoo: SweepResults,
) -> None:
    claims = load_sweep(PRETRAINED).claims
    assert len(claims) >= 5
    _, checks = _checks(zoo, list(claims))
    for check in checks:
        assert check.rows, f"{check.claim}: {check.note}"
        assert {r.stage for r in check.rows} == set(check.stages)


def test_the_aggregate_checks_the_sweep_files_claims(zoo: SweepResults) -> None:
    (check,) = zoo.claims
    assert check.claim == "c" and check.comparison == "full − LoRA r4"
    # the reference named by the zoo file is LoRA r16: r4 is compared against it, not the reverse
    assert check.rows == [] and check.note is not None and "'LoRA r4 − LoRA r16'" in check.note
