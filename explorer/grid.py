"""Exhaustive grid over the draft design space: the reference optimum the search is judged by.

Every configuration of a :class:`~explorer.space.SearchSpace` is scored at once through
:func:`~explorer.objective.predict_configs` (the same function the Optuna objective calls), so
the grid's best configuration is the true optimum of the predicted objective on that space.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from explorer.objective import SearchProblem, predict_configs
from explorer.space import SearchSpace

__all__ = ["GridResult", "grid_search", "pareto_front"]


@dataclass(frozen=True)
class GridResult:
    """Scores of every configuration, the best feasible one and the Pareto front.

    Attributes
    ----------
    table : DataFrame
        One row per configuration (see :func:`~explorer.objective.predict_configs`).
    best : Series or None
        The feasible configuration with the highest predicted tokens/s (ties: lower cost);
        None when no configuration is feasible.
    pareto : DataFrame
        Feasible configurations not dominated in (tokens/s up, cost down), by cost.
    """

    table: pd.DataFrame
    best: pd.Series | None
    pareto: pd.DataFrame

    @property
    def feasible_count(self) -> int:
        return int(self.table["feasible"].sum())


def pareto_front(
    table: pd.DataFrame, *, maximize: str = "tokens_per_s", minimize: str = "cost"
) -> pd.DataFrame:
    """Rows not dominated in (``maximize`` up, ``minimize`` down), sorted by ``minimize``.

    Notes
    -----
    Sort by cost, then by value descending; a row is on the front when its value beats every
    cheaper row's (a running maximum), O(m log m). Equal points keep the first.

    Examples
    --------
    >>> t = pd.DataFrame({"tokens_per_s": [1.0, 3.0, 2.0, 3.0], "cost": [1.0, 2.0, 2.0, 3.0]})
    >>> pareto_front(t).index.tolist()
    [0, 1]
    """
    if table.empty:
        return table.copy()
    order = table.sort_values([minimize, maximize], ascending=[True, False], kind="stable")
    value = order[maximize].to_numpy()
    best_before = np.concatenate([[-np.inf], np.maximum.accumulate(value)[:-1]])
    return order[value > best_before]


def grid_search(problem: SearchProblem, space: SearchSpace) -> GridResult:
    """Score every configuration of ``space``.

    Parameters
    ----------
    problem : SearchProblem
        Target, latencies, acceptance source and budgets.
    space : SearchSpace
        The configurations.

    Returns
    -------
    GridResult
    """
    table = predict_configs(problem, space.enumerate())
    feasible = table[table["feasible"]]
    best = None
    if not feasible.empty:
        order = feasible.sort_values(
            ["tokens_per_s", "cost"], ascending=[False, True], kind="stable"
        )
        best = order.iloc[0]
    return GridResult(table=table, best=best, pareto=pareto_front(feasible))
