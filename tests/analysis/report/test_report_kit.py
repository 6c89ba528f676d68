"""The rendering kit: one label per site, estimates, tables, plotly inlined once, and the
browser check that every report test relies on (shown here to fail on a broken page)."""

from __future__ import annotations

from pathlib import Path

import plotly.graph_objects as go
import pytest

from analysis.report import kit
from tests.browser import assert_report_renders


def test_one_label_per_site() -> None:
    assert kit.site_label("blocks.0.hook_resid_pre") == "embed"
    assert kit.site_label("blocks.3.hook_resid_post") == "L3"
    assert kit.site_label("blocks.3.hook_resid_pre") == "L3 pre"
    assert kit.site_label("blocks.1.attn.hook_z") == "1.attn.hook_z"


def test_estimates_tables_and_plotly_inlined_once() -> None:
    e = {"value": 0.25, "low": 0.125, "high": 0.5, "n": 8, "method": "clopper-pearson"}
    assert kit.est(e) == "0.250 [0.125, 0.500]"
    assert kit.rate(e) == "25.0% [12.5, 50.0] exact (n=8)"
    assert kit.est(None) == kit.rate(None) == kit.DASH
    assert kit.table([["<a>", 1]], ["x", "y"], flags=[True]).count("<tr class=flag>") == 1
    figures = kit.Figures()
    first, second = (figures.html(go.Figure(go.Scatter(y=[1, 2]))) for _ in range(2))
    assert len(first) > 1_000_000 > len(second)  # plotly.js (~4 MB) only with the first
    assert len(figures.figures) == 2


def test_a_page_renders_and_the_check_can_fail(tmp_path: Path) -> None:
    figures = kit.Figures()
    good = kit.page("ok", [figures.html(go.Figure(go.Bar(y=[1, 3])))])
    kit.write_page(tmp_path / "good.html", good)
    assert assert_report_renders(tmp_path / "good.html") == 1
    broken = good.replace("</body>", "<script>throw new Error('boom')</script></body>")
    kit.write_page(tmp_path / "broken.html", broken)
    with pytest.raises(AssertionError, match="boom"):
        assert_report_renders(tmp_path / "broken.html")
    undrawn = kit.page("no plotly.js", ['<div id="f" class="plotly-graph-div"></div>'])
    kit.write_page(tmp_path / "undrawn.html", undrawn)
    with pytest.raises(AssertionError, match="not drawn"):
        assert_report_renders(tmp_path / "undrawn.html")
