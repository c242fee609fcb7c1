"""The LM head's time inside a real forward pass vs the same product timed alone (CPU).

The latency model predicts the part of a pass outside the layers from the GEMM table
(``gemm.csv``: each product timed alone, its weight cycled through 256 MiB of copies). On the
EPYC the held-out rows it misses are the smallest zoo shapes at one layer, q = 2-3, where the
table's head product has a 2-3-row slowdown that the pass's T_fixed does not seem to show
(data/README.md, "cpu-epyc-1c"). This benchmark looks inside the pass: for each width it builds
the zoo's one-layer draft shape (vocab 4096, tied head) with its real Hugging Face class, and in
``--rounds`` rounds, each q = 1..4 in turn, times

- ``pass``: the whole forward pass (b = 1, n = ``--context`` tokens in the KV cache);
- ``head_in_pass``: the ``lm_head`` call inside those passes (forward hooks);
- ``warm``: ``linear(x, W)`` alone on the head's own weight, repeated (cache-warm);
- ``cold``: the same on the next of enough copies of W to fill 256 MiB (as the GEMM table);

each until its calls add up to ``--min-time-ms``, in process CPU time with one torch thread.
Prints the medians pooled over the rounds (ms) and each one's ratio to its q = 1 value, then one
JSON line.

``--built-layers 12`` builds the model with 12 layers and runs only the first, as the profiler
times depth 1 of a 12-layer model (without its round-robin over depths).

Usage: python benchmarks/bench_head_in_pass.py [--widths 128,256,512] [--rounds 8]
[--built-layers 1]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from profiler.build import build_model, resolve_model  # noqa: E402
from profiler.gemm import weight_copies  # noqa: E402
from profiler.kvcache import cache_keyword  # noqa: E402

QUERIES = (1, 2, 3, 4)
KINDS = ("pass", "head_in_pass", "warm", "cold")


def _timed(fn, min_time_ms: float) -> list[float]:
    out, total = [], 0.0
    fn()  # warm-up
    while total < min_time_ms or len(out) < 5:
        c0 = time.process_time_ns()
        fn()
        out.append((time.process_time_ns() - c0) / 1e6)
        total += out[-1]
    return out


def measure(
    width: int, *, rounds: int, context: int, min_time_ms: float, built_layers: int = 1
) -> dict:
    ffn = (8 * width + 191) // 192 * 64
    recipe = resolve_model(
        str(REPO / "data" / "zoo" / "target"),
        overrides={"layers": built_layers, "hidden": width, "ffn": ffn, "heads": width // 64,
                   "kv_heads": width // 64},
    )  # fmt: skip
    model = build_model(recipe, layers=built_layers, dtype="fp32", device="cpu")
    # a one-layer pass of a model built deeper, as the profiler times depth 1 of a 12-layer model
    # (the other layers stay allocated, never run)
    resident = list(model.model.layers)
    model.model.layers = torch.nn.ModuleList(resident[:1])
    model.config.num_hidden_layers = 1
    from transformers import DynamicCache

    head_ms: list[float] = []
    start = {}
    model.lm_head.register_forward_pre_hook(lambda m, a: start.update(t=time.process_time_ns()))
    model.lm_head.register_forward_hook(
        lambda m, a, o: head_ms.append((time.process_time_ns() - start["t"]) / 1e6)
    )
    w = model.lm_head.weight.detach()
    copies = weight_copies(w)
    cfg = model.config
    kv = cfg.num_key_value_heads
    samples = {q: {k: [] for k in KINDS} for q in QUERIES}
    with torch.inference_mode():
        cache = DynamicCache(config=cfg)
        kw = cache_keyword(model)
        k = torch.randn(1, kv, context, width // cfg.num_attention_heads)
        cache.update(k, k.clone(), 0)
        for q in QUERIES:  # first calls allocate: untimed
            for _ in range(3):
                model(
                    input_ids=torch.randint(cfg.vocab_size, (1, q)), use_cache=True, **{kw: cache}
                )
                cache.crop(-q)
        for _ in range(rounds):
            for q in QUERIES:
                ids = torch.randint(cfg.vocab_size, (1, q))

                def forward(ids=ids):
                    extra = cache.get_seq_length() - context
                    if extra > 0:
                        cache.crop(-extra)
                    model(input_ids=ids, use_cache=True, **{kw: cache})

                head_ms.clear()
                samples[q]["pass"] += _timed(forward, min_time_ms)
                samples[q]["head_in_pass"] += head_ms[1:]  # the warm-up call's dropped
                x = torch.randn(q, width)
                samples[q]["warm"] += _timed(lambda x=x: F.linear(x, w), min_time_ms)
                cyc = itertools.cycle(copies)
                samples[q]["cold"] += _timed(
                    lambda x=x, cyc=cyc: F.linear(x, next(cyc)), min_time_ms
                )
    return {
        "width": width,
        "ffn": ffn,
        "built_layers": built_layers,
        "head_bytes": int(w.numel() * w.element_size()),
        "median_ms": {
            str(q): {k: float(np.median(v)) for k, v in samples[q].items()} for q in QUERIES
        },
        "calls": {str(q): {k: len(v) for k, v in samples[q].items()} for q in QUERIES},
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--widths", default="128,256,512", help="zoo draft widths (default 128,256,512)")
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--context", type=int, default=128)
    p.add_argument("--min-time-ms", type=float, default=100.0)
    p.add_argument(
        "--built-layers",
        type=int,
        default=1,
        help="build the model with this many layers and run only the first (default 1)",
    )
    args = p.parse_args(argv)
    try:
        widths = [int(x) for x in args.widths.split(",")]
    except ValueError:
        print(f"--widths must be integers, but got {args.widths!r}.", file=sys.stderr)
        return 2
    bad = any(x < 64 or x % 64 for x in widths) or args.rounds < 1 or args.min_time_ms <= 0
    if bad or args.built_layers < 1:
        print(
            "--widths must be multiples of 64, --rounds >= 1, --min-time-ms > 0 and "
            f"--built-layers >= 1, but got {args.widths!r}, {args.rounds}, {args.min_time_ms}, "
            f"{args.built_layers}.",
            file=sys.stderr,
        )
        return 2
    torch.set_num_threads(1)
    results = []
    for width in widths:
        r = measure(
            width, rounds=args.rounds, context=args.context, min_time_ms=args.min_time_ms,
            built_layers=args.built_layers,
        )  # fmt: skip
        results.append(r)
        med = r["median_ms"]
        print(
            f"zoo shape, hidden {width}, one layer of {args.built_layers} built, head "
            f"{r['head_bytes'] / 2**20:.0f} MiB:"
        )
        print(f"  {'q':>3} " + " ".join(f"{k:>20}" for k in KINDS))
        for q in QUERIES:
            cells = [f"{med[str(q)][k]:8.3f} ({med[str(q)][k] / med['1'][k]:4.2f}x)" for k in KINDS]
            print(f"  {q:>3} " + " ".join(f"{c:>20}" for c in cells))
    print(json.dumps({"context": args.context, "rounds": args.rounds, "results": results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
