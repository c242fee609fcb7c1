"""Our speculative-decoding engine vs Hugging Face assisted generation, on one pair and γ.

What it does, on the same target/draft pair, prompts and fixed γ:

1. Hugging Face ``generate(assistant_model=draft)`` with the draft's generation config set to a
   fixed γ (``num_assistant_tokens=γ``, schedule ``"constant"``,
   ``assistant_confidence_threshold=0``), one prompt at a time (HF cannot batch assisted
   generation), and HF plain greedy ``generate`` as its baseline;
2. our engine (``profiler.engine``) at batch 1 on the same prompts, our γ = 0 baseline, and our
   engine at batch > 1;
3. checks that greedy outputs agree token for token (ours vs HF assisted vs HF plain);
4. profiles the forward passes on their own (T_draft(1, n, 1), T_target(1, n, 1),
   T_target(1, n, γ+1) at the mean context of the run) and feeds them with the measured α to
   ``perfmodel``'s step model; reports the gap to the measured step per component.

Both sides stop at the tokenizer's EOS or after ``--max-new-tokens``. Timing: each variant runs
all prompts once untimed (warm-up), then ``--repeats`` times, the variants interleaved so that a
burst of load from other jobs hits them alike; the median is reported, prompt passes included.
``--clock cpu`` (default) measures this process's CPU time with one torch thread: on a CPU shared
with other jobs it approximates the uncontended wall time, which the wall clock does not
(``--clock wall`` for a quiet machine). The same clock times the engine's steps and the profiled
forward passes (``profiler.timing`` is pointed at it). Defaults: ``data/zoo/target`` and
``data/zoo/drafts/d1-h384`` (else the first draft there); without a zoo, small random Llamas
built in a temporary folder (then α is near 0 and the figures are only a smoke test).

Prints its figures, then one JSON line.

    python benchmarks/bench_engine_vs_hf.py --gamma 4 --limit 8 --max-new-tokens 64
"""

from __future__ import annotations

import argparse
import atexit
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from perfmodel import speculative_throughput, step_time_breakdown  # noqa: E402
from profiler.engine import GenerationResult, speculative_generate  # noqa: E402
from profiler.loading import load_pair  # noqa: E402
from profiler.prompts import load_prompts, tokenize_prompts  # noqa: E402
from profiler.timing import device_name, time_callable  # noqa: E402


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--target", default=None, help="target folder (default data/zoo/target)")
    p.add_argument(
        "--draft", default=None, help="draft folder (default: first of data/zoo/drafts/)"
    )
    p.add_argument("--prompts", default=str(REPO / "data/prompts/humaneval.jsonl"))
    p.add_argument("--limit", type=int, default=8, help="prompts to run (default 8)")
    p.add_argument("--gamma", type=int, default=4)
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--batch", type=int, default=8, help="our batched run's batch size (default 8)")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats of each run (median)")
    p.add_argument(
        "--clock", choices=["cpu", "wall"], default="cpu", help="process CPU time (default) or wall"
    )
    return p.parse_args(argv)


def _zoo_pair() -> tuple[Path, Path] | None:
    target = REPO / "data/zoo/target"
    drafts = sorted(
        d for d in (REPO / "data/zoo/drafts").glob("*") if (d / "config.json").is_file()
    )
    if (target / "config.json").is_file() and drafts:
        preferred = [d for d in drafts if d.name == "d1-h384"]
        return target, (preferred or drafts)[0]
    return None


def _random_pair(root: Path) -> tuple[Path, Path]:
    """Small random Llamas sharing a byte-level tokenizer; a smoke test only (α ~ 0)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tok_dir = REPO / "data/zoo/tokenizer"
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tok_dir)
    vocab = len(tok)
    out = []
    for name, layers, hidden in (("target", 6, 384), ("draft", 1, 384)):
        torch.manual_seed(0)
        cfg = LlamaConfig(
            vocab_size=vocab,
            hidden_size=hidden,
            intermediate_size=1024,
            num_hidden_layers=layers,
            num_attention_heads=6,
            num_key_value_heads=6,
            max_position_embeddings=2048,
            initializer_range=0.2,  # peaked random logits: fewer greedy near-ties
        )
        folder = root / name
        LlamaForCausalLM(cfg).save_pretrained(folder)
        tok.save_pretrained(folder)
        out.append(folder)
    return out[0], out[1]


class _CpuClock:
    """Stands in for the ``time`` module inside ``profiler.timing``: CPU time as its clock."""

    perf_counter_ns = staticmethod(time.process_time_ns)


def _run_interleaved(variants: dict, repeats: int, clock) -> tuple[dict, dict]:
    """Warm each variant up, then time all of them ``repeats`` times, interleaved."""
    results = {name: fn() for name, fn in variants.items()}
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            t0 = clock()
            results[name] = fn()
            seconds[name].append(clock() - t0)
    return results, {name: statistics.median(v) for name, v in seconds.items()}


def _hf_generate(target, draft, ids, *, max_new_tokens, eos, pad):
    outs = []
    for row in ids:
        x = torch.tensor([row])
        kwargs = dict(
            attention_mask=torch.ones_like(x),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=eos,
            pad_token_id=pad,
        )
        if draft is not None:
            kwargs["assistant_model"] = draft
        with torch.inference_mode():
            out = target.generate(x, **kwargs)
        outs.append(out[0, len(row) :].tolist())
    return outs


def _ours(target, draft, ids, *, gamma, max_new_tokens, eos, batch):
    results = [
        speculative_generate(
            target,
            draft if gamma else None,
            ids[i : i + batch],
            gamma=gamma,
            max_new_tokens=max_new_tokens,
            eos_token_id=eos,
        )
        for i in range(0, len(ids), batch)
    ]
    return GenerationResult.concat(results)


def _forward_ms(model, *, context: int, query: int, vocab: int) -> float:
    """Median ms of one forward pass of ``query`` tokens after ``context`` cached tokens."""
    from transformers import DynamicCache

    from profiler.kvcache import cache_keyword

    gen = torch.Generator().manual_seed(0)
    prefix = torch.randint(0, vocab, (1, context), generator=gen)
    new = torch.randint(0, vocab, (1, query), generator=gen)
    cache = DynamicCache(config=model.config)
    kw = cache_keyword(model)
    with torch.inference_mode():
        model(input_ids=prefix, use_cache=True, **{kw: cache})

    def setup():
        extra = cache.get_seq_length() - context
        if extra > 0:
            cache.crop(-extra)

    def fn():
        with torch.inference_mode():
            model(input_ids=new, use_cache=True, logits_to_keep=query, **{kw: cache})

    return time_callable(fn, setup=setup, warmup=3, repeats=15).median_ms


def _strip(out: list[int], eos: int | None) -> list[int]:
    return out[: out.index(eos) + 1] if eos is not None and eos in out else out


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    torch.set_num_threads(args.threads)
    if args.clock == "cpu":
        if args.threads != 1:
            raise SystemExit("--clock cpu needs --threads 1 (CPU time sums over threads)")
        import profiler.timing

        profiler.timing.time = _CpuClock  # the engine's StepTimer and time_callable use CPU time
        clock, clock_name = time.process_time, "process CPU time"
    else:
        clock, clock_name = time.perf_counter, "wall clock"
    note = "zoo"
    if args.target and args.draft:
        target_dir, draft_dir, note = Path(args.target), Path(args.draft), "given"
    elif (pair := _zoo_pair()) is not None:
        target_dir, draft_dir = Path(args.target or pair[0]), Path(args.draft or pair[1])
    else:
        tmp = Path(tempfile.mkdtemp(prefix="bench-engine-"))
        atexit.register(shutil.rmtree, tmp, ignore_errors=True)  # the models are scratch
        target_dir, draft_dir = _random_pair(tmp)
        note = "random models (no zoo yet): smoke test only"
    pair = load_pair(target_dir, draft_dir, dtype=args.dtype, device="cpu")
    tok, target, draft = pair.tokenizer, pair.target, pair.draft
    ids = tokenize_prompts(tok, load_prompts(args.prompts, limit=args.limit))
    eos, pad = tok.eos_token_id, (tok.pad_token_id if tok.pad_token_id is not None else 0)
    g, n_new, b = args.gamma, args.max_new_tokens, args.batch
    draft.generation_config.num_assistant_tokens = g
    draft.generation_config.num_assistant_tokens_schedule = "constant"
    draft.generation_config.assistant_confidence_threshold = 0.0
    print(f"target {target_dir}  draft {draft_dir}  ({note})")
    print(
        f"device {device_name('cpu')} (2 cores shared with other jobs), torch threads "
        f"{torch.get_num_threads()}, clock: {clock_name}; {len(ids)} prompts, gamma {g}, "
        f"max new tokens {n_new}, dtype {args.dtype}, median of {args.repeats} interleaved repeats"
    )

    def ours(gamma: int, batch: int):
        return lambda: _ours(
            target, draft, ids, gamma=gamma, max_new_tokens=n_new, eos=eos, batch=batch
        )

    variants = {
        "hf_plain": lambda: _hf_generate(target, None, ids, max_new_tokens=n_new, eos=eos, pad=pad),
        "hf_assisted": lambda: _hf_generate(
            target, draft, ids, max_new_tokens=n_new, eos=eos, pad=pad
        ),
        "ours_plain": ours(0, 1),
        "ours": ours(g, 1),
        f"ours_batch{b}": ours(g, b),
        f"ours_plain_batch{b}": ours(0, b),
    }
    outs, seconds = _run_interleaved(variants, args.repeats, clock)
    outs = {
        k: [list(o) for o in v.output_ids] if isinstance(v, GenerationResult) else v
        for k, v in outs.items()
    }
    spec1: GenerationResult = variants["ours"]()  # one more traced run for the step model
    figures = {f"{k}_tokens_per_s": sum(len(o) for o in outs[k]) / seconds[k] for k in variants}
    ratio = figures["ours_tokens_per_s"] / figures["hf_assisted_tokens_per_s"]
    print("\ntokens/s (all prompts, prompt passes included)")
    for k, v in figures.items():
        print(f"  {k:34s} {v:8.1f}")
    print(f"  ours / HF assisted at batch 1: {ratio:.2f}x")

    ref = outs["ours"]

    def agree(name: str) -> int:
        return sum(a == _strip(o, eos) for a, o in zip(ref, outs[name], strict=True))

    agreement = {f"ours_vs_{k}": agree(k) for k in variants if k != "ours"}
    print(
        f"\ngreedy outputs identical token for token to ours (gamma {g}, batch 1), of {len(ids)}:"
    )
    print("  " + ", ".join(f"{k.removeprefix('ours_vs_')} {v}" for k, v in agreement.items()))

    # --- step model vs measured steps (batch 1, steps that fed no prompt) --------------------
    steps = spec1.steady_steps
    alpha, tau = spec1.acceptance_rate, spec1.mean_accepted_length
    context = int(statistics.mean(s.context_columns for s in steps))
    vocab = target.config.vocab_size
    t_draft = _forward_ms(draft, context=context, query=1, vocab=vocab)
    t_target = _forward_ms(target, context=context, query=1, vocab=vocab)
    t_verify = _forward_ms(target, context=context, query=g + 1, vocab=vocab)
    measured = {
        "draft_ms": statistics.mean(s.draft_ms for s in steps),
        "verify_ms": statistics.mean(s.verify_ms for s in steps),
        "overhead_ms": statistics.mean(s.overhead_ms for s in steps),
    }
    measured["step_ms"] = sum(measured.values())
    two_token = sum(s.draft_first_pass_tokens == 2 for s in steps) / len(steps)
    model = step_time_breakdown(g, draft_ms=t_draft, target_ms=t_target, verify_ms=t_verify)
    model = {k: float(v) for k, v in model.items()}
    pred = speculative_throughput(
        g,
        acceptance_rate=alpha,
        draft_ms=t_draft,
        target_ms=t_target,
        verify_ms=t_verify,
        overhead_ms=measured["overhead_ms"],
    )
    measured_tps = 1e3 * tau / measured["step_ms"]
    print(
        f"\nstep model (batch 1, {len(steps)} steps, mean context {context} tokens): alpha "
        f"{alpha:.3f}, tau {tau:.3f}; profiled T_draft(q=1) {t_draft:.2f} ms, T_target(q=1) "
        f"{t_target:.2f} ms, T_target(q={g + 1}) {t_verify:.2f} ms; {100 * two_token:.0f}% of "
        "steps began with a 2-token draft pass (after a full acceptance)"
    )
    print(f"  {'component':12s} {'measured':>10s} {'model':>10s} {'gap':>10s}")
    gaps = {}
    for key in ("draft_ms", "verify_ms", "overhead_ms", "step_ms"):
        gaps[key] = measured[key] - model[key]
        print(f"  {key:12s} {measured[key]:10.2f} {model[key]:10.2f} {gaps[key]:+10.2f}")
    print(
        f"  the model charges no overhead unless given one; fed the measured overhead and alpha it "
        f"predicts {float(pred['tokens_per_s']):.1f} tokens/s per step vs {measured_tps:.1f} "
        "measured (tau / mean step time)"
    )
    out = {
        "benchmark": "engine_vs_hf",
        "target": str(target_dir),
        "draft": str(draft_dir),
        "models": note,
        "device": device_name("cpu"),
        "shared_cpu": True,
        "threads": torch.get_num_threads(),
        "clock": args.clock,
        "repeats": args.repeats,
        "prompts": len(ids),
        "gamma": g,
        "max_new_tokens": n_new,
        "batch": b,
        **figures,
        "speedup_vs_hf_assisted": ratio,
        "agreement": agreement,
        "acceptance_rate": alpha,
        "mean_accepted_length": tau,
        "measured_step": measured,
        "model_step": model,
        "gap_ms": gaps,
        "two_token_first_pass_fraction": two_token,
        "profiled_ms": {"draft_q1": t_draft, "target_q1": t_target, f"target_q{g + 1}": t_verify},
        "model_step_tokens_per_s": float(pred["tokens_per_s"]),
        "measured_step_tokens_per_s": measured_tps,
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
