"""Latency figures from the committed profiles: per layer over width, per token over depth.

The profiler (``specdec profile``) writes, per device folder ``data/profiles/<device>/``:
``<model>.csv`` (one row per timed depth, batch, context, query, dtype) and ``<model>.fit.csv``
(T_fixed_ms and T_layer_ms of T(L) = T_fixed + L·T_layer per batch, context, query, dtype, with the
roofline bounds ``roofline_fixed_ms`` and ``roofline_layer_ms``). Columns are documented in
``data/README.md``. This module only reads those CSVs (pandas), so it needs neither torch nor
the profiler.

Per-token latency at depth L is composed from the fit, T_fixed + L·T_layer, exactly as the
profiler splits it; the timed depths are drawn as markers on the composed lines, so a reader sees
how well the straight line holds.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from explorer.figures._plotly import PALETTE, go_module, new_figure, new_subplots, style
from perfmodel.arch import ArchSpec
from perfmodel.gemm_table import GEMM_TABLE_FILE
from perfmodel.latency_profiles import describable

if TYPE_CHECKING:  # pragma: no cover
    import plotly.graph_objects as go

__all__ = [
    "STATISTIC_LABELS",
    "DepthEffectInfo",
    "LayerLatencyInfo",
    "ProfileSet",
    "TokenLatencyInfo",
    "depth_effect_table",
    "get_depth_effect_info",
    "get_layer_latency_info",
    "get_token_latency_info",
    "load_profiles",
    "plot_depth_effect",
    "plot_layer_latency",
    "plot_token_latency",
]

# The fit columns this module reads (a subset of profiler.layers.FIT_COLUMNS).
FIT_NEEDED = (
    "model", "family", "layers", "hidden", "ffn", "heads", "kv_heads", "vocab", "tied",
    "batch", "context", "query", "dtype", "t_fixed_ms", "t_layer_ms", "fit_rel_residual",
    "roofline_fixed_ms", "roofline_layer_ms", "device",
)  # fmt: skip
ROW_NEEDED = ("model", "depth", "batch", "context", "query", "dtype", "median_ms", "device")
SHAPE = ("family", "hidden", "ffn", "heads", "kv_heads", "vocab", "tied")


class ProfileSet(NamedTuple):
    """Every profile found under a folder: fits and raw rows, with the device of each row."""

    fits: pd.DataFrame  # FIT_NEEDED columns (and the rest of the file)
    rows: pd.DataFrame  # ROW_NEEDED columns; may be empty
    devices: tuple[str, ...]
    source: str  # the folder read


class LayerLatencyInfo(NamedTuple):
    """T_layer and T_fixed per profiled shape at one (batch, context, query), with rooflines."""

    batch: int
    query: int
    context: NDArray[np.int64]  # (m,) context of each shape's row (nearest to the chosen one)
    device: NDArray[np.object_]  # (m,)
    model: NDArray[np.object_]  # (m,)
    hidden: NDArray[np.int64]  # (m,)
    layers: NDArray[np.int64]  # (m,) full depth of the profiled model
    layer_ms: NDArray[np.float64]  # (m,) T_layer
    fixed_ms: NDArray[np.float64]  # (m,) T_fixed
    roofline_layer_ms: NDArray[np.float64]  # (m,)
    roofline_fixed_ms: NDArray[np.float64]  # (m,)
    fit_rel_residual: NDArray[np.float64]  # (m,) RMS residual of the depth fit / mean time
    statistic: str  # "cpu" (process CPU time of a one-thread run) or "wall" (wall clock)


class TokenLatencyInfo(NamedTuple):
    """Per-token latency composed over depth for each width, and the timed depths."""

    batch: int
    query: int
    device: NDArray[np.object_]  # (k,) one entry per (shape, depth)
    model: NDArray[np.object_]  # (k,)
    hidden: NDArray[np.int64]  # (k,)
    depth: NDArray[np.int64]  # (k,)
    params: NDArray[np.int64]  # (k,) parameters of the shape at that depth
    token_ms: NDArray[np.float64]  # (k,) T_fixed + depth·T_layer
    roofline_ms: NDArray[np.float64]  # (k,) roofline_fixed + depth·roofline_layer
    measured_device: NDArray[np.object_]  # (j,) timed points
    measured_model: NDArray[np.object_]  # (j,)
    measured_hidden: NDArray[np.int64]  # (j,)
    measured_depth: NDArray[np.int64]  # (j,)
    measured_ms: NDArray[np.float64]  # (j,) median of the timed calls
    statistic: str  # "cpu" or "wall", as in LayerLatencyInfo


class DepthEffectInfo(NamedTuple):
    """Shapes of about the same parameter count but different depth, per budget."""

    device: NDArray[np.object_]  # (r,)
    budget_params: NDArray[np.int64]  # (r,) the budget a row belongs to
    hidden: NDArray[np.int64]  # (r,)
    depth: NDArray[np.int64]  # (r,)
    params: NDArray[np.int64]  # (r,)
    token_ms: NDArray[np.float64]  # (r,)
    slowdown: NDArray[np.float64]  # (r,) token_ms / the fastest of its budget


# --- loading -------------------------------------------------------------------------------------


def _csv_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.csv") if p.is_file() and p.name != GEMM_TABLE_FILE)


def load_profiles(path: str | os.PathLike[str]) -> ProfileSet:
    """Read every ``*.fit.csv`` and ``*.csv`` under ``path`` (a device folder or their parent).

    Raises
    ------
    FileNotFoundError, NotADirectoryError
        When ``path`` is not a folder.
    ValueError
        When it holds no profile CSV, no fit file, or a file lacks a needed column.
    """
    folder = Path(path)
    if not folder.exists():
        raise FileNotFoundError(f"profile folder {str(folder)!r} does not exist.")
    if not folder.is_dir():
        raise NotADirectoryError(f"profile path {str(folder)!r} is not a folder.")
    files = _csv_files(folder)
    if not files:
        raise ValueError(f"profile folder {str(folder)!r} holds no profile CSV files (*.csv).")
    fits, rows = [], []
    for file in files:
        is_fit = file.name.endswith(".fit.csv")
        needed = FIT_NEEDED if is_fit else ROW_NEEDED
        try:
            frame = pd.read_csv(file)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise ValueError(f"profile {str(file)!r} is not a readable CSV: {exc}") from None
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            if not is_fit and "median_ms" not in frame.columns:
                continue  # another table in the folder (not a profile); skip it
            raise ValueError(f"profile {str(file)!r} lacks the columns {missing}.")
        shaped = {"family", "heads", "kv_heads"} <= set(frame.columns)
        if shaped and not describable(frame, own_head_width=False).all():
            continue  # a shape these figures' key does not hold (perfmodel.latency_profiles)
        (fits if is_fit else rows).append(frame)
    if not fits:
        raise ValueError(
            f"profile folder {str(folder)!r} holds no fit files (*.fit.csv, written by "
            "`specdec profile`)."
        )
    fit = pd.concat(fits, ignore_index=True)
    fit = fit.dropna(subset=["t_fixed_ms", "t_layer_ms"])
    row = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=list(ROW_NEEDED))
    devices = tuple(sorted(fit["device"].astype(str).unique()))
    return ProfileSet(fit, row, devices, str(folder))


def _as_profiles(profiles: ProfileSet | str | os.PathLike[str]) -> ProfileSet:
    return profiles if isinstance(profiles, ProfileSet) else load_profiles(profiles)


def _select(
    fits: pd.DataFrame, *, batch: int, query: int, context: int | None, dtype: str | None
) -> pd.DataFrame:
    """One fit row per (device, model): at batch and query, the context nearest ``context``, of
    ``dtype`` or, by default, of each device's most frequent dtype (as the latency model does: a
    folder may hold a shape in fp32 and bf16, and one figure should not mix them)."""
    use = fits[(fits["batch"] == batch) & (fits["query"] == query)]
    if dtype is not None:
        use = use[use["dtype"] == dtype]
    elif not use.empty:
        counts = fits.groupby("device")["dtype"].agg(lambda d: d.value_counts().idxmax())
        use = use[use["dtype"] == use["device"].map(counts)]
    if use.empty:
        return use
    if context is None:
        context = int(use["context"].mode().min())
    use = use.assign(_dist=(use["context"] - context).abs())
    use = use.sort_values(["device", "model", "_dist", "context"])
    return use.groupby(["device", "model"], sort=True).head(1).drop(columns="_dist")


# Fit and row columns per statistic. The profiler records, next to the wall clock, the process
# CPU time of one-thread runs: on a machine shared with other jobs that is the uncontended
# latency, and it is what perfmodel.latency_model fits by default.
_STAT_COLUMNS = {
    "cpu": ("cpu_t_fixed_ms", "cpu_t_layer_ms", "cpu_fit_rel_residual", "cpu_median_ms"),
    "wall": ("t_fixed_ms", "t_layer_ms", "fit_rel_residual", "median_ms"),
}
STATISTIC_LABELS = {"cpu": "CPU time, one thread", "wall": "wall clock"}


def _statistic(use: pd.DataFrame, statistic: str) -> str:
    """``"auto"``: CPU time where every selected fit has it, else wall clock."""
    if statistic not in ("auto", *_STAT_COLUMNS):
        raise ValueError(f"`statistic in ('auto', 'cpu', 'wall')` must hold, but got {statistic=}.")
    if statistic != "auto":
        if statistic == "cpu" and not _has(use, _STAT_COLUMNS["cpu"][:2]):
            raise ValueError(
                "statistic='cpu' needs cpu_t_fixed_ms and cpu_t_layer_ms in every fit."
            )
        return statistic
    return "cpu" if _has(use, _STAT_COLUMNS["cpu"][:2]) else "wall"


def _has(frame: pd.DataFrame, columns: Sequence[str]) -> bool:
    if frame.empty or any(c not in frame.columns for c in columns):
        return False
    values = frame[list(columns)].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
    return bool(np.isfinite(values).all())


def _shape_group(use: pd.DataFrame, group: str) -> pd.DataFrame:
    """``"largest"``: the (family, vocab, tied) group with the most shapes; ``"all"``: all."""
    if group == "all" or use.empty:
        return use
    if group != "largest":
        raise ValueError(f"`group in ('largest', 'all')` must hold, but got {group=}.")
    keys = ["family", "vocab", "tied"]
    sizes = use.groupby(keys, sort=True).size()
    best = sizes.idxmax()
    mask = np.logical_and.reduce([use[k] == v for k, v in zip(keys, best, strict=True)])
    return use[mask]


# --- per layer -----------------------------------------------------------------------------------


def get_layer_latency_info(
    profiles: ProfileSet | str | os.PathLike[str],
    *,
    batch: int = 1,
    query: int = 1,
    context: int | None = None,
    dtype: str | None = None,
    statistic: str = "auto",
) -> LayerLatencyInfo:
    """Data step of :func:`plot_layer_latency`: T_layer and T_fixed of every profiled shape.

    Parameters
    ----------
    profiles : ProfileSet or path
        From :func:`load_profiles`, or a folder to load.
    batch, query : int
        The (b, q) of the rows to show.
    context : int, optional
        n; each shape's row nearest to it is used. Default: the most common context.
    dtype : str, optional
        Only rows of this dtype (default: each device's most frequent).
    statistic : {"auto", "cpu", "wall"}
        Process CPU time of the one-thread runs (the uncontended latency, what the latency model
        fits) or wall clock. ``"auto"``: CPU time where every fit shown has it.

    Raises
    ------
    ValueError
        When no profile has a row at this batch and query.
    """
    p = _as_profiles(profiles)
    use = _select(p.fits, batch=batch, query=query, context=context, dtype=dtype)
    if use.empty:
        raise ValueError(
            f"no profile in {p.source!r} has a fit at batch={batch} and query={query}; "
            f"batches there: {sorted(p.fits['batch'].unique().tolist())}, queries: "
            f"{sorted(p.fits['query'].unique().tolist())}."
        )
    use = use.sort_values(["device", "hidden", "model"])
    stat = _statistic(use, statistic)
    fixed_col, layer_col, resid_col, _ = _STAT_COLUMNS[stat]
    if resid_col in use:
        resid = pd.to_numeric(use[resid_col], errors="coerce").to_numpy(np.float64)
    else:
        resid = np.full(len(use), np.nan)
    return LayerLatencyInfo(
        batch=batch,
        query=query,
        context=use["context"].to_numpy(np.int64),
        device=use["device"].astype(str).to_numpy(object),
        model=use["model"].astype(str).to_numpy(object),
        hidden=use["hidden"].to_numpy(np.int64),
        layers=use["layers"].to_numpy(np.int64),
        layer_ms=use[layer_col].to_numpy(np.float64),
        fixed_ms=use[fixed_col].to_numpy(np.float64),
        roofline_layer_ms=use["roofline_layer_ms"].to_numpy(np.float64),
        roofline_fixed_ms=use["roofline_fixed_ms"].to_numpy(np.float64),
        fit_rel_residual=resid,
        statistic=stat,
    )


def plot_layer_latency(info: LayerLatencyInfo) -> go.Figure:
    """T_layer (and T_fixed) against width, one colour per device, roofline bounds dotted."""
    go = go_module()
    fig = new_subplots(
        rows=1,
        cols=2,
        subplot_titles=("one decoder layer, T_layer", "fixed part (embeddings, LM head), T_fixed"),
        horizontal_spacing=0.1,
    )
    for i, dev in enumerate(dict.fromkeys(info.device)):
        m = info.device == dev
        colour = PALETTE[i % len(PALETTE)]
        text = [
            f"{model}: {layers} layers, fit residual {100 * r:.1f}%, n={n}"
            for model, layers, r, n in zip(
                info.model[m],
                info.layers[m],
                info.fit_rel_residual[m],
                info.context[m],
                strict=True,
            )
        ]
        for col, (measured, bound) in enumerate(
            ((info.layer_ms, info.roofline_layer_ms), (info.fixed_ms, info.roofline_fixed_ms)), 1
        ):
            fig.add_trace(
                go.Scatter(
                    x=info.hidden[m],
                    y=measured[m],
                    mode="markers",
                    name=f"{dev}: measured",
                    legendgroup=dev,
                    showlegend=col == 1,
                    marker={"color": colour, "size": 9},
                    text=text,
                    hovertemplate="hidden=%{x}<br>%{y:.4g} ms<br>%{text}<extra>" + dev + "</extra>",
                ),
                row=1,
                col=col,
            )
            order = np.argsort(info.hidden[m], kind="stable")
            fig.add_trace(
                go.Scatter(
                    x=info.hidden[m][order],
                    y=bound[m][order],
                    mode="lines+markers",
                    name=f"{dev}: roofline bound",
                    legendgroup=dev,
                    showlegend=col == 1,
                    line={"color": colour, "dash": "dot"},
                    marker={"symbol": "line-ew-open", "color": colour},
                    hovertemplate="hidden=%{x}<br>roofline %{y:.4g} ms<extra>" + dev + "</extra>",
                ),
                row=1,
                col=col,
            )
    for col in (1, 2):
        fig.update_xaxes(title="hidden size (width)", type="log", row=1, col=col)
        fig.update_yaxes(
            title=f"ms ({STATISTIC_LABELS[info.statistic]})", type="log", row=1, col=col
        )
    return style(
        fig,
        title=f"Per-layer and fixed latency against width (batch {info.batch}, {info.query} "
        "new token(s) per row)",
        height=460,
    )


# --- per token over depth ------------------------------------------------------------------------


def _params(row: pd.Series, depth: int) -> int:
    spec = ArchSpec(
        layers=int(depth),
        hidden=int(row["hidden"]),
        ffn=int(row["ffn"]),
        heads=int(row["heads"]),
        kv_heads=int(row["kv_heads"]),
        vocab=int(row["vocab"]),
        tied_embeddings=bool(row["tied"]),
        family=str(row["family"]),
    )
    return int(spec.param_count)


def get_token_latency_info(
    profiles: ProfileSet | str | os.PathLike[str],
    *,
    depths: Sequence[int] = tuple(range(1, 13)),
    batch: int = 1,
    query: int = 1,
    context: int | None = None,
    dtype: str | None = None,
    max_hidden: int | None = None,
    group: str = "all",
    statistic: str = "auto",
) -> TokenLatencyInfo:
    """Data step of :func:`plot_token_latency`: T_fixed + L·T_layer for L in ``depths``.

    Shapes that differ only in their full depth (``layers``) are one width: the fit with the most
    timed depths represents it. ``max_hidden`` drops wider shapes (e.g. the seed-paper targets);
    ``group="largest"`` keeps only the largest family of comparable shapes (same layer family,
    vocabulary and embedding tying), so that parameter counts compare like with like.
    ``statistic`` as in :func:`get_layer_latency_info`.
    """
    p = _as_profiles(profiles)
    d = np.asarray(list(depths), dtype=np.int64)
    if d.size == 0 or (d < 1).any():
        raise ValueError(f"`depths` must be integers >= 1, but got depths={d.tolist()}.")
    use = _select(p.fits, batch=batch, query=query, context=context, dtype=dtype)
    if max_hidden is not None:
        use = use[use["hidden"] <= max_hidden]
    use = _shape_group(use, group)
    if use.empty:
        raise ValueError(
            f"no profile in {p.source!r} has a fit at batch={batch} and query={query}"
            + (f" with hidden <= {max_hidden}" if max_hidden is not None else "")
            + "."
        )
    n_depths = use["depths"].astype(str).str.count(";") + 1 if "depths" in use else 1
    use = use.assign(_n=n_depths).sort_values(["device", "hidden", "_n"], ascending=[1, 1, 0])
    use = use.drop_duplicates(subset=["device", *SHAPE], keep="first")
    stat = _statistic(use, statistic)
    fixed_col, layer_col, _, row_col = _STAT_COLUMNS[stat]
    out: dict[str, list] = {
        k: [] for k in ("device", "model", "hidden", "depth", "params", "ms", "rl")
    }
    for _, r in use.iterrows():
        for L in d:
            out["device"].append(str(r["device"]))
            out["model"].append(str(r["model"]))
            out["hidden"].append(int(r["hidden"]))
            out["depth"].append(int(L))
            out["params"].append(_params(r, int(L)))
            out["ms"].append(float(r[fixed_col] + L * r[layer_col]))
            out["rl"].append(float(r["roofline_fixed_ms"] + L * r["roofline_layer_ms"]))
    rows = p.rows
    keep = pd.DataFrame(
        {"device": use["device"].astype(str), "model": use["model"].astype(str), "hidden": use["hidden"],
         "context": use["context"], "dtype": use["dtype"]}
    )  # fmt: skip
    measured = rows.drop(columns=["hidden"], errors="ignore").astype({"device": str, "model": str})
    measured = measured.merge(keep, on=["device", "model", "context", "dtype"], how="inner")
    measured = measured[(measured["batch"] == batch) & (measured["query"] == query)]
    measured = measured[measured["depth"].isin(d)]
    if row_col not in measured:
        measured = measured.iloc[0:0].assign(**{row_col: []})
    return TokenLatencyInfo(
        batch=batch,
        query=query,
        device=np.array(out["device"], dtype=object),
        model=np.array(out["model"], dtype=object),
        hidden=np.array(out["hidden"], dtype=np.int64),
        depth=np.array(out["depth"], dtype=np.int64),
        params=np.array(out["params"], dtype=np.int64),
        token_ms=np.array(out["ms"], dtype=np.float64),
        roofline_ms=np.array(out["rl"], dtype=np.float64),
        measured_device=measured["device"].to_numpy(object),
        measured_model=measured["model"].to_numpy(object),
        measured_hidden=measured["hidden"].to_numpy(np.int64),
        measured_depth=measured["depth"].to_numpy(np.int64),
        measured_ms=pd.to_numeric(measured[row_col], errors="coerce").to_numpy(np.float64),
        statistic=stat,
    )


def plot_token_latency(info: TokenLatencyInfo) -> go.Figure:
    """Per-token latency against depth (one line per width; timed depths as markers).

    One panel per device; roofline bounds dotted.
    """
    go = go_module()
    devices = list(dict.fromkeys(info.device))
    fig = new_subplots(rows=1, cols=len(devices), subplot_titles=devices, horizontal_spacing=0.08)
    widths = sorted(set(info.hidden.tolist()))
    colour = {h: PALETTE[i % len(PALETTE)] for i, h in enumerate(widths)}
    for col, dev in enumerate(devices, 1):
        for h in widths:
            m = (info.device == dev) & (info.hidden == h)
            if not m.any():
                continue
            name = f"hidden {h}"
            fig.add_trace(
                go.Scatter(
                    x=info.depth[m],
                    y=info.token_ms[m],
                    mode="lines",
                    name=name,
                    legendgroup=name,
                    showlegend=col == 1,
                    line={"color": colour[h]},
                    text=[f"{p / 1e6:.1f}M params" for p in info.params[m]],
                    hovertemplate="depth %{x}: %{y:.4g} ms/token (%{text})<extra>"
                    + name
                    + "</extra>",
                ),
                row=1,
                col=col,
            )
            fig.add_trace(
                go.Scatter(
                    x=info.depth[m],
                    y=info.roofline_ms[m],
                    mode="lines",
                    name=f"{name} roofline",
                    legendgroup=name,
                    showlegend=False,
                    line={"color": colour[h], "dash": "dot", "width": 1},
                    hovertemplate="depth %{x}: roofline %{y:.3g} ms<extra>" + name + "</extra>",
                ),
                row=1,
                col=col,
            )
            mm = (info.measured_device == dev) & (info.measured_hidden == h)
            if mm.any():
                fig.add_trace(
                    go.Scatter(
                        x=info.measured_depth[mm],
                        y=info.measured_ms[mm],
                        mode="markers",
                        name=f"{name} timed",
                        legendgroup=name,
                        showlegend=False,
                        marker={
                            "color": colour[h],
                            "size": 8,
                            "line": {"width": 1, "color": "#fff"},
                        },
                        hovertemplate="timed at depth %{x}: %{y:.4g} ms<extra>" + name + "</extra>",
                    ),
                    row=1,
                    col=col,
                )
        fig.update_xaxes(
            title="depth (layers)", dtick=1 if info.depth.max() <= 16 else None, row=1, col=col
        )
        fig.update_yaxes(
            title=f"ms per token ({STATISTIC_LABELS[info.statistic]})" if col == 1 else None,
            type="log",
            row=1,
            col=col,
        )
    return style(
        fig,
        title="Per-token latency against depth: T_fixed + L·T_layer (lines), timed depths "
        "(dots), roofline (dotted)",
        height=480,
    )


# --- depth effect at matched parameter count ------------------------------------------------------


def get_depth_effect_info(
    token: TokenLatencyInfo, *, budgets: Sequence[float] | None = None, tolerance: float = 0.15
) -> DepthEffectInfo:
    """Shapes within ``tolerance`` of each parameter budget, one per width (nearest depth).

    Default budgets: the parameter counts of every shape at depth 8 (so each budget has a deep
    narrow member), keeping only budgets matched by at least two different depths.
    """
    if not 0 < tolerance < 1:
        raise ValueError(f"`0 < tolerance < 1` must hold, but got {tolerance=}.")
    cols: dict[str, list] = {k: [] for k in DepthEffectInfo._fields}
    for dev in dict.fromkeys(token.device):
        on = token.device == dev
        if budgets is None:
            deep = on & (token.depth == min(8, int(token.depth[on].max())))
            dev_budgets = sorted(set(token.params[deep].tolist()))
        else:
            dev_budgets = list(budgets)
        for budget in dev_budgets:
            picks = []
            for h in sorted(set(token.hidden[on].tolist())):
                m = np.flatnonzero(on & (token.hidden == h))
                rel = np.abs(token.params[m] / budget - 1.0)
                best = m[int(np.argmin(rel))]
                if rel.min() <= tolerance:
                    picks.append(best)
            if len({int(token.depth[i]) for i in picks}) < 2:
                continue
            fastest = min(token.token_ms[i] for i in picks)
            for i in picks:
                cols["device"].append(dev)
                cols["budget_params"].append(int(budget))
                cols["hidden"].append(int(token.hidden[i]))
                cols["depth"].append(int(token.depth[i]))
                cols["params"].append(int(token.params[i]))
                cols["token_ms"].append(float(token.token_ms[i]))
                cols["slowdown"].append(float(token.token_ms[i] / fastest))
    return DepthEffectInfo(
        device=np.array(cols["device"], dtype=object),
        budget_params=np.array(cols["budget_params"], dtype=np.int64),
        hidden=np.array(cols["hidden"], dtype=np.int64),
        depth=np.array(cols["depth"], dtype=np.int64),
        params=np.array(cols["params"], dtype=np.int64),
        token_ms=np.array(cols["token_ms"], dtype=np.float64),
        slowdown=np.array(cols["slowdown"], dtype=np.float64),
    )


def depth_effect_table(info: DepthEffectInfo) -> pd.DataFrame:
    """The matched-budget shapes as a table, deepest first within each budget."""
    frame = pd.DataFrame(
        {
            "device": info.device,
            "budget (M params)": info.budget_params / 1e6,
            "depth": info.depth,
            "hidden": info.hidden,
            "params (M)": info.params / 1e6,
            "ms per token": info.token_ms,
            "× fastest": info.slowdown,
        }
    )
    return frame.sort_values(
        ["device", "budget (M params)", "depth"], ascending=[True, True, False]
    ).reset_index(drop=True)


def plot_depth_effect(token: TokenLatencyInfo) -> go.Figure:
    """Per-token latency against parameter count, one line per depth.

    Where the depth effect holds, at the same parameter count the deeper line lies higher.
    """
    go = go_module()
    fig = new_figure()
    devices = list(dict.fromkeys(token.device))
    depths = sorted(set(token.depth.tolist()))
    from plotly.colors import sample_colorscale

    # Depth is ordered: a sequential scale (shallow = dark) reads better than a palette.
    shades = sample_colorscale("Viridis", list(np.linspace(0.0, 0.9, max(len(depths), 2))))
    for di, dev in enumerate(devices):
        for i, d in enumerate(depths):
            m = (token.device == dev) & (token.depth == d)
            if not m.any():
                continue
            order = np.argsort(token.params[m])
            fig.add_trace(
                go.Scatter(
                    x=token.params[m][order],
                    y=token.token_ms[m][order],
                    mode="lines+markers",
                    name=f"depth {d}" + (f" ({dev})" if len(devices) > 1 else ""),
                    line={
                        "color": shades[i],
                        "dash": ("solid", "dash", "dot")[di % 3],
                    },
                    text=[f"hidden {h}" for h in token.hidden[m][order]],
                    hovertemplate="%{x:.3s} params, %{text}: %{y:.4g} ms<extra>depth "
                    + str(d)
                    + "</extra>",
                )
            )
    fig.update_xaxes(title="parameters", type="log")
    fig.update_yaxes(title=f"ms per token ({STATISTIC_LABELS[token.statistic]})", type="log")
    return style(
        fig,
        title="Depth effect: per-token latency against parameters, one line per depth",
        height=480,
    )
