"""How far is the latency model off beyond the contexts it was profiled at?

The committed CPU profiles time contexts 128 and 512 (the zoo target 128 and 256); a user asking
about a serving context of 1-2 thousand tokens gets the profiled table's edge value times the
parametric model's ratio P(n) / P(edge) (``perfmodel.latency_tables.ArchLatency``). This
benchmark measures that: for a few profiled shapes it runs ``specdec profile`` at contexts beyond
the folder's (default 1024 and 2000, within the zoo target's and OPT's 2048 positions; one
thread, the committed profiles' timing) into a scratch folder, and compares each measured row (process CPU time, the statistic the model is fitted to)
with the latency model fitted to the committed folder, at the row's depth, batch, context and
query. The largest profiled context is measured in the same run as a control: its error is what
the machine's drift since the profile (and the model's in-box error) accounts for, so the
difference is the extrapolation's. Prints one line per shape and context, then one JSON line.

Usage: python benchmarks/bench_context_extrapolation.py [--profiles data/profiles/cpu-epyc-1c]
       [--context 1024,2000] [--shapes zoo-target,opt-125m] [--min-time-ms 200]
Each shape is rebuilt from its rows' ``source`` (a preset or a folder, with the overrides its
name records in cpu_profile.sh), at the dtype, batches and depths of the committed rows.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from perfmodel.arch import ArchSpec
from perfmodel.latency_model import LatencyModel

REPO = Path(__file__).resolve().parents[1]
DEFAULT = REPO / "data" / "profiles" / "cpu-epyc-1c"
SHAPES = ("zoo-target", "opt-125m", "draft-w512-l12", "zoo-w256-l12", "draft-w2048-l12")


def model_args(rows: pd.DataFrame) -> list[str]:
    """`specdec profile` arguments that rebuild the shape of one model's committed rows."""
    r = rows.iloc[0]
    source = str(r["source"]).removesuffix(" +overrides")
    kind, _, where = source.partition(":")
    model = where.removesuffix("/config.json") if kind == "path" else where
    args = ["--model", model, "--name", str(r["model"])]
    if str(rows["source"].iloc[0]).endswith("+overrides"):
        args += ["--layers", str(int(r["layers"])), "--hidden", str(int(r["hidden"])),
                 "--ffn", str(int(r["ffn"])), "--heads", str(int(r["heads"])),
                 "--kv-heads", str(int(r["kv_heads"]))]  # fmt: skip
    return args


def measure(rows: pd.DataFrame, contexts: list[int], out: Path, min_time_ms: float) -> pd.DataFrame:
    # every committed depth: a shallow pass's time depends on the deeper passes timed between
    # its calls (benchmarks/bench_depth_context.py), so the protocol is the profile's own
    depths = sorted(rows["depth"].unique())
    cmd = [
        sys.executable, "-m", "explorer.cli", "profile", *model_args(rows), "--device", "cpu",
        "--dtype", str(rows["dtype"].iloc[0]), "--threads", "1", "--repeats", "5",
        "--warmup", "1", "--min-time-ms", str(min_time_ms),
        "--depths", ",".join(str(int(d)) for d in depths),
        "--batch", ",".join(str(int(b)) for b in sorted(rows["batch"].unique())),
        "--context", ",".join(map(str, contexts)), "--query", "1,4", "--out", str(out),
    ]  # fmt: skip
    print("$", shlex.join(cmd[2:]), file=sys.stderr)
    subprocess.run(cmd, check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    return pd.read_csv(out / f"{rows['model'].iloc[0]}.csv")


def compare(model: LatencyModel, measured: pd.DataFrame) -> pd.DataFrame:
    out = []
    for r in measured.itertuples():
        arch = ArchSpec(
            layers=int(r.depth), hidden=int(r.hidden), ffn=int(r.ffn), heads=int(r.heads),
            kv_heads=int(r.kv_heads), vocab=int(r.vocab), tied_embeddings=bool(r.tied),
            family=str(r.family),
        )  # fmt: skip
        if not model.is_profiled(arch):
            raise ValueError(f"{r.model} is not a profiled shape of the fitted folder.")
        predicted = float(model.latency_fn(arch)(r.batch, r.context, r.query))
        out.append({
            "model": r.model, "depth": int(r.depth), "batch": int(r.batch),
            "context": int(r.context), "query": int(r.query), "measured_ms": r.cpu_median_ms,
            "predicted_ms": predicted, "error": predicted / r.cpu_median_ms - 1,
        })  # fmt: skip
    return pd.DataFrame(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profiles", default=str(DEFAULT))
    ap.add_argument("--context", default="1024,2000")
    ap.add_argument("--shapes", default=",".join(SHAPES))
    ap.add_argument("--min-time-ms", type=float, default=200.0)
    args = ap.parse_args(argv)
    folder = Path(args.profiles)
    contexts = [int(c) for c in args.context.split(",")]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.shapes.split(","):
            rows = pd.read_csv(folder / f"{name}.csv")
            dtype = str(rows["dtype"].iloc[0])
            model = LatencyModel.from_profiles(folder, dtype=dtype)
            profiled = sorted(int(c) for c in rows["context"].unique())
            control = profiled[-1]
            asked = [control, *[c for c in contexts if c != control]]
            table = compare(model, measure(rows, asked, Path(tmp) / name, args.min_time_ms))
            table["control"] = table["context"] == control
            for n, g in table.groupby("context"):
                err = g["error"].abs()
                label = "control" if n == control else "beyond "
                print(f"{name:18s} {dtype} profiled n={profiled} {label} n={n:5d}: median "
                      f"|error| {err.median():6.1%}  worst {g['error'].iloc[err.argmax()]:+7.1%}"
                      f"  mean {g['error'].mean():+6.1%} ({len(g)} rows)")  # fmt: skip
            results.append(table)
    table = pd.concat(results, ignore_index=True)
    summary = {"profiles": str(args.profiles), "contexts": contexts}
    for part, sel in (("beyond", ~table["control"]), ("control", table["control"])):
        t = table[sel]
        err = t["error"].abs()
        summary[part] = {
            "rows": int(len(t)),
            "median_abs_error": float(err.median()),
            "p90_abs_error": float(np.quantile(err, 0.9)),
            "worst_abs_error": float(err.max()),
            "mean_error": float(t["error"].mean()),
            "per_model": {
                m: {
                    "median_abs_error": float(g["error"].abs().median()),
                    "mean_error": float(g["error"].mean()),
                }
                for m, g in t.groupby("model")
            },  # fmt: skip
        }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
