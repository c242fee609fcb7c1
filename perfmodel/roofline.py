"""Roofline lower bound on one forward pass: bytes over bandwidth, FLOPs over peak.

T(arch, b, n, q) >= max(bytes / bandwidth, flops / peak). The profiler splits a measured pass as
T = T_fixed + L·T_layer (DESIGN.md, "Latency decomposition"), so the bound comes in the same two
parts (:func:`roofline_fixed`, :func:`roofline_layer`) as well as whole (:func:`roofline`).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from perfmodel.arch import ArchSpec
from perfmodel.hardware import HardwareSpec

__all__ = ["roofline", "roofline_fixed", "roofline_layer"]


def _check(batch: ArrayLike, context: ArrayLike, query: ArrayLike) -> tuple[NDArray, ...]:
    out = []
    for name, value, low in (("batch", batch, 1), ("context", context, 0), ("query", query, 1)):
        arr = np.asarray(value, dtype=np.float64)
        if not (np.isfinite(arr) & (arr >= low) & (arr == np.round(arr))).all():
            raise ValueError(f"`{name}` must be an integer >= {low}, but got {name}={value!r}.")
        out.append(arr)
    return tuple(out)


def _breakdown(bytes_: NDArray, flops: NDArray, hardware: HardwareSpec, dtype: str) -> dict:
    memory_s = bytes_ / hardware.memory_bandwidth_bytes_per_s
    compute_s = flops / hardware.peak_flops(dtype)
    bytes_, flops, memory_s, compute_s = np.broadcast_arrays(bytes_, flops, memory_s, compute_s)
    lower = np.maximum(memory_s, compute_s)

    def out(a: NDArray) -> float | NDArray:
        return a.item() if a.ndim == 0 else a

    return {
        "bytes": out(bytes_),
        "flops": out(flops),
        "memory_s": out(memory_s),
        "compute_s": out(compute_s),
        "lower_bound_s": out(lower),
        "lower_bound_ms": out(lower * 1e3),
    }


def _layer_parts(arch: ArchSpec, b: NDArray, n: NDArray, q: NDArray) -> tuple[NDArray, NDArray]:
    kv_per_token = arch.kv_cache_bytes_per_token / arch.layers  # one layer, one row, bytes
    # a mixture-of-experts layer reads only the experts its b·q tokens touch
    bytes_ = arch.layer_params_read(b * q) * arch.bytes_per_param + b * (n + q) * kv_per_token
    flops = b * q * np.asarray(arch.layer_flops_per_token(n))
    return bytes_, flops


def _fixed_parts(arch: ArchSpec, b: NDArray, q: NDArray) -> tuple[NDArray, NDArray]:
    # The LM head reads its whole vocab x hidden matrix (tied or not); the input tables are only
    # gathered, b·q rows each (two tables for OPT and GPT-2: tokens and positions).
    tables = 2 if arch.position_rows else 1
    params_read = arch.vocab * arch.hidden + arch.final_norm_param_count
    bytes_ = (params_read + tables * b * q * arch.hidden) * arch.bytes_per_param
    flops = b * q * arch.fixed_flops_per_token
    return bytes_, flops


def roofline_layer(
    arch: ArchSpec,
    hardware: HardwareSpec,
    *,
    batch: ArrayLike,
    context: ArrayLike,
    query: ArrayLike = 1,
    dtype: str = "bf16",
) -> dict[str, float | NDArray]:
    """Roofline bound on one decoder layer of one forward pass (the T_layer term).

    Parameters
    ----------
    arch : ArchSpec
        The model.
    hardware : HardwareSpec
        The accelerator.
    batch : int or array_like
        b >= 1 rows.
    context : int or array_like
        n >= 0 tokens already in the KV cache per row.
    query : int or array_like
        q >= 1 new tokens per row (γ + 1 for verification).
    dtype : str
        Key of ``hardware.peak_flops_per_s``; bytes use ``arch.bytes_per_param``.

    Returns
    -------
    dict
        ``bytes``, ``flops``, ``memory_s``, ``compute_s``, ``lower_bound_s``, ``lower_bound_ms``.

    Notes
    -----
    bytes = N_layer·B + b·(n + q)·2·kv_heads·head_dim·B (weights, KV read, KV written);
    flops = b·q·(2·N_matmul,layer + 4·h·n). Attention among the q new tokens is left out, which
    keeps this a lower bound.

    References
    ----------
    Williams, Waterman, Patterson, "Roofline", CACM 2009; gpt-fast's bandwidth figures.
    """
    b, n, q = _check(batch, context, query)
    return _breakdown(*_layer_parts(arch, b, n, q), hardware, dtype)


def roofline_fixed(
    arch: ArchSpec,
    hardware: HardwareSpec,
    *,
    batch: ArrayLike,
    query: ArrayLike = 1,
    dtype: str = "bf16",
) -> dict[str, float | NDArray]:
    """Roofline bound on the part of a forward pass outside the layers (the T_fixed term).

    Parameters
    ----------
    arch, hardware, batch, query, dtype
        As in :func:`roofline_layer`.

    Returns
    -------
    dict
        Same keys as :func:`roofline_layer`.

    Notes
    -----
    bytes = (vocab·h + N_final_norm)·B + gathered embedding rows; flops = b·q·2·vocab·h (the LM
    head; every position's logits are counted, as HF computes them).

    References
    ----------
    Williams et al. 2009.
    """
    b, _, q = _check(batch, 0, query)
    return _breakdown(*_fixed_parts(arch, b, q), hardware, dtype)


def roofline(
    arch: ArchSpec,
    hardware: HardwareSpec,
    *,
    batch: ArrayLike,
    context: ArrayLike,
    query: ArrayLike = 1,
    dtype: str = "bf16",
) -> dict[str, float | NDArray]:
    """Roofline lower bound on one whole forward pass T(arch, b, n, q).

    Parameters
    ----------
    arch, hardware, batch, context, query, dtype
        As in :func:`roofline_layer`.

    Returns
    -------
    dict
        ``bytes``, ``flops``, ``memory_s``, ``compute_s``, ``lower_bound_s``, ``lower_bound_ms``.

    Notes
    -----
    bytes = weights read + KV cache read (b·n·kv bytes/token) + KV written (b·q·kv bytes/token),
    where the weights read are all parameters except the input embedding tables, which are only
    gathered. flops = b·q·flops_per_token(n). Lower bound = max(bytes / bandwidth, flops / peak).
    It is at most roofline_fixed + L·roofline_layer (a max of sums is at most the sum of maxes).

    References
    ----------
    Williams et al. 2009; Kaplan et al. 2020, Table 1 (FLOPs per token).

    Examples
    --------
    >>> from perfmodel.presets import get_preset
    >>> from perfmodel.hardware import get_hardware
    >>> r = roofline(get_preset("llama-65b"), get_hardware("H200"), batch=1, context=0)
    >>> round(r["lower_bound_ms"], 2)
    27.09
    """
    b, n, q = _check(batch, context, query)
    layer_bytes, layer_flops = _layer_parts(arch, b, n, q)
    fixed_bytes, fixed_flops = _fixed_parts(arch, b, q)
    return _breakdown(
        fixed_bytes + arch.layers * layer_bytes,
        fixed_flops + arch.layers * layer_flops,
        hardware,
        dtype,
    )
