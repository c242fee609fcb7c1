"""Does training in the same process slow decoding down afterwards?

Decodes HumanEval prompts 32-39 with the zoo target (plain decoding through the engine, batch 8,
64 new tokens, temperature 1, one torch thread) in a fresh process, then trains a small draft
with ``explorer.train.train_model`` in the same process (as ``specdec validate`` and the demo do
before their real runs) and decodes again twice. Prints tokens/s of each, then one JSON line.

Usage: python benchmarks/bench_decode_after_training.py [--train-tokens 65536]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time


def _decode(tag: str) -> dict:
    import torch

    from profiler.engine import speculative_generate
    from profiler.loading import load_pair
    from profiler.prompts import load_prompts, tokenize_prompts
    from profiler.sampling import SamplingConfig

    torch.set_num_threads(1)
    pair = load_pair("data/zoo/target", "data/zoo/drafts/d1-h256", dtype="float32")
    prompts = load_prompts("data/prompts/humaneval.jsonl", limit=40)[32:40]
    ids = tokenize_prompts(pair.tokenizer, prompts)
    c0, w0 = time.process_time(), time.perf_counter()
    res = speculative_generate(
        pair.target, None, ids, gamma=0, max_new_tokens=64,
        sampling=SamplingConfig(temperature=1.0), seed=0,
    )  # fmt: skip
    row = {"run": tag, "tokens_per_s": float(res.tokens_per_s),
           "cpu_s": time.process_time() - c0, "wall_s": time.perf_counter() - w0}  # fmt: skip
    print(f"{tag:14} plain decoding {row['tokens_per_s']:.1f} tokens/s "
          f"(CPU {row['cpu_s']:.2f} s, wall {row['wall_s']:.2f} s)", flush=True)  # fmt: skip
    return row


def main(argv: list[str] | None = None) -> int:
    import torch

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--train-tokens", type=int, default=65536)
    args = p.parse_args(argv)
    rows = [_decode("fresh")]
    from explorer.train import TrainConfig, train_model

    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        train_model(TrainConfig(out_dir=tmp, layers=1, hidden=128, teacher="data/zoo/target",
                                tokens=args.train_tokens, batch_size=8, lr=3e-3,
                                eval_windows=4))  # fmt: skip
    rows += [_decode("after-train"), _decode("after-train-2")]
    print(json.dumps({"benchmark": "decode_after_training", "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
