"""The latency-function protocol the step model asks for forward-pass times.

A latency function answers T(b, n, q): the time in milliseconds of one forward pass of one model
at batch ``b``, context length ``n`` (tokens already in the KV cache) and ``q`` new tokens per
row. It must accept numpy arrays and broadcast them (the explorer scores thousands of
configurations at once). A fitted model from profiles (``perfmodel.latency_model``, a later
issue) is one; :class:`FixedLatency` is the one plain numbers become.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["FixedLatency", "LatencyFn"]


@runtime_checkable
class LatencyFn(Protocol):
    """Callable ``(batch, context, query) -> ms``, vectorised over numpy arrays.

    Parameters
    ----------
    batch : array_like of int
        b, rows decoded together.
    context : array_like of int
        n, tokens already in the KV cache of each row.
    query : array_like of int
        q, new tokens per row in this pass (1 for plain decoding, γ + 1 for verification).

    Returns
    -------
    ndarray or float
        Forward-pass latency in milliseconds, broadcast over the three inputs.
    """

    def __call__(self, batch: ArrayLike, context: ArrayLike, query: ArrayLike) -> NDArray | float:
        """Latency in ms of one forward pass at (batch, context, query)."""
        ...


@dataclass(frozen=True)
class FixedLatency:
    """Plain numbers as a latency function: ``single_ms`` at q = 1, ``multi_ms`` at q > 1.

    Parameters
    ----------
    single_ms : float or array_like
        Latency of a one-token pass (q = 1), ms; > 0.
    multi_ms : float or array_like or None
        Latency of every multi-token pass (q > 1), ms; > 0. ``None`` (default) means the same as
        ``single_ms``: the memory-bound assumption that a verification pass over γ + 1 tokens
        costs what one decoding step costs.

    Notes
    -----
    Batch and context are ignored: the numbers are those measured at the batch and context the
    caller is modelling.

    Examples
    --------
    >>> f = FixedLatency(20.0, 24.0)
    >>> f(1, 0, [1, 5]).tolist()
    [20.0, 24.0]
    """

    single_ms: float | NDArray
    multi_ms: float | NDArray | None = None

    def __post_init__(self) -> None:
        _check_positive_ms(self.single_ms, "single_ms")
        if self.multi_ms is not None:
            _check_positive_ms(self.multi_ms, "multi_ms")

    def __call__(self, batch: ArrayLike, context: ArrayLike, query: ArrayLike) -> NDArray | float:
        q = np.asarray(query)
        single = np.asarray(self.single_ms, dtype=np.float64)
        multi = single if self.multi_ms is None else np.asarray(self.multi_ms, dtype=np.float64)
        out = np.where(q > 1, multi, single)
        return out.item() if out.ndim == 0 else out


def _check_positive_ms(value: ArrayLike, name: str) -> NDArray[np.float64]:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            f"`{name}` must be a number of milliseconds, but got {name}={value!r}."
        ) from None
    if not (np.isfinite(arr) & (arr > 0)).all():
        shown = value if arr.ndim == 0 else np.array2string(arr, threshold=8, separator=", ")
        raise ValueError(f"`{name} > 0` must hold (finite, ms), but got {name}={shown}.")
    return arr
