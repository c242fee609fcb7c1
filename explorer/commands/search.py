"""`specdec search`: Optuna search over draft depth, width and γ for predicted tokens/s."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

HELP = "search draft shapes (depth, width, heads, gamma) for predicted speculative tokens/s"
DESCRIPTION = """\
Search the draft design space with Optuna for the highest predicted speculative tokens/s of a
target on a device (single mode), or the Pareto front of tokens/s against draft size (multi).

  alpha    : --alpha A (what-if) | --acceptance FILE (measured) | the acceptance model fitted
             to data/zoo/drafts.csv (default)
  latency  : the target's and each draft's forward time from the latency model fitted to
             --device-profile DIR (or the roofline bound of --hardware NAME)
  storage  : default sqlite:///runs/<study>.db; rerunning continues the study until it holds
             --trials complete trials. Any RDB URL (postgresql://, mysql://) or a journal file
             path lets workers on other machines join with --storage URL --study NAME.
  budgets  : --max-params, --max-memory-bytes, --max-draft-ms are Optuna constraints.

Results (configurations, predictions, constraints) are stored as trial user attributes, so
`optuna-dashboard <storage URL>` shows them as they are.

example:
  specdec search --target data/zoo/target --device-profile data/profiles/cpu --trials 200
  specdec search --target llama-7b --hardware H200 --alpha 0.8 --mode multi --max-params 5e8 --json
"""


def _range(text: str) -> tuple[int, int]:
    try:
        lo, _, hi = text.partition(":")
        return int(lo), int(hi or lo)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MIN:MAX integers, got {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--target",
        required=True,
        metavar="PRESET|DIR",
        help="target model: preset name, HF folder or config.json",
    )
    latency = parser.add_mutually_exclusive_group(required=True)
    latency.add_argument(
        "--device-profile", metavar="DIR", help="data/profiles/<device>/ folder of latency profiles"
    )
    latency.add_argument(
        "--hardware",
        metavar="NAME",
        help="no profile: roofline bound of a known device (e.g. H200)",
    )
    acceptance = parser.add_mutually_exclusive_group()
    acceptance.add_argument(
        "--alpha",
        type=float,
        metavar="A",
        help="acceptance rate for every draft (what-if), in [0, 1]",
    )
    acceptance.add_argument(
        "--acceptance",
        metavar="FILE",
        help="measured acceptance file (one pair) or table of measured drafts",
    )
    parser.add_argument(
        "--trials",
        type=int,
        default=100,
        metavar="N",
        help="complete trials the study must hold (default 100)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="worker processes on this machine (default 1)",
    )
    parser.add_argument(
        "--storage",
        metavar="URL",
        help="Optuna storage URL or journal file (default sqlite:///runs/<study>.db)",
    )
    parser.add_argument(
        "--study",
        default="specdec-search",
        metavar="NAME",
        help="study name (default specdec-search)",
    )
    parser.add_argument(
        "--mode",
        choices=("single", "multi"),
        default="single",
        help="tokens/s only, or tokens/s and cost (Pareto)",
    )
    parser.add_argument(
        "--cost",
        choices=("params", "memory_bytes"),
        default="params",
        help="cost objective of multi mode",
    )
    parser.add_argument(
        "--max-params", type=float, metavar="P", help="draft parameter budget (count, e.g. 5e8)"
    )
    parser.add_argument(
        "--max-memory-bytes", type=float, metavar="B", help="draft weights + KV cache budget, bytes"
    )
    parser.add_argument(
        "--max-draft-ms", type=float, metavar="M", help="maximum draft forward time (one token), ms"
    )
    parser.add_argument(
        "--space", metavar="FILE", help="TOML or JSON file of space bounds (see README)"
    )
    parser.add_argument("--depth", type=_range, metavar="MIN:MAX", help="draft layers")
    parser.add_argument("--hidden", type=_range, metavar="MIN:MAX", help="draft width")
    parser.add_argument("--gamma", type=_range, metavar="MIN:MAX", help="draft tokens per step")
    parser.add_argument(
        "--batch",
        type=int,
        default=1,
        metavar="B",
        help="batch size the latencies are taken at (default 1)",
    )
    parser.add_argument(
        "--context", type=int, default=128, metavar="N", help="tokens in the KV cache (default 128)"
    )
    parser.add_argument(
        "--overhead-ms",
        type=float,
        default=0.0,
        metavar="O",
        help="per-step overhead, ms (default 0)",
    )
    parser.add_argument(
        "--training-tokens",
        type=float,
        metavar="T",
        help="tokens the drafts will be trained on (acceptance-model feature)",
    )
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="sampler seed (default 0)")
    parser.add_argument(
        "--top", type=int, default=5, metavar="K", help="best configurations to print (default 5)"
    )
    parser.add_argument(
        "--recommend",
        nargs="?",
        const="best",
        metavar="TRIAL",
        help="also write the serving recommendation (best gamma per batch size) for the best trial "
        "or trial number TRIAL, to --out (default runs/<study>/) as serving.csv and serving.json",
    )
    parser.add_argument(
        "--out", metavar="DIR", help="folder for --recommend's files (default runs/<study>/)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _bounds(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ("depth", "hidden", "gamma"):
        value = getattr(args, name)
        if value is not None:
            out[f"{name}_min"], out[f"{name}_max"] = value
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    from explorer import search as s
    from explorer.objective import Objective, SearchProblem, predict_configs
    from explorer.problem_inputs import profile_notes

    target = s.resolve_target(args.target)
    space = s.space_for(target, space_file=args.space, **_bounds(args))
    target_latency, draft_latency, latency_info = s.build_latency(
        target, device_profile=args.device_profile, hardware=args.hardware
    )
    acceptance, acceptance_info = s.build_acceptance(alpha=args.alpha, acceptance=args.acceptance)
    notes = profile_notes(
        draft_latency, target, "target", batch=args.batch, context=args.context,
        queries=(1, space.gamma_max + 1),
    )  # fmt: skip
    problem = SearchProblem(
        target=target,
        target_latency=target_latency,
        draft_latency=draft_latency,
        acceptance=acceptance,
        batch=args.batch,
        context=args.context,
        overhead_ms=args.overhead_ms,
        training_tokens=args.training_tokens,
        cost=args.cost,
        max_params=args.max_params,
        max_memory_bytes=args.max_memory_bytes,
        max_draft_ms=args.max_draft_ms,
    )
    s.check_budgets(problem, space)
    settings = {
        "target": args.target,
        "target_name": target.name,
        "mode": args.mode,
        "space": space.to_dict(),
        "batch": args.batch,
        "context": args.context,
        "overhead_ms": args.overhead_ms,
        "cost": args.cost,
        "acceptance": acceptance_info,
        "latency": latency_info,
        "training_tokens": problem.training_tokens,
        "max_params": args.max_params,
        "max_memory_bytes": args.max_memory_bytes,
        "max_draft_ms": args.max_draft_ms,
    }
    study = s.run_search(
        Objective(problem, space, args.mode),
        study_name=args.study,
        n_trials=args.trials,
        storage=args.storage,
        workers=args.workers,
        seed=args.seed,
        settings=settings,
        progress=not args.no_progress,
    )
    result: dict[str, Any] = {
        "study": args.study,
        "storage": s.mask_url(args.storage or s.default_storage(args.study)),
        "mode": args.mode,
        "target": target.name or args.target,
        "space_size": space.size,
        "acceptance": acceptance_info,
        "latency": latency_info,
        **s.study_results(study, top=args.top, cost=args.cost),
    }
    if notes:
        result["notes"] = notes
    if hasattr(acceptance, "leave_one_out") and acceptance_info.get("kind") == "model":
        result["acceptance"] = {
            **acceptance_info,
            "leave_one_out": acceptance.leave_one_out(restarts=1).to_dict(),
        }
    if args.recommend is not None:
        result["serving"] = _recommend(s, problem, study, args, predict_configs)
    return result


def _recommend(
    s: Any, problem: Any, study: Any, args: argparse.Namespace, predict_configs: Any
) -> dict[str, Any]:
    from explorer.serving import recommend_serving, write_serving
    from explorer.space import DraftConfig

    rows = s.trials_frame(study)
    if args.recommend == "best":
        feasible = rows[rows["feasible"]] if not rows.empty else rows
        if feasible.empty:
            raise ValueError(
                "`the study has a feasible trial` must hold for --recommend, but it has none."
            )
        row = feasible.sort_values("tokens_per_s", ascending=False).iloc[0]
    else:
        try:
            number = int(args.recommend)
        except ValueError:
            raise ValueError(
                f"`--recommend takes a trial number` must hold, but got {args.recommend!r}."
            ) from None
        match = rows[rows["number"] == number] if not rows.empty else rows
        if match.empty:
            raise ValueError(
                f"`trial {number} is a complete trial of the study` must hold, but it is not."
            )
        row = match.iloc[0]
    draft = DraftConfig(
        **{k: int(row[k]) for k in ("depth", "hidden", "ffn", "heads", "kv_heads", "gamma")}
    )
    rec = recommend_serving(problem, draft)
    paths = write_serving(rec, Path(args.out) if args.out else Path(s.RUNS_DIR) / args.study)
    return {
        "trial": int(row["number"]),
        **rec.to_dict(),
        "files": {k: str(v) for k, v in paths.items()},
    }


def _fmt_row(r: dict[str, Any]) -> str:
    return (
        f"  #{r['number']:<4} L={r['depth']:<3} h={r['hidden']:<5} ffn={r['ffn']:<6} heads={r['heads']}/{r['kv_heads']:<3} "
        f"γ={r['gamma']:<2} α={r['acceptance_rate']:.3f} [{r['acceptance_lower']:.3f}, {r['acceptance_upper']:.3f}] "
        f"draft={r['draft_pass_ms']:.3f} ms  {r['tokens_per_s']:.1f} tok/s  speedup {r['speedup']:.2f}x "
        f"params={r['params'] / 1e6:.1f}M"
    )


def format_text(result: dict[str, Any]) -> str:
    t = result["trials"]
    lines = [
        f"study {result['study']} ({result['mode']}) on {result['storage']}: {t['complete']} complete, "
        f"{t['fail']} failed, {t['running']} running; {result['feasible']} feasible; space of {result['space_size']}",
        f"acceptance: {result['acceptance']}",
        f"latency: {result['latency']}",
        *(f"note: {note}" for note in result.get("notes", ())),
        "best configurations (predicted):",
        *(_fmt_row(r) for r in result["best"]),
        "Pareto front (tokens/s vs cost):",
        *(_fmt_row(r) for r in result["pareto"]),
    ]
    if "serving" in result:
        sv = result["serving"]
        lines.append(
            f"serving (trial {sv['trial']}): best gamma by batch size {sv['gamma_by_batch_size']}; "
            f"speculation pays up to batch {sv['speculative_disable_by_batch_size']}; written to {sv['files']['json']}"
        )
    return "\n".join(lines)
