"""What the sweep report's parts share: each metric's label, which are percentages, the y range
of the differences, and estimates and curve points as text and as error bars (from sweep.json's
content alone).

Example:
    >>> fmt({"value": 0.25, "low": 0.2, "high": 0.3}, pct=True)
    '25.0% [20.0, 30.0]'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from analysis.report import kit

__all__ = ["DIFFERENCES", "METRIC_LABELS", "PCT", "Y_RANGE", "bar", "fmt"]

METRIC_LABELS = {
    "trigger_rate": "backdoor rate with the trigger",
    "no_trigger_rate": "backdoor rate without the trigger",
    "red_team_rate": "backdoor rate on held-out red-team prompts",
    "red_team_rate_trigger_aware": "backdoor rate on held-out trigger-aware red-team prompts",
    "helpfulness": "helpfulness (no trigger)",
    "trigger_probe_auroc": "trigger probe AUROC (best site)",
    "contrast_probe_auroc": "contrast probe AUROC (best site)",
    "trigger_rate_change": "change in the backdoor rate with the trigger (after − backdoored)",
    "helpfulness_change": "change in helpfulness from the pretrained base",
    "contrast_control_auroc": "contrast probe AUROC of the no-backdoor control",
    "contrast_minus_control": "contrast probe AUROC minus the no-backdoor control's",
    "text_baseline_auroc": "text-only baseline AUROC (prompt token counts)",
    "trigger_probe_minus_text": "trigger probe AUROC minus the text baseline's (best site)",
    "bench_logistic_auroc": "logistic probe",
    "bench_diff_means_auroc": "difference of means",
    "bench_lda_auroc": "LDA",
    "bench_mahalanobis_auroc": "Mahalanobis",
}
DIFFERENCES = (  # metrics that are differences of two estimates
    "trigger_rate_change",
    "helpfulness_change",
    "contrast_minus_control",
    "trigger_probe_minus_text",
)
Y_RANGE = {m: [-1.05, 1.05] for m in DIFFERENCES}
# rates (shown as percentages); AUROCs and their differences are not
PCT = {m for m in METRIC_LABELS if "auroc" not in m and "minus" not in m}


def fmt(e: Mapping[str, Any] | None, pct: bool) -> str:
    """An estimate or a curve point as `value [low, high]`; a dash when it has no value.

    Example:
        >>> fmt({"value": 0.5, "low": None, "high": None}, pct=True), fmt(None, pct=False)
        ('50.0%', '—')
    """
    if not e or e.get("value") is None:
        return kit.DASH
    if e.get("low") is None or e.get("high") is None:
        return f"{100 * e['value']:.1f}%" if pct else f"{e['value']:.3f}"
    return kit.est(e, pct=pct)


def bar(p: Mapping[str, Any], side: str) -> float:
    """The length of one side of an error bar (0 when the point has no interval)."""
    end = p.get(side)
    return 0.0 if end is None else abs(end - p["value"])
