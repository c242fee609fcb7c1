"""Acceptance closed forms against a Monte-Carlo simulation of the accept/reject process."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perfmodel import (
    acceptance_rate_from_tokens_per_step,
    accepted_count_distribution,
    accepted_count_distribution_positional,
    estimate_acceptance_rate,
    estimate_position_acceptance,
    expected_tokens_per_step,
    expected_tokens_per_step_positional,
)

STEPS = 20_000  # simulated steps per case
Z = 4.5  # tolerance in standard errors: a false failure has probability ~1e-5 per comparison


def simulate_accepted(position_acceptance: np.ndarray, steps: int, seed: int) -> np.ndarray:
    """k per step: draw proposal i accepted with probability α_i, stop at the first rejection."""
    rng = np.random.default_rng(seed)
    gamma = len(position_acceptance)
    accept = rng.random((steps, gamma)) < np.asarray(position_acceptance)  # (steps, γ)
    # k = length of the run of acceptances from position 1
    return np.cumprod(accept, axis=1).sum(axis=1) if gamma else np.zeros(steps, dtype=int)


def _check_against_simulation(alphas: np.ndarray, closed_tau: float, closed_p: np.ndarray, seed):
    k = simulate_accepted(alphas, STEPS, seed)
    gamma = len(alphas)
    # E[τ]: tolerance from the closed-form variance of τ
    ks = np.arange(gamma + 1)
    var = float((closed_p * (ks + 1.0) ** 2).sum() - closed_tau**2)
    tol = Z * np.sqrt(max(var, 0.0) / STEPS) + 1e-12
    assert abs((k + 1).mean() - closed_tau) <= tol, (alphas, closed_tau, (k + 1).mean(), tol)
    # distribution: each P(k) within Z binomial standard errors
    empirical = np.bincount(k, minlength=gamma + 1) / STEPS
    tol_p = Z * np.sqrt(closed_p * (1 - closed_p) / STEPS) + 1e-12
    assert np.all(np.abs(empirical - closed_p) <= tol_p), (alphas, empirical, closed_p)


@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.8, 1.0])
@pytest.mark.parametrize("gamma", range(11))
def test_scalar_alpha_matches_simulation(alpha, gamma):
    tau = expected_tokens_per_step(alpha, gamma)
    p = accepted_count_distribution(alpha, gamma)
    assert p.shape == (gamma + 1,)
    assert p.sum() == pytest.approx(1.0, abs=1e-12), (alpha, gamma)
    assert (p * (np.arange(gamma + 1) + 1)).sum() == pytest.approx(tau, rel=1e-12)
    _check_against_simulation(np.full(gamma, alpha), tau, p, seed=1000 * gamma + int(alpha * 10))


POSITION_VECTORS = [
    np.array([0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.55, 0.5]),
    np.array([0.3, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9]),
    np.array([1.0, 1.0, 0.8, 0.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.5]),
    np.random.default_rng(7).uniform(0, 1, 10),
]


@pytest.mark.parametrize("which", range(len(POSITION_VECTORS)))
@pytest.mark.parametrize("gamma", [0, 1, 3, 6, 10])
def test_position_acceptance_matches_simulation(which, gamma):
    full = POSITION_VECTORS[which]
    tau = expected_tokens_per_step_positional(full, gamma)  # uses only α_1..α_γ
    p = accepted_count_distribution_positional(full, gamma)
    assert p.sum() == pytest.approx(1.0, abs=1e-12)
    assert (p * (np.arange(gamma + 1) + 1)).sum() == pytest.approx(tau, rel=1e-12)
    _check_against_simulation(full[:gamma], tau, p, seed=17 * which + gamma)


@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.8, 1.0])
@pytest.mark.parametrize("gamma", [0, 1, 5, 10])
def test_constant_vector_equals_scalar(alpha, gamma):
    vector = np.full(max(gamma, 1), alpha)
    assert expected_tokens_per_step_positional(vector, gamma) == pytest.approx(
        expected_tokens_per_step(alpha, gamma), rel=1e-12
    )


def test_exact_values_and_limits():
    assert expected_tokens_per_step(1.0, 7) == 8.0
    assert expected_tokens_per_step(0.0, 7) == 1.0
    assert expected_tokens_per_step(0.5, 0) == 1.0
    assert expected_tokens_per_step(0.8, 4) == pytest.approx(1 + 0.8 + 0.64 + 0.512 + 0.4096)


@pytest.mark.parametrize("eps", [1e-3, 1e-6, 1e-9, 1e-11, 1e-13, 1e-15])
@pytest.mark.parametrize("gamma", [1, 4, 16])
def test_stable_near_alpha_one(eps, gamma):
    alpha = 1.0 - eps
    # Σ α^k has no cancellation; the naive quotient (1 - α^(γ+1))/(1 - α) loses digits here.
    direct = sum(alpha**k for k in range(gamma + 1))
    assert expected_tokens_per_step(alpha, gamma) == pytest.approx(direct, rel=1e-12), (eps, gamma)


def test_vectorised_broadcasting():
    alpha = np.array([[0.2], [0.9]])  # (2, 1)
    gamma = np.array([0, 1, 4])  # (3,)
    out = expected_tokens_per_step(alpha, gamma)
    assert out.shape == (2, 3)
    for i in range(2):
        for j in range(3):
            assert out[i, j] == pytest.approx(expected_tokens_per_step(alpha[i, 0], gamma[j]))
    vectors = np.array([[0.9, 0.8, 0.7], [0.5, 0.5, 0.5]])  # (configs, positions)
    out = expected_tokens_per_step_positional(vectors, np.array([[0], [3]]))
    assert out.shape == (2, 2)
    assert out[1, 1] == pytest.approx(1.875)
    assert accepted_count_distribution([0.1, 0.5, 0.9], 3).shape == (3, 4)


# --- estimators ---------------------------------------------------------------------------------


@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.7, 0.95, 1.0])
@pytest.mark.parametrize("gamma", [1, 5])
def test_mle_recovers_alpha(alpha, gamma):
    k = simulate_accepted(np.full(gamma, alpha), 5_000, seed=int(alpha * 100) + gamma)
    est = estimate_acceptance_rate(k, gamma)
    trials = k.sum() + (k < gamma).sum()  # Bernoulli trials judged
    tol = Z * np.sqrt(alpha * (1 - alpha) / trials) + 1e-12
    assert abs(est - alpha) <= tol, (alpha, gamma, est, tol)


def test_mle_mixed_gamma_trace():
    rng = np.random.default_rng(3)
    alpha = 0.6
    gammas = rng.integers(0, 9, size=8_000)
    # one column per position; positions past a step's γ cannot be accepted
    accept = (rng.random((gammas.size, 8)) < alpha) & (np.arange(8) < gammas[:, None])
    k = np.cumprod(accept, axis=1).sum(axis=1)
    est = estimate_acceptance_rate(k, gammas)
    trials = k.sum() + (k < gammas).sum()
    assert abs(est - alpha) <= Z * np.sqrt(alpha * (1 - alpha) / trials), est


def test_mle_position_acceptance():
    truth = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    k = simulate_accepted(truth, STEPS, seed=11)
    est = estimate_position_acceptance(k, 5)
    reach = np.concatenate([[1.0], np.cumprod(truth)[:-1]]) * STEPS  # expected judged per i
    tol = Z * np.sqrt(truth * (1 - truth) / reach)
    assert np.all(np.abs(est - truth) <= tol), (est, truth, tol)


def test_mle_small_examples():
    # Σk = 10, rejections = 2 (the steps with k < 4)
    assert estimate_acceptance_rate([4, 2, 0, 4], 4) == pytest.approx(10 / 12)
    assert estimate_acceptance_rate([3, 3], 3) == 1.0
    assert estimate_acceptance_rate([0, 0], 3) == 0.0
    # γ = 0 steps carry no information
    assert estimate_acceptance_rate([0, 2, 1], [0, 2, 2]) == pytest.approx(3 / 4)
    rates = estimate_position_acceptance([0, 1, 1], [1, 1, 3])
    assert rates[0] == pytest.approx(2 / 3)
    assert rates[1] == 0.0  # the γ=3 step judged position 2 and rejected it
    assert np.isnan(rates[2])  # nobody reached position 3


# --- α <-> τ ------------------------------------------------------------------------------------


def test_alpha_tau_round_trip_vectorised():
    alpha = np.linspace(0, 1, 101)[:, None]
    gamma = np.arange(1, 11)[None, :]
    tau = expected_tokens_per_step(alpha, gamma)
    back = acceptance_rate_from_tokens_per_step(tau, gamma)
    assert back.shape == (101, 10)
    np.testing.assert_allclose(back, np.broadcast_to(alpha, back.shape), atol=1e-9)
    assert acceptance_rate_from_tokens_per_step(1.0, 3) == pytest.approx(0.0, abs=1e-15)
    assert acceptance_rate_from_tokens_per_step(4.0, 3) == pytest.approx(1.0, abs=1e-15)


@settings(max_examples=60, deadline=None)
@given(
    a=st.floats(0, 1),
    b=st.floats(0, 1),
    gamma=st.integers(0, 40),
)
def test_tau_monotone_and_bounded(a, b, gamma):
    lo, hi = sorted((a, b))
    t_lo, t_hi = expected_tokens_per_step(lo, gamma), expected_tokens_per_step(hi, gamma)
    assert 1.0 <= t_lo <= t_hi * (1 + 1e-12) <= (gamma + 1) * (1 + 1e-12), (lo, hi, gamma)


@settings(max_examples=60, deadline=None)
@given(alpha=st.floats(0, 1), gamma=st.integers(1, 30))
def test_round_trip_property(alpha, gamma):
    tau = expected_tokens_per_step(alpha, gamma)
    back = acceptance_rate_from_tokens_per_step(tau, gamma)
    assert expected_tokens_per_step(back, gamma) == pytest.approx(tau, rel=1e-10, abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(
    vector=st.lists(st.floats(0, 1), min_size=1, max_size=12),
    data=st.data(),
)
def test_positional_distribution_property(vector, data):
    gamma = data.draw(st.integers(0, len(vector)))
    p = accepted_count_distribution_positional(vector, gamma)
    assert np.all(p >= 0) and p.sum() == pytest.approx(1.0, abs=1e-12)
    tau = expected_tokens_per_step_positional(vector, gamma)
    assert 1.0 <= tau <= gamma + 1 + 1e-12


# --- validation ---------------------------------------------------------------------------------

BAD_CALLS = [
    ("alpha>1", lambda: expected_tokens_per_step(1.2, 3)),
    ("alpha<0", lambda: expected_tokens_per_step(-0.1, 3)),
    ("alpha nan", lambda: expected_tokens_per_step(float("nan"), 3)),
    ("alpha array", lambda: expected_tokens_per_step([0.5, 1.5], 3)),
    ("alpha text", lambda: expected_tokens_per_step("high", 3)),
    ("gamma<0", lambda: expected_tokens_per_step(0.5, -1)),
    ("gamma float", lambda: expected_tokens_per_step(0.5, 2.5)),
    ("positional short", lambda: expected_tokens_per_step_positional([0.9, 0.8], 3)),
    ("positional scalar", lambda: expected_tokens_per_step_positional(0.9, 1)),
    ("positional >1", lambda: expected_tokens_per_step_positional([0.9, 1.1], 2)),
    ("distribution short", lambda: accepted_count_distribution_positional([0.9], 2)),
    ("distribution alpha", lambda: accepted_count_distribution(2.0, 2)),
    ("mle empty", lambda: estimate_acceptance_rate([], 3)),
    ("mle k>gamma", lambda: estimate_acceptance_rate([1, 4], 3)),
    ("mle k<0", lambda: estimate_acceptance_rate([-1], 3)),
    ("mle k fraction", lambda: estimate_acceptance_rate([1.5], 3)),
    ("mle gamma length", lambda: estimate_acceptance_rate([1, 2], [3, 3, 3])),
    ("mle no proposals", lambda: estimate_acceptance_rate([0, 0], 0)),
    ("mle alpha_i k>gamma", lambda: estimate_position_acceptance([5], 3)),
    ("tau<1", lambda: acceptance_rate_from_tokens_per_step(0.5, 3)),
    ("tau>gamma+1", lambda: acceptance_rate_from_tokens_per_step(4.5, 3)),
    ("tau gamma 0", lambda: acceptance_rate_from_tokens_per_step(1.0, 0)),
]


@pytest.mark.parametrize("name,call", BAD_CALLS, ids=[n for n, _ in BAD_CALLS])
def test_bad_input_raises_value_error(name, call):
    with pytest.raises(ValueError, match="must"):
        call()


def test_error_message_names_rule_and_value():
    with pytest.raises(ValueError) as info:
        expected_tokens_per_step(1.2, 3)
    assert str(info.value) == "`0 <= acceptance_rate <= 1` must hold, but got acceptance_rate=1.2."


def test_tau_stays_inside_its_bounds_to_the_last_bit():
    # the closed form rounded to 0.9999999999999998 or 1.0000000000000002 at γ = 0 for ~1% of α
    alpha = np.random.default_rng(0).random(100_000)
    for gamma in (0, 1, 7):
        tau = expected_tokens_per_step(alpha, gamma)
        assert tau.min() >= 1.0 and tau.max() <= gamma + 1.0
    assert (expected_tokens_per_step(alpha, 0) == 1.0).all()
