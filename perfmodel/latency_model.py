"""Forward-pass latency fitted from profile CSVs: T(arch, b, n, q) for any depth and shape.

Two parts, both in the decomposition T = T_fixed(b, n, q) + L · T_layer(b, n, q):

- **Across architectures** (:class:`ParametricLatency`): T_layer and T_fixed as non-negative
  combinations of roofline-shaped terms of the shape (hidden, ffn, heads, kv_heads, vocab) and of
  (b, n, q): bytes read (weights, KV cache), FLOPs (weight products, attention), the roofline
  max(bytes / bandwidth, FLOPs / peak), per-token traffic and a per-layer / per-pass overhead.
  Fitted by non-negative least squares on relative error to every measured row (all depths), so
  it predicts shapes that were never profiled. Where the device folder has a GEMM table
  (``gemm.csv``, :class:`perfmodel.gemm_table.GemmTable`), the time of the layer's and the head's
  matrix products, measured one by one at m = b·q rows (or interpolated from the products
  nearest in size), is one more regressor: it carries a CPU's kernel quirks, like the EPYC's
  2-3-row products that cost more than 4-row ones, which no roofline-shaped term can.
- **For a profiled architecture** (:class:`ProfiledLatency`): T_fixed and T_layer at each
  measured (b, n, q), from a non-negative depth fit of that architecture's rows, interpolated
  piecewise-linearly in (log b, log(1 + n), log q) after making the grid monotone in context
  (along b and q a CPU's GEMMs are not always monotone, see
  :data:`perfmodel.latency_tables.MONOTONE_AXES`). Outside the measured grid the edge value is
  scaled by the parametric model's ratio, so extrapolation keeps the fitted shape. Any depth L
  works: T = T_fixed + L · T_layer.

:meth:`LatencyModel.latency_fn` returns the profiled form where the architecture (everything but
its depth) was measured, and otherwise the parametric form corrected by the profiled shapes of
similar size (:class:`NeighbourCorrection`); all are vectorised ``fn(batch, context, query) ->
ms`` callables (:class:`perfmodel.latency_fn.LatencyFn`) for the step model. numpy, scipy and
pandas only.

Modules: :mod:`perfmodel.latency_profiles` (reading profile CSVs), :mod:`perfmodel.latency_terms`
(the parametric model), :mod:`perfmodel.latency_tables` (per-architecture tables and the
neighbour correction), this one (the fitted model of one device).

References
----------
Profiles: ``data/profiles/<device>/<model>.csv`` (columns in ``data/README.md``, "profiles").
Williams, Waterman, Patterson, "Roofline", CACM 2009.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from perfmodel.arch import ArchSpec
from perfmodel.gemm_table import GEMM_TABLE_FILE, GemmTable, model_gemms
from perfmodel.latency_profiles import (
    ARCH_KEY,
    REQUIRED_COLUMNS,
    STATISTICS,
    _typed,
    load_profile_rows,
)
from perfmodel.latency_tables import (
    ArchLatency,
    NeighbourCorrection,
    ProfiledLatency,
    _arch_from_key,
    _arch_table,
    _check_depth_fit,
    _key,
    row_keys,
)
from perfmodel.latency_terms import (
    DEFAULT_FLOPS_PER_BYTE,
    FIXED_TERMS,
    LAYER_TERMS,
    ParametricLatency,
    fixed_terms,
    layer_terms,
)

__all__ = [
    "ARCH_KEY",
    "FIXED_TERMS",
    "LAYER_TERMS",
    "REQUIRED_COLUMNS",
    "ArchLatency",
    "LatencyModel",
    "NeighbourCorrection",
    "ParametricLatency",
    "ProfiledLatency",
    "fixed_terms",
    "layer_terms",
    "load_profile_rows",
]


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
        Arch key (family, hidden, ffn, heads, kv_heads, vocab, tied), followed by
        ``("head_size", width)`` for a head width other than hidden / heads -> ProfiledLatency.
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
        flops_per_byte: float = DEFAULT_FLOPS_PER_BYTE,
        exclude: Sequence[ArchSpec | tuple] = (),
        device: str = "",
        neighbour_scale: float = 0.7,
        neighbour_shrink: float = 0.3,
        gemm: GemmTable | None = None,
        exclude_gemms: bool = True,
        parametric_fit: Callable[..., ParametricLatency] | None = None,
        depth_fit: str = "absolute",
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
        gemm : GemmTable, optional
            The device's measured matrix products (the ``gemm_ms`` terms).
        exclude_gemms : bool
            Drop the excluded architectures' products from ``gemm`` too (a shape nothing was
            timed of).
        parametric_fit : callable, optional
            Fits the cross-architecture model, called as ``parametric_fit(rows, statistic=...,
            flops_per_byte=..., gemm=...)`` (default :meth:`ParametricLatency.fit`); other
            parametric forms are tried this way (``benchmarks/bench_residency.py``).
        depth_fit : {"absolute", "relative"}
            How each profiled shape's depth fit (T_fixed + L·T_layer per (b, n, q)) weighs its
            rows: absolute least squares (default; the deepest, longest pass weighs most) or
            relative (each row by 1 / t). ``benchmarks/bench_latency_model.py --depth-fit``
            compares them.
        """
        _check_depth_fit(depth_fit)
        if statistic not in (*STATISTICS, "auto"):
            raise ValueError(
                f"`statistic in {(*STATISTICS, 'auto')}` must hold, but got {statistic=}."
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
        keys = row_keys(rows)
        keep = np.array([k not in drop for k in keys])
        rows, keys = rows[keep], [k for k, ok in zip(keys, keep, strict=True) if ok]
        if rows.empty:
            raise ValueError("every profiled architecture was excluded; nothing to fit.")
        if gemm is not None:
            if gemm.dtype != dtype:
                raise ValueError(
                    f"the GEMM table's dtype must be the profiles' ({dtype!r}), but got {gemm.dtype!r}."
                )
            if drop and exclude_gemms:
                gone = {
                    p for k in drop
                    for p in model_gemms(
                        hidden=k[1], ffn=k[2], heads=k[3], kv_heads=k[4], vocab=k[5],
                        opt=k[0] == "opt", head_dim=dict(k[7:]).get("head_size"),
                    )
                }  # fmt: skip
                # nothing left: fit without the GEMM terms
                gemm = gemm.without(gone) if set(gemm.pairs) - gone else None
        parametric = (parametric_fit or ParametricLatency.fit)(
            rows, statistic=statistic, flops_per_byte=flops_per_byte, gemm=gemm
        )
        tables = {}
        order = {k: i for i, k in enumerate(sorted(set(keys)))}  # a groupby's order
        group = np.array([order[k] for k in keys])
        for k, i in order.items():
            g = rows[group == i]
            tables[k] = _arch_table(g, statistic, parametric, _arch_from_key(k), depth_fit)
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
        use_gemm: bool = True,
        depth_fit: str = "absolute",
    ) -> LatencyModel:
        """Fit to the profiles of one device: a ``data/profiles/<device>/`` folder or CSV paths.

        The ridge point (FLOPs per byte) comes from the folder's ``hardware.json`` when there is
        one (peak FLOP/s of ``dtype`` over bandwidth), the measured matrix products from its
        ``gemm.csv`` when it has rows of ``dtype`` (``use_gemm=False`` ignores them);
        ``depth_fit`` as in :meth:`fit`. Raises
        ``ValueError`` for an empty or missing folder and for malformed CSVs (see
        :func:`load_profile_rows`, :meth:`GemmTable.from_csv`).
        """
        rows = load_profile_rows(path)
        if dtype is None:
            dtype = str(rows["dtype"].value_counts().idxmax())
        device = ""
        fpb = DEFAULT_FLOPS_PER_BYTE
        gemm = None
        if isinstance(path, str | os.PathLike) and Path(path).is_dir():
            device = Path(path).name
            fpb = _ridge_point(Path(path) / "hardware.json", dtype) or fpb
            gemm = _gemm_table(Path(path) / GEMM_TABLE_FILE, dtype) if use_gemm else None
        return cls.fit(
            rows,
            dtype=dtype,
            statistic=statistic,
            flops_per_byte=fpb,
            exclude=exclude,
            device=device,
            gemm=gemm,
            depth_fit=depth_fit,
        )

    def is_profiled(self, arch: ArchSpec) -> bool:
        """Whether this shape (any depth) was measured."""
        return _key(arch) in self.tables

    def outside_profile(
        self, arch: ArchSpec, *, batch: int, context: int, query: int
    ) -> dict[str, tuple[int, int]]:
        """The axes on which (batch, context, query) lies outside what was measured of this
        shape, each with its measured (lowest, highest): there the tables' edge value is scaled
        by the fitted model (extrapolated). Empty for a point inside, and for a shape never
        profiled (predicted from the fitted terms everywhere)."""
        table = self.tables.get(_key(arch))
        if table is None:
            return {}
        out = {}
        for name, value in (("batch", batch), ("context", context), ("query", query)):
            axis = getattr(table, name)
            if not min(axis) <= value <= max(axis):
                out[name] = (int(min(axis)), int(max(axis)))
        return out

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
        if arch.experts:
            raise ValueError(
                "`a dense MLP (experts == 0)` must hold for the latency model, which has no "
                f"mixture-of-experts terms, but got experts={arch.experts} for "
                f"{arch.name or 'the model'}; --hardware NAME gives its roofline bound."
            )
        table = self.tables.get(_key(arch)) if profiled else None
        if profiled and table is None and self.neighbours is not None:
            table = self.neighbours.table(arch, self.parametric)
        return ArchLatency(arch=arch, parametric=self.parametric, profiled=table)

    def predict(
        self, arch: ArchSpec, *, batch: ArrayLike, context: ArrayLike, query: ArrayLike
    ) -> float | NDArray:
        """T(arch, b, n, q) in ms (shorthand for ``latency_fn(arch)(batch, context, query)``)."""
        return self.latency_fn(arch)(batch, context, query)


def _gemm_table(path: Path, dtype: str) -> GemmTable | None:
    if not path.is_file():
        return None
    table = GemmTable.from_csv(path)  # ValueError for a malformed table
    if table.dtype == dtype:
        return table
    try:
        return GemmTable.from_csv(path, dtype=dtype)
    except ValueError:  # no rows of this dtype: the model does without
        return None


def _ridge_point(path: Path, dtype: str) -> float | None:
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return float(raw["peak_flops_per_s"][dtype]) / float(raw["memory_bandwidth_bytes_per_s"])
    except (ValueError, KeyError, TypeError, ZeroDivisionError):
        return None
