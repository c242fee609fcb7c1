"""The speedup landscape: speedup over α × latency ratio c × γ, for a few batches and overheads.

Everything is in ratios to one target pass at q = 1, T_target(b, n, 1): the draft costs
c = T_draft(b, n, 1) / T_target(b, n, 1) per token, the overhead o = T_overhead / T_target(b, n, 1)
per step, and the verification pass v(b, γ) = T_target(b, n, γ + 1) / T_target(b, n, 1). Without
a target latency function v = 1 (the memory-bound assumption: verifying γ + 1 tokens costs one
decoding step); with one (a roofline or a model fitted from profiles) v grows with b·(γ + 1) once
the pass becomes compute-bound, which is how batch enters.

The numbers come from :func:`perfmodel.throughput.speedup_curve` and
:func:`perfmodel.throughput.break_even_acceptance_rate`; Leviathan et al.'s walltime factor
(b = 1, v = 1, o = 0) is kept beside them for comparison.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from explorer.figures._plotly import PALETTE, go_module, new_figure, style
from perfmodel.arch import ArchSpec
from perfmodel.hardware import HardwareSpec
from perfmodel.latency_fn import LatencyFn
from perfmodel.roofline import roofline
from perfmodel.throughput import (
    break_even_acceptance_rate,
    leviathan_walltime_factor,
    speedup_curve,
)

if TYPE_CHECKING:  # pragma: no cover
    import plotly.graph_objects as go

__all__ = [
    "RooflineLatency",
    "SpeedupLandscapeInfo",
    "get_speedup_landscape_info",
    "plot_break_even",
    "plot_optimal_gamma",
    "plot_speedup_curves",
    "plot_speedup_landscape",
]

DEFAULT_ACCEPTANCE_RATES = tuple(np.round(np.linspace(0.0, 0.98, 50), 4))
DEFAULT_LATENCY_RATIOS = tuple(np.round(np.geomspace(0.005, 1.0, 41), 5))


@dataclass(frozen=True)
class RooflineLatency:
    """The roofline lower bound of a target as a latency function T(b, n, q) in ms.

    It makes the batch axis of the landscape physical: verification of γ + 1 tokens for b rows is
    free while the pass is memory-bound and costs more once b·(γ + 1) makes it compute-bound.

    Examples
    --------
    >>> from perfmodel import get_hardware, get_preset
    >>> f = RooflineLatency(get_preset("llama-65b"), get_hardware("H200"))
    >>> round(float(f(1, 0, 1)), 2)
    27.09
    """

    arch: ArchSpec
    hardware: HardwareSpec
    dtype: str = "bf16"

    def __call__(self, batch: ArrayLike, context: ArrayLike, query: ArrayLike) -> NDArray:
        r = roofline(
            self.arch, self.hardware, batch=batch, context=context, query=query, dtype=self.dtype
        )
        return np.asarray(r["lower_bound_ms"])

    def describe(self) -> str:
        """Words for the figures: which model on which hardware."""
        name = self.arch.name or "target"
        return f"v(b, γ) from the roofline of {name} on {self.hardware.name} ({self.dtype})"


class SpeedupLandscapeInfo(NamedTuple):
    """Speedup of speculative decoding on a grid; shapes name their axes.

    Axes: B batches, O overhead ratios, C latency ratios, A acceptance rates, G = γ_max + 1
    values of γ (0..γ_max), K break-even γ values.
    """

    acceptance_rate: NDArray[np.float64]  # (A,) α
    latency_ratio: NDArray[np.float64]  # (C,) c = T_draft / T_target at q = 1
    gamma: NDArray[np.int64]  # (G,) 0..γ_max
    batch: NDArray[np.int64]  # (B,)
    overhead_ratio: NDArray[np.float64]  # (O,) T_overhead / T_target(b, n, 1)
    verify_ratio: NDArray[np.float64]  # (B, G) T_target(b, n, γ+1) / T_target(b, n, 1)
    speedup: NDArray[np.float64]  # (B, O, C, A, G)
    optimal_gamma: NDArray[np.int64]  # (B, O, C, A)
    optimal_speedup: NDArray[np.float64]  # (B, O, C, A)
    leviathan_factor: NDArray[np.float64]  # (C, A, G) b = 1, v = 1, o = 0
    break_even_gamma: NDArray[np.int64]  # (K,)
    break_even_alpha: NDArray[np.float64]  # (B, O, K, C); NaN where no α pays
    min_break_even_alpha: NDArray[np.float64]  # (B, O, C) below it no γ pays
    latency_source: str  # what v(b, γ) came from


def get_speedup_landscape_info(
    *,
    acceptance_rates: ArrayLike = DEFAULT_ACCEPTANCE_RATES,
    latency_ratios: ArrayLike = DEFAULT_LATENCY_RATIOS,
    gamma_max: int = 12,
    batches: Sequence[int] = (1,),
    overhead_ratios: Sequence[float] = (0.0,),
    target_latency: LatencyFn | None = None,
    context: int = 256,
    break_even_gammas: Sequence[int] = (1, 2, 4, 8),
    latency_source: str | None = None,
) -> SpeedupLandscapeInfo:
    """Data step of the landscape figures: speedup on an (α, c, γ) grid per batch and overhead.

    Parameters
    ----------
    acceptance_rates : array_like
        α values in [0, 1].
    latency_ratios : array_like
        c = T_draft(b, n, 1) / T_target(b, n, 1) values, > 0.
    gamma_max : int
        Largest γ (>= 1); γ runs over 0..γ_max.
    batches : sequence of int
        Batch sizes b >= 1. Without ``target_latency`` only ``(1,)`` is meaningful.
    overhead_ratios : sequence of float
        Per-step overhead as a fraction of T_target(b, n, 1), >= 0.
    target_latency : LatencyFn, optional
        T_target(b, n, q) in ms; gives v(b, γ). ``None``: v = 1 at every b and γ.
    context : int
        n, tokens already in the KV cache, passed to ``target_latency``.
    break_even_gammas : sequence of int
        γ values (>= 1, <= γ_max) whose break-even α curves are kept.
    latency_source : str, optional
        Words for where v came from, shown in the figures.

    Returns
    -------
    SpeedupLandscapeInfo

    Raises
    ------
    ValueError
        On an empty axis or a value outside its rule (perfmodel's checks name it).
    """
    alpha = np.asarray(acceptance_rates, dtype=np.float64).ravel()
    c = np.asarray(latency_ratios, dtype=np.float64).ravel()
    b = np.asarray(list(batches), dtype=np.int64).ravel()
    o = np.asarray(list(overhead_ratios), dtype=np.float64).ravel()
    k = np.asarray(list(break_even_gammas), dtype=np.int64).ravel()
    for name, arr in (
        ("acceptance_rates", alpha),
        ("latency_ratios", c),
        ("batches", b),
        ("overhead_ratios", o),
    ):
        if arr.size == 0:
            raise ValueError(f"`{name}` must not be empty, but got {name}={arr.tolist()}.")
    if not (c > 0).all():
        raise ValueError(f"`latency_ratios > 0` must hold, but got {c.tolist()}.")
    if not 1 <= gamma_max:
        raise ValueError(f"`gamma_max >= 1` must hold, but got {gamma_max=}.")
    if ((k < 1) | (k > gamma_max)).any():
        raise ValueError(
            f"`1 <= break_even_gammas <= gamma_max` must hold, but got {k.tolist()} and {gamma_max=}."
        )
    gamma = np.arange(gamma_max + 1)
    if target_latency is None:
        if (b != 1).any():
            raise ValueError(
                "`batches` other than (1,) need a `target_latency` (without one the model "
                f"cannot tell batches apart), but got batches={b.tolist()}."
            )
        verify = np.ones((b.size, gamma.size))
        source = latency_source or "v = 1 (verifying γ+1 tokens costs one decoding step)"
    else:
        t1 = np.asarray(target_latency(b[:, None], context, 1), dtype=np.float64)
        tq = np.asarray(target_latency(b[:, None], context, gamma[None, :] + 1), dtype=np.float64)
        verify = np.broadcast_to(tq / t1, (b.size, gamma.size)).copy()
        verify[:, 0] = 1.0
        source = latency_source or "target latency function"

    shape = (b.size, o.size, c.size, alpha.size)
    speedup = np.empty(shape + (gamma.size,))
    be_alpha = np.empty((b.size, o.size, k.size, c.size))
    for ib in range(b.size):
        # Latencies in units of T_target(b, n, 1) = 1 ms; v(b, γ) through a latency function
        # that answers per q (γ + 1).
        v_row = verify[ib]

        def target_fn(
            _b: ArrayLike, _n: ArrayLike, q: ArrayLike, v_row: NDArray = v_row
        ) -> NDArray:
            return v_row[np.asarray(q, dtype=np.int64) - 1]

        for io in range(o.size):
            curve = speedup_curve(
                acceptance_rate=alpha[None, :],
                draft_ms=c[:, None],
                target_ms=target_fn,
                overhead_ms=float(o[io]),
                gamma_max=gamma_max,
            )
            speedup[ib, io] = curve["speedup"]
            be_alpha[ib, io] = break_even_acceptance_rate(
                c[None, :],
                k[:, None],
                verify_ratio=v_row[k][:, None],
                overhead_ratio=float(o[io]),
            )
    best = np.argmax(speedup, axis=-1)
    optimal = np.take_along_axis(speedup, best[..., None], -1)[..., 0]
    # Break-even over every γ >= 1: the lowest α at which some γ pays.
    all_k = np.arange(1, gamma_max + 1)
    be_all = np.stack(
        [
            np.stack(
                [
                    break_even_acceptance_rate(
                        c[None, :],
                        all_k[:, None],
                        verify_ratio=verify[ib][all_k][:, None],
                        overhead_ratio=float(o[io]),
                    )
                    for io in range(o.size)
                ]
            )
            for ib in range(b.size)
        ]
    )  # (B, O, γ_max, C)
    with np.errstate(all="ignore"):
        min_be = np.where(
            np.isnan(be_all).all(axis=2),
            np.nan,
            np.nanmin(np.where(np.isnan(be_all), np.inf, be_all), axis=2),
        )
    leviathan = leviathan_walltime_factor(
        alpha[None, :, None], gamma[None, None, :], c[:, None, None]
    )
    return SpeedupLandscapeInfo(
        acceptance_rate=alpha,
        latency_ratio=c,
        gamma=gamma,
        batch=b,
        overhead_ratio=o,
        verify_ratio=verify,
        speedup=speedup,
        optimal_gamma=best.astype(np.int64),
        optimal_speedup=optimal,
        leviathan_factor=np.asarray(leviathan),
        break_even_gamma=k,
        break_even_alpha=be_alpha,
        min_break_even_alpha=min_be,
        latency_source=source,
    )


# --- controls ---------------------------------------------------------------------------------
#
# Batch and overhead are chosen independently: the batch dropdown switches which group of traces
# is visible (one group per batch), and the overhead slider restyles the data of every group to
# that overhead. The two never fight because they change different trace properties.


def _controls(
    fig: go.Figure,
    info: SpeedupLandscapeInfo,
    *,
    per_batch: int,
    restyle_for_overhead,
) -> None:
    n_b = info.batch.size
    n_traces = len(fig.data)
    shared = n_traces - n_b * per_batch  # traces after the per-batch groups stay visible
    if n_b > 1:
        buttons = []
        for ib, b in enumerate(info.batch):
            visible = [False] * (n_b * per_batch) + [True] * shared
            visible[ib * per_batch : (ib + 1) * per_batch] = [True] * per_batch
            buttons.append(
                {"label": f"batch {b}", "method": "restyle", "args": [{"visible": visible}]}
            )
        fig.update_layout(
            updatemenus=[
                {
                    "buttons": buttons,
                    "direction": "down",
                    "x": 1.0,
                    "xanchor": "right",
                    "y": 1.16,
                    "yanchor": "top",
                    "showactive": True,
                }
            ]
        )
    if info.overhead_ratio.size > 1:
        steps = []
        for io, o in enumerate(info.overhead_ratio):
            update, indices = restyle_for_overhead(io)
            steps.append({"label": f"{100 * o:g}%", "method": "restyle", "args": [update, indices]})
        fig.update_layout(
            sliders=[
                {
                    "active": 0,
                    "currentvalue": {"prefix": "overhead per step (% of one target pass): "},
                    "pad": {"t": 50},
                    "steps": steps,
                }
            ]
        )


def plot_speedup_landscape(info: SpeedupLandscapeInfo) -> go.Figure:
    """Heatmap of the best speedup over α × c (each cell at its optimal γ), break-even line.

    Hover shows the optimal γ. The red line is the lowest α at which any γ pays: left of it
    speculation is slower than plain decoding at every γ.
    """
    go = go_module()
    fig = new_figure()
    # Colours saturate at 4x so that the region that matters (1x-3x) is not one dark colour;
    # the labelled contour lines and the hover give the exact value.
    zmax = float(min(np.nanmax(info.optimal_speedup), 4.0))
    for ib, b in enumerate(info.batch):
        fig.add_trace(
            go.Contour(
                x=info.acceptance_rate,
                y=info.latency_ratio,
                z=info.optimal_speedup[ib, 0],
                customdata=info.optimal_gamma[ib, 0],
                zmin=1.0,
                zmax=zmax,
                contours={"start": 1.25, "end": 4.0, "size": 0.25, "showlabels": True},
                line={"width": 0.5, "color": "rgba(255,255,255,0.5)"},
                colorscale="Viridis",
                colorbar={"title": "speedup (×)"},
                name=f"batch {b}",
                hovertemplate=(
                    "α=%{x:.3f}<br>c=%{y:.4g}<br>best speedup=%{z:.3f}×"
                    "<br>optimal γ=%{customdata}<extra>batch " + str(b) + "</extra>"
                ),
                visible=ib == 0,
            )
        )
        fig.add_trace(
            go.Scatter(
                x=info.min_break_even_alpha[ib, 0],
                y=info.latency_ratio,
                mode="lines",
                line={"color": "#d62728", "width": 3},
                name="break-even α (lowest over γ)",
                visible=ib == 0,
                showlegend=ib == 0,
            )
        )

    def restyle(io: int):
        # Per-trace lists follow the trace indices: (heatmap, break-even line) for each batch.
        order, z, cd, x = [], [], [], []
        for ib in range(info.batch.size):
            order += [2 * ib, 2 * ib + 1]
            z += [info.optimal_speedup[ib, io], None]
            cd += [info.optimal_gamma[ib, io], None]
            x += [info.acceptance_rate, info.min_break_even_alpha[ib, io]]
        return {"z": z, "customdata": cd, "x": x}, order

    _controls(fig, info, per_batch=2, restyle_for_overhead=restyle)
    fig.update_xaxes(title="acceptance rate α", range=[0, 1])
    fig.update_yaxes(title="latency ratio c = T_draft / T_target", type="log")
    fig.update_layout(
        legend={"orientation": "h", "x": 0.0, "y": 1.0, "xanchor": "left", "yanchor": "bottom"}
    )
    return style(
        fig,
        title=f"Best speedup over α and c (at the optimal γ ≤ {int(info.gamma[-1])}; {info.latency_source})",
        height=520,
    )


def plot_optimal_gamma(info: SpeedupLandscapeInfo) -> go.Figure:
    """Heatmap of the optimal γ over α × c (0: do not speculate)."""
    go = go_module()
    fig = new_figure()
    g_max = int(info.gamma[-1])
    for ib, b in enumerate(info.batch):
        fig.add_trace(
            go.Heatmap(
                x=info.acceptance_rate,
                y=info.latency_ratio,
                z=info.optimal_gamma[ib, 0],
                zmin=0,
                zmax=g_max,
                colorscale="Turbo",
                colorbar={"title": "optimal γ"},
                hovertemplate="α=%{x:.3f}<br>c=%{y:.4g}<br>optimal γ=%{z}<extra>batch "
                + str(b)
                + "</extra>",
                visible=ib == 0,
            )
        )

    def restyle(io: int):
        return (
            {"z": [info.optimal_gamma[ib, io] for ib in range(info.batch.size)]},
            list(range(info.batch.size)),
        )

    _controls(fig, info, per_batch=1, restyle_for_overhead=restyle)
    fig.update_xaxes(title="acceptance rate α", range=[0, 1])
    fig.update_yaxes(title="latency ratio c = T_draft / T_target", type="log")
    return style(fig, title="Optimal γ (0 = plain decoding is faster)", height=480)


def plot_speedup_curves(
    info: SpeedupLandscapeInfo,
    *,
    latency_ratio: float = 0.05,
    acceptance_rates: Sequence[float] = (0.5, 0.7, 0.8, 0.9),
) -> go.Figure:
    """Speedup over γ at one c for a few α: this model (solid) and Leviathan's formula (dotted).

    The grid values nearest to ``latency_ratio`` and ``acceptance_rates`` are used. Leviathan's
    factor assumes b = 1, v = 1 and no overhead, so the two agree exactly there.
    """
    go = go_module()
    ic = int(np.argmin(np.abs(info.latency_ratio - latency_ratio)))
    ias = [int(np.argmin(np.abs(info.acceptance_rate - a))) for a in acceptance_rates]
    fig = new_figure()
    n_a = len(ias)
    for ib, b in enumerate(info.batch):
        for j, ia in enumerate(ias):
            colour = PALETTE[j % len(PALETTE)]
            y = info.speedup[ib, 0, ic, ia]
            fig.add_trace(
                go.Scatter(
                    x=info.gamma,
                    y=y,
                    mode="lines+markers",
                    name=f"α={info.acceptance_rate[ia]:.2f}",
                    line={"color": colour},
                    legendgroup=f"a{j}",
                    visible=ib == 0,
                    hovertemplate="γ=%{x}<br>speedup=%{y:.3f}×<extra>this model, batch "
                    + str(b)
                    + "</extra>",
                )
            )
    for j, ia in enumerate(ias):
        fig.add_trace(
            go.Scatter(
                x=info.gamma,
                y=info.leviathan_factor[ic, ia],
                mode="lines",
                name=f"Leviathan, α={info.acceptance_rate[ia]:.2f}",
                line={"color": PALETTE[j % len(PALETTE)], "dash": "dot"},
                legendgroup=f"a{j}",
                hovertemplate="γ=%{x}<br>factor=%{y:.3f}×<extra>Leviathan et al.</extra>",
            )
        )
    fig.add_hline(y=1.0, line={"color": "#888", "width": 1})

    def restyle(io: int):
        ys = [info.speedup[ib, io, ic, ia] for ib in range(info.batch.size) for ia in ias]
        return {"y": ys}, list(range(info.batch.size * n_a))

    _controls(fig, info, per_batch=n_a, restyle_for_overhead=restyle)
    fig.update_xaxes(title="γ (draft tokens per step)", dtick=1)
    fig.update_yaxes(title="speedup over plain decoding (×)")
    return style(
        fig,
        title=f"Speedup against γ at c = {info.latency_ratio[ic]:.3g} (dotted: Leviathan et al.'s factor)",
        height=480,
    )


def plot_break_even(info: SpeedupLandscapeInfo) -> go.Figure:
    """Break-even α against c for a few γ: above a curve that γ beats plain decoding."""
    go = go_module()
    fig = new_figure()
    n_k = info.break_even_gamma.size
    for ib, b in enumerate(info.batch):
        for j, g in enumerate(info.break_even_gamma):
            fig.add_trace(
                go.Scatter(
                    x=info.latency_ratio,
                    y=info.break_even_alpha[ib, 0, j],
                    mode="lines",
                    name=f"γ={g}",
                    line={"color": PALETTE[j % len(PALETTE)]},
                    visible=ib == 0,
                    hovertemplate="c=%{x:.4g}<br>break-even α=%{y:.3f}<extra>batch "
                    + str(b)
                    + "</extra>",
                )
            )
    fig.add_trace(
        go.Scatter(
            x=info.latency_ratio,
            y=np.clip(info.latency_ratio, 0, 1),
            mode="lines",
            name="α = c (Leviathan, Cor. 3.9)",
            line={"color": "#444", "dash": "dot"},
        )
    )

    def restyle(io: int):
        ys = [info.break_even_alpha[ib, io, j] for ib in range(info.batch.size) for j in range(n_k)]
        return {"y": ys}, list(range(info.batch.size * n_k))

    _controls(fig, info, per_batch=n_k, restyle_for_overhead=restyle)
    fig.update_xaxes(title="latency ratio c = T_draft / T_target", type="log")
    fig.update_yaxes(title="break-even acceptance rate α", range=[0, 1])
    return style(fig, title="Break-even α: speculation pays above the curve", height=460)
