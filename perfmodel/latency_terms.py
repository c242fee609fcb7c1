"""The parametric latency model: roofline-shaped terms of a shape and (b, n, q), fitted by NNLS.

T = fixed_terms · fixed_coef + L · layer_terms · layer_coef with non-negative coefficients
(ms per byte, per FLOP, per call, ...), fitted on relative error to every profiled row, so it
predicts shapes that were never profiled (:class:`ParametricLatency`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import least_squares, nnls

from perfmodel.arch import ArchSpec
from perfmodel.gemm_table import GemmTable
from perfmodel.latency_profiles import BYTES_PER_PARAM, derived_head_width

__all__ = [
    "DEFAULT_FLOPS_PER_BYTE",
    "FIXED_TERMS",
    "LAYER_TERMS",
    "M_KNOTS",
    "ParametricLatency",
    "fit_relative",
    "fixed_terms",
    "layer_terms",
    "own_head_dims",
    "rows_bytes_per_param",
]

# Bytes/FLOP balance for the roofline-max feature when the profile folder has no hardware.json.
DEFAULT_FLOPS_PER_BYTE = 6.0

# Token-count segments of the piecewise-linear matmul cost: m = b·q in [1, 4], [4, 16], [16, inf).
# A CPU's (and a GPU's) GEMM efficiency changes with the number of rows m, so one FLOP rate does
# not fit m = 1 (matrix-vector) and m = 68 alike; a non-decreasing piecewise-linear cost in m
# does, and stays monotone in b and q.
M_KNOTS = (1.0, 4.0, 16.0)

LAYER_TERMS = (
    "overhead", "weight_bytes", "matmul_flops_m1_4",
    "matmul_flops_m4_16", "matmul_flops_m16_up", "roofline_max", "kv_bytes", "attention_flops",
    "token_traffic", "width", "gemm_ms", "overhead_llama",
)  # fmt: skip
FIXED_TERMS = (
    "overhead", "head_bytes", "head_flops_m1_4", "head_flops_m4_16", "head_flops_m16_up",
    "roofline_max", "logits", "token_traffic", "head_gemm_ms",
)  # fmt: skip


def _ramps(m: NDArray) -> list[NDArray]:
    """Extra tokens beyond the first in each segment of :data:`M_KNOTS` (sum = m - 1)."""
    lo, mid, hi = M_KNOTS
    return [np.clip(m - lo, 0, mid - lo), np.clip(m - mid, 0, hi - mid), np.maximum(m - hi, 0)]


# --- features -----------------------------------------------------------------------------------


def _layer_matmul_params(h, ffn, heads, kv, opt, head_dim=None):
    """q, k, v, o and MLP weights; head_dim None means hidden / heads (most profiled shapes),
    and so does a NaN entry of a ``head_dim`` array (profile rows of mixed head widths)."""
    mlp = np.where(opt, 2.0, 3.0) * h * ffn
    derived = 2 * h * h + 2 * h * kv * (h / heads) + mlp
    if head_dim is None:
        return derived
    own = 2 * h * heads * head_dim + 2 * h * kv * head_dim + mlp
    return own if np.ndim(head_dim) == 0 else np.where(np.isnan(head_dim), derived, own)


def own_head_dims(rows) -> NDArray | None:
    """The ``head_dim`` argument of the terms for profile rows: None when every row's head
    width is hidden / heads (an empty ``head_dim`` cell, in rows written before the column, is
    that), else each row's width, NaN where it is hidden / heads."""
    derived = derived_head_width(rows).to_numpy(bool)
    if derived.all():
        return None
    hd = pd.to_numeric(rows["head_dim"], errors="coerce").to_numpy(dtype=float)
    return np.where(derived, np.nan, hd)


def layer_terms(
    *,
    hidden,
    ffn,
    heads,
    kv_heads,
    opt,
    batch,
    context,
    query,
    bytes_per_param,
    flops_per_byte,
    gemm_ms=0.0,
    head_dim=None,
) -> NDArray:
    """Per-layer regressors, shape (..., len(LAYER_TERMS)); units bytes, FLOPs or counts.

    Notes
    -----
    With m = b·q tokens and N the layer's matmul parameters: overhead = 1 (a fixed cost per
    layer: kernel launches, Python; every family pays it); overhead_llama = 1 for a Llama-layout
    layer, 0 for OPT (what the Llama layout adds to it: RMSNorm, rotary embedding and the gated
    MLP run as separate small kernels; on the H200, where a pass of these sizes is bound by
    kernel launches, an OPT layer costs 0.3-0.4 ms and a Llama one 0.5-0.6 ms at b = 1, and the
    shared overhead alone missed the OPT shapes up to opt-13b by +15% to +39%; on the EPYC it
    changes nothing. An OPT-only overhead instead, fitted to one OPT-66B point, once predicted opt-125m
    2.5x too slow); weight_bytes = N·B (read once,
    the whole cost at m = 1); matmul_flops_<segment> = 2·N·(tokens beyond the first that fall in
    the segment of :data:`M_KNOTS`); roofline_max = max(weight_bytes + kv_bytes,
    (2·N·m + attention_flops) / flops_per_byte) (bytes-equivalent);
    kv_bytes = b·(n + q)·2·kv_heads·head_dim·B; attention_flops = 4·b·q·(n + q)·heads·head_dim
    (head_dim = h / heads unless ``head_dim`` is given: a spec's ``head_size``);
    token_traffic = b·q·(h + ffn) (activations, norms, element-wise work); width = h + ffn (a
    per-layer cost that grows with the width but not with the tokens: small-GEMV inefficiency,
    norm and bias vectors; it halved the held-out error of the smallest and largest CPU drafts);
    gemm_ms = the layer's linear layers timed one by one at m rows (:class:`GemmTable`; 0 where
    the device has no GEMM table).
    """
    h, f = np.asarray(hidden, float), np.asarray(ffn, float)
    a, kv = np.asarray(heads, float), np.asarray(kv_heads, float)
    b, n, q = (np.asarray(x, float) for x in (batch, context, query))
    opt = np.asarray(opt, bool)
    B = np.asarray(bytes_per_param, float)
    params = _layer_matmul_params(h, f, a, kv, opt, head_dim)
    weight_bytes = params * B
    if head_dim is None:
        hd, width = h / a, h
    elif np.ndim(head_dim) == 0:
        hd = np.asarray(head_dim, float)
        width = a * hd
    else:  # NaN entries: hidden / heads
        own = np.asarray(head_dim, float)
        hd, width = np.where(np.isnan(own), h / a, own), np.where(np.isnan(own), h, a * own)
    kv_bytes = b * (n + q) * 2 * kv * hd * B
    attention = 4 * b * q * (n + q) * width
    roof = np.maximum(weight_bytes + kv_bytes, (2 * b * q * params + attention) / flops_per_byte)
    ramps = [2 * params * r for r in _ramps(b * q)]
    terms = np.broadcast_arrays(
        np.ones_like(h), weight_bytes, *ramps, roof,
        kv_bytes, attention, b * q * (h + f), h + f, np.asarray(gemm_ms, float),
        np.where(opt, 0.0, 1.0),
    )  # fmt: skip
    return np.stack(terms, axis=-1)


def fixed_terms(
    *, hidden, vocab, batch, query, bytes_per_param, flops_per_byte, head_gemm_ms=0.0
) -> NDArray:
    """Regressors of the part outside the layers, shape (..., len(FIXED_TERMS)).

    Notes
    -----
    head_bytes = vocab·h·B (the LM head is read whole, tied or not); head_flops_<segment> =
    2·vocab·h·(tokens beyond the first in the segment); roofline_max = max(head_bytes,
    2·b·q·vocab·h / flops_per_byte); logits = b·q·vocab (written in fp32); token_traffic = b·q·h
    (embedding gather, final norm); head_gemm_ms = the head's product timed at m rows
    (:class:`GemmTable`; 0 without one).
    """
    h, v = np.asarray(hidden, float), np.asarray(vocab, float)
    b, q = np.asarray(batch, float), np.asarray(query, float)
    B = np.asarray(bytes_per_param, float)
    head_bytes = v * h * B
    roof = np.maximum(head_bytes, 2 * b * q * v * h / flops_per_byte)
    ramps = [2 * v * h * r for r in _ramps(b * q)]
    terms = np.broadcast_arrays(
        np.ones_like(h), head_bytes, *ramps, roof, b * q * v, b * q * h,
        np.asarray(head_gemm_ms, float),
    )  # fmt: skip
    return np.stack(terms, axis=-1)


def _arch_arrays(arch: ArchSpec) -> dict[str, object]:
    return {
        "hidden": arch.hidden,
        "ffn": arch.ffn,
        "heads": arch.heads,
        "kv_heads": arch.kv_heads,
        "opt": arch.family == "opt",
        "head_dim": arch.head_size,
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


def gemm_features(
    gemm: GemmTable | None,
    *,
    hidden,
    ffn,
    heads,
    kv_heads,
    opt,
    vocab,
    batch,
    query,
    head_dim=None,
) -> tuple[NDArray, NDArray]:
    """(gemm_ms, head_gemm_ms) of each row: a layer's and the head's products at m = b·q rows.

    Zeros without a table. Shapes are grouped, so a fit over thousands of rows of a few dozen
    shapes asks the table a few dozen times.
    """
    b, q = np.broadcast_arrays(np.asarray(batch, float), np.asarray(query, float))
    # head width 0: hidden / heads (None, or a NaN entry of an array)
    own = np.nan_to_num(np.asarray(np.nan if head_dim is None else head_dim, float), nan=0.0)
    cols = np.broadcast_arrays(
        *(np.asarray(x) for x in (hidden, ffn, heads, kv_heads, opt, vocab, own)), b
    )[:-1]
    if gemm is None:
        return np.zeros(b.shape), np.zeros(b.shape)
    m = (b * q).reshape(-1)
    flat = [c.reshape(-1) for c in cols]
    layer, head = np.empty(m.shape), np.empty(m.shape)
    shapes = np.stack([c.astype(float) for c in flat], axis=1)
    for shape in np.unique(shapes, axis=0):
        sel = (shapes == shape).all(axis=1)
        h, f, a, kv, o, v, hd = (int(x) for x in shape)
        layer[sel] = gemm.layer_ms(
            m[sel], hidden=h, ffn=f, heads=a, kv_heads=kv, opt=bool(o), head_dim=hd or None
        )
        head[sel] = gemm.head_ms(m[sel], hidden=h, vocab=v)
    return layer.reshape(b.shape), head.reshape(b.shape)


# --- the parametric model -----------------------------------------------------------------------


def rows_bytes_per_param(rows: pd.DataFrame) -> float:
    """Bytes per parameter of the one dtype of profile rows; ValueError for none or several."""
    if rows.empty:
        raise ValueError("cannot fit a latency model to zero rows.")
    dtypes = rows["dtype"].unique()
    if len(dtypes) != 1:
        raise ValueError(f"`rows` must hold one dtype, but got {sorted(dtypes)}.")
    return BYTES_PER_PARAM[dtypes[0]]


def fit_relative(X: NDArray, t: NDArray, *, loss: str = "linear", f_scale: float = 0.05) -> NDArray:
    """Coefficients c >= 0 minimising Σ_i ρ((X_i · c − t_i) / t_i).

    Non-negative least squares on the columns scaled to unit maximum; with a ``loss`` other than
    ``"linear"`` (``scipy.optimize.least_squares``'s, scale ``f_scale``) refined from there.
    """
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
    return start / scale


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
    gemm : GemmTable, optional
        Measured matrix-product times of the device, for the ``gemm_ms`` terms (zero without).
    """

    layer_coef: NDArray
    fixed_coef: NDArray
    bytes_per_param: float
    flops_per_byte: float
    gemm: GemmTable | None = None

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
        g, hg = gemm_features(self.gemm, **_arch_arrays(arch), vocab=arch.vocab, batch=b, query=q)
        lt = layer_terms(**_arch_arrays(arch), batch=b, context=n, query=q, gemm_ms=g, **kw)
        ft = fixed_terms(
            hidden=arch.hidden, vocab=arch.vocab, batch=b, query=q, head_gemm_ms=hg, **kw
        )
        return ft @ self.fixed_coef, lt @ self.layer_coef

    @classmethod
    def fit(
        cls,
        rows: pd.DataFrame,
        *,
        statistic: str = "median_ms",
        flops_per_byte: float = DEFAULT_FLOPS_PER_BYTE,
        loss: str = "linear",
        f_scale: float = 0.05,
        gemm: GemmTable | None = None,
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
        B = rows_bytes_per_param(rows)
        kw = {"bytes_per_param": B, "flops_per_byte": flops_per_byte}
        shape = {
            "hidden": rows["hidden"].to_numpy(),
            "ffn": rows["ffn"].to_numpy(),
            "heads": rows["heads"].to_numpy(),
            "kv_heads": rows["kv_heads"].to_numpy(),
            "opt": (rows["family"] == "opt").to_numpy(),
            "head_dim": own_head_dims(rows),
        }
        g, hg = gemm_features(
            gemm, **shape, vocab=rows["vocab"].to_numpy(), batch=rows["batch"].to_numpy(),
            query=rows["query"].to_numpy(),
        )  # fmt: skip
        lt = layer_terms(
            **shape,
            batch=rows["batch"].to_numpy(),
            context=rows["context"].to_numpy(),
            query=rows["query"].to_numpy(),
            gemm_ms=g,
            **kw,
        )
        ft = fixed_terms(
            hidden=rows["hidden"].to_numpy(),
            vocab=rows["vocab"].to_numpy(),
            batch=rows["batch"].to_numpy(),
            query=rows["query"].to_numpy(),
            head_gemm_ms=hg,
            **kw,
        )
        depth = rows["depth"].to_numpy(dtype=float)[:, None]
        X = np.concatenate([ft, depth * lt], axis=1)  # (rows, terms)
        coef = fit_relative(X, rows[statistic].to_numpy(dtype=float), loss=loss, f_scale=f_scale)
        nf = len(FIXED_TERMS)
        return cls(
            layer_coef=coef[nf:],
            fixed_coef=coef[:nf],
            bytes_per_param=B,
            flops_per_byte=flops_per_byte,
            gemm=gemm,
        )
