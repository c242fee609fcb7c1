"""Per-layer forward latency by depth differencing, written as tidy profile CSVs.

One forward pass is timed at batch b, with n tokens already in a ``DynamicCache`` and q new
tokens per row, on truncated copies of the model at two or more depths L. Each depth's model is
built once (:func:`profiler.build.build_model`), its KV cache filled with random keys/values of
the right shape (no prefill pass: a 65B layer's prefill would take longer than the sweep), and
the cache is cropped back to n in the untimed ``setup`` hook of :func:`profiler.timing.time_callable`
before every timed call. Per (b, n, q),

    T(L) = T_fixed + L · T_layer

is fitted by least squares over the depths (:func:`profiler.depth_fit.fit_depths`); the fit's
residual says how linear the depth dependence is. With ``whole=True`` the full-depth model is
timed as well and the composed prediction T_fixed + L_full · T_layer is compared with it.

Output (see ``data/README.md``, section "profiles"): ``<out>/<model>.csv`` holds one row per
measurement (model, depth, batch, context, query, dtype); ``<out>/<model>.fit.csv`` one row per
(model, batch, context, query, dtype) with T_fixed_ms, T_layer_ms and the residual. Writing them
(atomically, merged with earlier rows, or pooled with them) is :mod:`profiler.profile_store`.

Modules: :mod:`profiler.forward_timer` (timing the real model at several depths),
:mod:`profiler.depth_fit` (the depth fits and the fit table), this one (the sweep and its rows).
The names of both are re-exported here.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from perfmodel.hardware import HardwareSpec
from perfmodel.roofline import roofline
from profiler.build import ModelRecipe, arch_fields
from profiler.depth_fit import _BYTES_PER_PARAM, FIT_COLUMNS, FIT_KEY, fit_depths, fit_profile
from profiler.forward_timer import DepthTiming, HFForwardTimer, Measure
from profiler.timing import TimingResult

__all__ = [
    "FIT_COLUMNS",
    "FIT_KEY",
    "MEASURE_KEY",
    "ROW_COLUMNS",
    "DepthTiming",
    "HFForwardTimer",
    "Measure",
    "Profile",
    "ProfileGrid",
    "fit_depths",
    "fit_profile",
    "profile_model",
]

# Columns of <model>.csv, in file order (units in data/README.md, section "profiles").
ROW_COLUMNS = (
    "model", "source", "model_type", "family", "layers", "depth", "whole",
    "hidden", "ffn", "heads", "kv_heads", "head_dim", "experts", "vocab", "tied", "params",
    "batch", "context", "query", "dtype",
    "median_ms", "iqr_ms", "min_ms", "max_ms", "repeats", "warmup", "block", "flush_bytes", "runs", "run_samples",
    "samples_ms", "cpu_median_ms", "cpu_iqr_ms", "cpu_samples_ms", "roofline_ms", "roofline_bound", "roofline_bytes", "achieved_bandwidth_bytes_per_s",
    "bandwidth_fraction",
    "device", "device_name", "hardware_source", "threads", "torch_version",
    "transformers_version", "loadavg_1m", "measured_at",
)  # fmt: skip
MEASURE_KEY = ("model", "depth", "batch", "context", "query", "dtype")


@dataclass(frozen=True)
class ProfileGrid:
    """The sweep: every (depth, batch, context, query) combination is timed.

    Parameters
    ----------
    batch, context, query : sequence of int
        b >= 1, n >= 0 (tokens in the KV cache), q >= 1 (new tokens per row).
    depths : sequence of int
        Depths L >= 1 of the truncated copies; at least two distinct ones.
    whole : bool
        Also time the full-depth model (when it is not one of ``depths``).
    repeats, warmup : int
        Timed and untimed calls per point (repeats >= 1, warmup >= 0).
    min_time_ms : float
        With the real-model timer (no ``measure`` given to :func:`profile_model`), keep timing a
        point beyond ``repeats`` until its timed calls add up to this many ms
        (at most :data:`profiler.forward_timer.MAX_REPEATS` calls per depth; 0: exactly
        ``repeats``). Short passes are the noisiest: on a shared VM (the EPYC profile) the
        calls of a pass under 2 ms spread over an interquartile range of 23% of their median,
        those of a pass of 50 ms and more over 7%, so a fixed handful of calls fits a long pass
        well and a short one poorly.
    block : int
        Timed calls per depth and round, back to back after one untimed call (1: the committed
        profiles' protocol, one call per depth and round); see
        :class:`profiler.forward_timer.HFForwardTimer`.
    flush_mib : float
        MiB streamed through the caches before every timed call (0: none, the committed
        profiles' protocol), so each pass starts with the model's weights evicted, as a draft's
        first pass after the target's verification pass does; see
        :class:`profiler.forward_timer.HFForwardTimer`.
    """

    batch: tuple[int, ...] = (1,)
    context: tuple[int, ...] = (128,)
    query: tuple[int, ...] = (1, 4)
    depths: tuple[int, ...] = (1, 2)
    whole: bool = False
    repeats: int = 5
    warmup: int = 1
    min_time_ms: float = 0.0
    block: int = 1
    flush_mib: float = 0.0

    def __post_init__(self) -> None:
        for name, low in (("batch", 1), ("context", 0), ("query", 1), ("depths", 1)):
            values = tuple(sorted(set(getattr(self, name))))
            if not values or any(
                isinstance(v, bool) or not isinstance(v, int | np.integer) or v < low
                for v in values
            ):
                raise ValueError(
                    f"`{name}` must be integers >= {low}, but got {name}={getattr(self, name)!r}."
                )
            object.__setattr__(self, name, tuple(int(v) for v in values))
        if len(self.depths) < 2:
            raise ValueError(
                f"`len(set(depths)) >= 2` must hold for depth differencing, but got depths={self.depths}."
            )
        if self.repeats < 1 or self.warmup < 0:
            raise ValueError(
                f"`repeats >= 1 and warmup >= 0` must hold, but got repeats={self.repeats}, "
                f"warmup={self.warmup}."
            )
        if (
            isinstance(self.block, bool)
            or not isinstance(self.block, int | np.integer)
            or self.block < 1
        ):
            raise ValueError(f"`block >= 1` must be an integer, but got block={self.block!r}.")
        if not (np.isfinite(self.flush_mib) and self.flush_mib >= 0):
            raise ValueError(f"`flush_mib >= 0` must hold, but got flush_mib={self.flush_mib!r}.")
        if not (np.isfinite(self.min_time_ms) and self.min_time_ms >= 0):
            raise ValueError(
                f"`min_time_ms >= 0` must hold, but got min_time_ms={self.min_time_ms!r}."
            )

    @property
    def flush_bytes(self) -> int:
        """``flush_mib`` in bytes, a whole number of float32 elements."""
        return int(self.flush_mib * 2**20) // 4 * 4

    def points(self) -> list[tuple[int, int, int]]:
        """(batch, context, query) combinations, in sweep order."""
        return [(b, n, q) for b in self.batch for n in self.context for q in self.query]


@dataclass(frozen=True)
class Profile:
    """Measured rows and per-(b, n, q) fits of one model (``pandas.DataFrame`` each)."""

    model: str
    rows: pd.DataFrame
    fits: pd.DataFrame
    paths: tuple[Path, ...] = field(default=())


def _env(device: str, dtype: str, hardware: HardwareSpec | None) -> dict[str, Any]:
    import torch
    import transformers

    from profiler.hardware_probe import device_slug
    from profiler.timing import device_name

    return {
        "dtype": dtype,
        "device": device_slug(device),
        "device_name": device_name(device),
        "hardware_source": hardware.source if hardware is not None else "",
        "threads": int(torch.get_num_threads()),
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
    }


def _roofline_parts(
    recipe: ModelRecipe,
    hardware: HardwareSpec | None,
    depth: int,
    dtype: str,
    b: int,
    n: int,
    q: int,
) -> dict[str, Any]:
    nan = float("nan")
    if recipe.arch is None or hardware is None or dtype not in hardware.peak_flops_per_s:
        return {"roofline_ms": nan, "roofline_bound": "", "roofline_bytes": nan}
    arch = recipe.arch.replace(layers=depth, bytes_per_param=_BYTES_PER_PARAM[dtype])
    r = roofline(arch, hardware, batch=b, context=n, query=q, dtype=dtype)
    return {
        "roofline_ms": float(r["lower_bound_ms"]),
        "roofline_bound": "memory" if r["memory_s"] >= r["compute_s"] else "compute",
        "roofline_bytes": float(r["bytes"]),
    }


def profile_model(
    recipe: ModelRecipe,
    *,
    grid: ProfileGrid,
    device: str = "cpu",
    dtype: str = "fp32",
    hardware: HardwareSpec | None = None,
    measure: Measure | None = None,
    progress: Callable[[str], None] | None = None,
) -> Profile:
    """Time ``recipe`` over ``grid`` at each depth, fit T_fixed + L·T_layer per (b, n, q).

    Parameters
    ----------
    recipe : ModelRecipe
        The model (:func:`profiler.build.resolve_model`).
    grid : ProfileGrid
        Batches, contexts, queries, depths, whole-model flag, repeats.
    device : str
        ``"cpu"`` or ``"cuda[:i]"``.
    dtype : {"fp32", "bf16", "fp16"}
        Parameter dtype.
    hardware : HardwareSpec, optional
        For the roofline columns (:func:`profiler.hardware_probe.hardware_for`); without it they
        are NaN.
    measure : callable, optional
        ``measure(depth=, batch=, context=, query=) -> TimingResult``; default
        :class:`HFForwardTimer` (real model). Tests inject a synthetic timer here.
    progress : callable, optional
        Called with a short label after every timed point (e.g. a tqdm bar's update).

    Returns
    -------
    Profile
        ``rows`` with :data:`ROW_COLUMNS`, ``fits`` with :data:`FIT_COLUMNS`.
    """
    if dtype not in _BYTES_PER_PARAM:
        raise ValueError(f"`dtype in {tuple(_BYTES_PER_PARAM)}` must hold, but got {dtype=}.")
    full = recipe.layers
    max_pos = getattr(recipe.config, "max_position_embeddings", None)
    longest = max(grid.context) + max(grid.query)
    if max_pos is not None and longest > max_pos:
        raise ValueError(
            f"`context + query <= max_position_embeddings` must hold, but got {longest} > {max_pos}."
        )
    # Depths above the model's own are allowed: a 1-layer model is differenced at depths 1 and 2.
    depths = list(grid.depths)
    timed_depths = depths + ([full] if grid.whole and full not in depths else [])
    own = measure is None
    timer = (
        HFForwardTimer(
            recipe,
            device=device,
            dtype=dtype,
            repeats=grid.repeats,
            warmup=grid.warmup,
            min_time_ms=grid.min_time_ms,
            block=grid.block,
            flush_bytes=grid.flush_bytes,
        )
        if own
        else measure
    )
    env = _env(device, dtype, hardware)
    fields = arch_fields(recipe.config)
    rows = []
    try:
        for b, n, q in grid.points():
            load = os.getloadavg()[0]
            results = timer(depths=timed_depths, batch=b, context=n, query=q)
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            for depth in timed_depths:
                res = results[depth]
                roof = _roofline_parts(recipe, hardware, depth, dtype, b, n, q)
                med = res.median_ms
                bw = roof["roofline_bytes"] / (med / 1e3) if med > 0 else float("nan")
                hw_bw = hardware.memory_bandwidth_bytes_per_s if hardware else float("nan")
                rows.append(
                    {
                        "model": recipe.name,
                        "source": recipe.source,
                        "model_type": fields["model_type"],
                        "family": fields["family"],
                        "layers": full,
                        "depth": depth,
                        "whole": depth == full,
                        **{
                            k: fields[k]
                            for k in (
                                "hidden",
                                "ffn",
                                "heads",
                                "kv_heads",
                                "head_dim",
                                "experts",
                                "vocab",
                            )  # fmt: skip
                        },
                        "tied": fields["tied"],
                        "params": _param_count(recipe, depth),
                        "batch": b,
                        "context": n,
                        "query": q,
                        "median_ms": med,
                        "iqr_ms": res.iqr_ms,
                        "min_ms": res.min_ms,
                        "max_ms": res.max_ms,
                        "repeats": len(res.samples_ms),
                        "warmup": grid.warmup,
                        "block": grid.block,
                        "flush_bytes": grid.flush_bytes if own else 0,
                        "runs": 1,
                        "run_samples": str(len(res.samples_ms)),
                        "samples_ms": ";".join(f"{s:.4f}" for s in res.samples_ms),
                        **_cpu_columns(res),
                        **roof,
                        "achieved_bandwidth_bytes_per_s": bw,
                        "bandwidth_fraction": bw / hw_bw,
                        **env,
                        "loadavg_1m": load,
                        "measured_at": stamp,
                    }
                )
            if progress is not None:
                ms = ", ".join(f"L={d}: {results[d].median_ms:.2f}" for d in timed_depths)
                progress(f"b={b} n={n} q={q}: {ms} ms")
    finally:
        if own:
            timer.close()
    frame = pd.DataFrame(rows, columns=list(ROW_COLUMNS))
    return Profile(
        model=recipe.name,
        rows=frame,
        fits=fit_profile(frame, depths=depths, hardware=hardware, recipe=recipe),
    )


def _cpu_columns(res: TimingResult) -> dict[str, Any]:
    cpu = tuple(getattr(res, "cpu_samples_ms", ()))
    if not cpu:
        return {"cpu_median_ms": float("nan"), "cpu_iqr_ms": float("nan"), "cpu_samples_ms": ""}
    t = TimingResult(cpu)
    return {
        "cpu_median_ms": t.median_ms,
        "cpu_iqr_ms": t.iqr_ms,
        "cpu_samples_ms": ";".join(f"{s:.4f}" for s in cpu),
    }


def _param_count(recipe: ModelRecipe, depth: int) -> float:
    if recipe.arch is not None:
        return float(recipe.arch.replace(layers=depth).param_count)
    return float("nan")  # not a layout ArchSpec counts
