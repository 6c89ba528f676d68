"""The contrast-pair defection probe's figure and table, from its results alone."""

from __future__ import annotations

import plotly.graph_objects as go

from analysis.folder.results import Contrast
from analysis.report.kit import est, site_label

CONTRAST_TABLE_HEADER = ["method", "best site", "AUROC [95% CI]", "paper (MacDiarmid et al.)"]


def contrast_figure(result: Contrast) -> go.Figure:
    """AUROC by site: the contrast probe with its 95% band beside every baseline.

    >>> contrast_figure(result).show()  # doctest: +SKIP
    """
    xs = [site_label(s) for s in result.sites]
    c = result.contrast
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=xs + xs[::-1],
            y=[e.high for e in c.auroc] + [e.low for e in c.auroc][::-1],
            fill="toself",
            fillcolor="#1f77b4",
            opacity=0.2,
            line={"width": 0},
            showlegend=False,
            hoverinfo="skip",
        )
    )
    lines: list[tuple[str, list[float | None], dict[str, str | int]]] = [
        (
            f"contrast probe ({len(c.pairs)} generic pairs)",
            [e.value for e in c.auroc],
            {"color": "#1f77b4", "width": 3},
        ),
        ("random directions: mean", [*result.random.mean], {"color": "#777", "dash": "dot"}),
        ("random directions: 95th pct", [*result.random.p95], {"color": "#777", "dash": "dash"}),
        (
            "obvious-truth pairs",
            [e.value for e in result.obvious_truth.auroc],
            {"color": "#2ca02c"},
        ),
        (
            f"asking the model ({result.ask_model.pair.question!r})",
            [result.ask_model.auroc.value] * len(xs),
            {"color": "#d62728", "dash": "dashdot"},
        ),
    ]
    control = result.control
    if control is not None:
        lines.append(
            (
                f"contrast probe on {control.name}",
                [e.value for e in control.auroc],
                {"color": "#9467bd"},
            )
        )
    for name, ys, style in lines:
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers", name=name, line=style))
    fig.update_xaxes(categoryorder="array", categoryarray=xs, title="residual stream site")
    fig.update_layout(
        title="Generic contrast-pair defection probe (MacDiarmid et al. 2024): AUROC by site",
        yaxis={"range": [0.0, 1.02], "title": "AUROC (fixed sign: higher = defect)"},
        height=440,
    )
    return fig


def contrast_rows(result: Contrast) -> list[list[str]]:
    """Rows under :data:`CONTRAST_TABLE_HEADER`: method, best site, AUROC [95% CI], the paper's.

    >>> contrast_rows(result)[0][-1]  # doctest: +SKIP
    '99.3% (one pair); >99% with six or 50 questions'
    """
    sites = result.sites
    paper = result.paper
    c, t = result.contrast, result.obvious_truth
    rnd = result.random
    at = sites.index(c.best_site)  # compared where the contrast probe is best
    ask = result.ask_model
    rows = [
        [
            f"contrast probe ({len(c.pairs)} generic pairs)",
            c.best_site,
            est(c.best),
            paper["contrast"],
        ],
        [
            f"random directions ({rnd.n_directions}): mean / 95th pct / max",
            sites[at],
            f"{rnd.mean[at]:.3f} / {rnd.p95[at]:.3f} / {rnd.max[at]:.3f} "
            f"({rnd.share_at_least_contrast[at]:.1%} at least as high as the contrast probe)",
            paper["random"],
        ],
        [
            f"obvious-truth pairs ({len(t.pairs)})",
            t.best_site,
            f"{est(t.best)}; sign-free, any site: {max(t.sign_free_auroc):.3f}",
            paper["obvious_truth"],
        ],
        [
            f"asking the model: {ask.pair.question}",
            "(output)",
            f"{est(ask.auroc)}; sign-free {ask.sign_free_auroc:.3f}",
            paper["ask_model"],
        ],
    ]
    control = result.control
    if control is not None:
        rows.append(
            [
                f"contrast probe on {control.name}",
                control.best_site,
                est(control.best),
                paper["control"],
            ]
        )
    return rows
