"""`specdec demo`: profile, search, validate and report, end to end on this machine."""

from __future__ import annotations

import argparse
from typing import Any

HELP = "run the main job end to end: profile, search, validate the best draft, write the report"
DESCRIPTION = """\
The main job on the shipped defaults, on this machine (CPU is enough):

  1/4 profile   latency of the zoo's target and draft shapes (the committed profiles of this
                CPU in data/profiles/ are reused; what is missing is measured briefly)
  2/4 search    Optuna: predicted speculative tokens/s against draft parameters (SQLite)
  3/4 validate  distil the best draft from the target, run it for real (speculative engine)
                against plain decoding on HumanEval prompts
  4/4 report    one self-contained HTML report

At most about 10 minutes on a 2-core machine; --quick (a tiny training budget, fewer trials and
prompts) about 1-2 minutes. Ends with predicted vs measured tokens/s and speedup, the chosen
draft and gamma, and the report's path.

example:
  specdec demo --quick
  specdec demo --out runs/demo --json
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--quick", action="store_true", help="tiny budgets: about 1-2 minutes instead of 10"
    )
    parser.add_argument("--out", metavar="DIR", help="output folder (default runs/demo)")
    parser.add_argument("--zoo", metavar="DIR", help="model zoo folder (default data/zoo)")
    parser.add_argument("--seed", type=int, default=0, help="search and training seed (default 0)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> dict[str, Any]:
    from explorer.demo import run_demo

    result = run_demo(
        quick=args.quick,
        out=args.out,
        zoo=args.zoo,
        seed=args.seed,
        progress=not args.no_progress,
    )
    return {k: v for k, v in result.items() if k != "budget"} | {"budget": result["budget"]["name"]}


def _num(value: Any, fmt: str) -> str:
    return "–" if value is None else format(value, fmt)


def format_text(result: dict[str, Any]) -> str:
    s = result["summary"]
    row = result["validate"]["row"]
    lines = [
        "",
        f"{'':28}{'predicted':>12}{'measured':>12}",
        f"{'speculative tokens/s':28}{_num(s['predicted_tokens_per_s'], '12.1f')}"
        f"{_num(s['measured_tokens_per_s'], '12.1f')}",
        f"{'plain decoding tokens/s':28}{_num(row['predicted_baseline_tokens_per_s'], '12.1f')}"
        f"{_num(row['measured_baseline_tokens_per_s'], '12.1f')}",
        f"{'speedup':28}{_num(s['predicted_speedup'], '11.2f')}×"
        f"{_num(s['measured_speedup'], '11.2f')}×",
        f"{'acceptance rate α':28}{_num(s['predicted_acceptance_rate'], '12.3f')}"
        f"{_num(s['measured_acceptance_rate'], '12.3f')}",
        "",
        f"chosen draft: {s['draft']} ({row['depth']} layers, hidden {row['hidden']}, ffn "
        f"{row['ffn']}, heads {row['heads']}/{row['kv_heads']}, {s['params'] / 1e6:.2f}M params), "
        f"γ = {s['gamma']}; trained on {row['token_budget']} tokens",
        f"with the measured α the model predicts "
        f"{row['predicted_tokens_per_s_measured_alpha']:.1f} tokens/s",
        "measured over the steps that fed no prompt (what the model predicts); with each "
        f"prompt's first step: {_num(row.get('measured_tokens_per_s_with_prompt'), '.1f')} "
        f"speculative, {_num(row.get('measured_baseline_tokens_per_s_with_prompt'), '.1f')} plain "
        "tokens/s",
        "stages: " + ", ".join(f"{k} {v:.0f} s" for k, v in result["stage_seconds"].items()),
        f"report: {result['report']}",
    ]
    return "\n".join(lines)
