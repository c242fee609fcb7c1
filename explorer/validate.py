"""Validate a search by real runs: train the top proposed drafts, run them, compare.

For each of the top K distinct feasible trials of a study (by predicted tokens/s):

1. **Train** (distil) the draft with the zoo's training code (:func:`explorer.train.train_model`,
   teacher = the target) on ``token_budget`` tokens.
2. **Run** the engine (:func:`profiler.engine.speculative_generate`) on held-out HumanEval
   prompts (by default prompts 32.., which the zoo's acceptance measurements never used), at
   the trial's γ and at γ = 0 (plain decoding, the baseline), interleaved prompt by prompt so
   both see the same load on a shared machine.
3. **Measure** α̂ (maximum likelihood, DESIGN.md), τ, the draft's forward time per pass and the
   target's per step (from the engine's per-step trace: profiled on this CPU, in the run), the
   per-step overhead, decode tokens/s and the speedup, over the steps that fed no prompt (what
   the step model describes; each run's first step also feeds the prompt). The same tokens/s
   and speedup over every step are kept as ``*_with_prompt``.
4. **Predict** the same run: the step model at the run's mean context, with the draft's
   latency from the study's latency model, and α either predicted by the acceptance model for
   this draft and budget, or the measured α̂ plugged in (which isolates the latency and step
   model from the acceptance model).
5. **Record**: a table (CSV + JSON, atomic) of predicted vs measured with errors, and each
   trial's truth written back to the study: a study user attribute ``validation:<trial>`` and a
   copy of the trial that carries both the prediction and the ``measured_*`` user attributes
   (``validation_of`` names the original; the search does not count copies as trials).

This module holds the loop (:func:`validate_study`) and re-exports the rest, so that
``from explorer.validate import ...`` keeps working for every name: the plan and the trials to
validate are in :mod:`explorer.validate_plan`, training, running, measuring and predicting one
draft in :mod:`explorer.validate_run`, and the summary, the written table and the write-back
into the study in :mod:`explorer.validate_results`.
"""

from __future__ import annotations

import time
from typing import Any

import pandas as pd

from explorer.objective import SearchProblem
from explorer.space import DraftConfig
from explorer.validate_plan import (
    CONFIG_KEYS,
    REPO_ROOT,
    ValidationPlan,
    _top_trials,
    problem_from_settings,
    profile_threads,
)
from explorer.validate_results import (
    VALIDATION_ATTR_PREFIX,
    _jsonable,
    _jsonable_rows,
    _write_back,
    summarize,
    write_validation,
)
from explorer.validate_run import _draft_dir, _measure, _predict, _rel, _run_pair, _timed, _train

__all__ = [
    "CONFIG_KEYS",
    "REPO_ROOT",
    "VALIDATION_ATTR_PREFIX",
    "ValidationPlan",
    "_draft_dir",
    "_jsonable",
    "_jsonable_rows",
    "_measure",
    "_predict",
    "_rel",
    "_run_pair",
    "_timed",
    "_top_trials",
    "_train",
    "_write_back",
    "problem_from_settings",
    "profile_threads",
    "summarize",
    "validate_study",
    "write_validation",
]


def validate_study(
    study: Any,
    *,
    plan: ValidationPlan,
    top: int,
    problem: SearchProblem | None = None,
    write_back: bool = True,
    log: Any = None,
) -> pd.DataFrame:
    """Train, run and compare the top ``top`` drafts of ``study``.

    Parameters
    ----------
    study : optuna.Study
        A study made by ``specdec search`` (its settings rebuild the problem).
    plan : ValidationPlan
        Training budget, prompts, output folder.
    top : int
        Distinct feasible configurations to validate, best predicted first, >= 1.
    problem : SearchProblem, optional
        Override the problem rebuilt from the study's settings.
    write_back : bool
        Record the truth in the study (see the module docstring).
    log : callable, optional
        ``log(str)`` for progress lines.

    Returns
    -------
    DataFrame
        One row per validated trial: configuration, training, predicted vs measured α, draft
        latency, tokens/s and speedup, with errors (``*_rel_error`` = (pred − meas) / meas).
    """
    from explorer.search import SETTINGS_ATTR

    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise ValueError(f"`top` must be an integer >= 1, but got top={top!r}.")
    settings = study.user_attrs.get(SETTINGS_ATTR, {})
    problem = problem or problem_from_settings(settings)
    basis = plan.time_basis
    if basis == "auto":
        cpu_fit = settings.get("latency", {}).get("statistic") == "cpu_median_ms"
        basis = "cpu" if cpu_fit else "wall"
    rows = []
    for trial in _top_trials(study, top):
        config = DraftConfig(**{k: int(trial.user_attrs[k]) for k in CONFIG_KEYS})
        if log:
            log(f"trial {trial.number}: {config.name}: training on {plan.token_budget} tokens")
        t0 = time.perf_counter()
        trained = _train(plan, config)
        train_s = time.perf_counter() - t0
        if log:
            log(
                f"trial {trial.number}: running {plan.n_prompts} held-out prompts at gamma={config.gamma} and 0"
            )
        t0 = time.perf_counter()
        spec, base, clock = _run_pair(plan, _draft_dir(plan, config), config.gamma, problem.batch)
        run_s = time.perf_counter() - t0
        m = _measure(spec, base, clock, basis=basis)
        context = int(round(m["run_context_mean"]))
        full = _predict(
            problem, config, context=context, training_tokens=plan.token_budget, alpha=None
        )
        plug = _predict(
            problem,
            config,
            context=context,
            training_tokens=plan.token_budget,
            alpha=m["measured_acceptance_rate"],
        )
        # the engine's per-step overhead (sampling, acceptance, rollback) does not depend on the
        # draft's shape: the same predictions with the overhead measured on this machine
        kw = dict(
            context=context,
            training_tokens=plan.token_budget,
            overhead_ms=m["measured_overhead_ms"],
        )
        full_oh = _predict(problem, config, alpha=None, **kw)
        plug_oh = _predict(problem, config, alpha=m["measured_acceptance_rate"], **kw)
        row = {
            "trial": trial.number,
            "draft": config.name,
            **config.to_dict(),
            "params": int(full["params"]),
            "token_budget": plan.token_budget,
            "val_loss": float(trained.val_loss) if trained is not None else float("nan"),
            "search_tokens_per_s": trial.user_attrs.get("tokens_per_s"),
            "search_speedup": trial.user_attrs.get("speedup"),
            "predicted_acceptance_rate": float(full["acceptance_rate"]),
            "predicted_acceptance_lower": float(full["acceptance_lower"]),
            "predicted_acceptance_upper": float(full["acceptance_upper"]),
            "predicted_draft_pass_ms": float(full["draft_pass_ms"]),
            "predicted_target_ms": float(full["target_ms"]),
            "predicted_verify_ms": float(full["verify_ms"]),
            "predicted_tokens_per_s": float(full["tokens_per_s"]),
            "predicted_speedup": float(full["speedup"]),
            "predicted_tokens_per_s_measured_alpha": float(plug["tokens_per_s"]),
            "predicted_speedup_measured_alpha": float(plug["speedup"]),
            "assumed_overhead_ms": float(problem.overhead_ms),
            "predicted_tokens_per_s_measured_overhead": float(full_oh["tokens_per_s"]),
            "predicted_tokens_per_s_measured_alpha_overhead": float(plug_oh["tokens_per_s"]),
            **m,
            "train_s": train_s,
            "run_s": run_s,
        }
        alpha_m = m["measured_acceptance_rate"]
        row["acceptance_abs_error"] = (
            abs(row["predicted_acceptance_rate"] - alpha_m) if alpha_m is not None else float("nan")
        )
        row["acceptance_covered"] = (
            bool(row["predicted_acceptance_lower"] <= alpha_m <= row["predicted_acceptance_upper"])
            if alpha_m is not None
            else False
        )
        row["draft_pass_ms_rel_error"] = _rel(
            row["predicted_draft_pass_ms"], m["measured_draft_pass_ms"]
        )
        row["target_ms_rel_error"] = _rel(row["predicted_target_ms"], m["measured_target_ms"])
        row["verify_ms_rel_error"] = _rel(row["predicted_verify_ms"], m["measured_verify_ms"])
        row["tokens_per_s_rel_error"] = _rel(
            row["predicted_tokens_per_s"], m["measured_tokens_per_s"]
        )
        row["tokens_per_s_rel_error_measured_alpha"] = _rel(
            row["predicted_tokens_per_s_measured_alpha"], m["measured_tokens_per_s"]
        )
        row["tokens_per_s_rel_error_measured_overhead"] = _rel(
            row["predicted_tokens_per_s_measured_overhead"], m["measured_tokens_per_s"]
        )
        row["tokens_per_s_rel_error_measured_alpha_overhead"] = _rel(
            row["predicted_tokens_per_s_measured_alpha_overhead"], m["measured_tokens_per_s"]
        )
        row["speedup_rel_error"] = _rel(row["predicted_speedup"], m["measured_speedup"])
        row["speedup_rel_error_measured_alpha"] = _rel(
            row["predicted_speedup_measured_alpha"], m["measured_speedup"]
        )
        rows.append(row)
        if write_back:
            _write_back(study, trial, row)
        if log:
            log(
                f"trial {trial.number}: alpha pred {row['predicted_acceptance_rate']:.3f} meas {alpha_m:.3f}; "
                f"tok/s pred {row['predicted_tokens_per_s']:.1f} (measured-alpha {row['predicted_tokens_per_s_measured_alpha']:.1f}) "
                f"meas {m['measured_tokens_per_s']:.1f}; speedup meas {m['measured_speedup']:.2f}x"
            )
    return pd.DataFrame(rows)
