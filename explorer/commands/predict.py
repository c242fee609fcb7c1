"""`specdec predict`: speculative-decoding throughput and speedup from α, γ and latencies.

The command is three steps, so another latency source can be plugged in without touching the
rest: :func:`build_acceptance` (α or α_i from the flags), :func:`build_latencies` (plain numbers
today; a preset plus a device profile can return :class:`perfmodel.LatencyFn` objects instead),
then one call into perfmodel in :func:`predict`. perfmodel is imported inside the functions so
that ``specdec --help`` stays fast.
"""

from __future__ import annotations

import argparse
from typing import Any

HELP = "predict speculative-decoding tokens/s and speedup from alpha, gamma and latencies"
DESCRIPTION = """\
Predict the throughput of speculative decoding with the analytical model (perfmodel):

  T_step(gamma) = gamma * T_draft + T_verify + T_overhead
  tokens/s      = batch * E[tau] / T_step      (E[tau]: expected tokens emitted per step)
  baseline      = batch / T_target             speedup = tokens/s / baseline

and the speedup curve over gamma = 0..gamma-max with its best gamma (0 = plain decoding).
Latencies are those of one forward pass measured at the batch size given by --batch.
When --verify-ms is absent the verification pass (gamma + 1 tokens) is taken to cost
--target-ms, at every gamma.

example:
  specdec predict --alpha 0.8 --gamma 4 --draft-ms 2 --target-ms 20
  specdec predict --position-acceptance 0.9,0.8,0.7,0.6 --gamma 4 --draft-ms 2 --target-ms 20 --json
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    acceptance = parser.add_mutually_exclusive_group(required=True)
    acceptance.add_argument(
        "--alpha",
        type=float,
        metavar="A",
        help="acceptance rate alpha in [0, 1]: P(a proposal is accepted | all before it were)",
    )
    acceptance.add_argument(
        "--position-acceptance",
        metavar="A1,A2,...",
        help="per-position acceptance rates alpha_1,alpha_2,... (at least --gamma of them), "
        "instead of --alpha",
    )
    parser.add_argument(
        "--gamma", type=int, required=True, metavar="G", help="draft tokens per step, >= 0"
    )
    parser.add_argument(
        "--draft-ms",
        type=float,
        required=True,
        metavar="D",
        help="draft forward pass at 1 token per row, ms (> 0)",
    )
    parser.add_argument(
        "--target-ms",
        type=float,
        required=True,
        metavar="T",
        help="target forward pass at 1 token per row (plain decoding), ms (> 0)",
    )
    parser.add_argument(
        "--verify-ms",
        type=float,
        metavar="V",
        help="target verification pass over gamma+1 tokens per row, ms (> 0); "
        "default: the same as --target-ms",
    )
    parser.add_argument(
        "--overhead-ms",
        type=float,
        default=0.0,
        metavar="O",
        help="per-step overhead (sampling, acceptance, cache rollback), ms (>= 0; default 0)",
    )
    parser.add_argument(
        "--batch",
        type=int,
        default=1,
        metavar="B",
        help="rows decoded together; tokens/s counts all of them (default 1)",
    )
    parser.add_argument(
        "--gamma-max",
        type=int,
        default=16,
        metavar="M",
        help="largest gamma of the speedup curve (default 16; at most the number of "
        "--position-acceptance values)",
    )
    parser.add_argument(
        "--extra-draft-calls",
        type=float,
        default=0.0,
        metavar="E",
        help="draft passes per step beyond gamma, e.g. 1 if the engine runs the draft gamma+1 "
        "times per step (default 0)",
    )


def build_acceptance(args: argparse.Namespace) -> dict[str, Any]:
    """``{"acceptance_rate": α}`` or ``{"position_acceptance": [α_1, ...]}`` from the flags."""
    if args.position_acceptance is not None:
        from explorer.cli_args import float_list

        return {
            "position_acceptance": float_list(
                args.position_acceptance, flag="--position-acceptance"
            )
        }
    return {"acceptance_rate": args.alpha}


def build_latencies(args: argparse.Namespace) -> dict[str, Any]:
    """The latency inputs of the step model: ``draft_ms``, ``target_ms``, ``verify_ms``.

    Plain numbers from ``--draft-ms``/``--target-ms``/``--verify-ms``. A latency source that
    knows T(b, n, q) (a preset plus a device profile) returns ``perfmodel.LatencyFn`` objects for
    ``draft_ms`` and ``target_ms`` and ``verify_ms=None``; :func:`predict` takes either.
    """
    return {"draft_ms": args.draft_ms, "target_ms": args.target_ms, "verify_ms": args.verify_ms}


def predict(
    *,
    gamma: int,
    acceptance: dict[str, Any],
    latencies: dict[str, Any],
    overhead_ms: float = 0.0,
    batch: int = 1,
    context: int = 0,
    gamma_max: int = 16,
    extra_draft_calls: float = 0.0,
) -> dict[str, Any]:
    """Score one configuration and its γ curve; return the JSON-ready result."""
    import numpy as np

    import perfmodel

    if "position_acceptance" in acceptance:
        gamma_max = min(gamma_max, len(acceptance["position_acceptance"]))
    common = dict(
        **acceptance,
        **latencies,
        overhead_ms=overhead_ms,
        batch=batch,
        context=context,
        extra_draft_calls=extra_draft_calls,
    )
    point = perfmodel.speculative_throughput(gamma, **common)
    curve = perfmodel.speedup_curve(gamma_max=gamma_max, **common)
    rate = acceptance.get("acceptance_rate")
    result: dict[str, Any] = {
        "gamma": int(gamma),
        "batch": int(batch),
        "acceptance_rate": None if rate is None else float(rate),
    }
    if "position_acceptance" in acceptance:
        result["position_acceptance"] = [float(a) for a in acceptance["position_acceptance"]]
    result.update({key: float(np.asarray(value)) for key, value in point.items()})
    result.update(
        {
            "optimal_gamma": int(curve["optimal_gamma"]),
            "optimal_speedup": float(curve["optimal_speedup"]),
            "optimal_tokens_per_s": float(curve["optimal_tokens_per_s"]),
            "gamma_max": int(gamma_max),
            "speedup_curve": [float(s) for s in curve["speedup"]],
        }
    )
    return result


def run(args: argparse.Namespace) -> dict[str, Any]:
    return predict(
        gamma=args.gamma,
        acceptance=build_acceptance(args),
        latencies=build_latencies(args),
        overhead_ms=args.overhead_ms,
        batch=args.batch,
        gamma_max=args.gamma_max,
        extra_draft_calls=args.extra_draft_calls,
    )


def format_text(result: dict[str, Any]) -> str:
    if "position_acceptance" in result:
        acc = "alpha_i = " + ",".join(f"{a:g}" for a in result["position_acceptance"])
    else:
        acc = f"alpha = {result['acceptance_rate']:g}"
    rows = [
        ("expected tokens per step", f"{result['expected_tokens_per_step']:.3f}"),
        ("draft", f"{result['draft_ms']:.3f} ms"),
        ("verify", f"{result['verify_ms']:.3f} ms"),
        ("overhead", f"{result['overhead_ms']:.3f} ms"),
        ("step", f"{result['step_ms']:.3f} ms"),
        ("tokens/s", f"{result['tokens_per_s']:.1f}"),
        ("baseline tokens/s", f"{result['baseline_tokens_per_s']:.1f}"),
        ("speedup", f"{result['speedup']:.3f}x"),
        (
            f"best gamma in 0..{result['gamma_max']}",
            f"{result['optimal_gamma']} ({result['optimal_speedup']:.3f}x, "
            f"{result['optimal_tokens_per_s']:.1f} tokens/s)",
        ),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"speculative decoding, {acc}, gamma = {result['gamma']}, batch = {result['batch']}"]
    lines += [f"  {name:<{width}}  {value}" for name, value in rows]
    curve = "  ".join(f"{g}:{s:.2f}" for g, s in enumerate(result["speedup_curve"]))
    lines.append(f"  speedup by gamma: {curve}")
    return "\n".join(lines)
