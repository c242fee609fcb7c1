"""Serving recommendation for a chosen draft: the best γ per batch size, and where to stop.

Speculation pays while the target is memory-bound; as the batch grows the verification pass
over b·(γ + 1) tokens costs more than b tokens of plain decoding saves, and beyond some batch
size the best γ is 0 (plain decoding). :func:`recommend_serving` gives, for each batch size, the
γ that maximises predicted tokens/s (γ = 0 when speculation does not pay) and the batch size
beyond which speculation stops paying; :func:`write_serving` writes it as CSV and JSON
(atomically) in the shape a serving engine's per-batch-size draft-length setting takes: a map
``{batch_size: num_speculative_tokens}`` plus ``speculative_disable_by_batch_size`` (vLLM's name
for "disable speculation when more requests than this are running").
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from explorer.objective import SearchProblem
from explorer.space import DraftConfig
from perfmodel.atomic import atomic_write_json, atomic_write_text
from perfmodel.throughput import speedup_curve

__all__ = ["DEFAULT_BATCHES", "ServingRecommendation", "recommend_serving", "write_serving"]

DEFAULT_BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256)


@dataclass(frozen=True)
class ServingRecommendation:
    """Best γ per batch size for one draft.

    Attributes
    ----------
    draft : DraftConfig
        The draft (its ``gamma`` is the one proposed at the search's batch size).
    table : DataFrame
        One row per batch size: ``batch``, ``gamma`` (best, 0 = do not speculate), ``speedup``,
        ``tokens_per_s``, ``baseline_tokens_per_s``, ``step_ms``, ``expected_tokens_per_step``.
    disable_above_batch : int or None
        Largest batch size of the table, counting up from the smallest, at which speculation
        still pays; speculation should be off above it. None when it never pays; equal to the
        largest batch listed when it pays at every listed size.
    acceptance_rate : float
        α used.
    context : int
        n at which latencies were taken.
    """

    draft: DraftConfig
    table: pd.DataFrame
    disable_above_batch: int | None
    acceptance_rate: float
    context: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "draft": {**self.draft.to_dict(), "name": self.draft.name},
            "acceptance_rate": self.acceptance_rate,
            "context": self.context,
            "gamma_by_batch_size": {
                str(int(b)): int(g)
                for b, g in zip(self.table["batch"], self.table["gamma"], strict=True)
            },
            "speculative_disable_by_batch_size": self.disable_above_batch,
            "rows": [
                {k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()}
                for r in self.table.to_dict("records")
            ],
        }


def recommend_serving(
    problem: SearchProblem,
    draft: DraftConfig,
    *,
    batches: Sequence[int] = DEFAULT_BATCHES,
    gamma_max: int = 16,
) -> ServingRecommendation:
    """Best γ at each batch size for ``draft`` against ``problem``'s target.

    Parameters
    ----------
    problem : SearchProblem
        Target, latencies, acceptance source; its ``batch`` is ignored (the batches here are).
    draft : DraftConfig
        The chosen draft.
    batches : sequence of int
        Batch sizes, >= 1.
    gamma_max : int
        Largest γ considered, >= 1.

    Returns
    -------
    ServingRecommendation

    Notes
    -----
    For each b, :func:`perfmodel.speedup_curve` over γ = 0..γ_max with the draft's and the
    target's latency functions at (b, n); the best γ maximises b·E[τ] / T_step(γ), and γ = 0
    (speedup 1) wins when no γ beats plain decoding.
    """
    b = np.asarray(sorted(set(int(x) for x in batches)))
    if b.size == 0 or (b < 1).any():
        raise ValueError(f"`batches` must be integers >= 1, but got batches={list(batches)}.")
    if gamma_max < 1:
        raise ValueError(f"`gamma_max >= 1` must hold, but got gamma_max={gamma_max}.")
    arch = draft.arch(problem.target)
    pred = problem.acceptance.predict(
        params=[arch.param_count],
        depth=[draft.depth],
        hidden=[draft.hidden],
        training_tokens=[problem.training_tokens or 1.0],
        distilled=[float(problem.distilled)],
    )
    alpha = float(pred.acceptance_rate[0])
    kwargs: dict[str, Any] = {}
    if pred.position_acceptance is not None:
        pos = pred.position_acceptance[0]
        if pos.size < gamma_max:
            pos = np.concatenate([pos, np.repeat(pos[-1:], gamma_max - pos.size)])
        kwargs["position_acceptance"] = np.broadcast_to(pos, (b.size, pos.size))
    else:
        kwargs["acceptance_rate"] = np.full(b.size, alpha)
    curve = speedup_curve(
        draft_ms=problem.draft_latency(arch),
        target_ms=problem.target_latency,
        overhead_ms=problem.overhead_ms,
        batch=b,
        context=problem.context,
        gamma_max=gamma_max,
        extra_draft_calls=problem.extra_draft_calls,
        **kwargs,
    )
    best = np.asarray(curve["optimal_gamma"])
    pick = best[:, None]

    def at_best(key: str) -> np.ndarray:
        return np.take_along_axis(np.asarray(curve[key]), pick, -1)[:, 0]

    table = pd.DataFrame(
        {
            "batch": b,
            "gamma": best,
            "speedup": at_best("speedup"),
            "tokens_per_s": at_best("tokens_per_s"),
            "baseline_tokens_per_s": at_best("baseline_tokens_per_s"),
            "step_ms": at_best("step_ms"),
            "expected_tokens_per_step": at_best("expected_tokens_per_step"),
        }
    )
    pays = table["gamma"].to_numpy() > 0
    disable_above = None
    if pays[0]:
        stop = np.flatnonzero(~pays)
        disable_above = int(b[stop[0] - 1]) if stop.size else int(b[-1])
    return ServingRecommendation(
        draft=draft,
        table=table,
        disable_above_batch=disable_above,
        acceptance_rate=alpha,
        context=problem.context,
    )


def write_serving(rec: ServingRecommendation, out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Write ``serving.csv`` and ``serving.json`` under ``out_dir`` (atomically); return paths."""
    out = Path(out_dir)
    csv_path = atomic_write_text(out / "serving.csv", rec.table.to_csv(index=False))
    json_path = atomic_write_json(out / "serving.json", rec.to_dict())
    return {"csv": csv_path, "json": json_path}
