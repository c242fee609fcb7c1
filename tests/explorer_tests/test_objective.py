"""Objective and grid: the same numbers as perfmodel called directly; constraints; Pareto front."""

from __future__ import annotations

import numpy as np
import optuna
import pytest

from explorer.grid import grid_search, pareto_front
from explorer.objective import Objective, predict_configs
from explorer.space import DraftConfig
from perfmodel.roofline import roofline
from perfmodel.throughput import speculative_throughput

from .search_support import TINY_SPACE, problem

PARAMS = {
    "depth": 2,
    "hidden": 512,
    "head_dim": 64,
    "kv_group": 2,
    "ffn_multiplier": 4.0,
    "gamma": 4,
}


@pytest.mark.parametrize("alpha", [0.6, None], ids=["fixed-alpha", "acceptance-model"])
def test_objective_equals_perfmodel_called_directly(alpha):
    p = problem(alpha=alpha, batch=2, context=256, overhead_ms=0.05)
    trial = optuna.trial.FixedTrial(PARAMS)
    value = Objective(p, TINY_SPACE)(trial)
    # by hand: the draft is 2 layers of width 512, 8 heads of 64, 4 KV heads, ffn 2048
    draft = DraftConfig(depth=2, hidden=512, ffn=2048, heads=8, kv_heads=4, gamma=4).arch(p.target)
    hw = p.draft_latency.hardware
    draft_ms = roofline(draft, hw, batch=2, context=256, query=1)["lower_bound_ms"] + 2 * 0.03

    def target_ms(b, n, q):
        return (
            np.asarray(roofline(p.target, hw, batch=b, context=n, query=q)["lower_bound_ms"])
            + 32 * 0.03
        )

    a = alpha
    if a is None:
        a = p.acceptance.predict(
            params=draft.param_count,
            depth=2,
            hidden=512,
            training_tokens=p.training_tokens,
            distilled=1.0,
        ).acceptance_rate[0]
    direct = speculative_throughput(
        4,
        acceptance_rate=a,
        draft_ms=draft_ms,
        target_ms=target_ms,
        overhead_ms=0.05,
        batch=2,
        context=256,
    )
    assert value == pytest.approx(direct["tokens_per_s"], rel=1e-12), (alpha, value, direct)
    assert trial.user_attrs["speedup"] == pytest.approx(direct["speedup"], rel=1e-12)
    assert trial.user_attrs["params"] == draft.param_count


def test_multi_mode_returns_cost_and_constraints_are_set():
    p = problem(max_params=2e7, max_draft_ms=0.05)
    trial = optuna.trial.FixedTrial(PARAMS)
    tokens, cost = Objective(p, TINY_SPACE, mode="multi")(trial)
    assert cost == trial.user_attrs["params"] and tokens == trial.user_attrs["tokens_per_s"]
    c = trial.constraints
    assert set(c) == {"params_over_budget", "draft_ms_over_max"}
    assert c["params_over_budget"] == pytest.approx(trial.user_attrs["params"] / 2e7 - 1)
    assert c["params_over_budget"] > 0  # a 2x512 draft with a 32000-row vocab exceeds 2e7


def test_grid_best_is_the_maximum_and_respects_budget():
    p = problem(alpha=None, max_params=8e7)
    g = grid_search(p, TINY_SPACE)
    assert len(g.table) == len(TINY_SPACE.enumerate())
    feasible = g.table[g.table["params"] <= 8e7]
    assert g.best["tokens_per_s"] == feasible["tokens_per_s"].max()
    assert g.best["params"] <= 8e7
    # grid rows agree with single-configuration predictions
    one = predict_configs(
        p, g.table.iloc[[7]][["depth", "hidden", "ffn", "heads", "kv_heads", "gamma"]]
    )
    assert one["tokens_per_s"].iloc[0] == pytest.approx(g.table["tokens_per_s"].iloc[7], rel=1e-12)


def test_pareto_front_is_non_dominated():
    p = problem(alpha=None)
    g = grid_search(p, TINY_SPACE)
    front = g.pareto
    assert front["cost"].is_monotonic_increasing and front["tokens_per_s"].is_monotonic_increasing
    t = g.table
    for _, r in front.iterrows():
        dominated = (t["cost"] <= r["cost"]) & (t["tokens_per_s"] > r["tokens_per_s"])
        assert not dominated.any(), r[["cost", "tokens_per_s"]].to_dict()
    assert pareto_front(t.head(0)).empty
