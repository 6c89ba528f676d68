"""A real run's results.json (`data/small_run_results.json`: five stages, both red teams, the
contrast probe) read as typed results, and small edits of it for the report tests."""

from __future__ import annotations

import json
from pathlib import Path

from analysis.folder.results import (
    Estimate,
    RunResults,
    SkippedStage,
    Stage,
    check_results,
)

PATH = Path(__file__).parent / "data" / "small_run_results.json"


def real_results() -> RunResults:
    """The real run's results, as every reader gets them."""
    return check_results(json.loads(PATH.read_text()), str(PATH))


def estimate(value: float, low: float, high: float, n: int = 100) -> Estimate:
    return Estimate(value=value, low=low, high=high, n=n, method="bootstrap")


def with_stages(results: RunResults, stages: dict[str, Stage | SkippedStage]) -> RunResults:
    """`results` with these stages instead of its own."""
    return results.model_copy(update={"stages": stages})
