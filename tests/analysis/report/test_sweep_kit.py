"""The sweep report's shared formatting (`analysis.report.sweep_kit`)."""

from __future__ import annotations

from analysis.report.sweep_kit import METRIC_LABELS, PCT, Y_RANGE, bar, fmt


def test_an_estimate_prints_with_its_interval_and_a_rate_as_a_percentage() -> None:
    e = {"value": 0.5, "low": 0.25, "high": 0.75}
    assert fmt(e, pct=True) == "50.0% [25.0, 75.0]"
    assert fmt({"value": 0.5, "low": None, "high": None}, pct=False) == "0.500"
    assert fmt(None, pct=True) == "—"
    assert bar(e, "low") == 0.25 and bar({"value": 0.5, "high": None}, "high") == 0.0


def test_rates_are_percentages_and_differences_span_minus_one_to_one() -> None:
    assert "trigger_rate" in PCT and "trigger_probe_auroc" not in PCT
    assert Y_RANGE["trigger_rate_change"] == [-1.05, 1.05]
    assert set(Y_RANGE) <= set(METRIC_LABELS)
