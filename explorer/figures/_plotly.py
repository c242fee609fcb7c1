"""Lazy plotly import and the house style shared by every figure module.

plotly is imported only when a figure is drawn, so ``import explorer.figures`` (and every data
step) stays fast and works where only the numbers are wanted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import plotly.graph_objects as go

__all__ = ["PALETTE", "empty_figure", "go_module", "new_figure", "style"]

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


# A small white template. Assigning plotly's "plotly_white" (or letting go.Figure() apply the
# default template) deep-copies and validates a large template: ~0.1 s a figure, which is most of
# the time of a report. This one is validated in a few ms.
_TEMPLATE = {
    "layout": {
        "colorway": list(PALETTE),
        "paper_bgcolor": "white",
        "plot_bgcolor": "white",
        "font": {"color": "#2a3f5f"},
        "hovermode": "closest",
        "xaxis": {
            "gridcolor": "#ebf0f8",
            "linecolor": "#ebf0f8",
            "zerolinecolor": "#ebf0f8",
            "ticks": "",
            "automargin": True,
        },
        "yaxis": {
            "gridcolor": "#ebf0f8",
            "linecolor": "#ebf0f8",
            "zerolinecolor": "#ebf0f8",
            "ticks": "",
            "automargin": True,
        },
    }
}


def go_module() -> Any:
    """Import and return ``plotly.graph_objects`` (lazily)."""
    import plotly.graph_objects as go

    return go


def new_figure() -> go.Figure:
    """An empty figure with the house template (fast: see ``_TEMPLATE``)."""
    return go_module().Figure(layout={"template": _TEMPLATE})


def new_subplots(**kwargs: Any) -> go.Figure:
    """``plotly.subplots.make_subplots`` on a :func:`new_figure`."""
    from plotly.subplots import make_subplots

    return make_subplots(figure=new_figure(), **kwargs)


def style(fig: go.Figure, *, title: str, height: int = 480) -> go.Figure:
    """Apply the shared layout (title, legend, margins) and return ``fig``."""
    fig.update_layout(
        title={"text": title, "x": 0.0, "xanchor": "left"},
        height=height,
        margin={"l": 70, "r": 30, "t": 70, "b": 60},
        legend={"bgcolor": "rgba(255,255,255,0.7)"},
    )
    return fig


def empty_figure(message: str, *, title: str) -> go.Figure:
    """A figure with no data that says why, instead of axes with placeholder numbers."""
    fig = new_figure()
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
