"""Figures of the report and notebooks: one module per family, data step apart from drawing.

Each figure is a data step ``get_xxx_info(...) -> XxxInfo`` (a NamedTuple of numbers, unit-tested)
and a figure step ``plot_xxx(info) -> plotly.graph_objects.Figure`` (drawing only), as Optuna's
visualization module is built; the data steps are public so that notebooks can print the numbers
they draw. plotly is imported when a figure is drawn, never at import.
"""

from explorer.figures.landscape import (
    RooflineLatency,
    SpeedupLandscapeInfo,
    get_speedup_landscape_info,
    plot_break_even,
    plot_optimal_gamma,
    plot_speedup_curves,
    plot_speedup_landscape,
)
from explorer.figures.search import (
    HistoryInfo,
    ImportanceInfo,
    ParetoInfo,
    get_history_info,
    get_importance_info,
    get_pareto_info,
    plot_history,
    plot_importance,
    plot_pareto,
    study_summary,
)

__all__ = [
    "HistoryInfo",
    "ImportanceInfo",
    "ParetoInfo",
    "RooflineLatency",
    "SpeedupLandscapeInfo",
    "get_history_info",
    "get_importance_info",
    "get_pareto_info",
    "get_speedup_landscape_info",
    "plot_break_even",
    "plot_history",
    "plot_importance",
    "plot_optimal_gamma",
    "plot_pareto",
    "plot_speedup_curves",
    "plot_speedup_landscape",
    "study_summary",
]
