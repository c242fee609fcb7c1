"""Serving recommendation: best γ per batch size, where speculation stops paying, files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from explorer.serving import recommend_serving, write_serving
from explorer.space import DraftConfig
from perfmodel.latency_fn import FixedLatency
from perfmodel.throughput import speedup_curve

from .search_support import problem

DRAFT = DraftConfig(depth=2, hidden=512, ffn=2048, heads=8, kv_heads=8, gamma=4)


def test_best_gamma_shrinks_with_batch_and_matches_perfmodel(tmp_path):
    p = problem(alpha=0.8, context=0)
    rec = recommend_serving(p, DRAFT, batches=(1, 8, 64, 512, 8192))
    g = rec.table["gamma"].to_numpy()
    assert (np.diff(g) <= 0).all(), g
    assert g[0] >= 1 and g[-1] == 0, g  # memory-bound at b=1; compute-bound at b=8192
    assert rec.disable_above_batch == int(rec.table["batch"][g > 0].max())
    # one row by hand through perfmodel
    arch = DRAFT.arch(p.target)
    c = speedup_curve(
        acceptance_rate=0.8,
        draft_ms=p.draft_latency(arch),
        target_ms=p.target_latency,
        batch=64,
        context=0,
    )
    row = rec.table.set_index("batch").loc[64]
    assert row["gamma"] == int(c["optimal_gamma"]) and row["speedup"] == pytest.approx(
        float(c["optimal_speedup"])
    )
    paths = write_serving(rec, tmp_path)
    data = json.loads(paths["json"].read_text())
    assert data["gamma_by_batch_size"]["1"] == int(g[0])
    assert data["speculative_disable_by_batch_size"] == rec.disable_above_batch
    assert paths["csv"].read_text().splitlines()[0].startswith("batch,gamma,speedup")


def test_never_pays_gives_none():
    p = problem(alpha=0.0)
    p = type(p)(
        **{
            **p.__dict__,
            "target_latency": FixedLatency(1.0),
            "draft_latency": lambda arch: FixedLatency(0.5),
        }
    )
    rec = recommend_serving(p, DRAFT, batches=(1, 2))
    assert (rec.table["gamma"] == 0).all() and rec.disable_above_batch is None
