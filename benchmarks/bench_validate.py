"""Prediction error of the explorer against real runs on this CPU: search, then validate.

1. ``specdec search`` on the zoo target with the device profile and the acceptance model fitted to
   ``data/zoo/drafts.csv`` (``--trials`` trials, a fresh study).
2. ``specdec validate`` of the top ``--top`` drafts: each is trained (distilled) on
   ``--token-budget`` tokens, run on held-out HumanEval prompts at its γ and at γ = 0.

Reported (goals from the issue): the median absolute relative error of tokens/s when the
measured α is plugged into the prediction (goal <= 5%), and when α is predicted for the new
draft (goal <= 10%); also α, draft-latency and speedup errors.

Run: ``python benchmarks/bench_validate.py --device-profile data/profiles/<device>
[--trials 60] [--top 3] [--token-budget 98304]``. The last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    from explorer.cli import main as cli

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--target", default=str(REPO / "data" / "zoo" / "target"))
    ap.add_argument("--device-profile", required=True)
    ap.add_argument("--acceptance", help="drafts table (default data/zoo/drafts.csv)")
    ap.add_argument("--trials", type=int, default=60)
    ap.add_argument("--top", type=int, default=3)
    ap.add_argument("--token-budget", type=int, default=98304)
    ap.add_argument("--n-prompts", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--context", type=int, default=128)
    ap.add_argument("--overhead-ms", type=float, default=0.0)
    ap.add_argument("--study", default=f"bench-validate-{int(time.time())}")
    args = ap.parse_args()
    out = REPO / "runs" / args.study
    search = [
        "search", "--target", args.target, "--device-profile", args.device_profile,
        "--trials", str(args.trials), "--study", args.study, "--context", str(args.context),
        "--overhead-ms", str(args.overhead_ms), "--training-tokens", str(args.token_budget),
        "--no-progress",
    ]  # fmt: skip
    if args.acceptance:
        search += ["--acceptance", args.acceptance]
    t0 = time.perf_counter()
    if cli(search) != 0:
        raise SystemExit("search failed")
    search_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    validate = [
        "validate", "--study", args.study, "--top", str(args.top), "--token-budget",
        str(args.token_budget), "--n-prompts", str(args.n_prompts), "--max-new-tokens",
        str(args.max_new_tokens), "--out", str(out / "validate"),
    ]  # fmt: skip
    if cli(validate) != 0:
        raise SystemExit("validate failed")
    validate_s = time.perf_counter() - t0
    data = json.loads((out / "validate" / "validation.json").read_text())
    print(
        json.dumps(
            {
                "benchmark": "validate",
                "study": args.study,
                "trials": args.trials,
                "top": args.top,
                "token_budget": args.token_budget,
                "search_s": round(search_s, 1),
                "validate_s": round(validate_s, 1),
                **data["summary"],
            }
        )
    )


if __name__ == "__main__":
    main()
