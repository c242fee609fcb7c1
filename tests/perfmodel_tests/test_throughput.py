"""Step time, throughput, speedup curve, break-even α and the reduction to Leviathan et al."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perfmodel import (
    FixedLatency,
    LatencyFn,
    accepted_count_distribution,
    break_even_acceptance_rate,
    expected_tokens_per_step,
    leviathan_walltime_factor,
    speculative_throughput,
    speedup_curve,
    step_time_breakdown,
)


def test_breakdown_plain_numbers():
    parts = step_time_breakdown(4, draft_ms=2.0, target_ms=20.0, verify_ms=25.0, overhead_ms=1.5)
    assert parts == {"draft_ms": 8.0, "verify_ms": 25.0, "overhead_ms": 1.5, "step_ms": 34.5}
    # γ = 0 is plain decoding: one target pass at q = 1, no overhead
    parts = step_time_breakdown(0, draft_ms=2.0, target_ms=20.0, verify_ms=25.0, overhead_ms=1.5)
    assert parts == {"draft_ms": 0.0, "verify_ms": 20.0, "overhead_ms": 0.0, "step_ms": 20.0}


def test_throughput_values_and_batch():
    r = speculative_throughput(4, acceptance_rate=0.8, draft_ms=2.0, target_ms=20.0, batch=8)
    tau = expected_tokens_per_step(0.8, 4)
    assert r["expected_tokens_per_step"] == pytest.approx(tau)
    assert r["step_ms"] == pytest.approx(28.0)
    assert r["tokens_per_s"] == pytest.approx(1000 * 8 * tau / 28.0)  # all 8 rows count
    assert r["baseline_tokens_per_s"] == pytest.approx(1000 * 8 / 20.0)
    assert r["speedup"] == pytest.approx(tau * 20.0 / 28.0)
    assert set(r) == {
        "expected_tokens_per_step",
        "draft_ms",
        "verify_ms",
        "overhead_ms",
        "step_ms",
        "tokens_per_s",
        "baseline_tokens_per_s",
        "speedup",
    }


@pytest.mark.parametrize("gamma", range(11))
@pytest.mark.parametrize("c", [0.0, 0.01, 0.1, 0.5, 1.0])
def test_reduces_to_leviathan_walltime_factor(gamma, c):
    alpha = np.linspace(0, 1, 21)
    target_ms = 30.0
    ours = speculative_throughput(
        gamma,
        acceptance_rate=alpha,
        draft_ms=max(c * target_ms, 1e-300),  # c = 0: a free draft (latencies must be > 0)
        target_ms=target_ms,  # T_verify = T_target, b = 1, no overhead
    )["speedup"]
    # Leviathan et al. 2023, Theorem 3.8: (1 - α^(γ+1)) / ((1 - α)(γc + 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        closed = np.where(
            alpha < 1, (1 - alpha ** (gamma + 1)) / (1 - alpha) / (gamma * c + 1), 0.0
        )
    closed = np.where(alpha == 1, (gamma + 1) / (gamma * c + 1), closed)
    np.testing.assert_allclose(ours, closed, rtol=1e-10, err_msg=f"gamma={gamma}, c={c}")
    np.testing.assert_allclose(
        leviathan_walltime_factor(alpha, gamma, c), closed, rtol=1e-10, err_msg=f"{gamma=} {c=}"
    )


def test_optimal_gamma_grows_with_alpha_and_shrinks_with_c():
    # Leviathan et al. 2023, Figure 3: the optimal γ rises with α and falls as the draft gets
    # relatively slower (larger c).
    alpha = np.linspace(0.05, 0.95, 48)[:, None]  # (α, 1)
    c = np.array([0.01, 0.02, 0.05, 0.1, 0.2, 0.4])[None, :]  # (1, c)
    curve = speedup_curve(acceptance_rate=alpha, draft_ms=c * 10.0, target_ms=10.0, gamma_max=80)
    best = curve["optimal_gamma"]
    assert best.shape == (48, 6)
    assert best.max() < 80, "gamma_max must not clip the optimum here"
    assert np.all(np.diff(best, axis=0) >= 0), "optimal γ must not fall as α rises"
    assert np.all(np.diff(best, axis=1) <= 0), "optimal γ must not rise as c rises"
    assert best[-1, 0] > best[0, 0] and best[-1, 0] > best[-1, -1]
    # the curve's optimum is the best of every γ, and never below plain decoding
    assert np.all(curve["optimal_speedup"] >= 1.0)
    np.testing.assert_allclose(curve["optimal_speedup"], curve["speedup"].max(axis=-1))
    np.testing.assert_allclose(curve["speedup"][..., 0], 1.0)


def test_curve_plain_numbers_verify_constant():
    curve = speedup_curve(acceptance_rate=0.7, draft_ms=1.0, target_ms=20.0, verify_ms=22.0)
    assert curve["gamma"].tolist() == list(range(17))
    assert curve["verify_ms"][0] == 20.0  # γ = 0 is a plain decoding step
    assert np.all(curve["verify_ms"][1:] == 22.0)
    assert curve["speedup"][0] == 1.0


def test_latency_function_is_asked_at_gamma_plus_one():
    calls = []

    def target(batch, context, query):
        calls.append(np.asarray(query).copy())
        return 20.0 + 0.5 * np.asarray(query) + 0.001 * np.asarray(context) * np.asarray(batch)

    def draft(batch, context, query):
        return np.full(np.broadcast(batch, context, query).shape, 2.0)

    assert isinstance(target, LatencyFn) and isinstance(FixedLatency(1.0), LatencyFn)
    curve = speedup_curve(
        acceptance_rate=0.8, draft_ms=draft, target_ms=target, batch=2, context=1000, gamma_max=8
    )
    g = np.arange(9)
    np.testing.assert_allclose(curve["verify_ms"], 20.0 + 0.5 * (g + 1) + 2.0)
    np.testing.assert_allclose(curve["baseline_tokens_per_s"], 1000 * 2 / (20.0 + 0.5 + 2.0))
    np.testing.assert_allclose(curve["speedup"][0], 1.0)
    assert any(np.array_equal(q, g + 1) for q in calls)
    with pytest.raises(ValueError, match="verify_ms"):
        speculative_throughput(
            2, acceptance_rate=0.5, draft_ms=1.0, target_ms=target, verify_ms=3.0
        )


def test_latency_function_returning_nonsense_is_rejected():
    with pytest.raises(ValueError, match="latency function"):
        speculative_throughput(
            2, acceptance_rate=0.5, draft_ms=lambda b, n, q: -1.0, target_ms=10.0
        )


def test_overhead_callable_and_extra_draft_calls():
    r = step_time_breakdown(
        np.arange(4),
        draft_ms=2.0,
        target_ms=20.0,
        overhead_ms=lambda g: 0.5 * g,
        extra_draft_calls=1,
    )
    np.testing.assert_allclose(r["overhead_ms"], [0.0, 0.5, 1.0, 1.5])
    np.testing.assert_allclose(r["draft_ms"], [0.0, 4.0, 6.0, 8.0])  # γ + 1 passes when γ >= 1
    # an expected catch-up pass only after full acceptance: e = P(k = γ) = α^γ
    alpha, gamma = 0.8, 4
    e = accepted_count_distribution(alpha, gamma)[-1]
    r = step_time_breakdown(gamma, draft_ms=2.0, target_ms=20.0, extra_draft_calls=e)
    assert r["draft_ms"] == pytest.approx((gamma + alpha**gamma) * 2.0)


def test_position_acceptance_curve_limits_gamma_max():
    vector = [0.9, 0.8, 0.7, 0.6]
    curve = speedup_curve(position_acceptance=vector, draft_ms=2.0, target_ms=20.0)
    assert curve["gamma"].tolist() == [0, 1, 2, 3, 4]
    r = speculative_throughput(3, position_acceptance=vector, draft_ms=2.0, target_ms=20.0)
    assert r["speedup"] == pytest.approx(curve["speedup"][3])
    with pytest.raises(ValueError, match="len"):
        speedup_curve(position_acceptance=vector, draft_ms=2.0, target_ms=20.0, gamma_max=5)
    # several vectors at once: leading axes are configurations
    many = speedup_curve(position_acceptance=[vector, [0.5] * 4], draft_ms=2.0, target_ms=20.0)
    assert many["speedup"].shape == (2, 5) and many["optimal_gamma"].shape == (2,)


# --- break-even -----------------------------------------------------------------------------------


def test_break_even_gamma_one_is_c():
    # γ = 1: E[τ] = 1 + α >= c + 1  <=>  α >= c (Leviathan et al. 2023, Corollary 3.9)
    c = np.array([0.0, 0.05, 0.3, 0.99])
    np.testing.assert_allclose(break_even_acceptance_rate(c, 1), c, atol=1e-12)


@pytest.mark.parametrize("gamma", [1, 2, 4, 8])
@pytest.mark.parametrize("c", [0.02, 0.1, 0.3])
def test_break_even_speedup_is_one(gamma, c):
    alpha = break_even_acceptance_rate(c, gamma, verify_ratio=1.1, overhead_ratio=0.05)
    kw = dict(draft_ms=c * 10.0, target_ms=10.0, verify_ms=11.0, overhead_ms=0.5)
    at = speculative_throughput(gamma, acceptance_rate=alpha, **kw)["speedup"]
    assert at == pytest.approx(1.0, rel=1e-9), (gamma, c, alpha)
    below = speculative_throughput(gamma, acceptance_rate=max(alpha - 1e-3, 0), **kw)["speedup"]
    assert below < 1.0


def test_break_even_edges():
    assert np.isnan(break_even_acceptance_rate(2.0, 1))  # even α = 1 cannot pay
    assert break_even_acceptance_rate(0.0, 3) == 0.0
    out = break_even_acceptance_rate(np.array([0.1, 2.0]), np.array([[1], [4]]))
    assert out.shape == (2, 2)


@settings(max_examples=40, deadline=None)
@given(
    alpha=st.floats(0, 1),
    gamma=st.integers(0, 20),
    c=st.floats(0.001, 2.0),
    batch=st.integers(1, 64),
)
def test_speedup_matches_ratio_and_is_positive(alpha, gamma, c, batch):
    r = speculative_throughput(
        gamma, acceptance_rate=alpha, draft_ms=c * 10.0, target_ms=10.0, batch=batch
    )
    assert r["speedup"] > 0
    assert r["speedup"] == pytest.approx(r["tokens_per_s"] / r["baseline_tokens_per_s"])
    assert r["speedup"] == pytest.approx(leviathan_walltime_factor(alpha, gamma, c), rel=1e-9)


# --- validation -----------------------------------------------------------------------------------

OK = dict(acceptance_rate=0.5, draft_ms=1.0, target_ms=10.0)
BAD = [
    ("alpha>1", dict(OK, acceptance_rate=1.2), 2),
    ("gamma<0", OK, -1),
    ("draft 0", dict(OK, draft_ms=0.0), 2),
    ("target<0", dict(OK, target_ms=-1.0), 2),
    ("target inf", dict(OK, target_ms=float("inf")), 2),
    ("verify 0", dict(OK, verify_ms=0.0), 2),
    ("overhead<0", dict(OK, overhead_ms=-1.0), 2),
    ("batch 0", dict(OK, batch=0), 2),
    ("batch fraction", dict(OK, batch=1.5), 2),
    ("context<0", dict(OK, context=-1), 2),
    ("extra<0", dict(OK, extra_draft_calls=-1), 2),
    ("both acceptances", dict(OK, position_acceptance=[0.5, 0.5]), 2),
    ("no acceptance", dict(draft_ms=1.0, target_ms=10.0), 2),
    ("vector short", dict(draft_ms=1.0, target_ms=10.0, position_acceptance=[0.5]), 2),
]


@pytest.mark.parametrize("name,kwargs,gamma", BAD, ids=[b[0] for b in BAD])
def test_bad_input_raises_value_error(name, kwargs, gamma):
    with pytest.raises(ValueError, match="must"):
        speculative_throughput(gamma, **kwargs)


BAD_OTHER = [
    ("curve gamma_max<0", lambda: speedup_curve(**OK, gamma_max=-1)),
    ("levi c<0", lambda: leviathan_walltime_factor(0.5, 2, -0.1)),
    ("levi alpha", lambda: leviathan_walltime_factor(1.5, 2, 0.1)),
    ("break-even gamma 0", lambda: break_even_acceptance_rate(0.1, 0)),
    ("break-even c<0", lambda: break_even_acceptance_rate(-0.1, 2)),
    ("break-even verify 0", lambda: break_even_acceptance_rate(0.1, 2, verify_ratio=0)),
    ("fixed latency 0", lambda: FixedLatency(0.0)),
]


@pytest.mark.parametrize("name,call", BAD_OTHER, ids=[b[0] for b in BAD_OTHER])
def test_bad_input_other_functions(name, call):
    with pytest.raises(ValueError, match="must"):
        call()
