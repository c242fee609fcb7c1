"""Backfill the ``run_samples`` column of a profile folder from its git history (one-off).

Profile rows pool several runs (``specdec profile --accumulate``); until ``--min-time-ms`` every
run of a row had the same number of calls, so a row's runs were its samples split evenly. Runs
timed until a minimum time have different lengths, and the rows pooled before ``run_samples``
was recorded do not say where each such run ends. This script writes the column for every row
of the folder's ``<model>.csv`` files: the runs the row had at git revision ``BEFORE`` (the last
commit whose runs were all even: split evenly) one by one, then the runs added since as one
block ``n/r`` (r runs, n samples, boundaries unknown), which the noise-floor estimate of
``benchmarks/bench_latency_model.py`` skips. Rows already carrying the column are left alone.

Usage: python scripts/backfill_run_samples.py data/profiles/cpu-epyc-1c 0a85119
(run once on 2026-11-30 for cpu-epyc-1c, whose runs since 0a85119 used --min-time-ms 200).
"""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pandas as pd

from perfmodel.atomic import atomic_write_text
from perfmodel.latency_profiles import join_blocks, run_blocks
from profiler.layers import MEASURE_KEY, ROW_COLUMNS


def _old_rows(path: Path, before: str) -> pd.DataFrame | None:
    rel = path.resolve().relative_to(Path.cwd().resolve())
    shown = subprocess.run(
        ["git", "show", f"{before}:{rel.as_posix()}"], capture_output=True, text=True
    )
    return pd.read_csv(io.StringIO(shown.stdout)) if shown.returncode == 0 else None


def backfill(folder: Path, before: str) -> None:
    key = list(MEASURE_KEY)
    for path in sorted(folder.glob("*.csv")):
        if path.name.endswith(".fit.csv") or path.name == "gemm.csv":
            continue
        rows = pd.read_csv(path)
        if "run_samples" in rows.columns and rows["run_samples"].notna().all():
            continue
        old = _old_rows(path, before)
        index = (
            {}
            if old is None
            else {tuple(k): i for i, k in enumerate(old[key].itertuples(index=False))}
        )
        cells = []
        for rec in rows.to_dict(orient="records"):
            i = index.get(tuple(rec[k] for k in key))
            repeats, runs = int(rec["repeats"]), int(rec["runs"])
            if i is None:  # every run since BEFORE
                blocks = [(repeats, runs)] if runs > 1 else [(repeats, 1)]
            else:
                prev = old.iloc[i]
                n0, r0 = int(prev["repeats"]), int(prev.get("runs", 1))
                blocks = run_blocks(None, repeats=n0, runs=r0)  # even, as all runs were then
                if runs > r0:
                    blocks.append((repeats - n0, runs - r0))
            cells.append(join_blocks(blocks))
            run_blocks(cells[-1], repeats=repeats, runs=runs)  # adds up
        rows["run_samples"] = cells
        ordered = [c for c in ROW_COLUMNS if c in rows.columns] + [
            c for c in rows.columns if c not in ROW_COLUMNS
        ]
        atomic_write_text(path, rows[ordered].to_csv(index=False, float_format="%.6g"))
        print(f"{path}: {len(rows)} rows")


if __name__ == "__main__":
    backfill(Path(sys.argv[1]), sys.argv[2])
