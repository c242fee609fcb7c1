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

Instead of milliseconds, name the models and a device profile; the latencies T(b, n, q) then
come from the latency model fitted to the profile (perfmodel.latency_model), and the
verification pass is asked at q = gamma + 1:
  specdec predict --alpha 0.6 --gamma 4 --target llama-65b --draft wide-sheared-llama-796m \
      --device-profile data/profiles/cpu-xeon-2.5ghz-1c
  specdec predict --alpha 0.6 --gamma 4 --target llama-7b --draft llama-7b --draft-layers 5 \
      --hardware H200
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
        metavar="D",
        help="draft forward pass at 1 token per row, ms (> 0)",
    )
    parser.add_argument(
        "--target-ms",
        type=float,
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
    _add_model_arguments(parser)


def _add_model_arguments(parser: argparse.ArgumentParser) -> None:
    models = parser.add_argument_group(
        "latencies from models and a device profile (instead of --draft-ms/--target-ms)"
    )
    models.add_argument(
        "--target", metavar="MODEL", help="target: a preset, a Hugging Face folder or a config.json"
    )
    models.add_argument(
        "--draft", metavar="MODEL", help="draft: a preset, a Hugging Face folder or a config.json"
    )
    for field, what in DRAFT_OVERRIDES.items():
        models.add_argument(
            f"--draft-{field.replace('_', '-')}",
            type=int,
            metavar="N",
            dest=f"draft_{field}",
            help=f"override the draft's {what}",
        )
    source = models.add_mutually_exclusive_group()
    source.add_argument(
        "--device-profile",
        metavar="DIR",
        help="folder of profile CSVs (data/profiles/<device>/) to fit the latency model on",
    )
    source.add_argument(
        "--hardware",
        metavar="NAME",
        help="use the roofline lower bound of a GPU (A100-80GB, H100-SXM, H200) instead",
    )
    models.add_argument(
        "--context",
        type=int,
        default=128,
        metavar="N",
        help="tokens already in the KV cache (default 128)",
    )


# Draft shape overrides: ArchSpec field -> what it is.
DRAFT_OVERRIDES = {
    "layers": "decoder layers",
    "hidden": "hidden size",
    "ffn": "MLP size",
    "heads": "attention heads",
    "kv_heads": "KV heads",
}


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
    by_models = args.target is not None or args.draft is not None
    by_ms = args.draft_ms is not None or args.target_ms is not None
    if by_models and by_ms:
        raise ValueError(
            "`either --draft-ms/--target-ms or --target/--draft with a profile` must hold, "
            "but got both."
        )
    if not by_models:
        if args.draft_ms is None or args.target_ms is None:
            raise ValueError(
                "`--draft-ms and --target-ms are given (or --target, --draft and "
                "--device-profile/--hardware)` must hold, but got "
                f"draft_ms={args.draft_ms}, target_ms={args.target_ms}."
            )
        return {"draft_ms": args.draft_ms, "target_ms": args.target_ms, "verify_ms": args.verify_ms}
    if args.target is None or args.draft is None:
        raise ValueError(
            f"`--target and --draft are both given` must hold, but got target={args.target!r}, "
            f"draft={args.draft!r}."
        )
    if args.verify_ms is not None:
        raise ValueError(
            "`--verify-ms only with --draft-ms/--target-ms` must hold: with models the latency "
            "model gives the verification pass."
        )
    from explorer.problem_inputs import profile_notes
    from explorer.search import build_latency, resolve_target

    target = resolve_target(args.target)
    overrides = {
        field: getattr(args, f"draft_{field}")
        for field in DRAFT_OVERRIDES
        if getattr(args, f"draft_{field}") is not None
    }
    try:
        draft = resolve_target(args.draft)
    except ValueError as exc:
        raise ValueError(str(exc).replace("--target", "--draft")) from None
    if overrides:
        from profiler.build import keep_kv_group

        draft = draft.replace(**keep_kv_group(draft, overrides))
    target_fn, draft_provider, _ = build_latency(
        target, device_profile=args.device_profile, hardware=args.hardware
    )
    notes = []
    if draft.vocab != target.vocab:
        notes.append(
            f"the draft's vocabulary size ({draft.vocab}) is not the target's ({target.vocab}): "
            "speculative decoding needs the two to share one tokenizer (padded embedding "
            "tables, as Qwen2.5-0.5B's 151936 rows against Qwen2.5-7B's 152064, are fine)"
        )
    # the target runs at q = 1 (plain decoding) and q = γ + 1 (verification), the draft at 1
    for role, spec, queries in (("target", target, (1, args.gamma + 1)), ("draft", draft, (1,))):
        notes += profile_notes(
            draft_provider, spec, role, batch=args.batch, context=args.context, queries=queries
        )
    return {
        "draft_ms": draft_provider(draft), "target_ms": target_fn, "verify_ms": None,
        "notes": notes,
    }  # fmt: skip


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
    latencies = build_latencies(args)
    notes = latencies.pop("notes", [])
    result = predict(
        gamma=args.gamma,
        acceptance=build_acceptance(args),
        latencies=latencies,
        overhead_ms=args.overhead_ms,
        batch=args.batch,
        context=args.context if args.target is not None else 0,
        gamma_max=args.gamma_max,
        extra_draft_calls=args.extra_draft_calls,
    )
    if notes:
        result["notes"] = notes
    return result


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
        ("tokens/s", f"{result['tokens_per_s']:.4g}"),
        ("baseline tokens/s", f"{result['baseline_tokens_per_s']:.4g}"),
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
    lines += [f"  note: {note}" for note in result.get("notes", ())]
    return "\n".join(lines)
