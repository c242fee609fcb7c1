"""Zoo figures: the target's training curve, and the drafts' acceptance against their loss.

Reads what ``scripts/build_zoo.sh`` and ``scripts/measure_zoo.py`` wrote under ``data/zoo/``:
``target/training_log*.csv`` (one row per evaluation: step, tokens, train and validation loss
in nats/token, learning rate) and ``drafts.csv`` (one row per draft; columns in
``data/zoo/README.md``). pandas only; plotly is imported when a figure is drawn.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from explorer.figures._plotly import PALETTE, new_subplots, style
from explorer.figures.validation import load_table

if TYPE_CHECKING:  # pragma: no cover
    import plotly.graph_objects as go

__all__ = [
    "AlphaLossInfo",
    "TrainingCurveInfo",
    "alpha_loss_columns",
    "get_alpha_loss_info",
    "get_training_curve_info",
    "plot_alpha_loss",
    "plot_training_curve",
]

LOG_COLUMNS = ("step", "tokens", "train_loss", "val_loss", "lr")
DRAFT_COLUMNS = ("name", "depth", "params", "distilled", "val_loss")


class TrainingCurveInfo(NamedTuple):
    """One row per evaluation of every stage, tokens counted from the first stage's start."""

    stage: NDArray  # 1, 2, ... in training order
    step: NDArray  # step within its stage
    tokens_total: NDArray  # tokens seen since the random start
    train_loss: NDArray  # nats/token, mean over the steps since the last evaluation (nan at 0)
    val_loss: NDArray  # nats/token on the validation windows


class AlphaLossInfo(NamedTuple):
    """Per draft: shape, validation loss and α̂ at one γ; Spearman's ρ between loss and α̂."""

    name: NDArray
    depth: NDArray
    params: NDArray
    distilled: NDArray
    val_loss: NDArray  # nats/token
    alpha_greedy: NDArray  # α̂ at γ = ``gamma``
    alpha_t1: NDArray
    gamma: int
    spearman_greedy: float
    spearman_t1: float


def _stage_logs(target_dir: Path) -> list[Path]:
    staged = sorted(
        target_dir.glob("training_log_stage*.csv"),
        key=lambda p: int(p.stem.removeprefix("training_log_stage") or 0),
    )
    final = target_dir / "training_log.csv"
    return staged + ([final] if final.is_file() else [])


def get_training_curve_info(target_dir: str | os.PathLike[str]) -> TrainingCurveInfo:
    """The training curve of a zoo model over all its stages.

    Parameters
    ----------
    target_dir : path
        A folder written by ``specdec train``; earlier stages of a continued run are read from
        ``training_log_stage<N>.csv`` beside its ``training_log.csv``.

    Raises
    ------
    ValueError
        No training log in the folder, or a log without the columns of :data:`LOG_COLUMNS`.
    """
    folder = Path(target_dir)
    logs = _stage_logs(folder)
    if not logs:
        raise ValueError(f"no training_log.csv in {folder}: is it a `specdec train` folder?")
    parts, offset = [], 0
    for stage, path in enumerate(logs, start=1):
        log = pd.read_csv(path)
        missing = [c for c in LOG_COLUMNS if c not in log.columns]
        if missing:
            raise ValueError(f"{path} is not a training log: it lacks columns {missing}.")
        if stage > 1:  # a continued stage's step 0 re-evaluates the weights it started from
            log = log[log["step"] > 0]
        log = log.assign(stage=stage, tokens_total=log["tokens"] + offset)
        offset = int(log["tokens_total"].max()) if len(log) else offset
        parts.append(log)
    curve = pd.concat(parts, ignore_index=True)
    return TrainingCurveInfo(
        stage=curve["stage"].to_numpy(np.int64),
        step=curve["step"].to_numpy(np.int64),
        tokens_total=curve["tokens_total"].to_numpy(np.int64),
        train_loss=pd.to_numeric(curve["train_loss"], errors="coerce").to_numpy(float),
        val_loss=curve["val_loss"].to_numpy(float),
    )


def plot_training_curve(info: TrainingCurveInfo, *, title: str | None = None) -> go.Figure:
    """Validation and training loss against tokens seen, one colour per stage."""
    fig = new_subplots(rows=1, cols=1)
    for k, stage in enumerate(dict.fromkeys(info.stage.tolist())):
        on = info.stage == stage
        colour = PALETTE[k % len(PALETTE)]
        fig.add_scatter(
            x=info.tokens_total[on], y=info.val_loss[on], mode="lines+markers",
            name=f"stage {stage}: validation", line={"color": colour},
            hovertemplate="%{x:,} tokens<br>val %{y:.3f} nats/token<extra></extra>",
        )  # fmt: skip
        fig.add_scatter(
            x=info.tokens_total[on], y=info.train_loss[on], mode="lines",
            name=f"stage {stage}: training", line={"color": colour, "dash": "dot"},
            hovertemplate="%{x:,} tokens<br>train %{y:.3f} nats/token<extra></extra>",
        )  # fmt: skip
    fig.update_xaxes(title_text="tokens seen")
    fig.update_yaxes(title_text="loss (nats/token)")
    last = float(info.val_loss[-1])
    return style(fig, title=title or f"Zoo target: training curve (final validation {last:.3f})")


def alpha_loss_columns(gamma: int = 4) -> tuple[str, ...]:
    """The columns of a zoo drafts table that :func:`get_alpha_loss_info` reads."""
    return (*DRAFT_COLUMNS, f"alpha_greedy_g{gamma}", f"alpha_t1_g{gamma}")


def get_alpha_loss_info(
    drafts: pd.DataFrame | str | os.PathLike[str], *, gamma: int = 4
) -> AlphaLossInfo:
    """Validation loss and α̂ of every draft in a zoo ``drafts.csv`` (a path or the table read
    with :func:`explorer.figures.validation.load_table`), with Spearman's ρ.

    Raises
    ------
    ValueError
        ``gamma`` outside 1..8, or a table without the needed columns.
    """
    from scipy.stats import spearmanr

    if not 1 <= gamma <= 8:
        raise ValueError(f"`1 <= gamma <= 8` must hold (drafts.csv has γ 1..8), but got {gamma=}.")
    table = drafts if isinstance(drafts, pd.DataFrame) else load_table(drafts)
    missing = [c for c in alpha_loss_columns(gamma) if c not in table.columns]
    if missing:
        where = "the table" if isinstance(drafts, pd.DataFrame) else str(drafts)
        raise ValueError(f"{where} is not a zoo drafts table: it lacks columns {missing}.")
    loss = table["val_loss"].to_numpy(float)
    greedy = table[f"alpha_greedy_g{gamma}"].to_numpy(float)
    t1 = table[f"alpha_t1_g{gamma}"].to_numpy(float)
    rho = [
        float(spearmanr(loss, a).statistic) if len(loss) > 2 else float("nan") for a in (greedy, t1)
    ]
    return AlphaLossInfo(
        name=table["name"].to_numpy(object),
        depth=table["depth"].to_numpy(np.int64),
        params=table["params"].to_numpy(np.int64),
        distilled=table["distilled"].astype(str).str.lower().eq("true").to_numpy(),
        val_loss=loss,
        alpha_greedy=greedy,
        alpha_t1=t1,
        gamma=gamma,
        spearman_greedy=rho[0],
        spearman_t1=rho[1],
    )


def plot_alpha_loss(info: AlphaLossInfo) -> go.Figure:
    """α̂ against validation loss, greedy and at T = 1, one colour per depth."""
    fig = new_subplots(rows=1, cols=1)
    depths = sorted(set(info.depth.tolist()))
    for k, depth in enumerate(depths):
        on = info.depth == depth
        colour = PALETTE[k % len(PALETTE)]
        for col, symbol, label in (
            ("alpha_greedy", "circle", "greedy"),
            ("alpha_t1", "diamond-open", "T = 1"),
        ):
            fig.add_scatter(
                x=info.val_loss[on], y=getattr(info, col)[on], mode="markers+text",
                text=info.name[on], textposition="top center",
                marker={"color": colour, "symbol": symbol, "size": 10},
                name=f"{depth} layer{'s' if depth > 1 else ''}, {label}",
                hovertemplate="%{text}<br>val loss %{x:.3f}<br>α̂ %{y:.3f}<extra></extra>",
            )  # fmt: skip
    fig.update_xaxes(title_text="validation loss (nats/token)")
    fig.update_yaxes(title_text=f"α̂ at γ = {info.gamma}")
    return style(
        fig,
        title=(
            f"Zoo drafts: acceptance against validation loss (Spearman ρ greedy "
            f"{info.spearman_greedy:+.2f}, T = 1 {info.spearman_t1:+.2f})"
        ),
    )
