"""Acceptance model: tokens per speculative step from α or α_i, its distribution, and estimators.

Definitions follow DESIGN.md. A step proposes γ (``gamma``) draft tokens; k of them are accepted
(k in 0..γ) and the target adds one token, so a step emits k + 1 tokens. α (``acceptance_rate``)
is the probability that a proposal is accepted given that all before it in the step were; α_i
(``position_acceptance``) is the same probability for proposal i alone. τ is the number of tokens
a step emits; ``expected_tokens_per_step`` is E[τ] (the "mean accepted length", in [1, γ+1]).

Every function accepts numpy arrays and broadcasts, and raises ``ValueError`` naming the rule and
the value on bad input.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "acceptance_rate_from_tokens_per_step",
    "accepted_count_distribution",
    "accepted_count_distribution_positional",
    "estimate_acceptance_rate",
    "estimate_position_acceptance",
    "expected_tokens_per_step",
    "expected_tokens_per_step_positional",
]

# Below this distance from α = 1 the closed form is replaced by its limit γ + 1. The
# expm1/log1p form below keeps full relative precision down to ~1e-15; the switch only
# avoids 0/0 at exactly 1.
_ALPHA_ONE_TOL = 1e-12


# --- validation helpers (shared with throughput.py) -------------------------------------------


def _as_float_array(value: ArrayLike, name: str) -> NDArray[np.float64]:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            f"`{name}` must be a number or an array of numbers, but got {name}={value!r}."
        ) from None
    if np.isnan(arr).any():
        raise ValueError(f"`{name}` must not be NaN, but got {name}={value!r}.")
    return arr


def _check_probability(value: ArrayLike, name: str) -> NDArray[np.float64]:
    arr = _as_float_array(value, name)
    if ((arr < 0) | (arr > 1)).any():
        raise ValueError(f"`0 <= {name} <= 1` must hold, but got {name}={_show(value)}.")
    return arr


def _check_gamma(value: ArrayLike, name: str = "gamma") -> NDArray[np.int64]:
    arr = _as_float_array(value, name)
    if (arr < 0).any() or (arr != np.round(arr)).any() or np.isinf(arr).any():
        raise ValueError(f"`{name} >= 0` must hold (an integer), but got {name}={_show(value)}.")
    return arr.astype(np.int64)


def _show(value: ArrayLike) -> str:
    """Short repr of a rejected value for an error message."""
    arr = np.asarray(value)
    if arr.ndim == 0:
        return repr(value.item() if hasattr(value, "item") else value)
    text = np.array2string(arr, threshold=8, separator=", ")
    return " ".join(text.split())


def _check_positional(
    position_acceptance: ArrayLike, gamma: NDArray[np.int64]
) -> NDArray[np.float64]:
    arr = _check_probability(position_acceptance, "position_acceptance")
    if arr.ndim == 0:
        raise ValueError(
            "`position_acceptance` must be a vector (last axis: position 1, 2, ...), but got "
            f"position_acceptance={_show(position_acceptance)}."
        )
    longest = int(gamma.max()) if gamma.size else 0
    if arr.shape[-1] < longest:
        raise ValueError(
            "`len(position_acceptance) >= gamma` must hold, but got "
            f"len(position_acceptance)={arr.shape[-1]} and gamma={longest}."
        )
    return arr


def _scalar_or_array(arr: NDArray) -> float | NDArray:
    return arr.item() if arr.ndim == 0 else arr


# --- expected tokens per step ------------------------------------------------------------------


def expected_tokens_per_step(acceptance_rate: ArrayLike, gamma: ArrayLike) -> float | NDArray:
    """Expected tokens emitted per speculative step, E[τ], for i.i.d. acceptance.

    Parameters
    ----------
    acceptance_rate : float or array_like
        α, probability that a proposal is accepted given all before it were; in [0, 1].
    gamma : int or array_like of int
        γ, draft tokens proposed per step; >= 0. Broadcasts against ``acceptance_rate``.

    Returns
    -------
    float or ndarray
        E[τ] in tokens per step, in [1, γ + 1].

    Notes
    -----
    E[τ] = Σ_{k=0..γ} α^k = (1 − α^(γ+1)) / (1 − α), and γ + 1 at α = 1. Written as
    −expm1((γ+1)·log1p(−(1−α))) / (1−α) so that it stays accurate as α → 1, where the plain
    quotient loses all its digits.

    References
    ----------
    Leviathan, Kalman, Matias, "Fast Inference from Transformers via Speculative Decoding",
    ICML 2023, eq. (1).

    Examples
    --------
    >>> round(expected_tokens_per_step(0.8, 4), 6)
    3.3616
    >>> expected_tokens_per_step([0.0, 1.0], 4).tolist()
    [1.0, 5.0]
    """
    alpha = _check_probability(acceptance_rate, "acceptance_rate")
    g = _check_gamma(gamma)
    alpha, g = np.broadcast_arrays(alpha, g)
    x = 1.0 - alpha
    near_one = x < _ALPHA_ONE_TOL
    safe_x = np.where(near_one, 1.0, x)
    with np.errstate(divide="ignore"):
        # α = 0: log1p(-1) = -inf, expm1(-inf) = -1, so the quotient is 1/1 = 1 as it should be.
        numerator = -np.expm1((g + 1) * np.log1p(-safe_x))
    out = np.where(near_one, g + 1.0, numerator / safe_x)
    # the quotient can round one ulp outside [1, γ + 1] (e.g. 0.9999999999999998 at γ = 0)
    out = np.clip(out, 1.0, g + 1.0)
    return out.item() if out.ndim == 0 else out


def expected_tokens_per_step_positional(
    position_acceptance: ArrayLike, gamma: ArrayLike
) -> float | NDArray:
    """Expected tokens emitted per step, E[τ], from per-position acceptance rates α_i.

    Parameters
    ----------
    position_acceptance : array_like, shape (..., m)
        α_i along the last axis (i = 1..m): probability that proposal i is accepted given that
        proposals 1..i−1 were; each in [0, 1]. ``m >= max(gamma)``.
    gamma : int or array_like of int
        γ >= 0; broadcasts against ``position_acceptance[..., 0]``.

    Returns
    -------
    float or ndarray
        E[τ] in tokens per step, in [1, γ + 1].

    Notes
    -----
    E[τ] = 1 + Σ_{i=1..γ} Π_{j≤i} α_j. Only α_1..α_γ are used.

    References
    ----------
    DESIGN.md, "Definitions".

    Examples
    --------
    >>> round(expected_tokens_per_step_positional([0.9, 0.8, 0.5], 3), 6)
    2.98
    >>> expected_tokens_per_step_positional([0.9, 0.8, 0.5], [0, 1, 2]).round(6).tolist()
    [1.0, 1.9, 2.62]
    """
    g = _check_gamma(gamma)
    a = _check_positional(position_acceptance, g)
    # prefix[..., k] = 1 + Σ_{i≤k} Π_{j≤i} α_j, so prefix[..., γ] is E[τ]; shape (..., m + 1)
    survive = np.cumprod(a, axis=-1)
    prefix = np.concatenate([np.ones(a.shape[:-1] + (1,)), 1.0 + np.cumsum(survive, axis=-1)], -1)
    shape = np.broadcast_shapes(prefix.shape[:-1], g.shape)
    prefix = np.broadcast_to(prefix, shape + prefix.shape[-1:])
    idx = np.broadcast_to(g, shape)[..., None]
    out = np.take_along_axis(prefix, idx, axis=-1)[..., 0]
    return out.item() if out.ndim == 0 else out


# --- distribution of accepted counts ------------------------------------------------------------


def accepted_count_distribution(acceptance_rate: ArrayLike, gamma: int) -> NDArray:
    """Distribution of the number k of accepted proposals in one step (i.i.d. acceptance).

    Parameters
    ----------
    acceptance_rate : float or array_like
        α in [0, 1].
    gamma : int
        γ >= 0 (one value: it fixes the length of the result).

    Returns
    -------
    ndarray, shape acceptance_rate.shape + (γ + 1,)
        ``p[..., k]`` = P(k accepted) = P(τ = k + 1 tokens emitted); sums to 1 along the last axis.

    Notes
    -----
    P(k) = α^k (1 − α) for k < γ, and P(γ) = α^γ (all accepted, then the bonus token).

    References
    ----------
    Leviathan et al. 2023, section 3.5 (the number of generated tokens is a capped geometric
    variable).

    Examples
    --------
    >>> accepted_count_distribution(0.5, 2).tolist()
    [0.5, 0.25, 0.25]
    """
    alpha = _check_probability(acceptance_rate, "acceptance_rate")
    g = int(_check_gamma(gamma))
    positions = np.broadcast_to(alpha[..., None], alpha.shape + (max(g, 1),))
    return accepted_count_distribution_positional(positions, g)


def accepted_count_distribution_positional(position_acceptance: ArrayLike, gamma: int) -> NDArray:
    """Distribution of the number k of accepted proposals in one step, from α_i.

    Parameters
    ----------
    position_acceptance : array_like, shape (..., m)
        α_i along the last axis, m >= γ.
    gamma : int
        γ >= 0.

    Returns
    -------
    ndarray, shape (..., γ + 1)
        ``p[..., k]`` = P(k accepted) = P(τ = k + 1); sums to 1 along the last axis.

    Notes
    -----
    P(k) = (Π_{j≤k} α_j)(1 − α_{k+1}) for k < γ, and P(γ) = Π_{j≤γ} α_j.

    References
    ----------
    DESIGN.md, "Definitions".

    Examples
    --------
    >>> accepted_count_distribution_positional([0.9, 0.5], 2).round(3).tolist()
    [0.1, 0.45, 0.45]
    """
    g = int(_check_gamma(gamma))
    a = _check_positional(position_acceptance, np.asarray(g))[..., :g]
    # reach[..., k] = P(proposals 1..k all accepted), k = 0..γ; shape (..., γ + 1)
    reach = np.concatenate([np.ones(a.shape[:-1] + (1,)), np.cumprod(a, axis=-1)], axis=-1)
    stop = np.concatenate([1.0 - a, np.ones(a.shape[:-1] + (1,))], axis=-1)
    return reach * stop


# --- estimators from traces ---------------------------------------------------------------------


def _check_trace(accepted: ArrayLike, gamma: ArrayLike) -> tuple[NDArray, NDArray]:
    k = _as_float_array(accepted, "accepted").ravel()
    if k.size == 0:
        raise ValueError("`accepted` must hold at least one step, but got an empty trace.")
    g = _check_gamma(gamma)
    if g.ndim > 0 and g.size != k.size:
        raise ValueError(
            "`gamma` must be one integer or one per step, but got "
            f"{g.size} values for {k.size} steps."
        )
    g = np.broadcast_to(g.ravel() if g.ndim else g, k.shape)
    if (k != np.round(k)).any() or (k < 0).any() or (k > g).any():
        bad = np.flatnonzero((k != np.round(k)) | (k < 0) | (k > g))[0]
        raise ValueError(
            "`0 <= accepted <= gamma` (integers) must hold for every step, but got "
            f"accepted={k[bad]:g} with gamma={g[bad]} at step {bad}."
        )
    return k.astype(np.int64), g


def estimate_acceptance_rate(accepted: ArrayLike, gamma: ArrayLike) -> float:
    """Maximum-likelihood α̂ from a trace of accepted counts per step.

    Parameters
    ----------
    accepted : array_like of int, shape (steps,)
        k for each step: proposals accepted, 0 <= k <= γ of that step.
    gamma : int or array_like of int, shape (steps,)
        γ of every step, or one per step for a trace that mixes several γ.

    Returns
    -------
    float
        α̂ in [0, 1].

    Notes
    -----
    Each step contributes k Bernoulli successes and, when k < γ, one failure (a step with
    k = γ stopped because proposals ran out, not because of a rejection). The likelihood is
    α^Σk (1 − α)^R with R the number of steps that ended in a rejection, so
    α̂ = Σk / (Σk + R). Steps with γ = 0 carry no information. If no proposal was ever judged
    (Σk + R = 0), α is not identified and ``ValueError`` is raised.

    References
    ----------
    DESIGN.md, "Definitions".

    Examples
    --------
    >>> estimate_acceptance_rate([4, 2, 0, 4], 4)
    0.833333...
    """
    k, g = _check_trace(accepted, gamma)
    successes = int(k.sum())
    rejections = int((k < g).sum())
    if successes + rejections == 0:
        raise ValueError(
            "`sum(accepted) + rejections > 0` must hold to estimate acceptance_rate, but the "
            "trace judged no proposal (every step has gamma=0)."
        )
    return successes / (successes + rejections)


def estimate_position_acceptance(accepted: ArrayLike, gamma: ArrayLike) -> NDArray:
    """Maximum-likelihood α_i from a trace of accepted counts per step.

    Parameters
    ----------
    accepted : array_like of int, shape (steps,)
        k for each step, 0 <= k <= γ.
    gamma : int or array_like of int, shape (steps,)
        γ of every step, or one per step.

    Returns
    -------
    ndarray, shape (max γ,)
        α̂_i for i = 1..max γ. A position that no step reached is ``nan`` (no information).

    Notes
    -----
    Proposal i is judged in a step when γ >= i and k >= i − 1; it is accepted when k >= i.
    α̂_i = #accepted at i / #judged at i.

    References
    ----------
    DESIGN.md, "Definitions".

    Examples
    --------
    >>> estimate_position_acceptance([2, 1, 0, 2], 2).tolist()
    [0.75, 0.6666666666666666]
    """
    k, g = _check_trace(accepted, gamma)
    longest = int(g.max())
    i = np.arange(1, longest + 1)[:, None]  # (positions, 1)
    judged = ((g[None, :] >= i) & (k[None, :] >= i - 1)).sum(axis=1)
    passed = (k[None, :] >= i).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(judged > 0, passed / np.maximum(judged, 1), np.nan)


# --- α <-> τ --------------------------------------------------------------------------------------


def acceptance_rate_from_tokens_per_step(
    expected_tokens_per_step: ArrayLike, gamma: ArrayLike
) -> float | NDArray:
    """Invert E[τ](α, γ): the α that gives ``expected_tokens_per_step`` tokens per step.

    Parameters
    ----------
    expected_tokens_per_step : float or array_like
        E[τ] in tokens per step, in [1, γ + 1].
    gamma : int or array_like of int
        γ >= 1 (at γ = 0 every α gives E[τ] = 1).

    Returns
    -------
    float or ndarray
        α in [0, 1].

    Notes
    -----
    E[τ] = Σ_{k=0..γ} α^k is strictly increasing in α, so a vectorised bisection on [0, 1]
    finds the root; 60 halvings bring the bracket below 1e-18.

    References
    ----------
    Leviathan et al. 2023, eq. (1).

    Examples
    --------
    >>> round(acceptance_rate_from_tokens_per_step(3.3616, 4), 9)
    0.8
    """
    tau = _as_float_array(expected_tokens_per_step, "expected_tokens_per_step")
    g = _check_gamma(gamma)
    if (g < 1).any():
        raise ValueError(
            f"`gamma >= 1` must hold to recover acceptance_rate, but got gamma={_show(gamma)}."
        )
    tau, g = np.broadcast_arrays(tau, g)
    if ((tau < 1) | (tau > g + 1)).any():
        raise ValueError(
            "`1 <= expected_tokens_per_step <= gamma + 1` must hold, but got "
            f"expected_tokens_per_step={_show(expected_tokens_per_step)} with gamma={_show(gamma)}."
        )
    # the ends exactly: the bisection would stop within _ALPHA_ONE_TOL of α = 1
    out = np.where(tau >= g + 1, 1.0, np.where(tau <= 1, 0.0, _bisect_alpha(tau, g)))
    return out.item() if out.ndim == 0 else out


def _bisect_alpha(tau: NDArray, g: NDArray) -> NDArray:
    lo = np.zeros(tau.shape)
    hi = np.ones(tau.shape)
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        below = np.asarray(expected_tokens_per_step(mid, g)) < tau
        lo = np.where(below, mid, lo)
        hi = np.where(below, hi, mid)
    return 0.5 * (lo + hi)
