"""The seed paper's comparison: which draft gives more throughput, and by how much."""

from __future__ import annotations

import pytest

from perfmodel import compare_drafts, speedup_curve


def test_shallow_wide_draft_wins_at_similar_alpha():
    cmp = compare_drafts({"deep": (6.0, 0.80), "wide": (2.5, 0.75)}, target_ms=40.0)
    assert cmp.winner == "wide" and cmp.runner_up == "deep"
    table = cmp.table
    assert list(table["draft"]) == ["wide", "deep"]
    wide = speedup_curve(acceptance_rate=0.75, draft_ms=2.5, target_ms=40.0)
    deep = speedup_curve(acceptance_rate=0.80, draft_ms=6.0, target_ms=40.0)
    assert table["tokens_per_s"][0] == pytest.approx(float(wide["optimal_tokens_per_s"]))
    assert table["optimal_gamma"][1] == int(deep["optimal_gamma"])
    gain = 100 * (float(wide["optimal_tokens_per_s"]) / float(deep["optimal_tokens_per_s"]) - 1)
    assert cmp.gain_pct == pytest.approx(gain)
    assert table["latency_ratio"][0] == pytest.approx(2.5 / 40.0)


def test_needs_two_drafts_and_valid_inputs():
    with pytest.raises(ValueError, match="must"):
        compare_drafts({"only": (1.0, 0.5)}, target_ms=10.0)
    with pytest.raises(ValueError, match="must"):
        compare_drafts({"a": (1.0, 1.5), "b": (1.0, 0.5)}, target_ms=10.0)
