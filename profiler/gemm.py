"""Time the matrix products of a model's linear layers: t(m, k, n) for ``perfmodel.GemmTable``.

A layer's linear layers are ``torch.nn.functional.linear(x, W)`` with x of m = b·q rows and W of
n × k weights (:func:`perfmodel.gemm_table.layer_gemms`); the LM head is one more (k = hidden,
n = vocab). :func:`profile_gemms` times each (k, n) at each m in the device's dtype, with the same
clocks as the forward-pass profiles (CUDA events; on CPU ``perf_counter_ns`` plus the process
CPU time of each call with one thread), and :func:`write_gemm_rows` merges the rows into
``<device folder>/gemm.csv`` atomically, replacing or pooling earlier rows of the same point.
Columns are documented in ``data/README.md`` ("GEMM table").
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from perfmodel.atomic import atomic_write_text
from perfmodel.gemm_table import GEMM_TABLE_FILE
from perfmodel.latency_profiles import BYTES_PER_PARAM
from profiler.profile_store import csv_text, pool_samples, refuse_other_settings
from profiler.timing import TimingResult, time_callable

__all__ = ["GEMM_COLUMNS", "GEMM_KEY", "profile_gemms", "weight_copies", "write_gemm_rows"]

GEMM_KEY = ("dtype", "k", "n", "m")
GEMM_COLUMNS = (
    "dtype", "k", "n", "m", "median_ms", "iqr_ms", "min_ms", "max_ms", "repeats", "warmup",
    "runs", "samples_ms", "cpu_median_ms", "cpu_iqr_ms", "cpu_samples_ms",
    "achieved_bandwidth_bytes_per_s", "achieved_flops_per_s", "cycle_bytes", "device",
    "device_name", "threads", "torch_version", "measured_at",
)  # fmt: skip
# Bytes of weight copies each product cycles through (above the last-level cache of a server
# CPU: 32 MiB on the profiled EPYC; an H200's L2 is 60 MiB).
CYCLE_BYTES = 256 * 2**20


def weight_copies(w: Any, cycle_bytes: int = CYCLE_BYTES) -> list[Any]:
    """``w`` and enough clones of it to fill ``cycle_bytes`` (at least ``w`` itself): cycling a
    product through them makes its weight come from memory, as in a forward pass."""
    copies = max(1, -(-int(cycle_bytes) // (w.numel() * w.element_size())))
    return [w] + [w.clone() for _ in range(copies - 1)]


def _stats(samples: Sequence[float], prefix: str = "") -> dict[str, float]:
    if not samples:
        return {f"{prefix}median_ms": float("nan"), f"{prefix}iqr_ms": float("nan")}
    t = TimingResult(tuple(samples))
    return {f"{prefix}median_ms": t.median_ms, f"{prefix}iqr_ms": t.iqr_ms}


def _joined(samples: Sequence[float]) -> str:
    return ";".join(f"{s:.5f}" for s in samples)


def _achieved(k: int, n: int, m: int, dtype: str, median_ms: float) -> dict[str, float]:
    """Bytes (weight, input, output) and FLOPs of one product per second at ``median_ms``."""
    seconds = median_ms / 1e3
    return {
        "achieved_bandwidth_bytes_per_s": (k * n + m * (k + n)) * BYTES_PER_PARAM[dtype] / seconds,
        "achieved_flops_per_s": 2.0 * m * k * n / seconds,
    }


def _row(
    k: int, n: int, m: int, wall: list[float], cpu: list[float], env: dict[str, Any], warmup: int
) -> dict[str, Any]:
    median = TimingResult(tuple(wall)).median_ms
    return {
        "k": k, "n": n, "m": m, **_stats(wall), "min_ms": min(wall), "max_ms": max(wall),
        "repeats": len(wall), "warmup": warmup, "runs": 1, "samples_ms": _joined(wall),
        **_stats(cpu, "cpu_"), "cpu_samples_ms": _joined(cpu),
        **_achieved(k, n, m, env["dtype"], median),
        **env,
    }  # fmt: skip


def profile_gemms(
    pairs: Sequence[tuple[int, int]],
    m_values: Sequence[int],
    *,
    device: str = "cpu",
    dtype: str = "fp32",
    warmup: int = 1,
    repeats: int = 5,
    cycle_bytes: int = CYCLE_BYTES,
    progress: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Time ``linear(x, W)`` for every (k, n) in ``pairs`` and m in ``m_values``.

    Parameters
    ----------
    pairs : sequence of (k, n)
        Input and output widths of each product (W is n × k).
    m_values : sequence of int
        Rows of x (tokens: batch · query).
    device, dtype : str
        Where and in what dtype (``fp32``, ``bf16``, ``fp16``).
    warmup, repeats : int
        Untimed calls before the first timed one of each point; timed calls per point, taken in
        ``repeats`` rounds over the m values (reversed every other round, so no m always runs
        first after the weight was touched).
    cycle_bytes : int
        Each call multiplies by the next of enough copies of W to fill this many bytes, so W
        comes from memory as it does in a forward pass (where every other layer's weights
        pass through the caches between two uses of one), not from a cache that the previous
        call warmed: warm, a 128 x 128 fp32 product took 3.2 µs on the EPYC, cold 16.2 µs
        (data/README.md, "gemm.csv"). 0 times one copy (warm cache).
    progress : callable, optional
        Called with a label after each (k, n).

    Returns
    -------
    DataFrame
        One row per (k, n, m), columns :data:`GEMM_COLUMNS`.
    """
    import torch

    from profiler.build import torch_dtype
    from profiler.hardware_probe import device_slug
    from profiler.timing import device_name

    if repeats < 1 or warmup < 0:
        raise ValueError(f"`repeats >= 1 and warmup >= 0` must hold, but got {repeats}, {warmup}.")
    if dtype not in BYTES_PER_PARAM:
        raise ValueError(f"`dtype in {tuple(BYTES_PER_PARAM)}` must hold, but got {dtype!r}.")
    ms_sorted = sorted({int(m) for m in m_values})
    if not ms_sorted or ms_sorted[0] < 1:
        raise ValueError(f"`m >= 1` must hold for every m, but got {list(m_values)}.")
    bad = [p for p in pairs if int(p[0]) < 1 or int(p[1]) < 1]
    if bad or not pairs:
        raise ValueError(f"pairs must be (k >= 1, n >= 1), at least one, but got {list(pairs)}.")
    tdtype = torch_dtype(dtype)
    cuda = str(device).startswith("cuda")
    keep_cpu = not cuda and torch.get_num_threads() == 1
    env = {
        "dtype": dtype,
        "device": device_slug(device),
        "device_name": device_name(device),
        "threads": int(torch.get_num_threads()),
        "torch_version": torch.__version__,
    }
    linear = torch.nn.functional.linear
    gen = torch.Generator().manual_seed(0)
    rows = []
    with torch.inference_mode():
        for k, n in pairs:
            k, n = int(k), int(n)
            w0 = (torch.randn(n, k, generator=gen) * 0.02).to(device=device, dtype=tdtype)
            ws = weight_copies(w0, cycle_bytes)
            copies = len(ws)
            turn = 0
            xs = {
                m: torch.randn(m, k, generator=gen).to(device=device, dtype=tdtype)
                for m in ms_sorted
            }
            wall: dict[int, list[float]] = {m: [] for m in ms_sorted}
            cpu: dict[int, list[float]] = {m: [] for m in ms_sorted}
            for m in ms_sorted:
                for _ in range(warmup):
                    linear(xs[m], ws[turn % copies])
                    turn += 1
            for r in range(repeats):
                for m in ms_sorted if r % 2 == 0 else reversed(ms_sorted):
                    x, w = xs[m], ws[turn % copies]
                    turn += 1
                    if cuda:  # CUDA events around the call, synchronised
                        res = time_callable(
                            lambda x=x, w=w: linear(x, w), device=device, warmup=0, repeats=1
                        )
                        wall[m].extend(res.samples_ms)
                        continue
                    # CPU: both clocks read right around the call (no Python between them)
                    c0, t0 = time.process_time_ns(), time.perf_counter_ns()
                    linear(x, w)
                    wall[m].append((time.perf_counter_ns() - t0) / 1e6)
                    cpu[m].append((time.process_time_ns() - c0) / 1e6)
            stamp = datetime.now(UTC).isoformat(timespec="seconds")
            for m in ms_sorted:
                row = _row(k, n, m, wall[m], cpu[m] if keep_cpu else [], env, warmup)
                rows.append(row | {"cycle_bytes": copies * n * k * w0.element_size(),
                                   "measured_at": stamp})  # fmt: skip
            del w0, ws, xs
            if progress is not None:
                progress(f"{k}x{n}")
    return pd.DataFrame(rows, columns=list(GEMM_COLUMNS))


# Products measured under different settings are not pooled (a warm product, cycle_bytes 0, is
# not a cold one).
_SAME_SETTINGS = ("threads", "torch_version", "cycle_bytes", "device_name")
# Whole-number columns, written as integers (merged with rows lacking one, pandas makes it
# float, and 6 significant digits would round 268435456 cycled bytes).
_INTEGER_COLUMNS = ("k", "n", "m", "repeats", "warmup", "runs", "cycle_bytes", "threads")


def _pooled(old: pd.Series, new: pd.Series) -> dict[str, Any]:
    out = new.to_dict() | pool_samples(old, new, decimals=5)
    k, n, m = int(new["k"]), int(new["n"]), int(new["m"])
    out |= _achieved(k, n, m, new["dtype"], out["median_ms"])
    out["runs"] = int(pd.to_numeric(old.get("runs"), errors="coerce") or 1) + 1
    return out


def write_gemm_rows(out_dir: str | Path, rows: pd.DataFrame, *, accumulate: bool = False) -> Path:
    """Merge ``rows`` into ``<out_dir>/gemm.csv`` (written atomically) and return its path.

    A new row replaces the earlier row of the same (dtype, k, n, m), or with ``accumulate`` is
    pooled with it (samples appended, statistics recomputed, ``runs`` counted). Raises
    ``ValueError``, writing nothing, for an unreadable existing table and, with ``accumulate``,
    for a row whose earlier row was measured with other settings (threads, torch version,
    cycled bytes, device name: :data:`_SAME_SETTINGS`), whose samples are not one population.
    """
    path = Path(out_dir) / GEMM_TABLE_FILE
    new = rows.copy()
    if path.is_file():
        try:
            old = pd.read_csv(path, keep_default_na=False, na_values=[""])
        except (ValueError, OSError) as exc:
            raise ValueError(f"{path} is not a readable CSV: {exc}") from None
        missing = [c for c in GEMM_KEY if c not in old.columns]
        if missing:
            raise ValueError(f"{path} lacks the GEMM table columns {missing}.")
        if accumulate and len(old):
            index = {tuple(r[c] for c in GEMM_KEY): r for _, r in old.iterrows()}
            pooled = []
            for _, r in new.iterrows():
                prev = index.get(tuple(r[c] for c in GEMM_KEY))
                if prev is None:
                    pooled.append(r.to_dict())
                    continue
                refuse_other_settings(
                    prev, r, _SAME_SETTINGS,
                    point=f"{r['dtype']} k={r['k']}, n={r['n']}, m={r['m']}", where=f" in {path}",
                )  # fmt: skip
                pooled.append(_pooled(prev, r))
            new = pd.DataFrame(pooled, columns=rows.columns)
        new = pd.concat([old, new], ignore_index=True)
    new = new.drop_duplicates(subset=list(GEMM_KEY), keep="last")
    new = new.sort_values(list(GEMM_KEY), kind="stable").reset_index(drop=True)
    ordered = [c for c in GEMM_COLUMNS if c in new.columns]
    ordered += [c for c in new.columns if c not in ordered]
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(path, csv_text(new[ordered], _INTEGER_COLUMNS))
