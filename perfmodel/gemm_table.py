"""Measured matrix-product times of one device, t(m, k, n), and a layer's GEMM time composed from them.

A decoder layer's cost is mostly its linear layers: y = x · Wᵀ with x of m = b·q rows (tokens)
and W of n × k weights. How long one such product takes is not a smooth function of (m, k, n)
on a CPU: on the profiled AMD EPYC an fp32 product over 2 or 3 rows runs as 2 or 3 matrix-vector
products (t(3) = 3·t(1)) while 4 rows take a blocked kernel that is 1.7-3.5x t(1) depending on
the shape. A roofline-shaped term cannot carry that; a table of measured products can.

:class:`GemmTable` holds t(m, k, n) for measured (k, n) pairs (``data/profiles/<device>/gemm.csv``,
written by ``specdec profile --gemm``) and answers any (m, k, n):

- a measured pair: piecewise-linear interpolation in m between measured row counts (linear
  extrapolation past the last one);
- a pair never measured: the time per weight element, log t(m, k, n) − log(k·n), averaged over
  the measured pairs with Gaussian weights in (log k, log n), so a shape borrows the kernel
  behaviour of the products nearest in size.

:func:`layer_gemms` and :func:`head_gemm` list the products of a Llama / OPT layer and of the LM
head as Hugging Face runs them; :meth:`GemmTable.layer_ms` and :meth:`GemmTable.head_ms` sum
them, the regressors ``gemm_ms`` of :mod:`perfmodel.latency_terms`. numpy and pandas only.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "GEMM_REQUIRED_COLUMNS",
    "GEMM_TABLE_FILE",
    "GemmTable",
    "head_gemm",
    "layer_gemms",
    "model_gemms",
]

# File name of a device folder's GEMM table (not a model profile: profile readers skip it).
GEMM_TABLE_FILE = "gemm.csv"
GEMM_REQUIRED_COLUMNS = ("dtype", "m", "k", "n", "median_ms")

# Kernel width (natural-log units of k and of n) of the interpolation across unmeasured pairs.
PAIR_SCALE = 0.35


def layer_gemms(
    *, hidden: int, ffn: int, heads: int, kv_heads: int, opt: bool, head_dim: int | None = None
) -> list[tuple[int, int]]:
    """(k, n) of each linear layer of one decoder layer, one entry per product run.

    Llama: q, k, v and o projections (q and o are ``heads · head_dim`` wide, k and v
    ``kv_heads · head_dim``; head_dim is hidden / heads unless given), gate and up (hidden →
    ffn) and down (ffn → hidden). OPT: the same attention products and fc1, fc2.
    """
    h, f = int(hidden), int(ffn)
    hd = h // int(heads) if head_dim is None else int(head_dim)
    qd = h if head_dim is None else int(heads) * hd
    kv = int(kv_heads) * hd
    attention = [(h, qd), (h, kv), (h, kv), (qd, h)]
    mlp = [(h, f), (f, h)] if opt else [(h, f), (h, f), (f, h)]
    return attention + mlp


def head_gemm(*, hidden: int, vocab: int) -> tuple[int, int]:
    """(k, n) of the LM head: hidden → vocab."""
    return int(hidden), int(vocab)


def model_gemms(
    *,
    hidden: int,
    ffn: int,
    heads: int,
    kv_heads: int,
    vocab: int,
    opt: bool,
    head_dim: int | None = None,
) -> list[tuple[int, int]]:
    """Distinct (k, n) of a model's layer and head products, sorted."""
    pairs = set(
        layer_gemms(
            hidden=hidden, ffn=ffn, heads=heads, kv_heads=kv_heads, opt=opt, head_dim=head_dim
        )
    )
    pairs.add(head_gemm(hidden=hidden, vocab=vocab))
    return sorted(pairs)


@dataclass(frozen=True)
class _Curve:
    m: NDArray  # measured row counts, increasing
    ms: NDArray  # time of each

    def at(self, m: NDArray) -> NDArray:
        if len(self.m) == 1:
            return self.ms[0] * m / self.m[0]
        out = np.interp(m, self.m, self.ms)
        hi = m > self.m[-1]
        if hi.any():
            slope = max((self.ms[-1] - self.ms[-2]) / (self.m[-1] - self.m[-2]), 0.0)
            out = np.where(hi, self.ms[-1] + slope * (m - self.m[-1]), out)
        lo = m < self.m[0]
        if lo.any():
            out = np.where(lo, self.ms[0] * m / self.m[0], out)
        return out


@dataclass(frozen=True)
class GemmTable:
    """t(m, k, n) in ms of ``y = x · Wᵀ`` (x: m × k, W: n × k) on one device and dtype.

    Parameters
    ----------
    curves : dict
        (k, n) -> measured (m, ms) curve.
    dtype : str
        dtype the products were measured in.
    statistic : str
        Which column the times come from (``cpu_median_ms`` where every row has it).

    Examples
    --------
    >>> rows = pd.DataFrame({"dtype": "fp32", "k": 64, "n": 64, "m": [1, 2, 4],
    ...                      "median_ms": [0.01, 0.02, 0.025]})
    >>> GemmTable.from_rows(rows).ms(3, 64, 64)
    0.0225
    """

    curves: dict = field(repr=False)
    dtype: str
    statistic: str = "median_ms"

    def __post_init__(self) -> None:
        if not self.curves:
            raise ValueError("a GEMM table needs at least one measured (k, n) pair, but got none.")

    @classmethod
    def from_rows(
        cls,
        rows: pd.DataFrame,
        *,
        dtype: str | None = None,
        statistic: str = "auto",
        exclude: Iterable[tuple[int, int]] = (),
    ) -> GemmTable:
        """Build from GEMM rows (columns :data:`GEMM_REQUIRED_COLUMNS`).

        Parameters
        ----------
        rows : DataFrame
            One row per (dtype, m, k, n).
        dtype : str, optional
            Rows of this dtype (default: the most frequent).
        statistic : {"auto", "median_ms", "min_ms", "cpu_median_ms"}
            ``"auto"``: ``cpu_median_ms`` where every row of the dtype has a positive one.
        exclude : iterable of (k, n)
            Pairs to leave out (held-out validation: a shape whose products were never timed).
        """
        missing = [c for c in GEMM_REQUIRED_COLUMNS if c not in rows.columns]
        if missing:
            raise ValueError(
                f"GEMM rows must have columns {GEMM_REQUIRED_COLUMNS}; missing {missing}."
            )
        if rows.empty:
            raise ValueError("a GEMM table needs at least one row, but got none.")
        if dtype is None:
            dtype = str(rows["dtype"].value_counts().idxmax())
        rows = rows[rows["dtype"] == dtype]
        if rows.empty:
            raise ValueError(f"no GEMM rows of dtype={dtype!r}.")
        if statistic == "auto":
            cpu = pd.to_numeric(rows.get("cpu_median_ms"), errors="coerce")
            ok = cpu is not None and bool((np.isfinite(cpu) & (cpu > 0)).all())
            statistic = "cpu_median_ms" if ok else "median_ms"
        if statistic not in rows.columns:
            raise ValueError(f"GEMM rows have no column {statistic!r}.")
        frame = rows[["m", "k", "n", statistic]].apply(pd.to_numeric, errors="coerce")
        bad = ~(np.isfinite(frame).all(axis=1) & (frame > 0).all(axis=1))
        if bad.any():
            raise ValueError(
                f"GEMM rows need positive finite m, k, n and {statistic}; "
                f"bad row: {rows[bad].iloc[0][['m', 'k', 'n', statistic]].to_dict()}."
            )
        drop = {(int(k), int(n)) for k, n in exclude}
        curves = {}
        for (k, n), g in frame.groupby(["k", "n"]):
            if (int(k), int(n)) in drop:
                continue
            g = g.groupby("m")[statistic].median().sort_index()
            curves[(int(k), int(n))] = _Curve(g.index.to_numpy(float), g.to_numpy(float))
        return cls(curves=curves, dtype=str(dtype), statistic=statistic)

    @classmethod
    def from_csv(
        cls, path: str | os.PathLike[str], *, dtype: str | None = None, statistic: str = "auto"
    ) -> GemmTable:
        """Read ``gemm.csv``; ``ValueError`` for a missing, unreadable or malformed file."""
        p = Path(path)
        if not p.is_file():
            raise ValueError(f"no GEMM table at {p}.")
        try:
            rows = pd.read_csv(p)
        except (ValueError, OSError) as exc:
            raise ValueError(f"{p} is not a readable CSV: {exc}") from None
        try:
            return cls.from_rows(rows, dtype=dtype, statistic=statistic)
        except ValueError as exc:
            raise ValueError(f"{p}: {exc}") from None

    def without(self, pairs: Iterable[tuple[int, int]]) -> GemmTable:
        """This table less the given (k, n) pairs (at least one must remain)."""
        drop = {(int(k), int(n)) for k, n in pairs}
        kept = {p: c for p, c in self.curves.items() if p not in drop}
        return GemmTable(curves=kept, dtype=self.dtype, statistic=self.statistic)

    @property
    def pairs(self) -> list[tuple[int, int]]:
        return sorted(self.curves)

    def ms(self, m: ArrayLike, k: int, n: int) -> float | NDArray:
        """Time of one product over ``m`` rows (array-like) with an n × k weight, in ms."""
        mm = np.asarray(m, dtype=np.float64)
        if not (np.isfinite(mm) & (mm >= 1)).all():
            raise ValueError(f"`m >= 1` must hold, but got m={m!r}.")
        k, n = int(k), int(n)
        if k < 1 or n < 1:
            raise ValueError(f"`k >= 1 and n >= 1` must hold, but got k={k}, n={n}.")
        curve = self.curves.get((k, n))
        if curve is not None:
            out = curve.at(mm)
        else:
            out = self._interpolated(mm, k, n)
        return out.item() if out.ndim == 0 else out

    def _interpolated(self, m: NDArray, k: int, n: int) -> NDArray:
        pairs = np.array(self.pairs, dtype=float)
        d2 = (np.log(pairs[:, 0] / k)) ** 2 + (np.log(pairs[:, 1] / n)) ** 2
        w = np.exp(-0.5 * (d2 - d2.min()) / PAIR_SCALE**2)
        w /= w.sum()
        flat = m.reshape(-1)
        log_per_elem = np.stack(
            [np.log(self.curves[tuple(map(int, p))].at(flat) / (p[0] * p[1])) for p in pairs]
        )  # (pairs, m)
        return (np.exp(w @ log_per_elem) * k * n).reshape(m.shape)

    def layer_ms(
        self,
        m: ArrayLike,
        *,
        hidden: int,
        ffn: int,
        heads: int,
        kv_heads: int,
        opt: bool,
        head_dim: int | None = None,
    ) -> float | NDArray:
        """Sum of one decoder layer's products over ``m`` rows (:func:`layer_gemms`)."""
        pairs = layer_gemms(
            hidden=hidden, ffn=ffn, heads=heads, kv_heads=kv_heads, opt=opt, head_dim=head_dim
        )
        return sum(np.asarray(self.ms(m, k, n)) for k, n in pairs)

    def head_ms(self, m: ArrayLike, *, hidden: int, vocab: int) -> float | NDArray:
        """The LM head's product over ``m`` rows."""
        return self.ms(m, *head_gemm(hidden=hidden, vocab=vocab))
