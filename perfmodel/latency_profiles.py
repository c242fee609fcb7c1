"""Profile rows for the latency model: read, check and type ``data/profiles/<device>/*.csv``.

Columns are documented in ``data/README.md`` ("profiles"); :func:`load_profile_rows` returns
them as one DataFrame, or raises ``ValueError`` saying which file and column is wrong.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from perfmodel.gemm_table import GEMM_TABLE_FILE

__all__ = [
    "ARCH_KEY",
    "BYTES_PER_PARAM",
    "derived_head_width",
    "describable",
    "REQUIRED_COLUMNS",
    "STATISTICS",
    "join_blocks",
    "load_profile_rows",
    "parse_samples",
    "read_profile_csv",
    "run_blocks",
]

REQUIRED_COLUMNS = (
    "model", "family", "depth", "hidden", "ffn", "heads", "kv_heads", "vocab", "tied",
    "batch", "context", "query", "dtype", "median_ms", "min_ms",
)  # fmt: skip
ARCH_KEY = ("family", "hidden", "ffn", "heads", "kv_heads", "vocab", "tied")
BYTES_PER_PARAM = {"fp32": 4.0, "bf16": 2.0, "fp16": 2.0}
STATISTICS = ("median_ms", "min_ms", "cpu_median_ms")


# --- loading ------------------------------------------------------------------------------------


def load_profile_rows(
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
) -> pd.DataFrame:
    """Read and check profile rows from a folder of ``<model>.csv`` files or from CSV paths.

    Parameters
    ----------
    paths : path or iterable of paths
        A profile folder (every ``*.csv`` but ``*.fit.csv`` and the GEMM table ``gemm.csv``)
        or CSV files.

    Returns
    -------
    DataFrame
        The rows, concatenated, with :data:`REQUIRED_COLUMNS` typed; a file of a shape
        perfmodel does not describe is left out (:func:`describable`).

    Raises
    ------
    ValueError
        A missing folder, no CSV in it, a CSV that lacks a required column or has a
        non-numeric, non-finite or non-positive value where a positive number is needed.
    """
    files = _csv_files(paths)
    frames, left_out = [], []
    for f in files:
        frame = read_profile_csv(f, REQUIRED_COLUMNS)
        if frame.empty:
            continue
        frame = _typed(frame, f)
        if not describable(frame).all():
            left_out.append(f.name)
            continue
        frames.append(frame)
    if not frames:
        why = (
            f" (left out, not a shape perfmodel describes: {', '.join(left_out)})"
            if left_out
            else ""
        )
        raise ValueError(f"no profile rows in {', '.join(str(f) for f in files)}{why}.")
    return pd.concat(frames, ignore_index=True)


def derived_head_width(frame: pd.DataFrame) -> pd.Series:
    """Which rows have a head width of hidden / heads: an empty ``head_dim`` (rows written
    before the column, all of them so) or one equal to it."""
    if "head_dim" not in frame.columns:
        return pd.Series(True, index=frame.index)
    hd = pd.to_numeric(frame["head_dim"], errors="coerce")
    heads = pd.to_numeric(frame["heads"], errors="coerce")
    return hd.isna() | (hd * heads == pd.to_numeric(frame["hidden"], errors="coerce"))


def describable(frame: pd.DataFrame, *, own_head_width: bool = True) -> pd.Series:
    """Which rows have a shape the latency model describes: Llama-layout shapes and
    two-matrix-MLP shapes (OPT's layout, with Starcoder2's and GPT-BigCode's grouped- or
    multi-query attention too), the latter with a head width of hidden / heads (an empty
    ``head_dim``, in rows written before the column, is that). ``own_head_width=False``:
    Llama-layout shapes too only with a head width of hidden / heads (for readers whose shape
    key holds none, the report's latency figures).

    A profile of a two-matrix-MLP model whose head width is not hidden / heads, or of a
    mixture-of-experts model (``experts`` > 0: Mixtral, Qwen-MoE; its MLP reads the experts its
    tokens pick, which no term of the model describes), is a valid profile but no shape the
    latency model's key holds, so the readers of a profile folder
    (:func:`load_profile_rows`, the report's latency figures) leave such a model's file out
    rather than fail on the whole folder or fit it as another shape. A Llama-layout model with
    its own head width (Qwen3-0.6B, gemma-7b) is its own shape in the latency model (the key's
    ``("head_size", width)``).
    """
    family = frame["family"].astype(str)
    derived = derived_head_width(frame)
    llama = (family == "llama") & (derived | own_head_width)
    dense = pd.Series(True, index=frame.index)
    if "experts" in frame.columns:  # a mixture-of-experts MLP has no terms in the model
        dense = pd.to_numeric(frame["experts"], errors="coerce").fillna(0) <= 1
    return (llama | ((family == "opt") & derived)) & dense


def read_profile_csv(path: str | os.PathLike[str], required: Iterable[str]) -> pd.DataFrame:
    """One profile CSV (rows or fits) as it is, checked to hold the ``required`` columns.

    Raises ``ValueError`` naming the file when it cannot be parsed or lacks a column.
    """
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not a readable profile CSV: {exc}") from None
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ValueError(f"{path} is not a profile CSV: it lacks columns {missing}.")
    return frame


def parse_samples(text: object) -> tuple[float, ...]:
    """The ``;``-joined timing samples of a ``samples_ms`` / ``cpu_samples_ms`` cell (empty or
    missing: none)."""
    if not isinstance(text, str) or not text.strip():
        return ()
    return tuple(float(x) for x in text.split(";") if x.strip())


def run_blocks(run_samples: object, *, repeats: int, runs: int) -> list[tuple[int, int]]:
    """The pooled runs of a profile row as (samples, runs) blocks, in the order of its samples.

    ``run_samples`` is the row's ``;``-joined samples per run, where ``n/r`` stands for r runs of
    n samples in all whose boundaries were not recorded. A row without it (written before the
    column existed, when every run of a row had the same number of calls) is read as ``runs``
    equal runs when ``repeats`` divides evenly, else as one block of ``runs`` runs. Raises
    ``ValueError`` for a malformed cell or one whose blocks do not add up to ``repeats`` samples
    and ``runs`` runs.
    """
    repeats, runs = int(repeats), max(int(runs), 1)
    if isinstance(run_samples, int | float | np.number) and math.isfinite(run_samples):
        run_samples = str(int(run_samples))  # a one-run cell read back from CSV as a number
    if not isinstance(run_samples, str) or not run_samples.strip():
        if repeats % runs == 0:
            return [(repeats // runs, 1)] * runs
        return [(repeats, runs)]
    blocks = []
    for part in run_samples.split(";"):
        n, _, r = part.strip().partition("/")
        try:
            block = (int(n), int(r) if r else 1)
        except ValueError:
            raise ValueError(
                f"`run_samples` must be counts like '5;12/3', but got {run_samples!r}."
            ) from None
        if block[0] < 1 or block[1] < 1:
            raise ValueError(f"`run_samples` counts must be >= 1, but got {run_samples!r}.")
        blocks.append(block)
    if sum(b[0] for b in blocks) != repeats or sum(b[1] for b in blocks) != runs:
        raise ValueError(
            f"`run_samples` must add up to repeats={repeats} samples over runs={runs} runs, but "
            f"got {run_samples!r}."
        )
    return blocks


def join_blocks(blocks: Iterable[tuple[int, int]]) -> str:
    """The ``run_samples`` cell of (samples, runs) blocks (inverse of :func:`run_blocks`)."""
    return ";".join(f"{n}" if r == 1 else f"{n}/{r}" for n, r in blocks)


def _csv_files(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[Path]:
    if isinstance(paths, str | os.PathLike):
        p = Path(paths)
        if p.is_dir():
            files = sorted(
                f for f in p.glob("*.csv")
                if not f.name.endswith(".fit.csv") and f.name != GEMM_TABLE_FILE
            )  # fmt: skip
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
    bad_dtype = sorted(set(out["dtype"]) - set(BYTES_PER_PARAM))
    if bad_dtype:
        raise ValueError(
            f"{where}: `dtype in {tuple(BYTES_PER_PARAM)}` must hold, but got {bad_dtype}."
        )
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
