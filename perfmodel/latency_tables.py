"""Per-architecture latency tables: measured (:class:`ProfiledLatency`), composed at any depth
(:class:`ArchLatency`), and borrowed by shapes never profiled (:class:`NeighbourCorrection`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy.interpolate import RegularGridInterpolator
from scipy.optimize import nnls

from perfmodel.arch import ArchSpec
from perfmodel.latency_profiles import ARCH_KEY
from perfmodel.latency_terms import (
    ParametricLatency,
    _check_bnq,
    _layer_matmul_params,
    _out,
    own_head_dims,
)

__all__ = ["DEPTH_FITS", "ArchLatency", "NeighbourCorrection", "ProfiledLatency"]

# Axes along which a measured table is made non-decreasing (a running maximum). Context only:
# a pass that reads a longer KV cache is not faster, so a dip there is noise. Along batch and
# query the measured values are kept, dips included, because some are real: on the EPYC profile
# (data/profiles/cpu-epyc-1c) fp32 GEMMs with 2 or 3 rows are slower than with 4, so the LM head
# of draft-w512 takes 6.7 / 14.9 / 21.2 / 12.1 ms at b = 1 and q = 1 / 2 / 3 / 4, and 15.8 ms at
# b = 4, q = 3; a running maximum would have put every longer pass at the q = 3 value (+75 %).
MONOTONE_AXES = ("context",)

# --- per-architecture tables --------------------------------------------------------------------


def _axis(values: NDArray, kind: str) -> NDArray:
    return np.log1p(values) if kind == "context" else np.log(values)


@dataclass(frozen=True)
class ProfiledLatency:
    """Measured T_fixed and T_layer of one architecture on a (b, n, q) grid, interpolated.

    Parameters
    ----------
    batch, context, query : tuple of int
        Grid axes (sorted, distinct).
    fixed_ms, layer_ms : ndarray
        Shape (len(batch), len(context), len(query)); non-negative, non-decreasing along the
        context axis (made so at construction by a running maximum over :data:`MONOTONE_AXES`,
        unless ``monotone`` is false); along batch and query as measured.
    monotone : bool
        Apply the running maximum (default). :class:`NeighbourCorrection` keeps multiplicative
        factors in this class with ``monotone=False``.
    """

    batch: tuple[int, ...]
    context: tuple[int, ...]
    query: tuple[int, ...]
    fixed_ms: NDArray
    layer_ms: NDArray
    monotone: bool = True
    _interp: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        shape = (len(self.batch), len(self.context), len(self.query))
        interp = {}
        for name in ("fixed_ms", "layer_ms"):
            grid = np.asarray(getattr(self, name), dtype=np.float64)
            if grid.shape != shape or not (np.isfinite(grid) & (grid >= 0)).all():
                raise ValueError(
                    f"`{name}` must be finite values >= 0 of shape {shape}, but got {grid.shape}."
                )
            if self.monotone:
                for axis, name_ in enumerate(("batch", "context", "query")):
                    if name_ in MONOTONE_AXES:
                        grid = np.maximum.accumulate(grid, axis=axis)
            object.__setattr__(self, name, grid)
            interp[name] = self._make(grid)
        object.__setattr__(self, "_interp", interp)

    def _axes(self) -> list[tuple[int, NDArray, str]]:
        return [
            (i, np.asarray(v, float), k)
            for i, (v, k) in enumerate(
                ((self.batch, "batch"), (self.context, "context"), (self.query, "query"))
            )
        ]

    def _make(self, grid: NDArray):
        live = [(i, v, k) for i, v, k in self._axes() if len(v) > 1]
        squeezed = grid.reshape([len(v) for _, v, _ in live] or [1]) if live else grid.reshape(1)
        if not live:
            value = float(squeezed[0])
            return lambda pts: np.full(pts.shape[:-1], value)
        return RegularGridInterpolator(
            tuple(_axis(v, k) for _, v, k in live), squeezed, method="linear"
        )

    def clamp(self, b: NDArray, n: NDArray, q: NDArray) -> tuple[NDArray, NDArray, NDArray]:
        """(b, n, q) clipped to the measured grid's box."""
        return (
            np.clip(b, self.batch[0], self.batch[-1]),
            np.clip(n, self.context[0], self.context[-1]),
            np.clip(q, self.query[0], self.query[-1]),
        )

    def parts(
        self, batch: ArrayLike, context: ArrayLike, query: ArrayLike
    ) -> tuple[NDArray, NDArray]:
        """(T_fixed, T_layer) in ms at points inside the grid's box (clamped otherwise)."""
        b, n, q = self.clamp(*_check_bnq(batch, context, query))
        coords = {
            "batch": _axis(b, "batch"),
            "context": _axis(n, "context"),
            "query": _axis(q, "query"),
        }
        live = [k for _, v, k in self._axes() if len(v) > 1]
        pts = np.stack([coords[k] for k in live] or [np.zeros_like(b)], axis=-1)
        flat = pts.reshape(-1, pts.shape[-1])  # (points, live axes)
        return tuple(self._interp[k](flat).reshape(b.shape) for k in ("fixed_ms", "layer_ms"))


# How a depth fit weighs its rows: "absolute" least squares (a deep pass's row, the longest,
# weighs most) or "relative" (each row by 1 / t: every depth's relative error counts the same).
DEPTH_FITS = ("absolute", "relative")


def _check_depth_fit(depth_fit: str) -> None:
    if depth_fit not in DEPTH_FITS:
        raise ValueError(f"`depth_fit in {DEPTH_FITS}` must hold, but got {depth_fit=}.")


def _nnls_weighted(A: NDArray, t: NDArray, depth_fit: str) -> NDArray:
    """NNLS of t = A·coef weighed as ``depth_fit`` says (checked by the caller)."""
    w = 1.0 / t if depth_fit == "relative" else np.ones_like(t)
    coef, _ = nnls(A * w[:, None], t * w)
    return coef


def _depth_split(depth: NDArray, t: NDArray, depth_fit: str = "absolute") -> tuple[float, float]:
    """Non-negative least squares of t = F + L·T_layer; (F, T_layer) in ms."""
    A = np.stack([np.ones_like(depth), depth], axis=1)
    if len(np.unique(depth)) < 2:
        return 0.0, float(np.mean(t / depth))
    fixed, layer = _nnls_weighted(A, t, depth_fit)
    return float(fixed), float(layer)


def _joint_depth_split(
    context: NDArray, depth: NDArray, t: NDArray, depth_fit: str = "absolute"
) -> tuple[dict[int, float], dict[int, float]]:
    """Depth fits of one (b, q) across its contexts, with one T_fixed shared by all of them.

    t(n, L) = F + L·T_layer(n), non-negative least squares over every row. The part outside
    the layers (embedding, final norm, LM head) does not read the KV cache, so it does not
    depend on n; a separate intercept per context only adds the noise of extrapolating each
    depth line to L = 0 (separate fits of the committed CPU profile put T_fixed at n = 512
    0.74-1.21x its value at n = 128). Falls back to one fit per context when no context has
    two depths. ``depth_fit``: how the rows are weighed (:data:`DEPTH_FITS`). Returns
    ({n: T_fixed}, {n: T_layer}) in ms.
    """
    contexts = sorted(int(v) for v in np.unique(context))
    if all(len(np.unique(depth[context == n])) < 2 for n in contexts):
        split = {n: _depth_split(depth[context == n], t[context == n], depth_fit) for n in contexts}
        return {n: v[0] for n, v in split.items()}, {n: v[1] for n, v in split.items()}
    A = np.zeros((len(t), 1 + len(contexts)))
    A[:, 0] = 1.0
    for col, n in enumerate(contexts, start=1):
        A[context == n, col] = depth[context == n]
    coef = _nnls_weighted(A, t, depth_fit)
    return {n: float(coef[0]) for n in contexts}, {
        n: float(coef[col]) for col, n in enumerate(contexts, start=1)
    }


def _arch_table(
    rows: pd.DataFrame,
    statistic: str,
    parametric: ParametricLatency,
    arch: ArchSpec,
    depth_fit: str = "absolute",
) -> ProfiledLatency:
    axes = [tuple(sorted(int(v) for v in rows[c].unique())) for c in ("batch", "context", "query")]
    shape = tuple(len(a) for a in axes)
    fixed = np.full(shape, np.nan)
    layer = np.full(shape, np.nan)
    for (b, q), g in rows.groupby(["batch", "query"]):
        i, k = axes[0].index(b), axes[2].index(q)
        f, per_context = _joint_depth_split(
            g["context"].to_numpy(int),
            g["depth"].to_numpy(float),
            g[statistic].to_numpy(float),
            depth_fit,
        )
        for n, t_layer in per_context.items():
            fixed[i, axes[1].index(n), k], layer[i, axes[1].index(n), k] = f[n], t_layer
    missing = ~np.isfinite(fixed)
    if missing.any():  # an irregular grid: fill the holes from the parametric model
        bb, nn, qq = np.meshgrid(*[np.asarray(a, float) for a in axes], indexing="ij")
        pf, pl = parametric.parts(arch, bb, nn, qq)
        fixed[missing], layer[missing] = pf[missing], pl[missing]
    return ProfiledLatency(*axes, fixed_ms=fixed, layer_ms=layer)


# --- neighbour correction for shapes that were never profiled ---------------------------------

# Residual ratios measured / parametric are clipped to [1/4, 4] before averaging (an NNLS depth
# split can put a point's fixed part at 0).
_RATIO_CLIP = (0.25, 4.0)


def _shape_coords(arch: ArchSpec) -> tuple[float, float, float]:
    """(log vocab, log hidden, log per-layer matmul parameters): where a shape sits for the
    correction. The LM head is a vocab x hidden GEMM whose efficiency depends on both sides, not
    only on their product (on the EPYC, 2-3 rows through a 32000-wide head cost 2-3x one row and
    more than 4 rows, through a 4096-wide one not), so the fixed part's distance is taken in the first two
    together; the layer part's in the third (GEMM efficiency changes with the matrix size)."""
    layer = _layer_matmul_params(
        float(arch.hidden), float(arch.ffn), float(arch.heads), float(arch.kv_heads),
        arch.family == "opt", arch.head_size,
    )  # fmt: skip
    return float(np.log(arch.vocab)), float(np.log(arch.hidden)), float(np.log(layer))


@dataclass(frozen=True)
class NeighbourCorrection:
    """Measured/parametric ratios of the profiled shapes, borrowed by a shape never profiled.

    The parametric model's error is not noise: a CPU's (or GPU's) GEMM kernels change with the
    matrix size, so shapes of similar size share most of it. For a new shape, each grid point's
    T_fixed and T_layer are the parametric values times exp(Σ_j w_j·r_j / (Σ_j w_j + shrink)),
    with r_j the log ratio measured/parametric of profiled shape j at that point and
    w_j = exp(-d_j² / (2·scale²)), d_j the Euclidean distance in (log vocab, log hidden) (fixed
    part: the LM head's two sides) or in log layer parameters (layer part). Far from every profiled shape the factor tends to 1 (pure
    parametric); next to one it tends to that shape's ratio.

    Parameters
    ----------
    batch, context, query : tuple of int
        The union of the profiled grids' axes.
    coords : ndarray
        (shapes, 3): :func:`_shape_coords` of each profiled shape.
    log_ratio_fixed, log_ratio_layer : ndarray
        (shapes, len(batch), len(context), len(query)); each shape's table is interpolated (and
        extended as :class:`ArchLatency` extends it) to the union grid.
    scale, shrink : float
        Kernel width (in natural-log units of parameters) and shrinkage toward 1.
    """

    batch: tuple[int, ...]
    context: tuple[int, ...]
    query: tuple[int, ...]
    coords: NDArray
    log_ratio_fixed: NDArray
    log_ratio_layer: NDArray
    scale: float = 0.7
    shrink: float = 0.3

    def __post_init__(self) -> None:
        if not (np.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"`scale > 0` must hold, but got scale={self.scale!r}.")
        if not (np.isfinite(self.shrink) and self.shrink >= 0):
            raise ValueError(f"`shrink >= 0` must hold, but got shrink={self.shrink!r}.")

    @classmethod
    def build(
        cls,
        tables: dict,
        parametric: ParametricLatency,
        *,
        scale: float = 0.7,
        shrink: float = 0.3,
        layers: int = 1,
    ) -> NeighbourCorrection | None:
        """From per-architecture tables (None when there are none).

        ``layers``: the depth at which each profiled shape's parametric T_fixed and T_layer are
        taken for its ratios (the committed parametric model's do not depend on it; a model whose
        per-layer cost changes with depth, ``benchmarks/bench_residency.py``, is compared at the
        depth it is asked for)."""
        if not tables:
            return None
        axes = [
            tuple(sorted({v for t in tables.values() for v in getattr(t, name)}))
            for name in ("batch", "context", "query")
        ]
        bb, nn, qq = np.meshgrid(*[np.asarray(a, float) for a in axes], indexing="ij")
        coords, rf, rl = [], [], []
        for key, table in tables.items():
            arch = _arch_from_key(key).replace(layers=int(layers))
            fn = ArchLatency(arch=arch, parametric=parametric, profiled=table)
            parts = fn.breakdown(bb, nn, qq)
            pf, pl = parametric.parts(arch, bb, nn, qq)
            rf.append(np.log(np.clip(_ratio(np.asarray(parts["fixed_ms"]), pf), *_RATIO_CLIP)))
            rl.append(np.log(np.clip(_ratio(np.asarray(parts["layer_ms"]), pl), *_RATIO_CLIP)))
            coords.append(_shape_coords(arch))
        return cls(
            *axes, coords=np.array(coords), log_ratio_fixed=np.array(rf),
            log_ratio_layer=np.array(rl), scale=scale, shrink=shrink,
        )  # fmt: skip

    def factors(self, arch: ArchSpec) -> tuple[NDArray, NDArray]:
        """Multiplicative corrections of T_fixed and T_layer on the union grid."""
        out = []
        here = np.asarray(_shape_coords(arch))
        for cols, ratios in (((0, 1), self.log_ratio_fixed), ((2,), self.log_ratio_layer)):
            d2 = ((self.coords[:, list(cols)] - here[list(cols)]) ** 2).sum(axis=1)
            w = np.exp(-0.5 * d2 / self.scale**2)
            out.append(np.exp(np.tensordot(w, ratios, axes=1) / (w.sum() + self.shrink)))
        return out[0], out[1]

    def table(self, arch: ArchSpec, parametric: ParametricLatency) -> ProfiledLatency:
        """A measured-like table of ``arch``: corrected parametric values on a refined grid.

        The factors are interpolated (in log b, log(1 + n), log q) from the union grid to a
        refined one (every integer batch and query between the grid's ends, context midpoints),
        multiplied onto the parametric T_fixed and T_layer there, and the result is made
        monotone in context like a measured table; :class:`ArchLatency` then treats it as one (beyond its
        box, the edge value times the parametric ratio).
        """
        ff, fl = self.factors(arch)
        factors = ProfiledLatency(
            self.batch, self.context, self.query, fixed_ms=ff, layer_ms=fl, monotone=False
        )
        axes = (_refine(self.batch), _refine_context(self.context), _refine(self.query))
        bb, nn, qq = np.meshgrid(*[np.asarray(a, float) for a in axes], indexing="ij")
        pf, pl = parametric.parts(arch, bb, nn, qq)
        gf, gl = factors.parts(bb, nn, qq)
        return ProfiledLatency(*axes, fixed_ms=pf * gf, layer_ms=pl * gl)


def _refine(axis: tuple[int, ...]) -> tuple[int, ...]:
    """The axis and the integers between its ends (at most 48 of them, log-spaced)."""
    lo, hi = axis[0], axis[-1]
    fill = np.unique(np.geomspace(lo, hi, num=min(48, hi - lo + 1)).round().astype(int))
    return tuple(sorted(set(axis) | {int(v) for v in fill}))


def _refine_context(axis: tuple[int, ...]) -> tuple[int, ...]:
    """The axis and the midpoints (in log(1 + n)) between its values."""
    mids = {
        round(float(np.expm1((np.log1p(a) + np.log1p(b)) / 2)))
        for a, b in zip(axis, axis[1:], strict=False)
    }
    return tuple(sorted(set(axis) | mids))


# --- one architecture at its depth --------------------------------------------------------------


@dataclass(frozen=True)
class ArchLatency:
    """One architecture's latency function ``fn(batch, context, query) -> ms`` (a LatencyFn).

    Parameters
    ----------
    arch : ArchSpec
        The model; ``arch.layers`` is the depth L.
    parametric : ParametricLatency
        The cross-architecture model.
    profiled : ProfiledLatency or None
        Measured tables of this shape, when it was profiled, or for a shape never profiled the
        parametric model corrected by its profiled neighbours (:meth:`NeighbourCorrection.table`).
    """

    arch: ArchSpec
    parametric: ParametricLatency
    profiled: ProfiledLatency | None = None

    def breakdown(
        self, batch: ArrayLike, context: ArrayLike, query: ArrayLike
    ) -> dict[str, float | NDArray]:
        """``{"fixed_ms", "layer_ms", "layers_ms", "total_ms"}``: T_fixed, T_layer, L·T_layer, T.

        Notes
        -----
        Profiled: inside the measured box, the interpolated tables; outside, the edge value times
        the parametric ratio P(b, n, q) / P(clamped b, n, q), which is monotone beyond the box.
        """
        b, n, q = _check_bnq(batch, context, query)
        pf, pl = self.parametric.parts(self.arch, b, n, q)
        if self.profiled is None:
            fixed, layer = pf, pl
        else:
            cb, cn, cq = self.profiled.clamp(b, n, q)
            mf, ml = self.profiled.parts(cb, cn, cq)
            ef, el = self.parametric.parts(self.arch, cb, cn, cq)
            fixed = mf * _ratio(pf, ef)
            layer = ml * _ratio(pl, el)
        layers = self.arch.layers * layer
        return {
            "fixed_ms": _out(fixed),
            "layer_ms": _out(layer),
            "layers_ms": _out(layers),
            "total_ms": _out(fixed + layers),
        }

    def __call__(self, batch: ArrayLike, context: ArrayLike, query: ArrayLike) -> float | NDArray:
        """T(b, n, q) in ms, broadcast over the inputs."""
        return self.breakdown(batch, context, query)["total_ms"]


def _ratio(num: NDArray, den: NDArray) -> NDArray:
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(den > 0, num / den, 1.0)
    return r


def _key(x: ArchSpec | tuple) -> tuple:
    """A shape's key: (family, hidden, ffn, heads, kv_heads, vocab, tied), then ("head_size",
    width) for a head width other than hidden / heads (profile rows record it), and for a spec
    the layout details profile rows cannot tell apart (so it never takes such a table)."""
    if isinstance(x, ArchSpec):
        key = (x.family, x.hidden, x.ffn, x.heads, x.kv_heads, x.vocab, bool(x.tied_embeddings))
        # profile rows hold no layout detail: a spec with Gemma 2's extra norms, a position
        # table other than OPT's or a mixture of experts never takes a profiled table
        extra = [
            (name, value)
            for name, value in (
                ("head_size", x.head_size),
                ("sandwich_norms", x.sandwich_norms or None),
                ("position_table_rows", x.position_table_rows),
                ("experts", x.experts or None),
            )
            if value is not None
        ]
        return (*key, *extra)
    return (str(x[0]), *map(int, x[1:6]), bool(x[6]), *(tuple(e) for e in x[7:]))


def row_keys(rows: pd.DataFrame) -> list[tuple]:
    """Each profile row's shape key (:func:`_key`): ARCH_KEY's columns, and ("head_size",
    width) where the row's ``head_dim`` is not hidden / heads."""
    own = own_head_dims(rows)
    keys = []
    for i, r in enumerate(rows[list(ARCH_KEY)].itertuples(index=False)):
        key = (str(r[0]), *map(int, r[1:6]), bool(r[6]))
        if own is not None and not np.isnan(own[i]):
            key = (*key, ("head_size", int(own[i])))
        keys.append(key)
    return keys


def _arch_from_key(k: tuple) -> ArchSpec:
    family, hidden, ffn, heads, kv, vocab, tied = k[:7]
    return ArchSpec(
        layers=1, hidden=hidden, ffn=ffn, heads=heads, kv_heads=kv, vocab=vocab,
        tied_embeddings=tied, family=family, **dict(k[7:]),
    )  # fmt: skip
