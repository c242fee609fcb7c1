"""Lazy plotly import and the house style shared by every figure module.

plotly is imported only when a figure is drawn, so ``import explorer.figures`` (and every data
step) stays fast and works where only the numbers are wanted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import plotly.graph_objects as go

__all__ = ["empty_figure", "go_module", "style"]

# One palette for the whole report, so that "depth" or "draft" keeps its colour across figures.
PALETTE = (
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#ff7f0e",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)


def go_module() -> Any:
    """Import and return ``plotly.graph_objects`` (lazily)."""
    import plotly.graph_objects as go

    return go


def style(fig: go.Figure, *, title: str, height: int = 480) -> go.Figure:
    """Apply the shared layout (white template, title, legend, margins) and return ``fig``."""
    fig.update_layout(
        template="plotly_white",
        title={"text": title, "x": 0.0, "xanchor": "left"},
        height=height,
        margin={"l": 70, "r": 30, "t": 70, "b": 60},
        legend={"bgcolor": "rgba(255,255,255,0.7)"},
    )
    return fig


def empty_figure(message: str, *, title: str) -> go.Figure:
    """A figure with no data that says why, instead of axes with placeholder numbers."""
    go = go_module()
    fig = go.Figure()
    fig.add_annotation(
        text=message,
        x=0.5,
        y=0.5,
        xref="paper",
        yref="paper",
        showarrow=False,
        font={"size": 14},
    )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return style(fig, title=title, height=260)
