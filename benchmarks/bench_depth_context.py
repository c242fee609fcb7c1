"""Does a shallow pass's measured latency depend on which other depths the profiler times beside it?

The profiler times depths round-robin in one process (``specdec profile --depths``), so a
depth-1 pass follows passes of the other depths. On the EPYC the held-out rows the latency model
misses are the smallest zoo shapes at one or two layers (data/README.md, "cpu-epyc-1c"), whose
one-layer latency differed by more than the 15% goal between two measuring contexts. This
benchmark runs ``specdec profile --no-write --json`` on one shape in alternating pairs, one run
per depth set in each pair (``--sets``; a set may carry flags of its own runs, such as
``--block 5``: five back-to-back calls per depth and round; the order flips every other pair so
neither always goes first), and prints the depth-1 medians (process CPU time, one thread) of
every run and, per q, in how many pairs the second set's was the slower and the median ratio
second / first. Beside the difference, the spread of the first set's runs over the pairs shows
how far the machine drifted meanwhile. Then one JSON line.

Usage: python benchmarks/bench_depth_context.py [--pairs 5] [--sets "1,2;1,2,4,12"]
       [--shape "--layers 12 --hidden 256 --ffn 704 --heads 4 --kv-heads 4"]
       [--query 1,2,3,4] [--min-time-ms 200] [--extra "FLAGS"]
e.g. --sets "1,2,4,12;1,2,4,12 --block 5": round-robin vs back-to-back calls.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHAPE = "--layers 12 --hidden 256 --ffn 704 --heads 4 --kv-heads 4"


def depth1_medians(
    model: str, shape: str, depth_set: str, query: str, min_time_ms: float, extra: list[str]
) -> dict[int, float]:
    """One ``specdec profile`` run: q -> the depth-1 row's median process CPU time (ms).

    ``depth_set``: the depths (``1,2,4``), optionally followed by more flags of that run
    (``1,2,4,12 --block 5``)."""
    depths, *flags = shlex.split(depth_set)
    cmd = [
        sys.executable, "-m", "explorer.cli", "profile", "--model", model, *shlex.split(shape),
        "--depths", depths, *flags, "--query", query, "--min-time-ms", str(min_time_ms),
        "--threads", "1", "--no-write", "--json", *extra,
    ]  # fmt: skip
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"specdec profile failed ({out.returncode}): {out.stderr.strip()}")
    rows = json.loads(out.stdout)["measurements"]
    return {int(r["query"]): float(r["cpu_median_ms"]) for r in rows if int(r["depth"]) == 1}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="data/zoo/target")
    p.add_argument("--shape", default=SHAPE, help="override flags of specdec profile")
    p.add_argument(
        "--sets",
        default="1,2;1,2,4,12",
        help="two depth sets, ';'-separated, each optionally followed by flags of its runs "
        "(e.g. '1,2,4,12;1,2,4,12 --block 5')",
    )
    p.add_argument("--pairs", type=int, default=5)
    p.add_argument("--query", default="1,2,3,4")
    p.add_argument("--min-time-ms", type=float, default=200.0)
    p.add_argument("--extra", default="", help="more flags of specdec profile (e.g. tiny grids)")
    args = p.parse_args(argv)
    sets = [s.strip() for s in args.sets.split(";") if s.strip()]
    if len(sets) != 2 or any("1" not in s.split()[0].split(",") for s in sets):
        p.error(f"--sets must be two depth lists that both hold depth 1, got {args.sets!r}")
    if args.pairs < 1:
        p.error(f"--pairs must be >= 1, got {args.pairs}")

    runs: dict[str, list[dict[int, float]]] = {s: [] for s in sets}
    started = time.strftime("%H:%M:%S", time.gmtime())
    for i in range(args.pairs):
        for s in sets if i % 2 == 0 else sets[::-1]:
            runs[s].append(
                depth1_medians(
                    args.model, args.shape, s, args.query, args.min_time_ms,
                    shlex.split(args.extra),
                )
            )  # fmt: skip
            print(
                f"pair {i + 1} depths {s:12} "
                + " ".join(f"q{q}: {ms:.3f}" for q, ms in sorted(runs[s][-1].items())),
                flush=True,
            )
    first, second = sets
    queries = sorted(runs[first][0])
    summary = []
    print(f"\ndepth-1 median, ms, over {args.pairs} pairs ({started}-"
          f"{time.strftime('%H:%M:%S', time.gmtime())} UTC):")  # fmt: skip
    print(f"first: {first}; second: {second}")
    print(f"{'q':>3} {'first':>14} {'second':>14} {'2nd slower':>11} {'median ratio':>13}")
    for q in queries:
        a = np.array([r[q] for r in runs[first]])
        b = np.array([r[q] for r in runs[second]])
        row = {
            "query": q,
            "first_ms": a.tolist(),
            "second_ms": b.tolist(),
            "second_slower_pairs": int((b > a).sum()),
            "median_ratio": float(np.median(b / a)),
            "first_spread": float(a.max() / a.min()),
        }
        summary.append(row)
        print(
            f"{q:>3} {np.median(a):>6.3f} (x{row['first_spread']:.1f}) {np.median(b):>14.3f} "
            f"{row['second_slower_pairs']:>6} of {args.pairs} {row['median_ratio']:>13.2f}"
        )
    print("(x: largest over smallest of the first set's runs: the machine's drift over the pairs)")
    print(json.dumps({"model": args.model, "shape": args.shape, "sets": sets, "rows": summary}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
