"""Writing profile CSVs: merge a new profile into ``<out>/<model>.csv`` and ``.fit.csv``.

Two ways to combine a new profile with the rows already in the folder, both written atomically
(temporary file, then rename):

- **replace** (default): a new row replaces the earlier row of the same point
  (:data:`profiler.layers.MEASURE_KEY`); other rows are kept.
- **pool** (``accumulate=True``): the new samples are appended to the earlier row's samples and
  every statistic (median, IQR, min, max, CPU-time median and IQR, achieved bandwidth) is
  recomputed over all of them; ``runs`` counts the profiling runs pooled. The depth fits of the
  model are then refitted from the pooled rows.

Why pool: on a shared or virtual machine the latency of a ~1 ms layer drifts between runs made
minutes apart (process CPU time included: cache and memory bandwidth are shared), by more than
it varies within one run. A profile made of several runs, interleaved with other models' runs,
takes its median over several of those states instead of one (``benchmarks/cpu_profile.sh``
``ROUNDS``; data/README.md, "profiles").
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from perfmodel.atomic import atomic_write_text
from perfmodel.latency_profiles import join_blocks, parse_samples, read_profile_csv, run_blocks
from profiler.layers import (
    FIT_COLUMNS,
    FIT_KEY,
    MEASURE_KEY,
    ROW_COLUMNS,
    Profile,
    fit_profile,
)
from profiler.timing import TimingResult

__all__ = ["csv_text", "pool_rows", "pool_samples", "refuse_other_settings", "write_profile"]

# Rows measured under different settings are not pooled (their samples are not one population).
_SAME_SETTINGS = (
    "threads", "warmup", "block", "flush_bytes", "torch_version", "transformers_version",
    "device_name",
)  # fmt: skip


def _joined(samples: Sequence[float], decimals: int = 4) -> str:
    return ";".join(f"{s:.{decimals}f}" for s in samples)


def _same(a: Any, b: Any) -> bool:
    """Equal as numbers where both are (268435456.0 read back equals 268435456), else as text;
    two missing values are equal (a legacy row's empty cell)."""
    if pd.isna(a) and pd.isna(b):
        return True
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return str(a) == str(b)


def refuse_other_settings(
    prev: Mapping, rec: Mapping, columns: Sequence[str], *, point: str, where: str = ""
) -> None:
    """``ValueError`` when the earlier row ``prev`` and the new row ``rec`` of one point differ
    in one of ``columns`` (those both have): their samples are not one population."""
    for col in columns:
        if col in prev and col in rec and not _same(prev[col], rec[col]):
            raise ValueError(
                f"cannot pool samples measured with different {col}: the earlier row of {point}"
                f"{where} has {prev[col]}, the new one {rec[col]}; write to another folder or "
                "without pooling."
            )


def pool_samples(prev: Mapping, rec: Mapping, *, decimals: int = 4) -> dict[str, Any]:
    """The wall-clock and CPU-time samples of two rows of one point, old first, with their
    statistics: ``median_ms``, ``iqr_ms``, ``min_ms``, ``max_ms``, ``repeats``, ``samples_ms``
    (joined with ``decimals`` decimals), ``cpu_median_ms``, ``cpu_iqr_ms``, ``cpu_samples_ms``
    (NaN and empty unless both rows have CPU-time samples: a run with more threads has none).
    What the profiles' and the GEMM table's pooling share."""
    wall = TimingResult(parse_samples(prev["samples_ms"]) + parse_samples(rec["samples_ms"]))
    out: dict[str, Any] = {
        "median_ms": wall.median_ms, "iqr_ms": wall.iqr_ms, "min_ms": wall.min_ms,
        "max_ms": wall.max_ms, "repeats": len(wall.samples_ms),
        "samples_ms": _joined(wall.samples_ms, decimals),
    }  # fmt: skip
    cpu_old, cpu_new = (
        parse_samples(prev.get("cpu_samples_ms")),
        parse_samples(rec.get("cpu_samples_ms")),
    )
    if cpu_old and cpu_new:
        cpu = TimingResult(cpu_old + cpu_new)
        out.update(
            cpu_median_ms=cpu.median_ms, cpu_iqr_ms=cpu.iqr_ms,
            cpu_samples_ms=_joined(cpu.samples_ms, decimals),
        )  # fmt: skip
    else:
        out.update(cpu_median_ms=float("nan"), cpu_iqr_ms=float("nan"), cpu_samples_ms="")
    return out


def pool_rows(old: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """Rows of ``new``, each pooled with the row of ``old`` at the same point, if any.

    Parameters
    ----------
    old, new : DataFrame
        Profile rows (:data:`profiler.layers.ROW_COLUMNS`; ``old`` may lack ``runs``, read as 1).

    Returns
    -------
    DataFrame
        One row per row of ``new``: samples (wall and CPU time) concatenated old first, their
        statistics recomputed, ``repeats`` and ``runs`` summed, ``run_samples`` (each run's
        share of the samples, :func:`perfmodel.latency_profiles.run_blocks`) joined,
        ``loadavg_1m`` the highest of the two, ``measured_at`` the new one. Rows of ``old`` with
        no counterpart are not returned.

    Raises
    ------
    ValueError
        When a pooled pair was measured with different settings (threads, warm-up, block, cache
        flush, torch or transformers version, device): their samples are not one population.
    """
    key = list(MEASURE_KEY)
    old, new = _with_pool_columns(old), _with_pool_columns(new)
    if old.empty or new.empty:
        return new
    index = {tuple(k): i for i, k in enumerate(old[key].itertuples(index=False))}
    out = []
    for rec in new.to_dict(orient="records"):
        i = index.get(tuple(rec[k] for k in key))
        if i is None:
            out.append(rec)
            continue
        prev = old.iloc[i]
        refuse_other_settings(
            prev, rec, _SAME_SETTINGS,
            point=f"{rec['model']} at depth {rec['depth']}, b={rec['batch']}, "
            f"n={rec['context']}, q={rec['query']}",
        )  # fmt: skip
        pooled = dict(rec) | pool_samples(prev, rec)
        pooled.update(
            runs=int(prev["runs"]) + int(rec["runs"]),
            run_samples=join_blocks(_blocks(prev) + _blocks(rec)),
            loadavg_1m=max(float(prev["loadavg_1m"]), float(rec["loadavg_1m"])),
        )
        # achieved bandwidth = roofline bytes / median, so it scales with the median
        median = pooled["median_ms"]
        ratio = float(rec["median_ms"]) / median if median > 0 else float("nan")
        for col in ("achieved_bandwidth_bytes_per_s", "bandwidth_fraction"):
            pooled[col] = float(rec[col]) * ratio
        out.append(pooled)
    columns = list(new.columns) + ([] if "run_samples" in new.columns else ["run_samples"])
    return pd.DataFrame(out, columns=columns)


def _blocks(row) -> list[tuple[int, int]]:
    return run_blocks(row.get("run_samples"), repeats=int(row["repeats"]), runs=int(row["runs"]))


def _with_pool_columns(rows: pd.DataFrame) -> pd.DataFrame:
    """``runs``, ``block`` and ``flush_bytes`` as integers; rows written before a column existed
    read as measured then (one run; one call per depth and round; no flush)."""
    rows = rows.copy()
    for col, legacy in (("runs", 1), ("block", 1), ("flush_bytes", 0)):
        values = rows[col] if col in rows.columns else pd.Series(legacy, index=rows.index)
        rows[col] = pd.to_numeric(values, errors="coerce").fillna(legacy).astype(int)
    return rows


# Whole-number columns, written as integers: merged with older rows that lack a column, pandas
# makes it float, and the CSV's 6 significant digits would round it (a flush of 67108864 bytes
# read back as 67108900, and a model's parameter count to 6 digits).
_INTEGER_COLUMNS = (
    "layers", "depth", "hidden", "ffn", "heads", "kv_heads", "head_dim", "experts", "vocab",
    "params", "batch",
    "context", "query", "repeats", "warmup", "block", "flush_bytes", "runs", "threads",
)  # fmt: skip


def csv_text(frame: pd.DataFrame, integer_columns: Sequence[str]) -> str:
    """``frame`` as CSV text: floats to 6 significant digits, ``integer_columns`` (those present)
    as whole numbers, empty where missing."""
    out = frame.copy()
    for col in integer_columns:
        if col in out.columns:
            out[col] = pd.to_numeric(out[col], errors="coerce").round().astype("Int64")
    return out.to_csv(index=False, float_format="%.6g")


def _merge_write(path: Path, new: pd.DataFrame, key: Sequence[str], columns: Sequence[str]) -> Path:
    frames = [new]
    if path.is_file():
        frames.insert(0, read_profile_csv(path, key))
    merged = pd.concat([f for f in frames if len(f)], ignore_index=True)
    merged = merged.drop_duplicates(subset=list(key), keep="last")
    merged = merged.sort_values(list(key), kind="stable").reset_index(drop=True)
    ordered = [c for c in columns if c in merged.columns] + [
        c for c in merged.columns if c not in columns
    ]
    return atomic_write_text(path, csv_text(merged[ordered], _INTEGER_COLUMNS))


def _fit_depths(fits: pd.DataFrame) -> list[int] | None:
    """The depths the new profile's fits used (``depths`` column, ``;``-joined)."""
    used = {int(d) for text in fits["depths"].astype(str) for d in text.split(";") if d.strip()}
    return sorted(used) or None


def write_profile(
    profile: Profile, out_dir: str | os.PathLike[str], *, accumulate: bool = False
) -> Profile:
    """Merge ``profile`` into ``<out_dir>/<model>.csv`` and ``<model>.fit.csv`` atomically.

    Parameters
    ----------
    profile : Profile
        From :func:`profiler.layers.profile_model`.
    out_dir : path
        The device's profile folder (created if missing).
    accumulate : bool
        Pool the new samples with the earlier row of each point (:func:`pool_rows`) and refit
        the depth fits from the pooled rows, instead of replacing those rows.

    Returns
    -------
    Profile
        The merged rows and fits, with ``paths`` set.
    """
    out = Path(out_dir)
    rows_path = out / f"{profile.model}.csv"
    fit_path = out / f"{profile.model}.fit.csv"
    rows, fits = profile.rows, profile.fits
    if accumulate and rows_path.is_file() and len(rows):
        rows = pool_rows(read_profile_csv(rows_path, MEASURE_KEY), rows)
        refit = fit_profile(rows, depths=_fit_depths(fits)) if len(fits) else fits
        # the roofline columns need the recipe and hardware: the new profile's are the same
        roof = ["roofline_fixed_ms", "roofline_layer_ms"]
        refit = refit.drop(columns=roof).merge(fits[[*FIT_KEY, *roof]], on=list(FIT_KEY))
        fits = refit[list(FIT_COLUMNS)]
    _merge_write(rows_path, rows, MEASURE_KEY, ROW_COLUMNS)
    _merge_write(fit_path, fits, FIT_KEY, FIT_COLUMNS)
    return Profile(
        model=profile.model,
        rows=pd.read_csv(rows_path),
        fits=pd.read_csv(fit_path),
        paths=(rows_path, fit_path),
    )
