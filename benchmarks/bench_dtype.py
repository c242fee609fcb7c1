"""fp32 vs bf16 on one device: measured forward-pass latency of the shapes profiled in both.

For every shape a profile folder holds in both dtypes, prints T = T_fixed + L·T_layer from each
dtype's measured tables (``perfmodel.LatencyModel`` fitted per dtype) at a few depths, for a
decoding pass (b=1, q=1) and a verification pass (b=1, q=4), and the ratio bf16 / fp32. Whether
a CPU draft should run in bf16 is a property of the CPU: one with bf16 matmul units (AVX512-BF16,
AMX) may gain, one without loses (bf16 GEMM emulated). Then one JSON line.

Usage: python benchmarks/bench_dtype.py [--profiles data/profiles/cpu-epyc-1c] [--context 128]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from perfmodel.arch import ArchSpec
from perfmodel.latency_model import LatencyModel, load_profile_rows

REPO = Path(__file__).resolve().parents[1]
DEFAULT = REPO / "data" / "profiles" / "cpu-epyc-1c"
DEPTHS = (1, 4, 12)
QUERIES = (1, 4)


def compare(folder: str | Path, *, context: int, dtypes=("fp32", "bf16")) -> list[dict]:
    rows = load_profile_rows(folder)
    have = set(rows["dtype"])
    missing = [d for d in dtypes if d not in have]
    if missing:
        raise ValueError(f"`profiles in {dtypes}` must exist in {folder}, but {missing} have none.")
    models = {d: LatencyModel.from_profiles(folder, dtype=d) for d in dtypes}
    shared = sorted(set(models[dtypes[0]].tables) & set(models[dtypes[1]].tables), key=str)
    names = rows.drop_duplicates("model").set_index(
        ["family", "hidden", "ffn", "heads", "kv_heads", "vocab", "tied"]
    )["model"]
    out = []
    for key in shared:
        family, hidden, ffn, heads, kv, vocab, tied = key[:7]
        name = str(names.get(key[:7], f"{family}-h{hidden}"))
        for depth in DEPTHS:
            arch = ArchSpec(
                layers=depth, hidden=hidden, ffn=ffn, heads=heads, kv_heads=kv, vocab=vocab,
                tied_embeddings=tied, family=family, **dict(key[7:]),  # ("head_size", w)
            )  # fmt: skip
            for q in QUERIES:
                ms = {d: float(models[d].latency_fn(arch)(1, context, q)) for d in dtypes}
                out.append(
                    {
                        "model": name,
                        "hidden": int(hidden),
                        "depth": depth,
                        "query": q,
                        **{f"{d}_ms": v for d, v in ms.items()},
                        "ratio": ms[dtypes[1]] / ms[dtypes[0]],
                    }
                )
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--profiles", default=str(DEFAULT))
    p.add_argument("--context", type=int, default=128)
    args = p.parse_args(argv)
    try:
        table = compare(args.profiles, context=args.context)
    except ValueError as e:
        print(f"bench_dtype: {e}", file=sys.stderr)
        return 2
    print(f"profiles: {args.profiles}; b=1, n={args.context}; ms from each dtype's measured tables")
    print(f"{'shape':18} {'L':>3} {'q':>2} {'fp32 ms':>9} {'bf16 ms':>9} {'bf16/fp32':>9}")
    for r in table:
        print(
            f"{r['model'][:18]:18} {r['depth']:>3} {r['query']:>2} {r['fp32_ms']:>9.2f} "
            f"{r['bf16_ms']:>9.2f} {r['ratio']:>9.2f}"
        )
    ratios = sorted(r["ratio"] for r in table)
    if ratios:
        mid = ratios[len(ratios) // 2]
        print(f"bf16/fp32: median {mid:.2f}, range {ratios[0]:.2f}-{ratios[-1]:.2f}")
    print(json.dumps({"benchmark": "dtype", "profiles": str(args.profiles), "rows": table}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
