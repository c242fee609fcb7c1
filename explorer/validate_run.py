"""One validated draft: train it, run it against plain decoding, measure and predict the run.

:func:`_train` distils the draft from the target with the zoo's training code, of the target's
own layer layout;
:func:`_run_pair` runs the engine on the held-out prompts at the trial's γ and at γ = 0,
interleaved prompt by prompt; :func:`_measure` turns the two runs into α̂, τ, per-pass latencies,
the per-step overhead, tokens/s and the speedup (on the wall clock and on process-CPU time;
over the steps that fed no prompt, which the step model describes);
:func:`_predict` is the search's prediction of the same run.
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from explorer.objective import SearchProblem, predict_configs
from explorer.space import DraftConfig
from explorer.validate_plan import ValidationPlan

__all__: list[str] = []


def _draft_dir(plan: ValidationPlan, config: DraftConfig) -> Path:
    name = f"L{config.depth}-H{config.hidden}-F{config.ffn}-A{config.heads}-KV{config.kv_heads}-T{plan.token_budget}"
    return plan.out_dir / "drafts" / name


def _train(plan: ValidationPlan, config: DraftConfig) -> Any:
    """Distil the draft from the target: of the target's own layer layout (the draft the search
    proposed, :meth:`DraftConfig.arch`), or the default Llama student for a plain Llama target."""
    from explorer.train import TrainConfig, train_model
    from explorer.train_student import needs_own_layout

    steps = math.ceil(plan.token_budget / (plan.batch_size * plan.seq_len))
    cfg = TrainConfig(
        out_dir=_draft_dir(plan, config),
        tokens=plan.token_budget,
        layers=config.depth,
        hidden=config.hidden,
        ffn=config.ffn,
        heads=config.heads,
        kv_heads=config.kv_heads,
        teacher=plan.target_dir,
        layout_from=plan.target_dir if needs_own_layout(plan.target_dir) else None,
        seq_len=plan.seq_len,
        batch_size=plan.batch_size,
        lr=plan.lr,
        eval_every_steps=max(1, steps),
        eval_windows=plan.eval_windows,
        seed=plan.seed,
        **{
            k: getattr(plan, k)
            for k in ("corpus", "tokenizer_dir", "cache_dir")
            if getattr(plan, k) is not None
        },
    )
    return train_model(cfg, progress=False)


def _timed(fn: Any) -> tuple[Any, float, float]:
    wall0, cpu0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall0, time.process_time() - cpu0


def _run_pair(
    plan: ValidationPlan, draft_dir: Path, gamma: int, batch: int
) -> tuple[Any, Any, dict[str, float]]:
    import torch

    from profiler.engine import GenerationResult, speculative_generate
    from profiler.loading import load_pair
    from profiler.prompts import load_prompts, tokenize_prompts
    from profiler.sampling import SamplingConfig

    texts = load_prompts(plan.prompts)[plan.first_prompt : plan.first_prompt + plan.n_prompts]
    if not texts:
        raise ValueError(
            f"`held-out prompts exist` must hold, but {str(plan.prompts)!r} has none from index {plan.first_prompt}."
        )
    # the tokenizer the draft was trained with (the target's own unless one was named)
    pair = load_pair(
        plan.target_dir, draft_dir, dtype="float32", device="cpu", tokenizer=plan.tokenizer_dir
    )
    ids = tokenize_prompts(pair.tokenizer, texts)
    sampling = SamplingConfig(temperature=plan.temperature)
    spec, base = [], []
    clock = {"spec_wall_s": 0.0, "spec_cpu_s": 0.0, "base_wall_s": 0.0, "base_cpu_s": 0.0}
    threads = torch.get_num_threads()
    if plan.threads is not None:
        torch.set_num_threads(plan.threads)
    try:
        for i in range(0, len(ids), batch):  # interleaved: both runs see the same machine load
            rows = ids[i : i + batch]
            for kind, draft, g, out in (("base", None, 0, base), ("spec", pair.draft, gamma, spec)):
                result, wall_s, cpu_s = _timed(
                    lambda draft=draft, g=g, rows=rows, i=i: speculative_generate(
                        pair.target,
                        draft,
                        rows,
                        gamma=g,
                        max_new_tokens=plan.max_new_tokens,
                        sampling=sampling,
                        seed=plan.seed + i,
                    )
                )
                out.append(result)
                clock[f"{kind}_wall_s"] += wall_s
                clock[f"{kind}_cpu_s"] += cpu_s
    finally:
        torch.set_num_threads(threads)
    return GenerationResult.concat(spec), GenerationResult.concat(base), clock


def _steady_or_all(result: Any) -> tuple[tuple[Any, ...], float, bool]:
    """The steps a run's per-pass and tokens/s figures come from, their tokens/s, and which.

    The steady steps (those that fed no prompt) are what the step model predicts; a run that
    had none (every row finished in its prompt step) falls back to all its steps.
    """
    if result.steady_steps:
        return result.steady_steps, result.steady_tokens_per_s, True
    return result.steps, result.decode_tokens_per_s, False


def _measure(spec: Any, base: Any, clock: dict[str, float], *, basis: str) -> dict[str, Any]:
    """The measured side of one validated draft, from the two runs' per-step traces.

    Per-pass times, the overhead, tokens/s and the context are taken over the steady steps,
    which fed no prompt (the prompt pass makes a run's first step longer than the steps the
    step model describes); ``*_with_prompt`` keep tokens/s and the speedup over every step.
    ``measured_steps`` is ``"steady"`` when both runs had steady steps, else ``"all"`` (a run
    without one falls back to every step).
    """
    gamma = spec.gamma
    spec_steps, spec_tps, spec_steady = _steady_or_all(spec)
    base_steps, base_tps, base_steady = _steady_or_all(base)
    n_spec = max(len(spec_steps), 1)
    n_prompt = spec.n_steps - len(spec.steady_steps)
    # process-CPU / wall of each run: < 1 when other processes took the cores
    r_spec = min(1.0, clock["spec_cpu_s"] / clock["spec_wall_s"]) if clock["spec_wall_s"] else 1.0
    r_base = min(1.0, clock["base_cpu_s"] / clock["base_wall_s"]) if clock["base_wall_s"] else 1.0
    wall = {
        "draft_pass_ms": sum(s.draft_ms for s in spec_steps) / (gamma * n_spec)
        if gamma
        else float("nan"),
        "target_ms": sum(s.verify_ms for s in base_steps) / max(len(base_steps), 1),
        "tokens_per_s": spec_tps,
        "baseline_tokens_per_s": base_tps,
        "tokens_per_s_with_prompt": spec.decode_tokens_per_s,
        "baseline_tokens_per_s_with_prompt": base.decode_tokens_per_s,
    }
    cpu = {
        "draft_pass_ms": wall["draft_pass_ms"] * r_spec,
        "target_ms": wall["target_ms"] * r_base,
        "tokens_per_s": wall["tokens_per_s"] / r_spec,
        "baseline_tokens_per_s": wall["baseline_tokens_per_s"] / r_base,
        "tokens_per_s_with_prompt": wall["tokens_per_s_with_prompt"] / r_spec,
        "baseline_tokens_per_s_with_prompt": wall["baseline_tokens_per_s_with_prompt"] / r_base,
    }
    for d in (wall, cpu):
        d["speedup"] = d["tokens_per_s"] / d["baseline_tokens_per_s"]
        d["speedup_with_prompt"] = (
            d["tokens_per_s_with_prompt"] / d["baseline_tokens_per_s_with_prompt"]
        )
    chosen = cpu if basis == "cpu" else wall
    r_chosen = r_spec if basis == "cpu" else 1.0
    return {
        "measured_gamma": gamma,
        "measured_acceptance_rate": spec.acceptance_rate,
        "measured_expected_tokens_per_step": spec.mean_accepted_length,
        **{f"measured_{k}": v for k, v in chosen.items()},
        "measured_verify_ms": sum(s.verify_ms for s in spec_steps) / n_spec * r_chosen,
        "measured_overhead_ms": sum(s.overhead_ms for s in spec_steps) / n_spec * r_chosen,
        "measured_prompt_step_ms": spec.prompt_step_ms / max(n_prompt, 1) * r_chosen,
        "measured_steps": "steady" if spec_steady and base_steady else "all",
        "time_basis": basis,
        **{f"wall_{k}": v for k, v in wall.items()},
        **{f"cpu_{k}": v for k, v in cpu.items()},
        "cpu_wall_ratio_spec": r_spec,
        "cpu_wall_ratio_base": r_base,
        "run_context_mean": float(np.mean([s.context_columns for s in spec_steps]))
        if spec_steps
        else 0.0,
        "run_new_tokens": spec.new_tokens,
        "run_steady_steps": len(spec.steady_steps),
        "run_prompt_steps": n_prompt,
    }


def _predict(
    problem: SearchProblem,
    config: DraftConfig,
    *,
    context: int,
    training_tokens: float,
    alpha: float | None,
    overhead_ms: float | None = None,
) -> pd.Series:
    from perfmodel.acceptance_model import FixedAcceptance

    changes: dict[str, Any] = {"context": context, "training_tokens": training_tokens}
    if overhead_ms is not None:
        changes["overhead_ms"] = overhead_ms
    if alpha is not None:
        changes["acceptance"] = FixedAcceptance(acceptance_rate=alpha)
    p = dataclasses.replace(problem, **changes)
    return predict_configs(p, [config]).iloc[0]


def _rel(pred: float, meas: float) -> float:
    return (pred - meas) / meas if meas else float("nan")
