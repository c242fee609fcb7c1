"""`specdec acceptance`: measure α, τ and α_i of a real pair on a prompt set."""

from __future__ import annotations

import argparse

from explorer.commands.generate import add_model_arguments, add_sampling_arguments, check_common

HELP = "measure acceptance (alpha, tau, per-position alpha_i) of a target/draft pair on prompts"
DESCRIPTION = """\
Run the pair with speculative decoding at a fixed gamma over a prompt file and measure how
many draft proposals the target accepts. Reports the acceptance rate alpha (MLE:
sum k / (sum k + steps that ended in a rejection)), the mean accepted length tau (tokens per
step, k+1, in [1, gamma+1]), the per-position rates alpha_i, the histogram of k and percentile
bootstrap intervals that resample prompts. Writes the record atomically as JSON to
data/acceptance/<target>__<draft>__g<G>__t<T>.json (or --out); data/acceptance/README.md
describes the schema.

example:
  specdec acceptance --target data/zoo/target --draft data/zoo/drafts/d1-h384 \\
      --prompts data/prompts/humaneval.jsonl --gamma 4 --limit 40
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser, draft_required=True)
    parser.add_argument(
        "--prompts", required=True, help="JSONL with a 'prompt' field, or one a line"
    )
    parser.add_argument("--gamma", type=int, required=True, help="draft tokens per step (>= 1)")
    add_sampling_arguments(parser)
    parser.add_argument(
        "--max-new-tokens", type=int, default=64, help="tokens per prompt (default 64)"
    )
    parser.add_argument("--limit", type=int, default=None, help="use the first K prompts")
    parser.add_argument("--batch", type=int, default=8, help="rows decoded together (default 8)")
    parser.add_argument("--stop-at-eos", action="store_true", help="end a row at EOS")
    parser.add_argument(
        "--bootstrap", type=int, default=1000, help="bootstrap resamples (default 1000)"
    )
    parser.add_argument(
        "--out", default=None, help="output JSON path (default under data/acceptance/)"
    )


def run(args: argparse.Namespace) -> dict:
    from explorer.cli import UsageError

    check_common(args)
    if args.gamma < 1:
        raise UsageError(
            f"`--gamma >= 1` must hold to measure acceptance, but got gamma={args.gamma}."
        )
    if args.bootstrap < 1:
        raise UsageError(f"`--bootstrap >= 1` must hold, but got {args.bootstrap}.")
    from profiler.prompts import load_prompts

    texts = load_prompts(args.prompts, limit=args.limit)

    from profiler.acceptance import acceptance_record, default_output_path, write_acceptance_record
    from profiler.engine import GenerationResult, speculative_generate
    from profiler.loading import load_pair
    from profiler.prompts import tokenize_prompts
    from profiler.sampling import SamplingConfig

    pair = load_pair(
        args.target,
        args.draft,
        dtype=args.dtype,
        device=args.device,
        trust_remote_code=args.trust_remote_code,
        tokenizer=args.tokenizer,
    )
    ids = tokenize_prompts(pair.tokenizer, texts)
    sampling = SamplingConfig(temperature=args.temperature, top_p=args.top_p)
    eos = pair.tokenizer.eos_token_id if args.stop_at_eos else None
    results = [
        speculative_generate(
            pair.target,
            pair.draft,
            ids[i : i + args.batch],
            gamma=args.gamma,
            max_new_tokens=args.max_new_tokens,
            sampling=sampling,
            eos_token_id=eos,
            seed=args.seed + i,
        )
        for i in range(0, len(ids), args.batch)
    ]
    result = GenerationResult.concat(results)
    record = acceptance_record(
        result,
        target=args.target,
        draft=args.draft,
        prompt_file=args.prompts,
        max_new_tokens=args.max_new_tokens,
        seed=args.seed,
        dtype=args.dtype,
        n_resamples=args.bootstrap,
    )
    out = args.out or default_output_path(
        target=args.target, draft=args.draft, gamma=result.gamma, temperature=args.temperature
    )
    path = write_acceptance_record(out, record)
    record["path"] = str(path)
    record["requested_gamma"] = args.gamma
    return record


def _fmt(value: object, spec: str = ".3f") -> str:
    return "n/a" if value is None else format(value, spec)


def format_text(record: dict) -> str:
    iv = record["intervals"]
    pct = f"{100 * iv['level']:g}%"
    lines = [
        f"{record['target']} <- {record['draft']}: gamma {record['gamma']}, temperature "
        f"{record['temperature']:g}, {record['n_prompts']} prompts, {record['n_steps']} steps",
        f"acceptance rate alpha    {_fmt(record['acceptance_rate'])}  "
        f"[{_fmt(iv['acceptance_rate'][0])}, {_fmt(iv['acceptance_rate'][1])}] ({pct} bootstrap)",
        f"mean accepted length tau {_fmt(record['mean_accepted_length'])}  "
        f"[{_fmt(iv['mean_accepted_length'][0])}, {_fmt(iv['mean_accepted_length'][1])}] tokens/step",
        "per-position alpha_i     " + ", ".join(_fmt(a) for a in record["position_acceptance"]),
        "histogram of k (0..gamma) " + " ".join(str(c) for c in record["histogram"]),
        f"written to {record['path']}",
    ]
    return "\n".join(lines)
