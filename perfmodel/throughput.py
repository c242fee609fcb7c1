"""Speculative step time, throughput and speedup (DESIGN.md, "Step time" and "Throughput").

T_step(γ) = (γ + e)·T_draft(b, n, 1) + T_target(b, n, γ + 1) + T_overhead(γ)

with e = ``extra_draft_calls`` (0 by default; see :func:`step_time_breakdown`). Throughput is
b·E[τ] / T_step tokens/s, the baseline b / T_target(b, n, 1), the speedup their ratio.
γ = 0 is plain decoding: the step is one target pass at q = 1, so its speedup is exactly 1.

Latencies are plain numbers in ms (scalars or numpy arrays) or a :class:`~perfmodel.LatencyFn`.
With plain numbers ``target_ms`` is T_target(b, n, 1) and the verification pass costs
``verify_ms`` at every γ >= 1 (``target_ms`` when ``verify_ms`` is not given); with a latency
function the model asks it for T_target(b, n, γ + 1). Every function broadcasts its array
arguments.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike, NDArray

from perfmodel.acceptance import (
    _as_float_array,
    _check_gamma,
    _check_probability,
    _show,
    acceptance_rate_from_tokens_per_step,
    expected_tokens_per_step,
    expected_tokens_per_step_positional,
)
from perfmodel.latency_fn import FixedLatency, LatencyFn, _check_positive_ms

__all__ = [
    "DEFAULT_GAMMA_MAX",
    "break_even_acceptance_rate",
    "leviathan_walltime_factor",
    "speculative_throughput",
    "speedup_curve",
    "step_time_breakdown",
]

DEFAULT_GAMMA_MAX = 16

Latency = float | ArrayLike | LatencyFn
Overhead = float | ArrayLike | Callable[[NDArray], ArrayLike]


# --- inputs -----------------------------------------------------------------------------------


def _latency_fns(draft_ms: Latency, target_ms: Latency, verify_ms: ArrayLike | None):
    if callable(target_ms):
        if verify_ms is not None:
            raise ValueError(
                "`verify_ms` must be None when `target_ms` is a latency function (the function "
                f"gives the verification time at q = gamma + 1), but got verify_ms={_show(verify_ms)}."
            )
        target_fn = target_ms
    else:
        target_fn = FixedLatency(
            _check_positive_ms(target_ms, "target_ms"),
            None if verify_ms is None else _check_positive_ms(verify_ms, "verify_ms"),
        )
    draft_fn = (
        draft_ms if callable(draft_ms) else FixedLatency(_check_positive_ms(draft_ms, "draft_ms"))
    )
    return draft_fn, target_fn


def _ask(fn: LatencyFn, name: str, batch: NDArray, context: NDArray, query: ArrayLike) -> NDArray:
    ms = np.asarray(fn(batch, context, query), dtype=np.float64)
    if not (np.isfinite(ms) & (ms > 0)).all():
        raise ValueError(
            f"`{name} > 0` must hold (finite, ms), but the latency function returned {_show(ms)}."
        )
    return ms


def _check_batch_context(batch: ArrayLike, context: ArrayLike) -> tuple[NDArray, NDArray]:
    b = _as_float_array(batch, "batch")
    if (b < 1).any() or (b != np.round(b)).any():
        raise ValueError(f"`batch >= 1` must hold (an integer), but got batch={_show(batch)}.")
    n = _check_gamma(context, "context")
    return b.astype(np.int64), n


def _overhead(overhead_ms: Overhead, g: NDArray) -> NDArray:
    value = overhead_ms(g) if callable(overhead_ms) else overhead_ms
    arr = _as_float_array(value, "overhead_ms")
    if not (np.isfinite(arr) & (arr >= 0)).all():
        raise ValueError(
            f"`overhead_ms >= 0` must hold (finite, ms), but got overhead_ms={_show(value)}."
        )
    return arr


def _out(arr: NDArray) -> float | NDArray:
    return arr.item() if np.ndim(arr) == 0 else arr


# --- step time ------------------------------------------------------------------------------


def step_time_breakdown(
    gamma: ArrayLike,
    *,
    draft_ms: Latency,
    target_ms: Latency,
    verify_ms: ArrayLike | None = None,
    overhead_ms: Overhead = 0.0,
    batch: ArrayLike = 1,
    context: ArrayLike = 0,
    extra_draft_calls: ArrayLike = 0.0,
) -> dict[str, float | NDArray]:
    """Time of one speculative step, split into draft, verification and overhead.

    Parameters
    ----------
    gamma : int or array_like of int
        γ >= 0, draft tokens proposed per step.
    draft_ms : float, array_like or LatencyFn
        T_draft(b, n, 1): one draft forward pass at q = 1, ms; > 0.
    target_ms : float, array_like or LatencyFn
        T_target(b, n, 1) in ms (> 0) as a number, or a latency function T_target(b, n, q).
    verify_ms : float or array_like, optional
        T_target(b, n, γ + 1) in ms for plain numbers, the same at every γ >= 1. Default: equal
        to ``target_ms``. Must be None when ``target_ms`` is a function.
    overhead_ms : float, array_like or callable
        T_overhead per speculative step in ms (sampling, acceptance, cache rollback), >= 0; or a
        function of γ returning ms. Charged only when γ >= 1.
    batch : int or array_like of int
        b >= 1, rows decoded together (passed to latency functions).
    context : int or array_like of int
        n >= 0, tokens already in the KV cache (passed to latency functions).
    extra_draft_calls : float or array_like
        Draft forward passes per step beyond γ, >= 0; describes the engine's schedule. 0
        (default): the draft runs γ passes, and the token it has not yet seen after a full
        acceptance (its last proposal, then the bonus token) is folded into the next step's
        first pass. 1: the engine runs the draft once more every step (γ + 1 passes), e.g. to
        keep its KV cache in sync. A fraction is an expected count, e.g. P(k = γ) for an engine
        that catches up only after full acceptance. Charged only when γ >= 1.

    Returns
    -------
    dict
        ``draft_ms``, ``verify_ms``, ``overhead_ms``, ``step_ms`` (ms, broadcast shape).

    Notes
    -----
    T_step(γ) = (γ + e)·T_draft(b, n, 1) + T_target(b, n, γ + 1) + T_overhead(γ) for γ >= 1,
    and T_target(b, n, 1) at γ = 0 (plain decoding). The draft's context grows by one token per
    pass within a step; the model evaluates every pass at n.

    References
    ----------
    DESIGN.md, "Step time"; Leviathan et al. 2023, section 3.3.

    Examples
    --------
    >>> step_time_breakdown(4, draft_ms=2.0, target_ms=20.0, overhead_ms=1.0)
    {'draft_ms': 8.0, 'verify_ms': 20.0, 'overhead_ms': 1.0, 'step_ms': 29.0}
    """
    g = _check_gamma(gamma)
    b, n = _check_batch_context(batch, context)
    extra = _as_float_array(extra_draft_calls, "extra_draft_calls")
    if not (np.isfinite(extra) & (extra >= 0)).all():
        raise ValueError(
            f"`extra_draft_calls >= 0` must hold, but got extra_draft_calls={_show(extra_draft_calls)}."
        )
    draft_fn, target_fn = _latency_fns(draft_ms, target_ms, verify_ms)
    speculating = g > 0
    draft = (g + np.where(speculating, extra, 0.0)) * _ask(draft_fn, "draft_ms", b, n, 1)
    verify = _ask(target_fn, "verify_ms", b, n, g + 1)
    overhead = np.where(speculating, _overhead(overhead_ms, g), 0.0)
    draft, verify, overhead = np.broadcast_arrays(draft, verify, overhead)
    step = draft + verify + overhead
    return {
        "draft_ms": _out(draft),
        "verify_ms": _out(verify),
        "overhead_ms": _out(overhead),
        "step_ms": _out(step),
    }


# --- throughput -------------------------------------------------------------------------------


def _tokens_per_step(acceptance_rate, position_acceptance, g: NDArray) -> NDArray:
    if (acceptance_rate is None) == (position_acceptance is None):
        raise ValueError(
            "Exactly one of `acceptance_rate` and `position_acceptance` must be given, but got "
            f"acceptance_rate={acceptance_rate!r} and position_acceptance={position_acceptance!r}."
        )
    if acceptance_rate is not None:
        return np.asarray(expected_tokens_per_step(acceptance_rate, g))
    return np.asarray(expected_tokens_per_step_positional(position_acceptance, g))


def speculative_throughput(
    gamma: ArrayLike,
    *,
    acceptance_rate: ArrayLike | None = None,
    position_acceptance: ArrayLike | None = None,
    draft_ms: Latency,
    target_ms: Latency,
    verify_ms: ArrayLike | None = None,
    overhead_ms: Overhead = 0.0,
    batch: ArrayLike = 1,
    context: ArrayLike = 0,
    extra_draft_calls: ArrayLike = 0.0,
) -> dict[str, float | NDArray]:
    """Tokens per second, baseline and speedup of speculative decoding, with the step breakdown.

    Parameters
    ----------
    gamma : int or array_like of int
        γ >= 0.
    acceptance_rate : float or array_like, optional
        α in [0, 1] (i.i.d. acceptance). Exactly one of this and ``position_acceptance``.
    position_acceptance : array_like, shape (..., m), optional
        α_i along the last axis, m >= max γ.
    draft_ms, target_ms, verify_ms, overhead_ms, batch, context, extra_draft_calls
        As in :func:`step_time_breakdown`.

    Returns
    -------
    dict
        ``expected_tokens_per_step`` (E[τ], tokens), ``draft_ms``, ``verify_ms``,
        ``overhead_ms``, ``step_ms`` (ms), ``tokens_per_s`` and ``baseline_tokens_per_s``
        (tokens/s over all b rows) and ``speedup`` (ratio), all broadcast together.

    Notes
    -----
    tokens/s = 1000·b·E[τ] / T_step(γ); baseline = 1000·b / T_target(b, n, 1);
    speedup = tokens/s / baseline.

    References
    ----------
    DESIGN.md, "Throughput"; Leviathan et al. 2023, Theorem 3.8.

    Examples
    --------
    >>> r = speculative_throughput(4, acceptance_rate=0.8, draft_ms=2.0, target_ms=20.0)
    >>> round(r["speedup"], 4), round(r["tokens_per_s"], 2)
    (2.4011, 120.06)
    """
    g = _check_gamma(gamma)
    tau = _tokens_per_step(acceptance_rate, position_acceptance, g)
    parts = step_time_breakdown(
        g,
        draft_ms=draft_ms,
        target_ms=target_ms,
        verify_ms=verify_ms,
        overhead_ms=overhead_ms,
        batch=batch,
        context=context,
        extra_draft_calls=extra_draft_calls,
    )
    b, n = _check_batch_context(batch, context)
    _, target_fn = _latency_fns(draft_ms, target_ms, verify_ms)
    baseline_ms = _ask(target_fn, "target_ms", b, n, 1)
    tokens_per_s = 1000.0 * b * tau / np.asarray(parts["step_ms"])
    baseline = 1000.0 * b / baseline_ms
    speedup = tokens_per_s / baseline
    tau, tokens_per_s, baseline, speedup = np.broadcast_arrays(tau, tokens_per_s, baseline, speedup)
    return {
        "expected_tokens_per_step": _out(tau),
        **parts,
        "tokens_per_s": _out(tokens_per_s),
        "baseline_tokens_per_s": _out(baseline),
        "speedup": _out(speedup),
    }


def speedup_curve(
    *,
    acceptance_rate: ArrayLike | None = None,
    position_acceptance: ArrayLike | None = None,
    draft_ms: Latency,
    target_ms: Latency,
    verify_ms: ArrayLike | None = None,
    overhead_ms: Overhead = 0.0,
    batch: ArrayLike = 1,
    context: ArrayLike = 0,
    gamma_max: int | None = None,
    extra_draft_calls: ArrayLike = 0.0,
) -> dict[str, NDArray]:
    """Throughput and speedup for every γ in 0..γ_max, and the best integer γ.

    Parameters
    ----------
    acceptance_rate, position_acceptance, draft_ms, target_ms, verify_ms, overhead_ms, batch,
    context, extra_draft_calls
        As in :func:`speculative_throughput`; arrays give one curve per configuration (the γ axis
        is appended last; for ``position_acceptance`` the leading axes are the configurations).
    gamma_max : int, optional
        Largest γ, >= 0. Default 16 (``DEFAULT_GAMMA_MAX``), or ``len(position_acceptance)`` when
        that is shorter; a given value above ``len(position_acceptance)`` raises ``ValueError``.

    Returns
    -------
    dict
        ``gamma`` (shape (G,)); ``expected_tokens_per_step``, ``draft_ms``, ``verify_ms``,
        ``overhead_ms``, ``step_ms``, ``tokens_per_s``, ``baseline_tokens_per_s``, ``speedup``
        (shape configurations + (G,)); ``optimal_gamma`` (int), ``optimal_speedup`` and
        ``optimal_tokens_per_s`` (shape configurations). Ties go to the smaller γ.

    Notes
    -----
    γ = 0 is plain decoding (speedup 1), so the optimal speedup is never below 1. With plain
    numbers the verification pass costs ``verify_ms`` (default ``target_ms``) at every γ >= 1;
    with a latency function the curve asks it for T_target(b, n, γ + 1).

    References
    ----------
    Leviathan et al. 2023, section 3.4 and Figure 3 (optimal γ against α and c).

    Examples
    --------
    >>> c = speedup_curve(acceptance_rate=0.8, draft_ms=2.0, target_ms=20.0)
    >>> int(c["optimal_gamma"]), round(float(c["optimal_speedup"]), 3)
    (6, 2.47)
    """
    if gamma_max is not None:
        gamma_max = int(_check_gamma(gamma_max, "gamma_max"))
    if position_acceptance is not None:
        pa = _check_probability(position_acceptance, "position_acceptance")
        if pa.ndim == 0:
            raise ValueError(
                "`position_acceptance` must be a vector, but got "
                f"position_acceptance={_show(position_acceptance)}."
            )
        if gamma_max is None:
            gamma_max = min(DEFAULT_GAMMA_MAX, pa.shape[-1])
        position_acceptance = pa[..., None, :]  # configurations + (γ axis, position)
    if gamma_max is None:
        gamma_max = DEFAULT_GAMMA_MAX
    gammas = np.arange(gamma_max + 1)

    def expand(value):
        if value is None or callable(value):
            return value
        arr = np.asarray(value)
        return arr[..., None] if arr.ndim else arr

    r = speculative_throughput(
        gammas,
        acceptance_rate=expand(acceptance_rate),
        position_acceptance=position_acceptance,
        draft_ms=expand(draft_ms),
        target_ms=expand(target_ms),
        verify_ms=expand(verify_ms),
        overhead_ms=expand(overhead_ms),
        batch=expand(batch),
        context=expand(context),
        extra_draft_calls=expand(extra_draft_calls),
    )
    curve = {key: np.asarray(val) for key, val in r.items()}
    shape = np.broadcast_shapes(*(v.shape for v in curve.values()))
    curve = {key: np.broadcast_to(val, shape) for key, val in curve.items()}
    best = np.argmax(curve["speedup"], axis=-1)
    pick = best[..., None]
    return {
        "gamma": gammas,
        **curve,
        "optimal_gamma": best,
        "optimal_speedup": np.take_along_axis(curve["speedup"], pick, -1)[..., 0],
        "optimal_tokens_per_s": np.take_along_axis(curve["tokens_per_s"], pick, -1)[..., 0],
    }


# --- closed forms -------------------------------------------------------------------------------


def leviathan_walltime_factor(
    acceptance_rate: ArrayLike, gamma: ArrayLike, latency_ratio: ArrayLike
) -> float | NDArray:
    """Leviathan et al.'s expected walltime improvement factor.

    Parameters
    ----------
    acceptance_rate : float or array_like
        α in [0, 1].
    gamma : int or array_like of int
        γ >= 0.
    latency_ratio : float or array_like
        c = T_draft / T_target, >= 0.

    Returns
    -------
    float or ndarray
        Speedup over plain decoding (ratio).

    Notes
    -----
    (1 − α^(γ+1)) / ((1 − α)(γc + 1)), i.e. E[τ] / (γc + 1). It is :func:`speculative_throughput`
    with b = 1, T_target(q) = T_target(1) and no overhead.

    References
    ----------
    Leviathan, Kalman, Matias, "Fast Inference from Transformers via Speculative Decoding",
    ICML 2023, Theorem 3.8.

    Examples
    --------
    >>> round(leviathan_walltime_factor(0.8, 4, 0.1), 4)
    2.4011
    """
    c = _as_float_array(latency_ratio, "latency_ratio")
    if not (np.isfinite(c) & (c >= 0)).all():
        raise ValueError(
            f"`latency_ratio >= 0` must hold, but got latency_ratio={_show(latency_ratio)}."
        )
    g = _check_gamma(gamma)
    tau = np.asarray(expected_tokens_per_step(acceptance_rate, g))
    return _out(tau / (g * c + 1.0))


def break_even_acceptance_rate(
    latency_ratio: ArrayLike,
    gamma: ArrayLike,
    *,
    verify_ratio: ArrayLike = 1.0,
    overhead_ratio: ArrayLike = 0.0,
    extra_draft_calls: ArrayLike = 0.0,
) -> float | NDArray:
    """Smallest α at which speculation with γ proposals is no slower than plain decoding.

    Parameters
    ----------
    latency_ratio : float or array_like
        c = T_draft(b, n, 1) / T_target(b, n, 1), >= 0.
    gamma : int or array_like of int
        γ >= 1.
    verify_ratio : float or array_like
        T_target(b, n, γ + 1) / T_target(b, n, 1), > 0; 1 by default (memory-bound target).
    overhead_ratio : float or array_like
        T_overhead / T_target(b, n, 1), >= 0.
    extra_draft_calls : float or array_like
        Draft passes per step beyond γ, >= 0 (see :func:`step_time_breakdown`).

    Returns
    -------
    float or ndarray
        α in [0, 1] with speedup(α) = 1; 0 where even α = 0 breaks even, ``nan`` where even
        α = 1 does not (no α makes speculation pay).

    Notes
    -----
    Speedup >= 1 ⇔ E[τ](α, γ) >= (γ + e)·c + v + o. E[τ] increases in α, so the threshold is
    the inverse of E[τ] at that value (:func:`acceptance_rate_from_tokens_per_step`).

    References
    ----------
    Leviathan et al. 2023, Corollary 3.9 (α > c suffices for γ = 1 and some γ).

    Examples
    --------
    >>> round(break_even_acceptance_rate(0.1, 1), 6)
    0.1
    """
    c = _as_float_array(latency_ratio, "latency_ratio")
    v = _as_float_array(verify_ratio, "verify_ratio")
    o = _as_float_array(overhead_ratio, "overhead_ratio")
    e = _as_float_array(extra_draft_calls, "extra_draft_calls")
    for arr, name, raw in (
        (c, "latency_ratio", latency_ratio),
        (o, "overhead_ratio", overhead_ratio),
        (e, "extra_draft_calls", extra_draft_calls),
    ):
        if not (np.isfinite(arr) & (arr >= 0)).all():
            raise ValueError(f"`{name} >= 0` must hold, but got {name}={_show(raw)}.")
    if not (np.isfinite(v) & (v > 0)).all():
        raise ValueError(
            f"`verify_ratio > 0` must hold, but got verify_ratio={_show(verify_ratio)}."
        )
    g = _check_gamma(gamma)
    if (g < 1).any():
        raise ValueError(
            f"`gamma >= 1` must hold for a break-even acceptance_rate, but got gamma={_show(gamma)}."
        )
    need = (g + e) * c + v + o
    need, g = np.broadcast_arrays(need, g)
    alpha = np.asarray(acceptance_rate_from_tokens_per_step(np.clip(need, 1.0, g + 1.0), g))
    alpha = np.where(need <= 1.0, 0.0, alpha)
    alpha = np.where(need > g + 1.0, np.nan, alpha)
    return _out(alpha)
