"""Measure every zoo draft against the zoo target: α̂ and τ for γ = 1..8, latency, tokens/s.

Writes ``data/zoo/drafts.csv`` (one row per draft) and ``data/zoo/acceptance_by_gamma.csv``
(tidy: draft, temperature, γ, α̂, τ), prints the seed paper's two findings and ends with one
JSON line.

Method (exact for greedy, an expectation for temperature 1; both cross-checked against real
``profiler.engine.speculative_generate`` runs, printed and stored in the JSON line):

- **Greedy.** Greedy speculative decoding emits exactly the target's greedy continuation, and
  the draft's proposal at every position is its argmax on the target's prefix. So the target
  decodes each prompt once (``--max-new-tokens`` plus γ_max + 1 tokens of look-ahead), every
  draft runs once teacher-forced over prompt + continuation, and ``match[j]`` says whether the
  draft's argmax equals the target's token j. A step starting at j accepts k = the number of
  consecutive matches from j, capped at γ, and emits k + 1 tokens; walking the steps over the
  first ``max_new_tokens`` tokens gives each step's k for every γ at once: α̂ = Σk / (Σk + number
  of steps with k < γ), τ = mean(k + 1) (DESIGN.md).
- **Temperature 1.** The target samples each continuation once (seeded); both models run
  teacher-forced over it and β_j = Σ_x min(p_j(x), q_j(x)) is the probability that a proposal
  at position j is accepted (Leviathan et al. 2023). For a step starting at j,
  P(k >= i) = Π_{l<i} β_{j+l}; averaging over start positions j gives the expected Σk and the
  expected number of rejections, hence α̂(γ) and τ(γ). This treats acceptances inside a step as
  independent given the target-sampled context (the standard approximation).
- **Latency.** Per-token decode latency at batch 1 (KV cache, context = a prompt of
  ``--latency-context`` tokens), median of ``--latency-repeats`` runs of ``--latency-tokens``
  single-token steps, with ``profiler.timing``.
- **Speculative tokens/s.** The real engine at batch 1, greedy, on ``--engine-prompts`` prompts,
  at the γ that maximises the measured-τ / (γ·t_draft + t_target) prediction, against plain
  decoding (γ = 0) through the same engine on the same prompts.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from explorer.corpus import load_prompts  # noqa: E402
from perfmodel.atomic import atomic_write_text  # noqa: E402
from profiler.engine import speculative_generate  # noqa: E402
from profiler.kvcache import cache_keyword  # noqa: E402
from profiler.loading import load_causal_lm, load_tokenizer  # noqa: E402
from profiler.sampling import SamplingConfig  # noqa: E402
from profiler.timing import time_callable  # noqa: E402

GAMMAS = tuple(range(1, 9))


def greedy_steps(match: np.ndarray, *, gamma: int, n_tokens: int) -> list[int]:
    """Accepted counts k of each step of greedy speculative decoding over ``n_tokens`` tokens.

    ``match[j]`` is True when the draft's argmax at output position j equals the target's token;
    ``match`` must extend at least ``gamma`` past ``n_tokens`` (the look-ahead of the last step).
    """
    assert len(match) >= n_tokens + gamma, (len(match), n_tokens, gamma)
    ks, j = [], 0
    while j < n_tokens:
        k = 0
        while k < gamma and match[j + k]:
            k += 1
        ks.append(k)
        j += k + 1
    return ks


def alpha_tau_from_steps(ks: list[int], *, gamma: int) -> tuple[float, float]:
    """α̂ = Σk / (Σk + #rejections) and τ = mean(k + 1) from per-step accepted counts."""
    ks_arr = np.asarray(ks)
    rejections = int((ks_arr < gamma).sum())
    total = int(ks_arr.sum())
    alpha = total / (total + rejections) if total + rejections else float("nan")
    return alpha, float((ks_arr + 1).mean())


def expected_alpha_tau(betas: list[np.ndarray], *, gamma: int) -> tuple[float, float]:
    """Expected α̂ and τ at one γ from per-position acceptance probabilities β_j (see module)."""
    sum_k, sum_rej, n = 0.0, 0.0, 0
    for beta in betas:
        for j in range(len(beta) - gamma + 1):
            run = np.cumprod(beta[j : j + gamma])  # P(k >= i), i = 1..γ
            sum_k += float(run.sum())
            sum_rej += 1.0 - float(run[-1])
            n += 1
    return sum_k / (sum_k + sum_rej), 1.0 + sum_k / n


@torch.no_grad()
def teacher_forced_logits(model, prompt: list[int], continuation: list[int]) -> torch.Tensor:
    """Logits (len(continuation), vocab) predicting each continuation token, fp32."""
    ids = torch.tensor([prompt + continuation[:-1]])
    logits = model(input_ids=ids).logits[0].float()
    return logits[len(prompt) - 1 :]


@torch.no_grad()
def per_token_latency_ms(model, prompt: list[int], *, tokens: int, repeats: int) -> dict:
    """Median ms per single-token decode step (batch 1, KV cache after a prompt prefill)."""
    from transformers import DynamicCache

    ids = torch.tensor([prompt])
    state: dict[str, object] = {}
    kw = cache_keyword(model)  # transformers 5.24 takes ``cache``; ``past_key_values`` goes in 5.40

    def setup() -> None:
        cache = DynamicCache()
        out = model(input_ids=ids, use_cache=True, **{kw: cache})
        state["cache"] = cache  # filled in place
        state["next"] = out.logits[:, -1:].argmax(-1)

    def decode() -> None:
        cache, nxt = state["cache"], state["next"]
        for _ in range(tokens):
            out = model(input_ids=nxt, use_cache=True, **{kw: cache})
            nxt = out.logits[:, -1:].argmax(-1)

    res = time_callable(decode, warmup=1, repeats=repeats, setup=setup)
    per = [s / tokens for s in res.samples_ms]
    return {
        "median_ms": float(np.median(per)),
        "min_ms": float(min(per)),
        "max_ms": float(max(per)),
    }


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    from scipy import stats

    return float(stats.spearmanr(x, y).statistic)


def bootstrap_spearman(x: np.ndarray, y: np.ndarray, *, n: int = 5000, seed: int = 0) -> list:
    """Percentile 95 % interval of Spearman's ρ, resampling drafts with replacement."""
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(n):
        idx = rng.integers(0, len(x), len(x))
        if len(set(x[idx])) < 2 or len(set(y[idx])) < 2:
            continue
        vals.append(spearman(x[idx], y[idx]))
    return [float(np.percentile(vals, 2.5)), float(np.percentile(vals, 97.5))]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--zoo", type=Path, default=REPO / "data" / "zoo")
    p.add_argument("--prompts", type=Path, default=REPO / "data" / "prompts" / "humaneval.jsonl")
    p.add_argument("--n-prompts", type=int, default=32, help="first N HumanEval prompts")
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--drafts", default=None, help="comma-separated draft names (default all)")
    p.add_argument("--latency-tokens", type=int, default=16)
    p.add_argument("--latency-repeats", type=int, default=5)
    p.add_argument("--latency-context", type=int, default=128)
    p.add_argument("--engine-prompts", type=int, default=6)
    p.add_argument("--engine-new-tokens", type=int, default=48)
    p.add_argument("--crosscheck-draft", default=None, help="draft for the T=1 engine check")
    p.add_argument("--crosscheck-gamma", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out-dir", type=Path, default=None, help="default: --zoo")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: on a loaded 2-core machine two threads stall at every "
        "barrier of a single-token decode step, 4x slower than one)",
    )
    p.add_argument("--crosscheck-prompts", type=int, default=16)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    out_dir = args.out_dir or args.zoo
    t_start = time.perf_counter()

    target_dir = args.zoo / "target"
    tok = load_tokenizer(target_dir)
    target = load_causal_lm(target_dir, dtype="float32", device="cpu", what="target")
    names = (
        args.drafts.split(",")
        if args.drafts
        else sorted(
            d.name for d in (args.zoo / "drafts").iterdir() if (d / "config.json").is_file()
        )
    )
    texts = [r["prompt"] for r in load_prompts(args.prompts)[: args.n_prompts]]
    prompts = [list(tok(t)["input_ids"]) for t in texts]
    n_new = args.max_new_tokens
    look = n_new + max(GAMMAS) + 1

    # Target continuations: greedy (with look-ahead) and sampled at temperature 1, via the engine.
    greedy_run = speculative_generate(target, None, prompts, gamma=0, max_new_tokens=look)
    greedy_cont = [list(o) for o in greedy_run.output_ids]
    sampled_run = speculative_generate(
        target,
        None,
        prompts,
        gamma=0,
        max_new_tokens=n_new + 1,
        sampling=SamplingConfig(temperature=1.0),
        seed=args.seed,
    )
    sampled_cont = [list(o) for o in sampled_run.output_ids]
    # Target probabilities along the sampled continuations: (n_new + 1, vocab) per prompt.
    target_probs = [
        torch.softmax(teacher_forced_logits(target, pr, c), dim=-1)
        for pr, c in zip(prompts, sampled_cont, strict=True)
    ]
    # A check that teacher forcing reproduces the engine's greedy tokens (argmax ties aside).
    agree = np.mean(
        [
            float(
                (teacher_forced_logits(target, pr, c).argmax(-1) == torch.tensor(c)).float().mean()
            )
            for pr, c in zip(prompts[:4], greedy_cont[:4], strict=True)
        ]
    )

    lat_prompt = (prompts[0] * 10)[: args.latency_context]
    target_lat = per_token_latency_ms(
        target, lat_prompt, tokens=args.latency_tokens, repeats=args.latency_repeats
    )
    rows, tidy, checks = [], [], {}
    for name in names:
        folder = args.zoo / "drafts" / name
        meta = json.loads((folder / "zoo_meta.json").read_text())
        draft = load_causal_lm(folder, dtype="float32", device="cpu", what="draft")
        row: dict[str, object] = {
            "name": name,
            "depth": meta["layers"],
            "hidden": meta["hidden"],
            "ffn": meta["ffn"],
            "heads": meta["heads"],
            "params": meta["params"],
            "training_tokens": meta["tokens_trained"],
            "distilled": meta["distilled"],
            "val_loss": meta["val_loss"],
        }
        matches = []
        for pr, c in zip(prompts, greedy_cont, strict=True):
            pred = teacher_forced_logits(draft, pr, c).argmax(-1).numpy()
            matches.append(pred == np.asarray(c))
        betas = []
        for pr, c, pt in zip(prompts, sampled_cont, target_probs, strict=True):
            q = torch.softmax(teacher_forced_logits(draft, pr, c), dim=-1)
            betas.append(torch.minimum(pt, q).sum(-1).numpy()[:n_new])
        for g in GAMMAS:
            ks = [k for m in matches for k in greedy_steps(m, gamma=g, n_tokens=n_new)]
            a, t = alpha_tau_from_steps(ks, gamma=g)
            row[f"alpha_greedy_g{g}"] = round(a, 4)
            row[f"tau_greedy_g{g}"] = round(t, 4)
            tidy.append({"draft": name, "temperature": 0.0, "gamma": g, "alpha": a, "tau": t})
        for g in GAMMAS:
            a, t = expected_alpha_tau(betas, gamma=g)
            row[f"alpha_t1_g{g}"] = round(a, 4)
            row[f"tau_t1_g{g}"] = round(t, 4)
            tidy.append({"draft": name, "temperature": 1.0, "gamma": g, "alpha": a, "tau": t})
        # The headline α for perfmodel's acceptance model: speculative sampling at T = 1, γ = 4.
        row["acceptance_rate"] = row["alpha_t1_g4"]
        row["beta_t1_mean"] = round(float(np.mean(np.concatenate(betas))), 4)
        lat = per_token_latency_ms(
            draft, lat_prompt, tokens=args.latency_tokens, repeats=args.latency_repeats
        )
        row["draft_ms_per_token"] = round(lat["median_ms"], 3)
        row["target_ms_per_token"] = round(target_lat["median_ms"], 3)
        n_eng = args.engine_new_tokens
        eng_prompts = prompts[: args.engine_prompts]
        for mode, sampling in (("greedy", SamplingConfig()), ("t1", SamplingConfig(1.0))):
            # Best γ predicted from measured τ and per-token latencies (verify ≈ one target
            # token), then measured with the real engine against plain decoding.
            pred = {
                g: row[f"tau_{mode}_g{g}"] / (g * lat["median_ms"] + target_lat["median_ms"])
                for g in GAMMAS
            }
            best = max(pred, key=pred.get)
            spec, base = [], []
            for i, pr in enumerate(eng_prompts):  # interleaved: both see the same machine load
                kw = {"max_new_tokens": n_eng, "sampling": sampling, "seed": args.seed + i}
                spec.append(speculative_generate(target, draft, [pr], gamma=best, **kw))
                base.append(speculative_generate(target, None, [pr], gamma=0, **kw))
            spec_tps = sum(r.new_tokens for r in spec) / sum(r.total_ms for r in spec) * 1e3
            base_tps = sum(r.new_tokens for r in base) / sum(r.total_ms for r in base) * 1e3
            eng_alpha = alpha_tau_from_steps(
                [k for r in spec for k in r.accepted_counts.tolist()], gamma=best
            )[0]
            row[f"best_gamma_{mode}"] = best
            row[f"spec_tokens_per_s_{mode}"] = round(spec_tps, 2)
            row[f"baseline_tokens_per_s_{mode}"] = round(base_tps, 2)
            row[f"speedup_{mode}"] = round(spec_tps / base_tps, 3)
            # Cross-check of the shortcut: the engine's α̂ on these prompts at the best γ.
            row[f"engine_alpha_{mode}_best_gamma"] = round(eng_alpha, 4)
            if mode == "greedy":
                sim_ks = [
                    k
                    for m in matches[: args.engine_prompts]
                    for k in greedy_steps(m, gamma=best, n_tokens=n_eng)
                ]
                row["sim_alpha_greedy_best_gamma"] = round(
                    alpha_tau_from_steps(sim_ks, gamma=best)[0], 4
                )
        rows.append(row)
        expected_t1 = row[f"alpha_t1_g{row['best_gamma_t1']}"]
        print(
            f"{name:12s} params {row['params']:>9,} val {row['val_loss']:.3f} "
            f"α̂(γ=4) greedy {row['alpha_greedy_g4']:.3f} T1 {row['alpha_t1_g4']:.3f} "
            f"draft {row['draft_ms_per_token']:.2f} ms target {row['target_ms_per_token']:.2f} ms "
            f"greedy γ*={row['best_gamma_greedy']} {row['speedup_greedy']:.2f}x "
            f"(engine α̂ {row['engine_alpha_greedy_best_gamma']} sim "
            f"{row['sim_alpha_greedy_best_gamma']}) T1 γ*={row['best_gamma_t1']} "
            f"{row['speedup_t1']:.2f}x (engine α̂ {row['engine_alpha_t1_best_gamma']} expected "
            f"{expected_t1})",
            flush=True,
        )
        if name == (args.crosscheck_draft or names[0]):
            g = args.crosscheck_gamma
            runs = [
                speculative_generate(
                    target,
                    draft,
                    [pr],
                    gamma=g,
                    max_new_tokens=n_new,
                    sampling=SamplingConfig(temperature=1.0),
                    seed=args.seed + i,
                )
                for i, pr in enumerate(prompts[: args.crosscheck_prompts])
            ]
            ks = [k for r in runs for k in r.accepted_counts.tolist()]
            ea, et = alpha_tau_from_steps(ks, gamma=g)
            checks["t1"] = {
                "draft": name,
                "gamma": g,
                "engine_alpha": ea,
                "engine_tau": et,
                "engine_steps": len(ks),
                "expected_alpha": row[f"alpha_t1_g{g}"],
                "expected_tau": row[f"tau_t1_g{g}"],
            }
            print(f"T=1 cross-check {checks['t1']}", flush=True)

    columns = list(rows[0].keys())
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(out_dir / "drafts.csv", buf.getvalue())
    buf = io.StringIO()
    w = csv.DictWriter(
        buf, fieldnames=["draft", "temperature", "gamma", "alpha", "tau"], lineterminator="\n"
    )
    w.writeheader()
    for r in tidy:
        w.writerow({**r, "alpha": f"{r['alpha']:.4f}", "tau": f"{r['tau']:.4f}"})
    atomic_write_text(out_dir / "acceptance_by_gamma.csv", buf.getvalue())

    # Finding 2: rank correlation between validation loss and α̂ (lower loss, higher α).
    val = np.array([r["val_loss"] for r in rows], dtype=float)
    findings = {}
    for key in ("alpha_greedy_g4", "alpha_t1_g4"):
        a = np.array([r[key] for r in rows], dtype=float)
        if len(rows) >= 3:
            findings[f"spearman_val_loss_vs_{key}"] = {
                "rho": spearman(val, a),
                "ci95": bootstrap_spearman(val, a, seed=args.seed),
                "n_drafts": len(rows),
            }
    summary = {
        "n_prompts": len(prompts),
        "max_new_tokens": n_new,
        "engine_prompts": args.engine_prompts,
        "engine_new_tokens": args.engine_new_tokens,
        "teacher_forced_vs_engine_greedy_token_agreement": float(agree),
        "target_ms_per_token": target_lat["median_ms"],
        "crosschecks": checks,
        "findings": findings,
        "torch_threads": torch.get_num_threads(),
        "load_average_1_5_15_min_at_end": list(os.getloadavg()),
        "cpu_count": os.cpu_count(),
        "wall_s": round(time.perf_counter() - t_start, 1),
    }
    atomic_write_text(out_dir / "measure_summary.json", json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
