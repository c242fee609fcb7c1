"""Figures of a draft search (an Optuna study): Pareto front, optimisation history, importance.

Each figure is a data step ``get_xxx_info(study, ...) -> XxxInfo`` (a NamedTuple of plain numpy
arrays and strings, unit-tested) and a figure step ``plot_xxx(info) -> go.Figure``. As in Optuna's
own ``plot_pareto_front(study)``, the figure steps also accept the study itself and then run the
data step with its defaults.

Only COMPLETE trials are shown. A trial is feasible when every constraint value it carries
(``trial.constraints``, set with ``trial.set_constraint``) is <= 0, Optuna's convention;
infeasible trials are drawn apart and never take part in the front or the best-so-far line.

Axes are objectives (by index or metric name) or, for a single-objective study, a numeric user
attribute such as the ``params`` that ``specdec search`` stores on every trial: its Pareto front
is then tokens/s against parameters.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
from numpy.typing import NDArray

from explorer.figures._plotly import PALETTE, go_module, new_figure, style

if TYPE_CHECKING:  # pragma: no cover
    import optuna
    import plotly.graph_objects as go

__all__ = [
    "HistoryInfo",
    "ImportanceInfo",
    "ParetoInfo",
    "get_history_info",
    "get_importance_info",
    "get_pareto_info",
    "plot_history",
    "plot_importance",
    "plot_pareto",
    "study_summary",
]

# Study user attribute where `specdec search` records what the study is for (its cost name).
_SETTINGS_ATTR = "specdec_settings"
# User attribute of a trial copy that `specdec validate` adds to hold measured values.
_VALIDATION_COPY_ATTR = "validation_of"


class ParetoInfo(NamedTuple):
    """Two objectives of every complete trial, split into Pareto-optimal, dominated, infeasible."""

    x_name: str
    y_name: str
    x_direction: str  # "maximize" | "minimize"
    y_direction: str
    trial_number: NDArray[np.int64]  # (n,) complete trials
    x: NDArray[np.float64]  # (n,)
    y: NDArray[np.float64]  # (n,)
    feasible: NDArray[np.bool_]  # (n,)
    on_front: NDArray[np.bool_]  # (n,) feasible and not dominated by a feasible trial
    hover: tuple[str, ...]  # (n,) parameters of each trial, one line each


class HistoryInfo(NamedTuple):
    """One objective over trial number, with the best feasible value so far."""

    objective_name: str
    direction: str
    trial_number: NDArray[np.int64]
    value: NDArray[np.float64]
    feasible: NDArray[np.bool_]
    best_so_far: NDArray[np.float64]  # NaN until the first feasible trial


class ImportanceInfo(NamedTuple):
    """Parameter importances for one objective (PED-ANOVA; sums to 1), most important first."""

    objective_name: str
    param_names: tuple[str, ...]
    importance: NDArray[np.float64]
    n_trials: int
    evaluator: str
    note: str  # why the importances are empty, when they are


def _objective_names(study: optuna.Study) -> list[str]:
    names = getattr(study, "metric_names", None)
    n = len(study.directions)
    if names and len(names) == n:
        return [str(v) for v in names]
    settings = study.user_attrs.get(_SETTINGS_ATTR)
    if isinstance(settings, dict):
        # `specdec search`: tokens/s, and in multi mode the cost.
        return ["tokens_per_s", str(settings.get("cost", "cost"))][:n]
    return ["objective"] if n == 1 else [f"objective {i}" for i in range(n)]


def _directions(study: optuna.Study) -> list[str]:
    return [d.name.lower() for d in study.directions]


def _complete_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """COMPLETE trials of the search, without the copies `specdec validate` adds.

    Validation records the truth on a copy of a trial (user attribute ``validation_of``); the
    copy is not a proposal of the search, so it is left out of the search's figures.
    """
    import optuna

    trials = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    return [t for t in trials if _VALIDATION_COPY_ATTR not in t.user_attrs]


def _is_feasible(trial: optuna.trial.FrozenTrial) -> bool:
    return all(c <= 0.0 for c in trial.constraints.values())


def _format_params(params: dict[str, object]) -> str:
    parts = []
    for key, value in params.items():
        shown = f"{value:.4g}" if isinstance(value, float) else str(value)
        parts.append(f"{key}={shown}")
    return ", ".join(parts)


def _resolve_objective(study: optuna.Study, objective: int | str) -> int:
    names = _objective_names(study)
    if isinstance(objective, str):
        if objective not in names:
            raise ValueError(f"`objective` must be one of {names}, but got {objective=}.")
        return names.index(objective)
    if not 0 <= objective < len(names):
        raise ValueError(
            f"`0 <= objective < {len(names)}` must hold for this study, but got {objective=}."
        )
    return int(objective)


def _pareto_mask(x: NDArray, y: NDArray, *, x_max: bool, y_max: bool) -> NDArray[np.bool_]:
    """True where no other point is at least as good on both axes and better on one."""
    # Turn both into "smaller is better".
    a = -x if x_max else x
    b = -y if y_max else y
    le = (a[None, :] <= a[:, None]) & (b[None, :] <= b[:, None])  # (i, j): j weakly beats i
    lt = (a[None, :] < a[:, None]) | (b[None, :] < b[:, None])
    return ~(le & lt).any(axis=1)


def _axis(
    study: optuna.Study, axis: int | str, direction: str | None, trials: list
) -> tuple[str, str, NDArray[np.float64]]:
    """(name, direction, values) of one axis: an objective, or a numeric user attribute."""
    names = _objective_names(study)
    if isinstance(axis, int) or axis in names:
        i = _resolve_objective(study, axis)
        values = np.array([t.values[i] for t in trials], dtype=np.float64)
        return names[i], _directions(study)[i], values
    if not trials or any(axis not in t.user_attrs for t in trials):
        raise ValueError(
            f"`{axis}` must be an objective ({names}) or a user attribute of every complete "
            f"trial, but study {study.study_name!r} has no such attribute on all its trials."
        )
    if direction not in ("maximize", "minimize"):
        raise ValueError(
            f"a user-attribute axis needs `direction in ('maximize', 'minimize')`, but got "
            f"{direction=} for {axis!r}."
        )
    values = np.array([float(t.user_attrs[axis]) for t in trials], dtype=np.float64)
    return str(axis), direction, values


def get_pareto_info(
    study: optuna.Study,
    *,
    x: int | str | None = None,
    y: int | str | None = None,
    x_direction: str | None = "minimize",
    y_direction: str | None = "maximize",
) -> ParetoInfo:
    """Data step of :func:`plot_pareto`: two axes of each complete trial, the front marked.

    Parameters
    ----------
    study : optuna.Study
        Any study; its complete trials are shown.
    x, y : int or str, optional
        Objective index, metric name, or the name of a numeric user attribute of every trial.
        Defaults: with two objectives, the second (the cost) on x and the first (tokens/s) on y;
        with one, the ``params`` user attribute on x and the objective on y.
    x_direction, y_direction : {"maximize", "minimize"}
        Direction of an axis that is a user attribute (objectives keep the study's).

    Raises
    ------
    ValueError
        When an axis is neither an objective nor a user attribute of every trial.
    """
    if x is None:
        x = 1 if len(study.directions) >= 2 else "params"
    if y is None:
        y = 0
    trials = _complete_trials(study)
    x_name, x_dir, xv = _axis(study, x, x_direction, trials)
    y_name, y_dir, yv = _axis(study, y, y_direction, trials)
    number = np.array([t.number for t in trials], dtype=np.int64)
    feasible = np.array([_is_feasible(t) for t in trials], dtype=bool)
    on_front = np.zeros(len(trials), dtype=bool)
    if feasible.any():
        idx = np.flatnonzero(feasible)
        on_front[idx] = _pareto_mask(
            xv[idx], yv[idx], x_max=x_dir == "maximize", y_max=y_dir == "maximize"
        )
    hover = tuple(f"trial {t.number}: {_format_params(t.params)}" for t in trials)
    return ParetoInfo(
        x_name=x_name,
        y_name=y_name,
        x_direction=x_dir,
        y_direction=y_dir,
        trial_number=number,
        x=xv,
        y=yv,
        feasible=feasible,
        on_front=on_front,
        hover=hover,
    )


def plot_pareto(info: ParetoInfo | optuna.Study) -> go.Figure:
    """Scatter of two objectives; the Pareto-optimal trials joined by a line.

    ``info`` is a :class:`ParetoInfo` from ``get_pareto_info`` or a study.
    """
    if not isinstance(info, ParetoInfo):
        info = get_pareto_info(info)
    go = go_module()
    fig = new_figure()
    hover = np.array(info.hover, dtype=object)
    groups = (
        ("infeasible (violates a constraint)", ~info.feasible, "#bbbbbb", "x"),
        ("dominated", info.feasible & ~info.on_front, PALETTE[0], "circle-open"),
    )
    for name, mask, colour, symbol in groups:
        if mask.any():
            fig.add_trace(
                go.Scatter(
                    x=info.x[mask],
                    y=info.y[mask],
                    mode="markers",
                    name=name,
                    marker={"color": colour, "symbol": symbol, "size": 7},
                    text=hover[mask],
                    hovertemplate="%{text}<br>%{x:.4g}, %{y:.4g}<extra></extra>",
                )
            )
    if info.on_front.any():
        order = np.argsort(info.x[info.on_front])
        fig.add_trace(
            go.Scatter(
                x=info.x[info.on_front][order],
                y=info.y[info.on_front][order],
                mode="lines+markers",
                name="Pareto front",
                line={"color": PALETTE[1], "shape": "hv"},
                marker={"color": PALETTE[1], "size": 9},
                text=hover[info.on_front][order],
                hovertemplate="%{text}<br>%{x:.4g}, %{y:.4g}<extra></extra>",
            )
        )
    fig.update_xaxes(title=f"{info.x_name} ({info.x_direction})")
    fig.update_yaxes(title=f"{info.y_name} ({info.y_direction})")
    n_front = int(info.on_front.sum())
    return style(
        fig, title=f"Pareto front: {n_front} of {len(info.x)} complete trials are Pareto-optimal"
    )


def get_history_info(study: optuna.Study, *, objective: int | str = 0) -> HistoryInfo:
    """Data step of :func:`plot_history`: values of one objective and the best so far."""
    i = _resolve_objective(study, objective)
    direction = _directions(study)[i]
    trials = _complete_trials(study)
    number = np.array([t.number for t in trials], dtype=np.int64)
    value = np.array([t.values[i] for t in trials], dtype=np.float64)
    feasible = np.array([_is_feasible(t) for t in trials], dtype=bool)
    order = np.argsort(number)
    number, value, feasible = number[order], value[order], feasible[order]
    masked = np.where(feasible, value, -np.inf if direction == "maximize" else np.inf)
    acc = np.maximum.accumulate if direction == "maximize" else np.minimum.accumulate
    best = acc(masked) if len(masked) else masked
    best = np.where(np.isfinite(best), best, np.nan)
    return HistoryInfo(
        objective_name=_objective_names(study)[i],
        direction=direction,
        trial_number=number,
        value=value,
        feasible=feasible,
        best_so_far=best,
    )


def plot_history(info: HistoryInfo | optuna.Study) -> go.Figure:
    """Objective value per trial with the best feasible value so far."""
    if not isinstance(info, HistoryInfo):
        info = get_history_info(info)
    go = go_module()
    fig = new_figure()
    for name, mask, colour, symbol in (
        ("feasible trial", info.feasible, PALETTE[0], "circle"),
        ("infeasible trial", ~info.feasible, "#bbbbbb", "x"),
    ):
        if mask.any():
            fig.add_trace(
                go.Scatter(
                    x=info.trial_number[mask],
                    y=info.value[mask],
                    mode="markers",
                    name=name,
                    marker={"color": colour, "symbol": symbol, "size": 6},
                )
            )
    fig.add_trace(
        go.Scatter(
            x=info.trial_number,
            y=info.best_so_far,
            mode="lines",
            name="best so far",
            line={"color": PALETTE[1], "shape": "hv"},
        )
    )
    fig.update_xaxes(title="trial number")
    fig.update_yaxes(title=f"{info.objective_name} ({info.direction})")
    return style(fig, title=f"Optimisation history of {info.objective_name}")


def get_importance_info(
    study: optuna.Study, *, objective: int | str = 0, min_trials: int = 8
) -> ImportanceInfo:
    """Data step of :func:`plot_importance`: PED-ANOVA importances of the search parameters.

    PED-ANOVA (Optuna's ``PedAnovaImportanceEvaluator``) needs no scikit-learn. With fewer than
    ``min_trials`` feasible complete trials the importances are left empty and ``note`` says why.
    """
    import optuna

    i = _resolve_objective(study, objective)
    name = _objective_names(study)[i]
    trials = [t for t in _complete_trials(study) if _is_feasible(t)]
    evaluator_name = "PED-ANOVA"
    empty = np.zeros(0, dtype=np.float64)
    if len(trials) < min_trials:
        return ImportanceInfo(
            name,
            (),
            empty,
            len(trials),
            evaluator_name,
            f"only {len(trials)} feasible complete trials; importances need at least {min_trials}.",
        )
    sign = 1.0 if _directions(study)[i] == "maximize" else -1.0
    # PED-ANOVA compares the top quantile of trials with all of them on one objective; for a
    # multi-objective study the target picks one. Evaluated on a copy so constraints do not count.
    copy = optuna.create_study(direction="maximize")
    copy.add_trials(
        [
            optuna.trial.create_trial(
                params=t.params, distributions=t.distributions, value=sign * t.values[i]
            )
            for t in trials
        ]
    )
    try:
        result = optuna.importance.get_param_importances(
            copy, evaluator=optuna.importance.PedAnovaImportanceEvaluator()
        )
    except (ValueError, RuntimeError) as exc:
        return ImportanceInfo(name, (), empty, len(trials), evaluator_name, str(exc))
    names = tuple(result)
    values = np.array([result[k] for k in names], dtype=np.float64)
    note = "" if names else "no parameter varied across the trials."
    return ImportanceInfo(name, names, values, len(trials), evaluator_name, note)


def plot_importance(info: ImportanceInfo | optuna.Study) -> go.Figure:
    """Horizontal bars of parameter importance, most important on top."""
    if not isinstance(info, ImportanceInfo):
        info = get_importance_info(info)
    go = go_module()
    fig = new_figure()
    if len(info.param_names):
        fig.add_trace(
            go.Bar(
                x=info.importance[::-1],
                y=list(info.param_names)[::-1],
                orientation="h",
                marker={"color": PALETTE[0]},
                text=[f"{v:.2f}" for v in info.importance[::-1]],
                textposition="auto",
            )
        )
    else:
        fig.add_annotation(
            text=f"No importances: {info.note}",
            x=0.5,
            y=0.5,
            xref="paper",
            yref="paper",
            showarrow=False,
        )
    fig.update_xaxes(title=f"importance for {info.objective_name} ({info.evaluator}, sums to 1)")
    height = max(300, 60 + 40 * len(info.param_names))
    return style(
        fig, title=f"Which search parameters matter ({info.n_trials} trials)", height=height
    )


# Trial user attributes `specdec search` sets, shown in the summary when every trial has them.
_SUMMARY_ATTRS = (
    "depth", "hidden", "ffn", "heads", "kv_heads", "gamma", "params", "acceptance_rate",
    "expected_tokens_per_step", "draft_ms", "step_ms", "tokens_per_s", "speedup",
)  # fmt: skip


def study_summary(study: optuna.Study, *, top: int = 10) -> pd.DataFrame:  # noqa: F821
    """The best feasible trials as a table, best first, one row per distinct configuration.

    For a multi-objective study these are the Pareto-optimal trials sorted by the first
    objective; for a single objective, the ``top`` best. Columns: the trial number, the
    objectives, then the configuration and predictions that ``specdec search`` stores as user
    attributes (or the raw parameters of another study).
    """
    import pandas as pd

    names = _objective_names(study)
    dirs = _directions(study)
    trials = [t for t in _complete_trials(study) if _is_feasible(t)]
    if len(dirs) >= 2 and trials:
        info = get_pareto_info(study, x=1, y=0)
        front = set(info.trial_number[info.on_front].tolist())
        trials = [t for t in trials if t.number in front]
    reverse = dirs[0] == "maximize"
    trials = sorted(trials, key=lambda t: (-t.values[0] if reverse else t.values[0], t.number))
    attrs = [a for a in _SUMMARY_ATTRS if trials and all(a in t.user_attrs for t in trials)]
    attrs = [a for a in attrs if a not in names]
    rows, seen = [], set()
    for t in trials:
        config = tuple(sorted(t.params.items()))
        if config in seen:
            continue
        seen.add(config)
        row: dict[str, object] = {"trial": t.number}
        for name, value in zip(names, t.values, strict=True):
            row[name] = value if math.isfinite(value) else None
        if attrs:
            row.update({a: t.user_attrs[a] for a in attrs})
        else:
            row.update(t.params)
        rows.append(row)
        if len(rows) >= top:
            break
    return pd.DataFrame(rows)
