"""Predicted vs measured, and the zoo's shallow-wide vs deep-narrow comparison.

Two sources:

- a validation table (``specdec validate``, or any CSV/JSON with the same columns): one row per
  validated draft, with a predicted and a measured value of α, draft latency, tokens/s and
  speedup. A quantity ``q`` is read from ``predicted_q`` (or ``q_predicted``, or plain ``q``)
  and ``measured_q`` (or ``q_measured``);
- the zoo table ``data/zoo/drafts.csv`` (``scripts/measure_zoo.py``): one row per draft with its
  shape, training, α̂ and τ per γ, per-token latencies and measured speculative tokens/s. The
  model's prediction for each draft is computed here from the draft's *measured* α and
  latencies (:func:`perfmodel.speculative_throughput`), so the comparison isolates the step
  model from the acceptance model.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from explorer.figures._plotly import PALETTE, go_module, new_figure, new_subplots, style
from perfmodel.throughput import speculative_throughput

if TYPE_CHECKING:  # pragma: no cover
    import plotly.graph_objects as go

__all__ = [
    "QUANTITIES",
    "ShapePairsInfo",
    "ValidationInfo",
    "ZooInfo",
    "get_shape_pairs_info",
    "get_validation_info",
    "get_zoo_info",
    "load_table",
    "plot_predicted_vs_measured",
    "plot_shape_pairs",
    "plot_validation_errors",
    "plot_zoo_tradeoff",
    "shape_pairs_table",
    "validation_error_table",
    "zoo_validation_frame",
]

# Quantity -> (label, names it may go by, most specific first).
QUANTITIES = {
    "acceptance_rate": ("α (acceptance rate)", ("acceptance_rate", "alpha")),
    "draft_ms": (
        "draft latency per token (ms)",
        ("draft_pass_ms", "draft_ms_per_token", "draft_token_ms", "draft_ms"),
    ),
    "target_ms": ("target latency per pass (ms)", ("target_ms",)),
    "tokens_per_s": ("speculative tokens/s", ("tokens_per_s", "spec_tokens_per_s")),
    "speedup": ("speedup (×)", ("speedup",)),
}
_LABEL_COLUMNS = ("name", "trial", "number", "draft")


class ValidationInfo(NamedTuple):
    """Predicted and measured values per validated draft, for each quantity found."""

    label: tuple[str, ...]  # (n,) one per row (draft name or trial number and shape)
    quantity: tuple[str, ...]  # (k,) keys of QUANTITIES present in the table
    column: tuple[tuple[str, str], ...]  # (k,) (predicted, measured) column names used
    predicted: NDArray[np.float64]  # (k, n) NaN where a row lacks the value
    measured: NDArray[np.float64]  # (k, n)
    relative_error: NDArray[np.float64]  # (k, n) predicted / measured − 1


class ZooInfo(NamedTuple):
    """The zoo's drafts: shape, training, acceptance, latency, measured and predicted tokens/s."""

    name: NDArray[np.object_]  # (d,)
    depth: NDArray[np.int64]
    hidden: NDArray[np.int64]
    params: NDArray[np.int64]
    distilled: NDArray[np.bool_]
    val_loss: NDArray[np.float64]
    best_gamma: NDArray[np.int64]  # γ the speculative run used
    acceptance_rate: NDArray[np.float64]  # α̂ (greedy) at best_gamma
    tokens_per_step: NDArray[np.float64]  # τ (greedy) at best_gamma
    draft_ms: NDArray[np.float64]  # per-token latency of the draft
    target_ms: NDArray[np.float64]  # per-token latency of the target
    measured_tokens_per_s: NDArray[np.float64]
    baseline_tokens_per_s: NDArray[np.float64]
    measured_speedup: NDArray[np.float64]
    predicted_tokens_per_s: NDArray[np.float64]  # perfmodel, measured α and latencies
    predicted_speedup: NDArray[np.float64]


class ShapePairsInfo(NamedTuple):
    """Pairs of zoo drafts of about the same size: the shallower one against the deeper one."""

    shallow: NDArray[np.object_]  # (p,) names
    deep: NDArray[np.object_]
    shallow_depth: NDArray[np.int64]
    deep_depth: NDArray[np.int64]
    shallow_params: NDArray[np.int64]
    deep_params: NDArray[np.int64]
    shallow_alpha: NDArray[np.float64]
    deep_alpha: NDArray[np.float64]
    shallow_ms: NDArray[np.float64]
    deep_ms: NDArray[np.float64]
    shallow_tokens_per_s: NDArray[np.float64]  # measured
    deep_tokens_per_s: NDArray[np.float64]
    measured_gain_pct: NDArray[np.float64]  # 100·(shallow / deep − 1), measured tokens/s
    predicted_gain_pct: NDArray[np.float64]  # the same from perfmodel's predictions


# --- loading -------------------------------------------------------------------------------------


def load_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a CSV, a JSON list of rows, or a JSON object with a list under ``rows``/``drafts``.

    Raises
    ------
    FileNotFoundError
        When the file does not exist.
    ValueError
        When it cannot be read as a table or holds no row.
    """
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"table {str(file)!r} does not exist.")
    try:
        if file.suffix.lower() == ".json":
            data = json.loads(file.read_text(encoding="utf-8"))
            if isinstance(data, dict):
                for key in ("rows", "drafts", "validated", "table", "results"):
                    if isinstance(data.get(key), list):
                        data = data[key]
                        break
                else:
                    data = [data]
            frame = pd.DataFrame(data)
        else:
            frame = pd.read_csv(file)
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ValueError(
            f"table {str(file)!r} is not a readable CSV or JSON table: {exc}"
        ) from None
    if frame.empty:
        raise ValueError(f"table {str(file)!r} holds no row.")
    return frame


def _as_frame(table: pd.DataFrame | str | os.PathLike[str]) -> pd.DataFrame:
    return table if isinstance(table, pd.DataFrame) else load_table(table)


# --- predicted vs measured -------------------------------------------------------------------------


def _pair_columns(frame: pd.DataFrame, names: tuple[str, ...]) -> tuple[str, str] | None:
    cols = set(frame.columns)
    for n in names:
        measured = next((c for c in (f"measured_{n}", f"{n}_measured") if c in cols), None)
        predicted = next(
            (c for c in (f"predicted_{n}", f"{n}_predicted", f"pred_{n}", n) if c in cols), None
        )
        if measured and predicted:
            return predicted, measured
    return None


def _labels(frame: pd.DataFrame) -> tuple[str, ...]:
    for col in _LABEL_COLUMNS:
        if col in frame.columns:
            base = frame[col].astype(str)
            if col in ("trial", "number"):
                base = "trial " + base
            break
    else:
        base = pd.Series([f"row {i}" for i in range(len(frame))], index=frame.index)
    if {"depth", "hidden"} <= set(frame.columns) and "name" not in frame.columns:
        base = base + " (d" + frame["depth"].astype(str) + "-h" + frame["hidden"].astype(str) + ")"
    if "gamma" in frame.columns:
        base = base + ", γ=" + frame["gamma"].astype(str)
    return tuple(base.tolist())


def get_validation_info(table: pd.DataFrame | str | os.PathLike[str]) -> ValidationInfo:
    """Data step of the validation figures: predicted and measured value of each quantity.

    Raises
    ------
    ValueError
        When no quantity has both a predicted and a measured column.
    """
    frame = _as_frame(table)
    found, cols, pred, meas = [], [], [], []
    for key, (_, names) in QUANTITIES.items():
        pair = _pair_columns(frame, names)
        if pair is None:
            continue
        found.append(key)
        cols.append(pair)
        pred.append(pd.to_numeric(frame[pair[0]], errors="coerce").to_numpy(np.float64))
        meas.append(pd.to_numeric(frame[pair[1]], errors="coerce").to_numpy(np.float64))
    if not found:
        raise ValueError(
            "the validation table has no predicted/measured pair of columns (for example "
            "`predicted_tokens_per_s` and `measured_tokens_per_s`); its columns are "
            f"{list(frame.columns)}."
        )
    p = np.vstack(pred)
    m = np.vstack(meas)
    with np.errstate(divide="ignore", invalid="ignore"):
        err = np.where(m != 0, p / m - 1.0, np.nan)
    return ValidationInfo(_labels(frame), tuple(found), tuple(cols), p, m, err)


def validation_error_table(info: ValidationInfo) -> pd.DataFrame:
    """Per quantity: drafts compared, median and worst absolute relative error, mean bias (%)."""
    rows = []
    for i, q in enumerate(info.quantity):
        e = info.relative_error[i]
        e = e[np.isfinite(e)]
        rows.append(
            {
                "quantity": QUANTITIES[q][0],
                "drafts": int(e.size),
                "median |error| %": float(np.median(np.abs(e)) * 100) if e.size else np.nan,
                "worst |error| %": float(np.max(np.abs(e)) * 100) if e.size else np.nan,
                "mean error % (bias)": float(np.mean(e) * 100) if e.size else np.nan,
            }
        )
    return pd.DataFrame(rows)


def plot_predicted_vs_measured(info: ValidationInfo) -> go.Figure:
    """One panel per quantity: predicted against measured, the diagonal = exact."""
    go = go_module()
    k = len(info.quantity)
    fig = new_subplots(
        rows=1,
        cols=k,
        subplot_titles=[QUANTITIES[q][0] for q in info.quantity],
        horizontal_spacing=0.28 / max(k, 1),
    )
    for i, q in enumerate(info.quantity):
        p, m = info.predicted[i], info.measured[i]
        ok = np.isfinite(p) & np.isfinite(m)
        text = [
            f"{lbl}: {100 * e:+.1f}%"
            for lbl, e in zip(info.label, info.relative_error[i], strict=True)
        ]
        fig.add_trace(
            go.Scatter(
                x=m[ok],
                y=p[ok],
                mode="markers",
                name=QUANTITIES[q][0],
                showlegend=False,
                marker={"color": PALETTE[i % len(PALETTE)], "size": 9},
                text=np.array(text, dtype=object)[ok],
                hovertemplate="measured %{x:.4g}<br>predicted %{y:.4g}<br>%{text}<extra></extra>",
            ),
            row=1,
            col=i + 1,
        )
        if ok.any():
            lo = float(min(p[ok].min(), m[ok].min()))
            hi = float(max(p[ok].max(), m[ok].max()))
            pad = 0.05 * (hi - lo or abs(hi) or 1.0)
            fig.add_trace(
                go.Scatter(
                    x=[lo - pad, hi + pad],
                    y=[lo - pad, hi + pad],
                    mode="lines",
                    line={"color": "#888", "dash": "dot"},
                    showlegend=False,
                    hoverinfo="skip",
                ),
                row=1,
                col=i + 1,
            )
        fig.update_xaxes(title="measured", row=1, col=i + 1)
        fig.update_yaxes(title="predicted" if i == 0 else None, row=1, col=i + 1)
    return style(fig, title="Predicted against measured (dotted: exact)", height=420)


def plot_validation_errors(info: ValidationInfo) -> go.Figure:
    """Distribution of the relative error (%) of each quantity, one box with its points."""
    go = go_module()
    fig = new_figure()
    for i, q in enumerate(info.quantity):
        e = 100 * info.relative_error[i]
        ok = np.isfinite(e)
        fig.add_trace(
            go.Box(
                y=e[ok],
                name=QUANTITIES[q][0],
                boxpoints="all",
                jitter=0.4,
                pointpos=0,
                marker={"color": PALETTE[i % len(PALETTE)]},
                text=np.array(info.label, dtype=object)[ok],
                hovertemplate="%{text}: %{y:+.1f}%<extra></extra>",
            )
        )
    fig.add_hline(y=0.0, line={"color": "#888", "width": 1})
    fig.update_yaxes(title="predicted / measured − 1 (%)")
    return style(fig, title="Error distribution of the predictions", height=420)


# --- the zoo ---------------------------------------------------------------------------------------


def _column(frame: pd.DataFrame, *names: str) -> pd.Series:
    for n in names:
        if n in frame.columns:
            return pd.to_numeric(frame[n], errors="coerce")
    return pd.Series(np.nan, index=frame.index)


def get_zoo_info(
    table: pd.DataFrame | str | os.PathLike[str], *, decoding: str = "greedy"
) -> ZooInfo:
    """Data step of the zoo figures, from ``data/zoo/drafts.csv`` (or a frame like it).

    Parameters
    ----------
    table : DataFrame or path
        One row per draft (``scripts/measure_zoo.py``'s columns).
    decoding : {"greedy", "t1"}
        Which measurement: greedy decoding or sampling at temperature 1. Columns are read as
        ``<name>_<decoding>`` (``best_gamma_greedy``, ``spec_tokens_per_s_t1``, ...) and
        ``alpha_<decoding>_g<γ>``, falling back to the plain ``<name>``.

    Raises
    ------
    ValueError
        When a needed column is missing or ``decoding`` is unknown.
    """
    if decoding not in ("greedy", "t1"):
        raise ValueError(f"`decoding in ('greedy', 't1')` must hold, but got {decoding=}.")
    frame = _as_frame(table)
    needed = ("name", "depth", "hidden", "params", "draft_ms_per_token", "target_ms_per_token")
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise ValueError(f"the zoo table lacks the columns {missing}.")

    def col(name: str) -> pd.Series:
        return _column(frame, f"{name}_{decoding}", name)

    best = col("best_gamma").fillna(4).astype(np.int64).to_numpy()
    alpha = np.array(
        [
            _column(frame.iloc[[i]], f"alpha_{decoding}_g{g}", "acceptance_rate").iloc[0]
            for i, g in enumerate(best)
        ],
        dtype=np.float64,
    )
    tau = np.array(
        [_column(frame.iloc[[i]], f"tau_{decoding}_g{g}").iloc[0] for i, g in enumerate(best)],
        dtype=np.float64,
    )
    draft_ms = _column(frame, "draft_ms_per_token").to_numpy(np.float64)
    target_ms = _column(frame, "target_ms_per_token").to_numpy(np.float64)
    # The model's prediction from what was measured: α at the γ used, per-token latencies, the
    # verification pass taken to cost one target token (how the zoo chose its γ).
    ok = np.isfinite(alpha) & (draft_ms > 0) & (target_ms > 0)
    pred_tps = np.full(len(frame), np.nan)
    pred_speedup = np.full(len(frame), np.nan)
    if ok.any():
        r = speculative_throughput(
            best[ok],
            acceptance_rate=np.clip(alpha[ok], 0.0, 1.0),
            draft_ms=draft_ms[ok],
            target_ms=target_ms[ok],
        )
        pred_tps[ok] = r["tokens_per_s"]
        pred_speedup[ok] = r["speedup"]
    distilled = (
        frame["distilled"].astype(str).str.lower().isin(("true", "1", "yes")).to_numpy()
        if "distilled" in frame.columns
        else np.ones(len(frame), dtype=bool)
    )
    return ZooInfo(
        name=frame["name"].astype(str).to_numpy(object),
        depth=frame["depth"].astype(np.int64).to_numpy(),
        hidden=frame["hidden"].astype(np.int64).to_numpy(),
        params=frame["params"].astype(np.int64).to_numpy(),
        distilled=distilled,
        val_loss=_column(frame, "val_loss").to_numpy(np.float64),
        best_gamma=best,
        acceptance_rate=alpha,
        tokens_per_step=tau,
        draft_ms=draft_ms,
        target_ms=target_ms,
        measured_tokens_per_s=col("spec_tokens_per_s").to_numpy(np.float64),
        baseline_tokens_per_s=col("baseline_tokens_per_s").to_numpy(np.float64),
        measured_speedup=col("speedup").to_numpy(np.float64),
        predicted_tokens_per_s=pred_tps,
        predicted_speedup=pred_speedup,
    )


def zoo_validation_frame(zoo: ZooInfo) -> pd.DataFrame:
    """The zoo as a validation table: perfmodel (measured α and latencies) vs the real runs."""
    return pd.DataFrame(
        {
            "name": zoo.name,
            "gamma": zoo.best_gamma,
            "predicted_tokens_per_s": zoo.predicted_tokens_per_s,
            "measured_tokens_per_s": zoo.measured_tokens_per_s,
            "predicted_speedup": zoo.predicted_speedup,
            "measured_speedup": zoo.measured_speedup,
        }
    )


def get_shape_pairs_info(zoo: ZooInfo, *, tolerance: float = 0.5) -> ShapePairsInfo:
    """Every pair of distilled drafts of different depth whose sizes are within ``1 + tolerance``.

    Sizes match when max(params) / min(params) <= 1 + tolerance (default: within 1.5× of each
    other, the spread of the seed paper's own comparison, 796M against 1.3B). The pair is
    ordered shallow (fewer layers) first; the seed paper's finding is a positive
    ``measured_gain_pct``: the shallow, wide draft is faster at about the same size.
    """
    if not tolerance > 0:
        raise ValueError(f"`tolerance > 0` must hold, but got {tolerance=}.")
    idx = np.flatnonzero(zoo.distilled)
    pairs = []
    for a in idx:
        for b in idx:
            if zoo.depth[a] >= zoo.depth[b]:
                continue
            big, small = max(zoo.params[a], zoo.params[b]), min(zoo.params[a], zoo.params[b])
            if big <= (1.0 + tolerance) * small:
                pairs.append((a, b))
    s = np.array([p[0] for p in pairs], dtype=np.int64)
    d = np.array([p[1] for p in pairs], dtype=np.int64)
    with np.errstate(divide="ignore", invalid="ignore"):
        meas = 100 * (zoo.measured_tokens_per_s[s] / zoo.measured_tokens_per_s[d] - 1.0)
        pred = 100 * (zoo.predicted_tokens_per_s[s] / zoo.predicted_tokens_per_s[d] - 1.0)
    return ShapePairsInfo(
        shallow=zoo.name[s],
        deep=zoo.name[d],
        shallow_depth=zoo.depth[s],
        deep_depth=zoo.depth[d],
        shallow_params=zoo.params[s],
        deep_params=zoo.params[d],
        shallow_alpha=zoo.acceptance_rate[s],
        deep_alpha=zoo.acceptance_rate[d],
        shallow_ms=zoo.draft_ms[s],
        deep_ms=zoo.draft_ms[d],
        shallow_tokens_per_s=zoo.measured_tokens_per_s[s],
        deep_tokens_per_s=zoo.measured_tokens_per_s[d],
        measured_gain_pct=meas,
        predicted_gain_pct=pred,
    )


def shape_pairs_table(pairs: ShapePairsInfo) -> pd.DataFrame:
    """The matched pairs as a table (shallow-wide first), largest measured gain first."""
    frame = pd.DataFrame(
        {
            "shallow-wide": pairs.shallow,
            "deep-narrow": pairs.deep,
            "params (M)": [
                f"{a / 1e6:.2f} / {b / 1e6:.2f}"
                for a, b in zip(pairs.shallow_params, pairs.deep_params, strict=True)
            ],
            "α shallow": pairs.shallow_alpha,
            "α deep": pairs.deep_alpha,
            "ms/token shallow": pairs.shallow_ms,
            "ms/token deep": pairs.deep_ms,
            "tokens/s shallow": pairs.shallow_tokens_per_s,
            "tokens/s deep": pairs.deep_tokens_per_s,
            "measured gain %": pairs.measured_gain_pct,
            "predicted gain %": pairs.predicted_gain_pct,
        }
    )
    return frame.sort_values("measured gain %", ascending=False).reset_index(drop=True)


def plot_shape_pairs(pairs: ShapePairsInfo) -> go.Figure:
    """Throughput gain of the shallow-wide draft over its deep-narrow twin, measured and predicted."""
    go = go_module()
    fig = new_figure()
    labels = [f"{s} vs {d}" for s, d in zip(pairs.shallow, pairs.deep, strict=True)]
    fig.add_trace(
        go.Bar(
            x=labels,
            y=pairs.measured_gain_pct,
            name="measured",
            marker={"color": PALETTE[0]},
            hovertemplate="%{x}<br>measured %{y:+.1f}%<extra></extra>",
        )
    )
    fig.add_trace(
        go.Bar(
            x=labels,
            y=pairs.predicted_gain_pct,
            name="predicted (perfmodel, measured α and latency)",
            marker={"color": PALETTE[3]},
            hovertemplate="%{x}<br>predicted %{y:+.1f}%<extra></extra>",
        )
    )
    fig.add_hline(y=0.0, line={"color": "#888", "width": 1})
    fig.update_layout(barmode="group")
    fig.update_yaxes(title="tokens/s of shallow-wide over deep-narrow (%)")
    return style(
        fig,
        title="Shallow-wide vs deep-narrow drafts of about the same size (positive: shallow wins)",
        height=440,
    )


def plot_zoo_tradeoff(zoo: ZooInfo) -> go.Figure:
    """Left: measured speculative tokens/s against draft latency; right: α against val loss."""
    go = go_module()
    fig = new_subplots(
        rows=1,
        cols=2,
        subplot_titles=(
            "speculative tokens/s against draft latency",
            "acceptance rate against validation loss",
        ),
        horizontal_spacing=0.12,
    )
    depths = sorted(set(zoo.depth.tolist()))
    size = 8 + 22 * np.sqrt(zoo.params / max(zoo.params.max(), 1))
    for i, d in enumerate(depths):
        m = zoo.depth == d
        colour = PALETTE[i % len(PALETTE)]
        text = [
            f"{n}: {p / 1e6:.2f}M params, γ={g}{'' if dist else ', not distilled'}"
            for n, p, g, dist in zip(
                zoo.name[m], zoo.params[m], zoo.best_gamma[m], zoo.distilled[m], strict=True
            )
        ]
        symbols = np.where(zoo.distilled[m], "circle", "diamond-open")
        fig.add_trace(
            go.Scatter(
                x=zoo.draft_ms[m],
                y=zoo.measured_tokens_per_s[m],
                mode="markers",
                name=f"depth {d}",
                legendgroup=f"d{d}",
                marker={"color": colour, "size": size[m], "symbol": symbols, "opacity": 0.8},
                text=text,
                hovertemplate="%{text}<br>%{x:.3g} ms/token, %{y:.1f} tokens/s<extra></extra>",
            ),
            row=1,
            col=1,
        )
        fig.add_trace(
            go.Scatter(
                x=zoo.val_loss[m],
                y=zoo.acceptance_rate[m],
                mode="markers",
                name=f"depth {d}",
                legendgroup=f"d{d}",
                showlegend=False,
                marker={"color": colour, "size": size[m], "symbol": symbols, "opacity": 0.8},
                text=text,
                hovertemplate="%{text}<br>val loss %{x:.3f}, α=%{y:.3f}<extra></extra>",
            ),
            row=1,
            col=2,
        )
    base = zoo.baseline_tokens_per_s[np.isfinite(zoo.baseline_tokens_per_s)]
    if base.size:
        fig.add_hline(
            y=float(np.median(base)),
            line={"color": "#888", "dash": "dot"},
            annotation_text="plain decoding",
            row=1,
            col=1,
        )
    fig.update_xaxes(title="draft ms per token", row=1, col=1)
    fig.update_yaxes(title="speculative tokens/s (measured)", row=1, col=1)
    fig.update_xaxes(title="validation loss (nats/token)", row=1, col=2)
    fig.update_yaxes(title="α̂ (greedy, at the γ used)", row=1, col=2)
    return style(
        fig,
        title="The zoo: what a draft's latency and quality buy (marker size: parameters)",
        height=470,
    )
