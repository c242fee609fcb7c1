"""Acceptance measurement of a real target/draft pair on a prompt set, with bootstrap intervals.

The engine (``profiler.engine``) runs the pair with a fixed γ; every (step, row) of its trace
is one observation of k, the number of proposals accepted. From those observations
(definitions in DESIGN.md; estimators from ``perfmodel.acceptance``):

- α̂ (``acceptance_rate``) = Σk / (Σk + #observations that ended in a rejection), the MLE;
- α̂_i (``position_acceptance``) = #(k >= i) / #(k >= i − 1), i = 1..γ;
- τ (``mean_accepted_length``) = mean(k + 1), tokens emitted per step per row;
- the histogram of k (0..γ).

Intervals come from a percentile bootstrap that resamples *prompts* (with all their steps), as
the steps of one prompt are not independent. The record written to ``data/acceptance/`` is
described in ``data/acceptance/README.md`` (schema ``specdec.acceptance/1``).
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from perfmodel.acceptance import estimate_acceptance_rate, estimate_position_acceptance
from perfmodel.atomic import atomic_write_json

__all__ = [
    "SCHEMA",
    "acceptance_record",
    "bootstrap_intervals",
    "default_output_path",
    "write_acceptance_record",
]

SCHEMA = "specdec.acceptance/1"


def _finite_or_none(x: float) -> float | None:
    return None if x is None or math.isnan(x) else float(x)


def bootstrap_intervals(
    accepted_by_prompt: Sequence[Sequence[int]],
    *,
    gamma: int,
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, object]:
    """Percentile bootstrap intervals of α̂, τ and α̂_i, resampling prompts with replacement.

    Parameters
    ----------
    accepted_by_prompt : sequence of sequence of int
        For each prompt, k of each of its steps.
    gamma : int
        γ of every step, >= 1.
    n_resamples : int
        Bootstrap resamples, >= 1.
    level : float
        Coverage of the intervals, in (0, 1).
    seed : int
        Seed of the resampling.

    Returns
    -------
    dict
        ``{"method", "level", "n_resamples", "acceptance_rate": [lo, hi],
        "mean_accepted_length": [lo, hi], "position_acceptance": [[lo, hi], ...]}``; a bound
        is None where no resample identified the quantity.

    Notes
    -----
    Each resample draws n prompts out of n with replacement, concatenates their steps and
    recomputes the estimators; the interval is the ((1−level)/2, (1+level)/2) quantile pair.
    """
    if gamma < 1:
        raise ValueError(f"`gamma >= 1` must hold for acceptance intervals, but got {gamma=}.")
    if n_resamples < 1:
        raise ValueError(f"`n_resamples >= 1` must hold, but got {n_resamples=}.")
    if not 0.0 < level < 1.0:
        raise ValueError(f"`0 < level < 1` must hold, but got {level=}.")
    blocks = [np.asarray(k, dtype=np.int64) for k in accepted_by_prompt if len(k)]
    if not blocks:
        raise ValueError("`accepted_by_prompt` must hold at least one step, but got none.")
    rng = np.random.default_rng(seed)
    n = len(blocks)
    alpha = np.full(n_resamples, np.nan)
    tau = np.full(n_resamples, np.nan)
    positions = np.full((n_resamples, gamma), np.nan)
    for b in range(n_resamples):
        k = np.concatenate([blocks[i] for i in rng.integers(0, n, size=n)])
        tau[b] = k.mean() + 1.0
        if k.sum() + (k < gamma).sum() > 0:
            alpha[b] = estimate_acceptance_rate(k, gamma)
        positions[b] = estimate_position_acceptance(k, gamma)
    qs = [100 * (1 - level) / 2, 100 * (1 + level) / 2]

    def interval(samples: np.ndarray) -> list[float | None]:
        if np.isnan(samples).all():
            return [None, None]
        return [_finite_or_none(v) for v in np.nanpercentile(samples, qs)]

    return {
        "method": "percentile bootstrap over prompts",
        "level": level,
        "n_resamples": n_resamples,
        "acceptance_rate": interval(alpha),
        "mean_accepted_length": interval(tau),
        "position_acceptance": [interval(positions[:, i]) for i in range(gamma)],
    }


def _safe_name(path: str | os.PathLike[str]) -> str:
    name = Path(path).resolve().name or "model"
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name)


def default_output_path(
    *,
    target: str | os.PathLike[str],
    draft: str | os.PathLike[str],
    gamma: int,
    temperature: float,
    root: str | os.PathLike[str] = "data/acceptance",
) -> Path:
    """``<root>/<target>__<draft>__g<γ>__t<T>.json`` with the folders' base names."""
    return (
        Path(root) / f"{_safe_name(target)}__{_safe_name(draft)}__g{gamma}__t{temperature:g}.json"
    )


def acceptance_record(
    result,
    *,
    target: str | os.PathLike[str],
    draft: str | os.PathLike[str],
    prompt_file: str | os.PathLike[str] | None,
    max_new_tokens: int,
    seed: int,
    dtype: str,
    n_resamples: int = 1000,
    level: float = 0.95,
) -> dict[str, object]:
    """The JSON record (schema ``specdec.acceptance/1``) of a measured run.

    Parameters
    ----------
    result : profiler.engine.GenerationResult
        A run with γ >= 1 over the prompt set (batches merged with ``GenerationResult.concat``).
    target, draft : path
        The model folders.
    prompt_file : path or None
        Where the prompts came from.
    max_new_tokens, seed, dtype
        Run settings, recorded for reproduction.
    n_resamples, level
        Bootstrap settings.
    """
    if result.gamma < 1:
        raise ValueError(
            f"`gamma >= 1` must hold to measure acceptance, but got gamma={result.gamma}."
        )
    import torch
    import transformers

    gamma = result.gamma
    return {
        "schema": SCHEMA,
        "target": _safe_name(target),
        "draft": _safe_name(draft),
        "target_path": str(target),
        "draft_path": str(draft),
        "prompt_file": None if prompt_file is None else str(prompt_file),
        "n_prompts": len(result.prompt_ids),
        "gamma": gamma,
        "temperature": result.temperature,
        "top_p": result.top_p,
        "max_new_tokens": max_new_tokens,
        "n_steps": int(result.accepted_counts.size),
        "acceptance_rate": result.acceptance_rate,
        "mean_accepted_length": result.mean_accepted_length,
        "position_acceptance": list(result.position_acceptance),
        "histogram": list(result.histogram),
        "intervals": bootstrap_intervals(
            result.accepted_by_row(), gamma=gamma, n_resamples=n_resamples, level=level, seed=seed
        ),
        "new_tokens": result.new_tokens,
        "tokens_per_s": result.tokens_per_s,
        "batch_size": result.batch_size,
        "seed": seed,
        "dtype": dtype,
        "device": result.device,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "created_utc": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def write_acceptance_record(path: str | os.PathLike[str], record: dict[str, object]) -> Path:
    """Write ``record`` to ``path`` atomically (a reader sees the old file or the new one)."""
    return atomic_write_json(path, record)
