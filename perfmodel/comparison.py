"""The seed paper's comparison in numbers: which draft gives the target more throughput.

Given one target and several drafts, each with its latency and acceptance rate, optimise γ for
each draft and rank them by tokens/s; report how much the best gains over the runner-up.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from perfmodel.throughput import DEFAULT_GAMMA_MAX, speedup_curve

if TYPE_CHECKING:  # pandas is imported when a comparison is made, not with perfmodel
    import pandas as pd

__all__ = ["DraftComparison", "compare_drafts"]


class DraftComparison(NamedTuple):
    """Result of :func:`compare_drafts`.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per draft, best first: ``draft``, ``draft_ms``, ``acceptance_rate``,
        ``latency_ratio`` (c = draft_ms / target_ms), ``optimal_gamma``,
        ``expected_tokens_per_step``, ``step_ms``, ``tokens_per_s``, ``speedup``,
        ``gain_over_next_pct`` (throughput gain over the next row, %; NaN on the last).
    winner : str
        Name of the draft with the most tokens/s.
    runner_up : str
        Name of the second.
    gain_pct : float
        100·(tokens/s of winner / tokens/s of runner-up − 1).
    """

    table: pd.DataFrame
    winner: str
    runner_up: str
    gain_pct: float


def compare_drafts(
    drafts: Mapping[str, tuple[float, float]],
    *,
    target_ms: float,
    verify_ms: float | None = None,
    overhead_ms: float = 0.0,
    batch: int = 1,
    gamma_max: int = DEFAULT_GAMMA_MAX,
) -> DraftComparison:
    """Rank drafts for one target by speculative throughput, each at its own best γ.

    Parameters
    ----------
    drafts : Mapping[str, tuple[float, float]]
        Draft name -> (draft_ms, acceptance_rate): T_draft(b, n, 1) in ms and α. At least two.
    target_ms : float
        T_target(b, n, 1), ms.
    verify_ms : float, optional
        T_target(b, n, γ + 1), ms; default ``target_ms``.
    overhead_ms : float
        Per-step overhead, ms.
    batch : int
        b, rows decoded together.
    gamma_max : int
        Largest γ tried.

    Returns
    -------
    DraftComparison
        The ranked table and the winner's gain over the runner-up in percent.

    Notes
    -----
    Each draft is scored with :func:`perfmodel.speedup_curve`; γ = 0 is included, so a draft
    that never pays off shows optimal γ 0 and speedup 1.

    References
    ----------
    Yan, Agarwal, Venkataraman, "Decoding Speculative Decoding", 2024: a shallow, wide draft
    beats a deeper one of similar size because its latency is lower at a similar α.

    Examples
    --------
    >>> cmp = compare_drafts({"deep": (6.0, 0.80), "wide": (2.5, 0.75)}, target_ms=40.0)
    >>> cmp.winner, round(cmp.gain_pct, 1)
    ('wide', 19.6)
    """
    import pandas as pd

    if len(drafts) < 2:
        raise ValueError(
            f"`len(drafts) >= 2` must hold to compare, but got {len(drafts)} draft(s)."
        )
    names = list(drafts)
    draft_ms = np.array([float(drafts[n][0]) for n in names])
    alpha = np.array([float(drafts[n][1]) for n in names])
    curve = speedup_curve(
        acceptance_rate=alpha,
        draft_ms=draft_ms,
        target_ms=target_ms,
        verify_ms=verify_ms,
        overhead_ms=overhead_ms,
        batch=batch,
        gamma_max=gamma_max,
    )
    best = curve["optimal_gamma"]
    rows = np.arange(len(names))
    table = pd.DataFrame(
        {
            "draft": names,
            "draft_ms": draft_ms,
            "acceptance_rate": alpha,
            "latency_ratio": draft_ms / float(target_ms),
            "optimal_gamma": best,
            "expected_tokens_per_step": curve["expected_tokens_per_step"][rows, best],
            "step_ms": curve["step_ms"][rows, best],
            "tokens_per_s": curve["optimal_tokens_per_s"],
            "speedup": curve["optimal_speedup"],
        }
    )
    table = table.sort_values("tokens_per_s", ascending=False, kind="stable").reset_index(drop=True)
    tps = table["tokens_per_s"].to_numpy()
    table["gain_over_next_pct"] = np.append(100.0 * (tps[:-1] / tps[1:] - 1.0), np.nan)
    return DraftComparison(
        table=table,
        winner=str(table["draft"].iloc[0]),
        runner_up=str(table["draft"].iloc[1]),
        gain_pct=float(table["gain_over_next_pct"].iloc[0]),
    )
