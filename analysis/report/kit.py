"""The one rendering kit every report uses: the page and its CSS, tables, estimate formatting,
one label per activation site, and plotly figures embedded with plotly.js inlined once.

Reports render from results alone: nothing here (nor anywhere in `analysis.report`) imports
model code.

Example:
    >>> est(Estimate(value=0.5, low=0.4, high=0.6, n=10, method="bootstrap"), pct=True)
    '50.0% [40.0, 60.0]'
    >>> site_label("blocks.2.hook_resid_post"), site_label("blocks.0.hook_resid_pre")
    ('L2', 'embed')
    >>> page("Demo", ["<p>hi</p>"]).startswith("<!doctype html>")
    True
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import plotly.graph_objects as go

from analysis.errors import InputError
from analysis.folder.results_base import Estimate
from backdoor_models.io.atomic import write_text

CSS = """
body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:92%}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
th{background:#f3f3f3}code,pre{background:#f6f6f6;padding:2px 4px}.small{color:#666;font-size:90%}
tr.flag td{background:#fff3cd}
"""
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf", "#7f7f7f"]
DASH = "—"
# Records any JavaScript error on the page in <html data-js-errors="...">, so a headless browser
# (the report tests) can see that a page failed without a debugging protocol.
JS_ERROR_HOOK = (
    "<script>window.addEventListener('error',function(e){var h=document.documentElement;"
    "h.setAttribute('data-js-errors',(h.getAttribute('data-js-errors')||'')+(e.message||'error')"
    "+'; ')});</script>"
)


# An estimate as results.json's models hold it, or as JSON (bench.json and sweep.json, whose
# models live above the report layer): value, low, high, n and method.
EstimateLike = Estimate | Mapping[str, Any]


def est(e: EstimateLike | None, pct: bool = False) -> str:
    """An estimate as `value [low, high]`: three decimals, or a percentage with one."""
    if not e:
        return DASH
    value, low, high = e.bounds() if isinstance(e, Estimate) else (e["value"], e["low"], e["high"])
    if pct:
        return f"{100 * value:.1f}% [{100 * low:.1f}, {100 * high:.1f}]"
    return f"{value:.3f} [{low:.3f}, {high:.3f}]"


def rate(e: EstimateLike | None) -> str:
    """A rate with its interval, its method when exact (Clopper-Pearson) and its n."""
    if not e:
        return DASH
    method, n = (e.method, e.n) if isinstance(e, Estimate) else (e.get("method"), e["n"])
    exact = " exact" if method == "clopper-pearson" else ""
    return f"{est(e, pct=True)}{exact} (n={n})"


def site_label(site: str) -> str:
    """The one short label of a hook site: `embed` for the embedding output, `L{i}` for block
    i's residual output, `L{i} pre` for its residual input, otherwise the name without `blocks.`."""
    if site == "blocks.0.hook_resid_pre":
        return "embed"
    parts = site.split(".")
    if len(parts) == 3 and parts[0] == "blocks":
        if parts[2] == "hook_resid_post":
            return f"L{parts[1]}"
        if parts[2] == "hook_resid_pre":
            return f"L{parts[1]} pre"
    return site.removeprefix("blocks.")


def table(
    rows: Sequence[Sequence[Any]], header: Sequence[str], flags: Sequence[bool] | None = None
) -> str:
    """An HTML table; rows whose flag is set are highlighted."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        ("<tr class=flag>" if flags and flags[i] else "<tr>")
        + "".join(f"<td>{html.escape(str(c))}</td>" for c in r)
        + "</tr>"
        for i, r in enumerate(rows)
    )
    return f"<table><tr>{head}</tr>{body}</table>"


class Figures:
    """Embeds plotly figures in a page, inlining plotly.js with the first one only (pages work
    offline) and keeping the figures for PNG export."""

    def __init__(self) -> None:
        self.figures: list[go.Figure] = []

    def html(self, fig: go.Figure) -> str:
        self.figures.append(fig)
        return fig.to_html(full_html=False, include_plotlyjs=len(self.figures) == 1)


def export_png(figures: Sequence[go.Figure], folder: str | Path, scale: float = 2.0) -> list[Path]:
    """Write each figure as `folder/NN-title.png` with kaleido (which drives a local Chrome or
    Chromium), and remove the `NN-*.png` an earlier export left there; a clear error names what
    is missing."""
    try:
        import kaleido  # noqa: F401
    except ImportError as err:
        raise InputError(
            "PNG export needs kaleido: pip install 'kaleido>=1,<2' (it ships with the test extra)."
        ) from err
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, fig in enumerate(figures, start=1):
        title = str(fig.layout.title.text or "figure")
        slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:60] or "figure"
        paths.append(out / f"{i:02d}-{slug}.png")
    import plotly.io as pio

    # a figure that sets its width is drawn at its own size; the others at plotly's default
    sizes = [(f.layout.width, f.layout.height) if f.layout.width else (None, None) for f in figures]
    try:  # one browser for every figure
        pio.write_images(
            list(figures),
            paths,
            scale=scale,
            width=[w for w, _ in sizes],
            height=[h for _, h in sizes],
        )
    except (RuntimeError, ValueError, OSError) as err:
        raise InputError(
            f"Could not export the figures to {out} with kaleido ({err}). It needs Chrome or "
            "Chromium on this machine (apt-get install chromium)."
        ) from err
    for stale in set(out.glob("[0-9][0-9]-*.png")) - set(paths):  # an earlier export's figures
        stale.unlink()
    return paths


def page(title: str, parts: Sequence[str]) -> str:
    """A whole self-contained HTML page."""
    head = (
        f"<meta charset=utf-8>{JS_ERROR_HOOK}<title>{html.escape(title)}</title>"
        f"<style>{CSS}</style>"
    )
    return f"<!doctype html><html><head>{head}</head><body>{''.join(parts)}</body></html>"


def write_page(path: str | Path, text: str) -> Path:
    """Write a page atomically; returns its path."""
    write_text(path, text)
    return Path(path)
