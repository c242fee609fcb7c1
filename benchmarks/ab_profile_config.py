"""A/B: one llama layer shape built from the llama-7b preset and from the zoo target's config.

Profiles both alternately (``--rounds`` times, in one process, one torch thread) at batch 1,
context 512, query 1 and 17, depths 1, 2 and 4, and prints T_layer and T_fixed (CPU time) of
each. Used to tell a configuration effect from run-to-run variation when two separate
profiling runs of nearly the same layer disagree (data/README.md, "profiles").

Usage: python benchmarks/ab_profile_config.py [--hidden 128] [--ffn 344] [--rounds 3]
Prints the figures, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys

from profiler.build import resolve_model
from profiler.layers import ProfileGrid, profile_model

SOURCES = {"preset": "llama-7b", "zoo": "data/zoo/target"}


def main(argv: list[str] | None = None) -> int:
    import torch

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--ffn", type=int, default=344)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    grid = ProfileGrid(batch=(1,), context=(512,), query=(1, 17), depths=(1, 2, 4), repeats=5)
    shape = dict(layers=4, hidden=args.hidden, ffn=args.ffn, heads=args.hidden // 64,
                 kv_heads=args.hidden // 64)  # fmt: skip
    out = []
    for rnd in range(args.rounds):
        for name, src in SOURCES.items():
            fits = profile_model(resolve_model(src, overrides=shape), grid=grid).fits
            for f in fits.itertuples():
                out.append({"round": rnd, "source": name, "query": int(f.query),
                            "t_layer_ms": float(f.cpu_t_layer_ms),
                            "t_fixed_ms": float(f.cpu_t_fixed_ms)})  # fmt: skip
                print(f"round {rnd} {name:6} q={int(f.query):>2}: T_layer {f.cpu_t_layer_ms:.3f} ms, "
                      f"T_fixed {f.cpu_t_fixed_ms:.3f} ms", flush=True)  # fmt: skip
    print(json.dumps({"benchmark": "ab_profile_config", "hidden": args.hidden, "ffn": args.ffn,
                      "rows": out}))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
