"""What a forward pass costs as it carries more tokens: T(q) / T(1) per profiled shape.

Speculative decoding's verification pass runs q = γ + 1 tokens through the target at once; how
its latency grows with q decides how cheap it is to check more draft tokens. Where the pass is
bound by reading the weights (a GPU at small q) it hardly grows; on a CPU it does, and not always
smoothly: on the committed EPYC profile a pass over 2 or 3 tokens costs more than one over 4
(fp32 GEMMs with 2-3 rows are slow there), so γ = 3 verifies more cheaply than γ = 1 or 2.

Each shape's T(q) = T_fixed(q) + L·T_layer(q) is composed from its depth fits at its full depth
L, at one batch and the context nearest the one asked for, as in :mod:`explorer.figures.latency`.
Data step :func:`get_query_cost_info`, figure step :func:`plot_query_cost`.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from explorer.figures._plotly import PALETTE, go_module, new_figure, style
from explorer.figures.latency import (
    _STAT_COLUMNS,
    STATISTIC_LABELS,
    ProfileSet,
    _as_profiles,
    _select,
    _statistic,
)

if TYPE_CHECKING:
    import plotly.graph_objects as go

__all__ = ["QueryCostInfo", "get_query_cost_info", "plot_query_cost"]


class QueryCostInfo(NamedTuple):
    """Latency of a pass over q tokens per row, for every shape profiled at several q."""

    batch: int
    device: NDArray[np.object_]  # (k,) one entry per (shape, q)
    model: NDArray[np.object_]  # (k,)
    hidden: NDArray[np.int64]  # (k,)
    layers: NDArray[np.int64]  # (k,) the depth composed (the profiled model's own)
    context: NDArray[np.int64]  # (k,)
    query: NDArray[np.int64]  # (k,)
    ms: NDArray[np.float64]  # (k,) T_fixed + layers·T_layer at q
    relative: NDArray[np.float64]  # (k,) ms over the same shape's ms at q = 1
    statistic: str  # "cpu" or "wall", as in explorer.figures.latency


def get_query_cost_info(
    profiles: ProfileSet | str | os.PathLike[str],
    *,
    batch: int = 1,
    context: int | None = None,
    dtype: str | None = None,
    statistic: str = "auto",
    min_queries: int = 3,
) -> QueryCostInfo:
    """Data step of :func:`plot_query_cost`.

    Parameters
    ----------
    profiles : ProfileSet or path
        From :func:`explorer.figures.latency.load_profiles`, or a folder to load.
    batch : int
        Rows per pass.
    context : int, optional
        n; each shape's fit nearest to it is used. Default: the most common context.
    dtype : str, optional
        Default: each device's most frequent dtype.
    statistic : {"auto", "cpu", "wall"}
        As in :func:`explorer.figures.latency.get_layer_latency_info`.
    min_queries : int
        Shapes profiled at fewer query lengths (q = 1 among them) are left out.

    Raises
    ------
    ValueError
        When no shape was profiled at q = 1 and ``min_queries - 1`` other q at this batch.
    """
    if min_queries < 2:
        raise ValueError(f"`min_queries >= 2` must hold, but got min_queries={min_queries}.")
    p = _as_profiles(profiles)
    at_b = p.fits[p.fits["batch"] == batch]
    if context is None and not at_b.empty:
        context = int(at_b["context"].mode().min())
    parts = [
        _select(p.fits, batch=batch, query=int(q), context=context, dtype=dtype)
        for q in sorted(at_b["query"].unique())
    ]
    use = pd.concat([u for u in parts if not u.empty] or [at_b.iloc[:0]], ignore_index=True)
    if not use.empty:
        queries = use.groupby(["device", "model"])["query"].transform(
            lambda q: len(set(q)) if (q == 1).any() else 0
        )
        use = use[queries >= min_queries]
    if use.empty:
        have = sorted(at_b["query"].unique().tolist())
        raise ValueError(
            f"no profile in {p.source!r} has fits at q = 1 and {min_queries - 1} other query "
            f"lengths at batch={batch} (query lengths there: {have}); profile more with "
            "`specdec profile --query 1,2,3,4,...`."
        )
    stat = _statistic(use, statistic)
    fixed_col, layer_col, _, _ = _STAT_COLUMNS[stat]
    use = use.sort_values(["device", "hidden", "model", "query"]).reset_index(drop=True)
    ms = use[fixed_col].to_numpy(np.float64) + use["layers"].to_numpy(np.float64) * use[
        layer_col
    ].to_numpy(np.float64)
    use = use.assign(_ms=ms)
    one = use[use["query"] == 1].set_index(["device", "model"])["_ms"]
    base = one.reindex(pd.MultiIndex.from_frame(use[["device", "model"]])).to_numpy(np.float64)
    return QueryCostInfo(
        batch=batch,
        device=use["device"].astype(str).to_numpy(object),
        model=use["model"].astype(str).to_numpy(object),
        hidden=use["hidden"].to_numpy(np.int64),
        layers=use["layers"].to_numpy(np.int64),
        context=use["context"].to_numpy(np.int64),
        query=use["query"].to_numpy(np.int64),
        ms=ms,
        relative=ms / base,
        statistic=stat,
    )


def plot_query_cost(info: QueryCostInfo) -> go.Figure:
    """T(q) / T(1) against q per shape; the dashed line is q one-token passes (no batching)."""
    go = go_module()
    fig = new_figure()
    keys = list(dict.fromkeys(zip(info.device, info.model, strict=True)))
    many_devices = len({d for d, _ in keys}) > 1
    for i, (dev, model) in enumerate(keys):
        m = (info.device == dev) & (info.model == model)
        name = f"{model} ({dev})" if many_devices else str(model)
        fig.add_trace(
            go.Scatter(
                x=info.query[m],
                y=info.relative[m],
                mode="lines+markers",
                name=name,
                line={"color": PALETTE[i % len(PALETTE)]},
                text=[
                    f"{v:.3g} ms, {L} layers"
                    for v, L in zip(info.ms[m], info.layers[m], strict=True)
                ],
                hovertemplate="q = %{x}: %{y:.2f}× the one-token pass (%{text})<extra>"
                + name
                + "</extra>",
            )
        )
    q = np.arange(1, int(info.query.max()) + 1)
    fig.add_trace(
        go.Scatter(
            x=q,
            y=q,
            mode="lines",
            name="q one-token passes",
            line={"color": "#999", "dash": "dash"},
            hovertemplate="q = %{x}: %{y}× (q separate passes)<extra></extra>",
        )
    )
    fig.update_xaxes(title="tokens per row in the pass, q (= γ + 1 when verifying)", type="log")
    fig.update_yaxes(title=f"latency / latency at q = 1 ({STATISTIC_LABELS[info.statistic]})")
    return style(
        fig,
        title=f"What a pass costs as it carries more tokens (batch {info.batch}; below the dashed "
        "line, verifying q tokens at once beats q single passes)",
        height=460,
    )
