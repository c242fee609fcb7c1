"""Forward-pass latency fitted from profile CSVs: T(arch, b, n, q) for any depth and shape.

Two parts, both in the decomposition T = T_fixed(b, n, q) + L · T_layer(b, n, q):

- **Across architectures** (:class:`ParametricLatency`): T_layer and T_fixed as non-negative
  combinations of roofline-shaped terms of the shape (hidden, ffn, heads, kv_heads, vocab) and of
  (b, n, q): bytes read (weights, KV cache), FLOPs (weight products, attention), the roofline
  max(bytes / bandwidth, FLOPs / peak), per-token traffic and a per-layer / per-pass overhead.
  Fitted by non-negative least squares on relative error to every measured row (all depths), so
  it predicts shapes that were never profiled.
- **For a profiled architecture** (:class:`ProfiledLatency`): T_fixed and T_layer at each
  measured (b, n, q), from a non-negative depth fit of that architecture's rows, interpolated
  piecewise-linearly in (log b, log(1 + n), log q) after making the grid monotone. Outside the
  measured grid the edge value is scaled by the parametric model's ratio, so extrapolation keeps
  the fitted shape. Any depth L works: T = T_fixed + L · T_layer.

:meth:`LatencyModel.latency_fn` returns the profiled form where the architecture (everything but
its depth) was measured and the parametric form otherwise; both are vectorised
``fn(batch, context, query) -> ms`` callables (:class:`perfmodel.latency_fn.LatencyFn`) for the
step model. numpy, scipy and pandas only.

References
----------
Profiles: ``data/profiles/<device>/<model>.csv`` (columns in ``data/README.md``, "profiles").
Williams, Waterman, Patterson, "Roofline", CACM 2009.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy.interpolate import RegularGridInterpolator
from scipy.optimize import least_squares, nnls

from perfmodel.arch import ArchSpec

__all__ = [
    "REQUIRED_COLUMNS",
    "ArchLatency",
    "LatencyModel",
    "NeighbourCorrection",
    "ParametricLatency",
    "ProfiledLatency",
    "load_profile_rows",
]

# Columns a profile CSV must have for fitting (profiler.layers writes these and more).
REQUIRED_COLUMNS = (
    "model", "family", "depth", "hidden", "ffn", "heads", "kv_heads", "vocab", "tied",
    "batch", "context", "query", "dtype", "median_ms", "min_ms",
)  # fmt: skip
ARCH_KEY = ("family", "hidden", "ffn", "heads", "kv_heads", "vocab", "tied")
_BYTES = {"fp32": 4.0, "bf16": 2.0, "fp16": 2.0}
_STATISTICS = ("median_ms", "min_ms", "cpu_median_ms")
# Bytes/FLOP balance for the roofline-max feature when the profile folder has no hardware.json.
_DEFAULT_FLOPS_PER_BYTE = 6.0

# Token-count segments of the piecewise-linear matmul cost: m = b·q in [1, 4], [4, 16], [16, inf).
# A CPU's (and a GPU's) GEMM efficiency changes with the number of rows m, so one FLOP rate does
# not fit m = 1 (matrix-vector) and m = 68 alike; a non-decreasing piecewise-linear cost in m
# does, and stays monotone in b and q.
M_KNOTS = (1.0, 4.0, 16.0)

LAYER_TERMS = (
    "overhead", "weight_bytes", "matmul_flops_m1_4",
    "matmul_flops_m4_16", "matmul_flops_m16_up", "roofline_max", "kv_bytes", "attention_flops",
    "token_traffic", "width",
)  # fmt: skip
FIXED_TERMS = (
    "overhead", "head_bytes", "head_flops_m1_4", "head_flops_m4_16", "head_flops_m16_up",
    "roofline_max", "logits", "token_traffic",
)  # fmt: skip


def _ramps(m: NDArray) -> list[NDArray]:
    """Extra tokens beyond the first in each segment of :data:`M_KNOTS` (sum = m - 1)."""
    lo, mid, hi = M_KNOTS
    return [np.clip(m - lo, 0, mid - lo), np.clip(m - mid, 0, hi - mid), np.maximum(m - hi, 0)]


# --- loading ------------------------------------------------------------------------------------


def load_profile_rows(
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
) -> pd.DataFrame:
    """Read and check profile rows from a folder of ``<model>.csv`` files or from CSV paths.

    Parameters
    ----------
    paths : path or iterable of paths
        A profile folder (every ``*.csv`` but ``*.fit.csv``) or CSV files.

    Returns
    -------
    DataFrame
        The rows, concatenated, with :data:`REQUIRED_COLUMNS` typed.

    Raises
    ------
    ValueError
        A missing folder, no CSV in it, a CSV that lacks a required column or has a
        non-numeric, non-finite or non-positive value where a positive number is needed.
    """
    files = _csv_files(paths)
    frames = []
    for f in files:
        try:
            frame = pd.read_csv(f)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise ValueError(f"{f} is not a readable profile CSV: {exc}") from None
        missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
        if missing:
            raise ValueError(f"{f} is not a profile CSV: it lacks columns {missing}.")
        if frame.empty:
            continue
        frames.append(_typed(frame, f))
    if not frames:
        raise ValueError(f"no profile rows in {', '.join(str(f) for f in files)}.")
    return pd.concat(frames, ignore_index=True)


def _csv_files(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[Path]:
    if isinstance(paths, str | os.PathLike):
        p = Path(paths)
        if p.is_dir():
            files = sorted(f for f in p.glob("*.csv") if not f.name.endswith(".fit.csv"))
            if not files:
                raise ValueError(f"no profile CSVs (<model>.csv) in {p}.")
            return files
        if not p.is_file():
            raise ValueError(f"no profile folder or CSV at {p}.")
        return [p]
    files = [Path(f) for f in paths]
    if not files:
        raise ValueError("no profile CSVs given.")
    for f in files:
        if not f.is_file():
            raise ValueError(f"no profile CSV at {f}.")
    return files


def _typed(frame: pd.DataFrame, where: Path | str) -> pd.DataFrame:
    out = frame.copy()
    for col in ("depth", "hidden", "ffn", "heads", "kv_heads", "vocab", "batch", "query"):
        _check_numeric(out, col, where, low=1)
    _check_numeric(out, "context", where, low=0)
    for col in ("median_ms", "min_ms"):
        _check_numeric(out, col, where, low=0, strict=True)
    if "cpu_median_ms" in out.columns:
        out["cpu_median_ms"] = pd.to_numeric(out["cpu_median_ms"], errors="coerce")
    for col in (
        "depth",
        "hidden",
        "ffn",
        "heads",
        "kv_heads",
        "vocab",
        "batch",
        "context",
        "query",
    ):
        out[col] = out[col].astype(np.int64)
    out["tied"] = out["tied"].map(_as_bool)
    if out["tied"].isna().any():
        raise ValueError(f"{where}: column 'tied' must hold true/false values.")
    bad_family = sorted(set(out["family"]) - {"llama", "opt"})
    if bad_family:
        raise ValueError(f"{where}: `family in ('llama', 'opt')` must hold, but got {bad_family}.")
    bad_dtype = sorted(set(out["dtype"]) - set(_BYTES))
    if bad_dtype:
        raise ValueError(f"{where}: `dtype in {tuple(_BYTES)}` must hold, but got {bad_dtype}.")
    return out


def _check_numeric(
    frame: pd.DataFrame, col: str, where: Path | str, *, low: float, strict: bool = False
) -> None:
    values = pd.to_numeric(frame[col], errors="coerce")
    ok = np.isfinite(values) & ((values > low) if strict else (values >= low))
    if not ok.all():
        bad = frame.loc[~ok, col].iloc[0]
        rule = f"{col} > {low}" if strict else f"{col} >= {low}"
        raise ValueError(f"{where}: `{rule}` must hold in every row, but got {col}={bad!r}.")
    frame[col] = values


def _as_bool(v: object) -> bool | None:
    if isinstance(v, bool | np.bool_):
        return bool(v)
    text = str(v).strip().lower()
    return {"true": True, "1": True, "false": False, "0": False}.get(text)


# --- features -----------------------------------------------------------------------------------


def _layer_matmul_params(h, ffn, heads, kv, opt):
    head_dim = h / heads
    return 2 * h * h + 2 * h * kv * head_dim + np.where(opt, 2.0, 3.0) * h * ffn


def layer_terms(
    *, hidden, ffn, heads, kv_heads, opt, batch, context, query, bytes_per_param, flops_per_byte
) -> NDArray:
    """Per-layer regressors, shape (..., len(LAYER_TERMS)); units bytes, FLOPs or counts.

    Notes
    -----
    With m = b·q tokens and N the layer's matmul parameters: overhead = 1 (a fixed cost per
    layer: kernel launches, Python; shared by both families: a family-only overhead fitted to
    one OPT-66B point predicted opt-125m 2.5x too slow); weight_bytes = N·B (read once,
    the whole cost at m = 1); matmul_flops_<segment> = 2·N·(tokens beyond the first that fall in
    the segment of :data:`M_KNOTS`); roofline_max = max(weight_bytes + kv_bytes,
    (2·N·m + attention_flops) / flops_per_byte) (bytes-equivalent);
    kv_bytes = b·(n + q)·2·kv_heads·head_dim·B; attention_flops = 4·b·q·(n + q)·h;
    token_traffic = b·q·(h + ffn) (activations, norms, element-wise work); width = h + ffn (a
    per-layer cost that grows with the width but not with the tokens: small-GEMV inefficiency,
    norm and bias vectors; it halved the held-out error of the smallest and largest CPU drafts).
    """
    h, f = np.asarray(hidden, float), np.asarray(ffn, float)
    a, kv = np.asarray(heads, float), np.asarray(kv_heads, float)
    b, n, q = (np.asarray(x, float) for x in (batch, context, query))
    opt = np.asarray(opt, bool)
    B = np.asarray(bytes_per_param, float)
    params = _layer_matmul_params(h, f, a, kv, opt)
    weight_bytes = params * B
    kv_bytes = b * (n + q) * 2 * kv * (h / a) * B
    attention = 4 * b * q * (n + q) * h
    roof = np.maximum(weight_bytes + kv_bytes, (2 * b * q * params + attention) / flops_per_byte)
    ramps = [2 * params * r for r in _ramps(b * q)]
    terms = np.broadcast_arrays(
        np.ones_like(h), weight_bytes, *ramps, roof,
        kv_bytes, attention, b * q * (h + f), h + f,
    )  # fmt: skip
    return np.stack(terms, axis=-1)


def fixed_terms(*, hidden, vocab, batch, query, bytes_per_param, flops_per_byte) -> NDArray:
    """Regressors of the part outside the layers, shape (..., len(FIXED_TERMS)).

    Notes
    -----
    head_bytes = vocab·h·B (the LM head is read whole, tied or not); head_flops_<segment> =
    2·vocab·h·(tokens beyond the first in the segment); roofline_max = max(head_bytes,
    2·b·q·vocab·h / flops_per_byte); logits = b·q·vocab (written in fp32); token_traffic = b·q·h
    (embedding gather, final norm).
    """
    h, v = np.asarray(hidden, float), np.asarray(vocab, float)
    b, q = np.asarray(batch, float), np.asarray(query, float)
    B = np.asarray(bytes_per_param, float)
    head_bytes = v * h * B
    roof = np.maximum(head_bytes, 2 * b * q * v * h / flops_per_byte)
    ramps = [2 * v * h * r for r in _ramps(b * q)]
    terms = np.broadcast_arrays(np.ones_like(h), head_bytes, *ramps, roof, b * q * v, b * q * h)
    return np.stack(terms, axis=-1)


def _arch_arrays(arch: ArchSpec) -> dict[str, object]:
    return {
        "hidden": arch.hidden,
        "ffn": arch.ffn,
        "heads": arch.heads,
        "kv_heads": arch.kv_heads,
        "opt": arch.family == "opt",
    }


def _check_bnq(batch: ArrayLike, context: ArrayLike, query: ArrayLike) -> tuple[NDArray, ...]:
    out = []
    for name, value, low in (("batch", batch, 1), ("context", context, 0), ("query", query, 1)):
        try:
            arr = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"`{name}` must be numbers, but got {name}={value!r}.") from None
        if not (np.isfinite(arr) & (arr >= low)).all():
            raise ValueError(f"`{name} >= {low}` must hold, but got {name}={value!r}.")
        out.append(arr)
    return tuple(np.broadcast_arrays(*out))


def _out(arr: NDArray) -> float | NDArray:
    return arr.item() if arr.ndim == 0 else arr


# --- the parametric model -----------------------------------------------------------------------


@dataclass(frozen=True)
class ParametricLatency:
    """T = fixed_terms · fixed_coef + L · layer_terms · layer_coef, coefficients >= 0 (ms/unit).

    Parameters
    ----------
    layer_coef : ndarray
        ms per unit of each of :data:`LAYER_TERMS`.
    fixed_coef : ndarray
        ms per unit of each of :data:`FIXED_TERMS`.
    bytes_per_param : float
        Bytes per parameter of the dtype the profiles were measured in.
    flops_per_byte : float
        Peak FLOP/s over bandwidth of the device (the roofline ridge point).
    """

    layer_coef: NDArray
    fixed_coef: NDArray
    bytes_per_param: float
    flops_per_byte: float

    def __post_init__(self) -> None:
        for name, n in (("layer_coef", len(LAYER_TERMS)), ("fixed_coef", len(FIXED_TERMS))):
            c = np.asarray(getattr(self, name), dtype=np.float64)
            if c.shape != (n,) or not (np.isfinite(c) & (c >= 0)).all():
                raise ValueError(f"`{name}` must be {n} finite values >= 0, but got {name}={c}.")
            object.__setattr__(self, name, c)

    def parts(
        self, arch: ArchSpec, batch: ArrayLike, context: ArrayLike, query: ArrayLike
    ) -> tuple[NDArray, NDArray]:
        """(T_fixed, T_layer) in ms, broadcast over (batch, context, query)."""
        b, n, q = _check_bnq(batch, context, query)
        kw = {"bytes_per_param": self.bytes_per_param, "flops_per_byte": self.flops_per_byte}
        lt = layer_terms(**_arch_arrays(arch), batch=b, context=n, query=q, **kw)
        ft = fixed_terms(hidden=arch.hidden, vocab=arch.vocab, batch=b, query=q, **kw)
        return ft @ self.fixed_coef, lt @ self.layer_coef

    @classmethod
    def fit(
        cls,
        rows: pd.DataFrame,
        *,
        statistic: str = "median_ms",
        flops_per_byte: float = _DEFAULT_FLOPS_PER_BYTE,
        loss: str = "linear",
        f_scale: float = 0.05,
    ) -> ParametricLatency:
        """Non-negative least squares on relative error over every row (all depths).

        Notes
        -----
        Minimises Σ_i ρ((x_i · c − t_i) / t_i) subject to c >= 0, where x_i holds the fixed terms
        and depth_i times the layer terms and ρ is ``loss`` of ``scipy.optimize.least_squares``
        with scale ``f_scale`` (e.g. ``"soft_l1"``: quadratic for small relative errors, linear
        for points a burst of load on a shared machine pushed far off). Starts from the
        non-negative least-squares solution; the default ``loss="linear"`` stops there (soft-L1
        did not lower the held-out error on the committed CPU profile); columns are scaled
        to unit maximum before the solve.
        """
        if rows.empty:
            raise ValueError("cannot fit a latency model to zero rows.")
        dtypes = rows["dtype"].unique()
        if len(dtypes) != 1:
            raise ValueError(f"`rows` must hold one dtype, but got {sorted(dtypes)}.")
        B = _BYTES[dtypes[0]]
        kw = {"bytes_per_param": B, "flops_per_byte": flops_per_byte}
        lt = layer_terms(
            hidden=rows["hidden"].to_numpy(),
            ffn=rows["ffn"].to_numpy(),
            heads=rows["heads"].to_numpy(),
            kv_heads=rows["kv_heads"].to_numpy(),
            opt=(rows["family"] == "opt").to_numpy(),
            batch=rows["batch"].to_numpy(),
            context=rows["context"].to_numpy(),
            query=rows["query"].to_numpy(),
            **kw,
        )
        ft = fixed_terms(
            hidden=rows["hidden"].to_numpy(),
            vocab=rows["vocab"].to_numpy(),
            batch=rows["batch"].to_numpy(),
            query=rows["query"].to_numpy(),
            **kw,
        )
        depth = rows["depth"].to_numpy(dtype=float)[:, None]
        X = np.concatenate([ft, depth * lt], axis=1)  # (rows, terms)
        t = rows[statistic].to_numpy(dtype=float)
        A = X / t[:, None]
        scale = np.abs(A).max(axis=0)
        scale[scale == 0] = 1.0
        As = A / scale
        start, _ = nnls(As, np.ones_like(t), maxiter=50 * A.shape[1])
        if loss != "linear":
            # robust refinement: a point hit by a burst of contention should not pull the fit
            fit = least_squares(
                lambda c: As @ c - 1.0,
                start,
                jac=lambda c: As,
                bounds=(0.0, np.inf),
                loss=loss,
                f_scale=f_scale,
                method="trf",
            )
            start = fit.x
        coef = start / scale
        nf = len(FIXED_TERMS)
        return cls(
            layer_coef=coef[nf:],
            fixed_coef=coef[:nf],
            bytes_per_param=B,
            flops_per_byte=flops_per_byte,
        )


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
        Shape (len(batch), len(context), len(query)); non-negative, non-decreasing along every
        axis (made so at construction by a running maximum, unless ``monotone`` is false).
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
                for axis in range(3):
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


def _depth_split(depth: NDArray, t: NDArray) -> tuple[float, float]:
    """Non-negative least squares of t = F + L·T_layer; (F, T_layer) in ms."""
    A = np.stack([np.ones_like(depth), depth], axis=1)
    if len(np.unique(depth)) < 2:
        return 0.0, float(np.mean(t / depth))
    (fixed, layer), _ = nnls(A, t)
    return float(fixed), float(layer)


def _arch_table(
    rows: pd.DataFrame, statistic: str, parametric: ParametricLatency, arch: ArchSpec
) -> ProfiledLatency:
    axes = [tuple(sorted(int(v) for v in rows[c].unique())) for c in ("batch", "context", "query")]
    shape = tuple(len(a) for a in axes)
    fixed = np.full(shape, np.nan)
    layer = np.full(shape, np.nan)
    for (b, n, q), g in rows.groupby(["batch", "context", "query"]):
        i, j, k = axes[0].index(b), axes[1].index(n), axes[2].index(q)
        fixed[i, j, k], layer[i, j, k] = _depth_split(
            g["depth"].to_numpy(float), g[statistic].to_numpy(float)
        )
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


def _shape_coords(arch: ArchSpec) -> tuple[float, float]:
    """(log LM-head parameters, log per-layer matmul parameters): the distances of the
    correction (GEMM efficiency on CPUs and GPUs changes with the matrix size)."""
    layer = _layer_matmul_params(
        float(arch.hidden), float(arch.ffn), float(arch.heads), float(arch.kv_heads),
        arch.family == "opt",
    )  # fmt: skip
    return float(np.log(arch.vocab * arch.hidden)), float(np.log(layer))


@dataclass(frozen=True)
class NeighbourCorrection:
    """Measured/parametric ratios of the profiled shapes, borrowed by a shape never profiled.

    The parametric model's error is not noise: a CPU's (or GPU's) GEMM kernels change with the
    matrix size, so shapes of similar size share most of it. For a new shape, each grid point's
    T_fixed and T_layer are the parametric values times exp(Σ_j w_j·r_j / (Σ_j w_j + shrink)),
    with r_j the log ratio measured/parametric of profiled shape j at that point and
    w_j = exp(-d_j² / (2·scale²)), d_j the distance in log LM-head parameters (fixed part) or log
    layer parameters (layer part). Far from every profiled shape the factor tends to 1 (pure
    parametric); next to one it tends to that shape's ratio.

    Parameters
    ----------
    batch, context, query : tuple of int
        The union of the profiled grids' axes.
    coords : ndarray
        (shapes, 2): :func:`_shape_coords` of each profiled shape.
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
    ) -> NeighbourCorrection | None:
        """From per-architecture tables (None when there are none)."""
        if not tables:
            return None
        axes = [
            tuple(sorted({v for t in tables.values() for v in getattr(t, name)}))
            for name in ("batch", "context", "query")
        ]
        bb, nn, qq = np.meshgrid(*[np.asarray(a, float) for a in axes], indexing="ij")
        coords, rf, rl = [], [], []
        for key, table in tables.items():
            arch = _arch_from_key(key)
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
        for col, ratios in ((0, self.log_ratio_fixed), (1, self.log_ratio_layer)):
            d = self.coords[:, col] - _shape_coords(arch)[col]
            w = np.exp(-0.5 * (d / self.scale) ** 2)
            out.append(np.exp(np.tensordot(w, ratios, axes=1) / (w.sum() + self.shrink)))
        return out[0], out[1]

    def table(self, arch: ArchSpec, parametric: ParametricLatency) -> ProfiledLatency:
        """A measured-like table of ``arch``: corrected parametric values on a refined grid.

        The factors are interpolated (in log b, log(1 + n), log q) from the union grid to a
        refined one (every integer batch and query between the grid's ends, context midpoints),
        multiplied onto the parametric T_fixed and T_layer there, and the result is made
        monotone like a measured table; :class:`ArchLatency` then treats it as one (beyond its
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


# --- the model ----------------------------------------------------------------------------------


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
        the parametric ratio P(b, n, q) / P(clamped b, n, q), which keeps T monotone.
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


@dataclass(frozen=True)
class LatencyModel:
    """Latency of forward passes on one device, fitted from its profile CSVs.

    Build it with :meth:`from_profiles`; ask :meth:`latency_fn` for an architecture's
    ``fn(batch, context, query) -> ms``.

    Parameters
    ----------
    parametric : ParametricLatency
        Cross-architecture model.
    tables : Mapping
        Arch key (family, hidden, ffn, heads, kv_heads, vocab, tied) -> ProfiledLatency.
    dtype : str
        The dtype the profiles were measured in.
    statistic : {"median_ms", "min_ms", "cpu_median_ms"}
        Which per-point statistic was fitted.
    device : str
        Device slug of the profiles (the folder name), for reports.

    Examples
    --------
    >>> model = LatencyModel.from_profiles("data/profiles/cpu-xeon-2.5ghz-1c")  # doctest: +SKIP
    >>> fn = model.latency_fn(get_preset("llama-7b").replace(layers=4))  # doctest: +SKIP
    >>> fn(1, 128, [1, 5])  # doctest: +SKIP
    """

    parametric: ParametricLatency
    tables: dict
    dtype: str
    statistic: str = "median_ms"
    device: str = ""
    neighbours: NeighbourCorrection | None = None

    @classmethod
    def fit(
        cls,
        rows: pd.DataFrame,
        *,
        dtype: str | None = None,
        statistic: str = "auto",
        flops_per_byte: float = _DEFAULT_FLOPS_PER_BYTE,
        exclude: Sequence[ArchSpec | tuple] = (),
        device: str = "",
        neighbour_scale: float = 0.7,
        neighbour_shrink: float = 0.3,
    ) -> LatencyModel:
        """Fit to profile rows (:func:`load_profile_rows`).

        Parameters
        ----------
        rows : DataFrame
            Profile rows.
        dtype : str, optional
            Use rows of this dtype (default: the most frequent).
        statistic : {"auto", "median_ms", "min_ms", "cpu_median_ms"}
            Per-point statistic to fit. ``"auto"``: ``cpu_median_ms`` (the median process CPU
            time, the uncontended latency of a one-thread CPU profile on a shared machine) where
            every row has it, else ``median_ms`` (wall clock).
        flops_per_byte : float
            Device ridge point for the roofline-max terms.
        exclude : sequence of ArchSpec or arch-key tuples
            Architectures to leave out (held-out validation).
        device : str
            Label for reports.
        neighbour_scale, neighbour_shrink : float
            Kernel width and shrinkage of the :class:`NeighbourCorrection` that shapes never
            profiled borrow from the profiled ones (``neighbour_shrink=inf`` turns it off).
        """
        if statistic not in (*_STATISTICS, "auto"):
            raise ValueError(
                f"`statistic in {(*_STATISTICS, 'auto')}` must hold, but got {statistic=}."
            )
        rows = _typed(rows, "rows")
        if dtype is None:
            dtype = str(rows["dtype"].value_counts().idxmax())
        rows = rows[rows["dtype"] == dtype]
        if rows.empty:
            raise ValueError(f"no profile rows of dtype={dtype!r}.")
        has_cpu = "cpu_median_ms" in rows.columns and bool(
            (np.isfinite(rows["cpu_median_ms"]) & (rows["cpu_median_ms"] > 0)).all()
        )
        if statistic == "auto":
            statistic = "cpu_median_ms" if has_cpu else "median_ms"
        elif statistic == "cpu_median_ms" and not has_cpu:
            raise ValueError(
                "statistic='cpu_median_ms' needs a positive cpu_median_ms in every row."
            )
        drop = {_key(x) for x in exclude}
        keys = [tuple(r) for r in rows[list(ARCH_KEY)].itertuples(index=False)]
        keys = [(str(k[0]), *map(int, k[1:6]), bool(k[6])) for k in keys]
        keep = np.array([k not in drop for k in keys])
        rows = rows[keep]
        if rows.empty:
            raise ValueError("every profiled architecture was excluded; nothing to fit.")
        parametric = ParametricLatency.fit(rows, statistic=statistic, flops_per_byte=flops_per_byte)
        tables = {}
        for key, g in rows.groupby(list(ARCH_KEY)):
            k = (str(key[0]), *map(int, key[1:6]), bool(key[6]))
            arch = _arch_from_key(k)
            tables[k] = _arch_table(g, statistic, parametric, arch)
        neighbours = None
        if np.isfinite(neighbour_shrink):
            neighbours = NeighbourCorrection.build(
                tables, parametric, scale=neighbour_scale, shrink=neighbour_shrink
            )
        return cls(
            parametric=parametric, tables=tables, dtype=dtype, statistic=statistic,
            device=device, neighbours=neighbours,
        )  # fmt: skip

    @classmethod
    def from_profiles(
        cls,
        path: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
        *,
        dtype: str | None = None,
        statistic: str = "auto",
        exclude: Sequence[ArchSpec | tuple] = (),
    ) -> LatencyModel:
        """Fit to the profiles of one device: a ``data/profiles/<device>/`` folder or CSV paths.

        The ridge point (FLOPs per byte) comes from the folder's ``hardware.json`` when there is
        one (peak FLOP/s of ``dtype`` over bandwidth). Raises ``ValueError`` for an empty or
        missing folder and for malformed CSVs (see :func:`load_profile_rows`).
        """
        rows = load_profile_rows(path)
        if dtype is None:
            dtype = str(rows["dtype"].value_counts().idxmax())
        device = ""
        fpb = _DEFAULT_FLOPS_PER_BYTE
        if isinstance(path, str | os.PathLike) and Path(path).is_dir():
            device = Path(path).name
            fpb = _ridge_point(Path(path) / "hardware.json", dtype) or fpb
        return cls.fit(
            rows,
            dtype=dtype,
            statistic=statistic,
            flops_per_byte=fpb,
            exclude=exclude,
            device=device,
        )

    def is_profiled(self, arch: ArchSpec) -> bool:
        """Whether this shape (any depth) was measured."""
        return _key(arch) in self.tables

    def latency_fn(self, arch: ArchSpec, *, profiled: bool = True) -> ArchLatency:
        """``fn(batch, context, query) -> ms`` of ``arch`` at its depth ``arch.layers``.

        Parameters
        ----------
        arch : ArchSpec
            Any shape; ``bytes_per_param`` is ignored (the profiles' dtype is used).
        profiled : bool
            Use what was measured (default): this shape's own tables where it was profiled, else
            the parametric model corrected by its profiled neighbours
            (:class:`NeighbourCorrection`); ``False`` forces the pure parametric model.
        """
        if not isinstance(arch, ArchSpec):
            raise ValueError(f"`arch` must be an ArchSpec, but got {type(arch).__name__}.")
        table = self.tables.get(_key(arch)) if profiled else None
        if profiled and table is None and self.neighbours is not None:
            table = self.neighbours.table(arch, self.parametric)
        return ArchLatency(arch=arch, parametric=self.parametric, profiled=table)

    def predict(
        self, arch: ArchSpec, *, batch: ArrayLike, context: ArrayLike, query: ArrayLike
    ) -> float | NDArray:
        """T(arch, b, n, q) in ms (shorthand for ``latency_fn(arch)(batch, context, query)``)."""
        return self.latency_fn(arch)(batch, context, query)


def _key(x: ArchSpec | tuple) -> tuple:
    if isinstance(x, ArchSpec):
        return (x.family, x.hidden, x.ffn, x.heads, x.kv_heads, x.vocab, bool(x.tied_embeddings))
    return (str(x[0]), *map(int, x[1:6]), bool(x[6]))


def _arch_from_key(k: tuple) -> ArchSpec:
    family, hidden, ffn, heads, kv, vocab, tied = k
    return ArchSpec(
        layers=1, hidden=hidden, ffn=ffn, heads=heads, kv_heads=kv, vocab=vocab,
        tied_embeddings=tied, family=family,
    )  # fmt: skip


def _ridge_point(path: Path, dtype: str) -> float | None:
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return float(raw["peak_flops_per_s"][dtype]) / float(raw["memory_bandwidth_bytes_per_s"])
    except (ValueError, KeyError, TypeError, ZeroDivisionError):
        return None
