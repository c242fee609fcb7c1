"""Small, cheap search problems shared by the explorer tests (roofline latency, fixed or fitted α)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from explorer.objective import RooflineLatency, SearchProblem
from explorer.space import SearchSpace
from perfmodel.acceptance_model import AcceptanceModel, FixedAcceptance
from perfmodel.hardware import get_hardware
from perfmodel.presets import get_preset

TINY_SPACE = SearchSpace(
    depth_min=1,
    depth_max=4,
    hidden_min=256,
    hidden_max=1024,
    hidden_step=256,
    head_dims=(64, 128),
    kv_group_sizes=(1, 2),
    ffn_multipliers=(2.0, 4.0),
    gamma_min=1,
    gamma_max=6,
)


def synthetic_drafts(n: int = 10, seed: int = 0, *, vocab: int = 32000) -> pd.DataFrame:
    """Drafts of a target (llama-7b's vocabulary by default) whose α follows a known law in
    size and tokens."""
    rng = np.random.default_rng(seed)
    depth = rng.integers(1, 9, n)
    hidden = rng.choice([256, 512, 1024, 2048], n)
    tokens = rng.choice([1e9, 4e9], n)
    params = 12 * depth * hidden**2 + 2 * vocab * hidden
    alpha = 1 / (1 + np.exp(-(-5 + 0.35 * np.log(params) + 0.1 * np.log(tokens / 1e9))))
    return pd.DataFrame(
        dict(
            depth=depth,
            hidden=hidden,
            params=params,
            training_tokens=tokens,
            distilled=True,
            acceptance_rate=alpha,
        )
    )


def problem(*, alpha: float | None = 0.8, **kwargs) -> SearchProblem:
    target = get_preset("llama-7b")
    latency = RooflineLatency(get_hardware("H200"), layer_launch_ms=0.03)
    acceptance = (
        FixedAcceptance(acceptance_rate=alpha)
        if alpha is not None
        else AcceptanceModel.fit(synthetic_drafts(), restarts=1)
    )
    return SearchProblem(
        target=target,
        target_latency=latency(target),
        draft_latency=latency,
        acceptance=acceptance,
        **kwargs,
    )
