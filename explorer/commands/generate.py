"""`specdec generate`: real speculative decoding of a target/draft pair on prompts."""

from __future__ import annotations

import argparse
import itertools

HELP = "run speculative decoding (or the plain baseline with --gamma 0) and report tokens/s"
DESCRIPTION = """\
Run a target (and a draft) from local Hugging Face folders on a prompt or a prompt file, with
a fixed gamma (draft tokens per step). --gamma 0 runs plain autoregressive decoding through the
same engine: the baseline. Greedy at --temperature 0 (the output equals the target's own greedy
output); speculative sampling otherwise (the output follows the target's distribution).

Prompts are decoded --batch rows at a time; with fewer prompts than --batch they are repeated
to fill the batch. Reported: tokens/s (prompt pass included, and over the steps that fed no
prompt: what the step model predicts), steps, mean accepted length tau (tokens per step per row,
in [1, gamma+1]), acceptance rate alpha (MLE), and the time spent in draft passes, verify passes
and overhead.

example:
  specdec generate --target data/zoo/target --draft data/zoo/drafts/d1-h384 --gamma 4 \\
      --prompt "def fibonacci(n):" --max-new-tokens 64
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser, draft_required=False)
    parser.add_argument(
        "--gamma", type=int, required=True, help="draft tokens per step (0: no draft)"
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--prompt", help="one prompt text")
    source.add_argument("--prompts", help="JSONL file with a 'prompt' field, or one prompt a line")
    parser.add_argument("--limit", type=int, default=None, help="use at most this many prompts")
    parser.add_argument(
        "--max-new-tokens", type=int, default=64, help="tokens per row (default 64)"
    )
    add_sampling_arguments(parser)
    parser.add_argument("--batch", type=int, default=1, help="rows decoded together (default 1)")
    parser.add_argument(
        "--stop-at-eos", action="store_true", help="end a row at the tokenizer's EOS token"
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=1,
        help="untimed warm-up runs of a few tokens before measuring (default 1)",
    )


def add_model_arguments(parser: argparse.ArgumentParser, *, draft_required: bool) -> None:
    """--target/--draft and how to load them (shared with `specdec acceptance`)."""
    parser.add_argument("--target", required=True, help="target model folder (Hugging Face)")
    parser.add_argument(
        "--draft", required=draft_required, default=None, help="draft model folder (Hugging Face)"
    )
    parser.add_argument("--tokenizer", default=None, help="tokenizer folder (default: --target)")
    parser.add_argument(
        "--dtype",
        default="float32",
        choices=["auto", "float32", "float64", "bfloat16", "float16"],
        help="weights dtype (default float32; auto keeps the saved one)",
    )
    parser.add_argument("--device", default="auto", help="torch device (default: cuda if present)")
    parser.add_argument(
        "--trust-remote-code", action="store_true", help="allow custom model code from the folders"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: torch's; 1 on a busy CPU)",
    )


def add_sampling_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--temperature", type=float, default=0.0, help="0: greedy (default)")
    parser.add_argument("--top-p", type=float, default=1.0, help="nucleus size in (0, 1]")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")


def check_common(args: argparse.Namespace) -> None:
    """Rules checked before any model is loaded."""
    from explorer.cli import UsageError

    if args.gamma < 0:
        raise UsageError(f"`--gamma >= 0` must hold, but got gamma={args.gamma}.")
    if args.max_new_tokens < 1:
        raise UsageError(f"`--max-new-tokens >= 1` must hold, but got {args.max_new_tokens}.")
    if getattr(args, "batch", 1) < 1:
        raise UsageError(f"`--batch >= 1` must hold, but got {args.batch}.")
    if args.limit is not None and args.limit < 1:
        raise UsageError(f"`--limit >= 1` must hold, but got {args.limit}.")
    if args.threads is not None and args.threads < 1:
        raise UsageError(f"`--threads >= 1` must hold, but got {args.threads}.")
    if args.gamma > 0 and args.draft is None:
        raise UsageError(f"`--draft` is required when --gamma > 0, but got gamma={args.gamma}.")
    from profiler.sampling import SamplingConfig

    SamplingConfig(temperature=args.temperature, top_p=args.top_p)  # validates
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)


def run(args: argparse.Namespace) -> dict:
    check_common(args)
    if args.warmup < 0:
        raise ValueError(f"`--warmup >= 0` must hold, but got {args.warmup}.")
    from profiler.prompts import load_prompts

    texts = (
        [args.prompt] if args.prompt is not None else load_prompts(args.prompts, limit=args.limit)
    )
    if args.prompt is not None and not args.prompt:
        raise ValueError("`--prompt` must not be empty.")

    from profiler.engine import GenerationResult, speculative_generate
    from profiler.loading import load_pair
    from profiler.prompts import tokenize_prompts
    from profiler.sampling import SamplingConfig

    pair = load_pair(
        args.target,
        args.draft if args.gamma > 0 else None,
        dtype=args.dtype,
        device=args.device,
        trust_remote_code=args.trust_remote_code,
        tokenizer=args.tokenizer,
    )
    ids = tokenize_prompts(pair.tokenizer, texts)
    if len(ids) < args.batch:  # repeat prompts to fill one batch
        ids = list(itertools.islice(itertools.cycle(ids), args.batch))
        texts = list(itertools.islice(itertools.cycle(texts), args.batch))
    sampling = SamplingConfig(temperature=args.temperature, top_p=args.top_p)
    eos = pair.tokenizer.eos_token_id if args.stop_at_eos else None
    batches = [ids[i : i + args.batch] for i in range(0, len(ids), args.batch)]
    for _ in range(args.warmup):
        speculative_generate(
            pair.target,
            pair.draft,
            batches[0],
            gamma=args.gamma,
            max_new_tokens=4,
            sampling=sampling,
            seed=args.seed,
        )
    results = [
        speculative_generate(
            pair.target,
            pair.draft,
            batch,
            gamma=args.gamma,
            max_new_tokens=args.max_new_tokens,
            sampling=sampling,
            eos_token_id=eos,
            seed=args.seed + i,
        )
        for i, batch in enumerate(batches)
    ]
    result = GenerationResult.concat(results)
    out = result.summary()
    out.update(
        target=str(pair.target_path),
        draft=str(pair.draft_path) if pair.draft_path else None,
        requested_gamma=args.gamma,
        prompts=len(ids),
        texts=[pair.tokenizer.decode(o, skip_special_tokens=True) for o in result.output_ids],
        prompt_texts=texts,
    )
    return out


def _fmt(value: object, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def format_text(result: dict) -> str:
    lines = []
    for i, (prompt, text) in enumerate(zip(result["prompt_texts"], result["texts"], strict=True)):
        lines.append(f"--- row {i}: {prompt!r}")
        lines.append(prompt + text)
    gamma = result["gamma"]
    note = (
        "" if gamma == result["requested_gamma"] else f" (capped from {result['requested_gamma']})"
    )
    lines += [
        "---",
        f"gamma {gamma}{note}, batch {result['batch_size']}, temperature {result['temperature']:g}, "
        f"top_p {result['top_p']:g}, device {result['device']}",
        f"tokens/s              {result['tokens_per_s']:.1f} (steps only {result['decode_tokens_per_s']:.1f}, "
        f"steps without the prompt pass {result['steady_tokens_per_s']:.1f})",
        f"new tokens            {result['new_tokens']} in {result['steps']} steps",
        f"mean accepted length  {_fmt(result['mean_accepted_length'], '.3f')} tokens/step/row (tau)",
        f"acceptance rate       {_fmt(result['acceptance_rate'], '.3f')} (alpha, MLE)",
        f"time                  draft {result['draft_ms']:.1f} ms, "
        f"verify {result['verify_ms']:.1f} ms, overhead {result['overhead_ms']:.1f} ms "
        f"(the first step, {result['prompt_step_ms']:.1f} ms, also fed the prompt)",
    ]
    return "\n".join(lines)
