"""Validation's measured side: per-pass times and tokens/s over the steps that fed no prompt."""

from __future__ import annotations

import pytest

from explorer.validate_run import _measure
from profiler.engine_trace import GenerationResult, StepTrace


def _result(gamma: int, n_out: int, steps: list[StepTrace]) -> GenerationResult:
    return GenerationResult(
        gamma=gamma,
        prompt_ids=((5, 6, 7),),
        output_ids=(tuple(range(n_out)),),
        steps=tuple(steps),
        total_ms=sum(s.step_ms for s in steps) + 3.0,
    )


def _step(k, draft_ms, verify_ms, *, prompt=0, context=0):
    return StepTrace(
        rows=(0,),
        accepted=(k,),
        draft_ms=draft_ms,
        verify_ms=verify_ms,
        overhead_ms=1.0,
        context_columns=context,
        prompt_tokens=prompt,
    )


# γ = 2, 7 new tokens: the prompt step emits 3 (k = 2) and is slow; the steady steps emit 2 and
# 2 (k = 2 capped at the 2 tokens left)
SPEC = _result(
    2,
    7,
    [
        _step(2, 50.0, 100.0, prompt=2),
        _step(1, 2.0, 8.0, context=4),
        _step(2, 2.0, 8.0, context=6),
    ],
)
# plain decoding, 3 new tokens: one per step
BASE = _result(0, 3, [_step(0, 0.0, 90.0, prompt=2), _step(0, 0.0, 7.0), _step(0, 0.0, 7.0)])
CLOCK = {"spec_wall_s": 1.0, "spec_cpu_s": 0.5, "base_wall_s": 1.0, "base_cpu_s": 1.0}


def test_steady_counts_leave_out_the_prompt_step():
    assert SPEC.steady_new_tokens == 4 and BASE.steady_new_tokens == 2
    assert SPEC.steady_ms == pytest.approx(22.0) and BASE.steady_ms == pytest.approx(16.0)
    assert SPEC.steady_tokens_per_s == pytest.approx(4 / 0.022)


def test_measure_uses_the_steady_steps():
    m = _measure(SPEC, BASE, CLOCK, basis="wall")
    assert m["measured_steps"] == "steady"
    assert m["run_steady_steps"] == 2 and m["run_prompt_steps"] == 1
    assert m["measured_draft_pass_ms"] == pytest.approx(4.0 / (2 * 2))
    assert m["measured_target_ms"] == pytest.approx(7.0)
    assert m["measured_verify_ms"] == pytest.approx(8.0)
    assert m["measured_overhead_ms"] == pytest.approx(1.0)
    assert m["measured_prompt_step_ms"] == pytest.approx(151.0)
    assert m["measured_tokens_per_s"] == pytest.approx(4 / 0.022)
    assert m["measured_baseline_tokens_per_s"] == pytest.approx(2 / 0.016)
    assert m["measured_speedup"] == pytest.approx((4 / 0.022) / (2 / 0.016))
    # every step, the prompt pass included
    assert m["measured_tokens_per_s_with_prompt"] == pytest.approx(7 / 0.173)
    assert m["measured_baseline_tokens_per_s_with_prompt"] == pytest.approx(3 / 0.107)
    assert m["measured_speedup_with_prompt"] == pytest.approx((7 / 0.173) / (3 / 0.107))
    assert m["run_context_mean"] == pytest.approx(5.0)


def test_measure_on_process_cpu_time_scales_by_each_runs_ratio():
    m = _measure(SPEC, BASE, CLOCK, basis="cpu")
    assert m["measured_draft_pass_ms"] == pytest.approx(0.5)  # spec ran at cpu/wall = 0.5
    assert m["measured_target_ms"] == pytest.approx(7.0)  # base at 1.0
    assert m["measured_tokens_per_s"] == pytest.approx(2 * 4 / 0.022)
    assert m["measured_overhead_ms"] == pytest.approx(0.5)
    assert m["wall_tokens_per_s"] == pytest.approx(4 / 0.022)


def test_measure_falls_back_to_every_step_without_a_steady_one():
    spec = _result(2, 3, [_step(2, 50.0, 100.0, prompt=2)])
    m = _measure(spec, BASE, CLOCK, basis="wall")
    assert m["measured_steps"] == "all" and m["run_steady_steps"] == 0
    assert m["measured_tokens_per_s"] == pytest.approx(spec.decode_tokens_per_s)
    assert m["measured_draft_pass_ms"] == pytest.approx(25.0)
    assert m["measured_target_ms"] == pytest.approx(7.0)  # the baseline had steady steps
