"""Per-layer forward latency by depth differencing, written as tidy profile CSVs.

One forward pass is timed at batch b, with n tokens already in a ``DynamicCache`` and q new
tokens per row, on truncated copies of the model at two or more depths L. Each depth's model is
built once (:func:`profiler.build.build_model`), its KV cache filled with random keys/values of
the right shape (no prefill pass: a 65B layer's prefill would take longer than the sweep), and
the cache is cropped back to n in the untimed ``setup`` hook of :func:`profiler.timing.time_callable`
before every timed call. Per (b, n, q),

    T(L) = T_fixed + L · T_layer

is fitted by least squares over the depths (:func:`fit_depths`); the fit's residual says how
linear the depth dependence is. With ``whole=True`` the full-depth model is timed as well and the
composed prediction T_fixed + L_full · T_layer is compared with it.

Output (see ``data/README.md``, section "profiles"): ``<out>/<model>.csv`` holds one row per
measurement (model, depth, batch, context, query, dtype); ``<out>/<model>.fit.csv`` one row per
(model, batch, context, query, dtype) with T_fixed_ms, T_layer_ms and the residual. Writing them
(atomically, merged with earlier rows, or pooled with them) is :mod:`profiler.profile_store`.
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from perfmodel.hardware import HardwareSpec
from perfmodel.roofline import roofline
from profiler.build import ModelRecipe, _cycle, arch_fields, build_model
from profiler.timing import TimingResult, time_callable

__all__ = [
    "FIT_COLUMNS",
    "FIT_KEY",
    "MEASURE_KEY",
    "ROW_COLUMNS",
    "HFForwardTimer",
    "Profile",
    "ProfileGrid",
    "fit_depths",
    "profile_model",
]

# Columns of <model>.csv, in file order (units in data/README.md, section "profiles").
ROW_COLUMNS = (
    "model", "source", "model_type", "family", "layers", "depth", "whole",
    "hidden", "ffn", "heads", "kv_heads", "vocab", "tied", "params",
    "batch", "context", "query", "dtype",
    "median_ms", "iqr_ms", "min_ms", "max_ms", "repeats", "warmup", "runs", "samples_ms",
    "cpu_median_ms", "cpu_iqr_ms", "cpu_samples_ms", "roofline_ms", "roofline_bound", "roofline_bytes", "achieved_bandwidth_bytes_per_s",
    "bandwidth_fraction",
    "device", "device_name", "hardware_source", "threads", "torch_version",
    "transformers_version", "loadavg_1m", "measured_at",
)  # fmt: skip
MEASURE_KEY = ("model", "depth", "batch", "context", "query", "dtype")

# Columns of <model>.fit.csv.
FIT_COLUMNS = (
    "model", "family", "layers", "hidden", "ffn", "heads", "kv_heads", "vocab", "tied",
    "batch", "context", "query", "dtype",
    "t_fixed_ms", "t_layer_ms", "fit_residual_ms", "fit_rel_residual", "depths",
    "cpu_t_fixed_ms", "cpu_t_layer_ms", "cpu_fit_rel_residual",
    "whole_ms", "composed_ms", "whole_rel_error",
    "roofline_fixed_ms", "roofline_layer_ms", "device", "measured_at",
)  # fmt: skip
FIT_KEY = ("model", "batch", "context", "query", "dtype")

_BYTES_PER_PARAM = {"fp32": 4.0, "bf16": 2.0, "fp16": 2.0}


class Measure(Protocol):
    """Times one forward pass at each depth in ``depths``, interleaved; returns depth -> result."""

    def __call__(
        self, *, depths: Sequence[int], batch: int, context: int, query: int
    ) -> dict[int, TimingResult]: ...


@dataclass(frozen=True)
class DepthTiming(TimingResult):
    """Wall-clock samples (``samples_ms``) plus process CPU-time samples of the same calls.

    On a CPU with one torch thread the process CPU time of a call is its latency without the
    time other processes held the core: the uncontended latency on a shared machine (measured
    here with a spread of ~3% at a load average of 8 on 2 cores, where wall time was 3-4x longer
    and noisy). Empty on CUDA and with more than one thread, where it is not a latency.
    """

    cpu_samples_ms: tuple[float, ...] = ()


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
    """

    batch: tuple[int, ...] = (1,)
    context: tuple[int, ...] = (128,)
    query: tuple[int, ...] = (1, 4)
    depths: tuple[int, ...] = (1, 2)
    whole: bool = False
    repeats: int = 5
    warmup: int = 1

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


def fit_depths(depths: Sequence[float], times_ms: Sequence[float]) -> dict[str, float]:
    """Least-squares fit of T(L) = T_fixed + L · T_layer to times measured at several depths.

    Parameters
    ----------
    depths : sequence of float
        Depths L of the timed models, at least two distinct.
    times_ms : sequence of float
        Median forward time at each depth, ms.

    Returns
    -------
    dict
        ``t_fixed_ms``, ``t_layer_ms`` (ms), ``fit_residual_ms`` (root mean square of the
        residuals, ms; 0 with two depths), ``fit_rel_residual`` (the same over the mean time).

    Notes
    -----
    Ordinary least squares on the design matrix [1, L]. T_fixed can come out slightly negative
    when the fixed part is below the noise; it is reported as fitted, not clipped.

    Examples
    --------
    >>> fit = fit_depths([1, 2, 4], [3.0, 5.0, 9.0])
    >>> round(fit["t_fixed_ms"], 6), round(fit["t_layer_ms"], 6)
    (1.0, 2.0)
    """
    L = np.asarray(depths, dtype=np.float64)
    t = np.asarray(times_ms, dtype=np.float64)
    if L.shape != t.shape or L.ndim != 1 or len(np.unique(L)) < 2:
        raise ValueError(
            f"`depths` must hold >= 2 distinct values matching `times_ms`, but got {depths=}, "
            f"{times_ms=}."
        )
    A = np.stack([np.ones_like(L), L], axis=1)  # (points, 2)
    (fixed, layer), *_ = np.linalg.lstsq(A, t, rcond=None)
    resid = t - A @ np.array([fixed, layer])
    rms = float(np.sqrt(np.mean(resid**2)))
    return {
        "t_fixed_ms": float(fixed),
        "t_layer_ms": float(layer),
        "fit_residual_ms": rms,
        "fit_rel_residual": rms / float(np.mean(t)),
    }


class HFForwardTimer:
    """Times the real HF model at several depths, interleaved, with one copy of the weights.

    The model is built once at the deepest depth asked for; a depth-d pass runs its first d
    layers (the layer list is swapped for its first d entries and ``num_hidden_layers`` set to d).
    The depths are timed round-robin, one call each per round, so a change in the machine's load
    (the CPU is shared) hits every depth alike instead of biasing the difference between them.
    Each depth has its own KV cache, filled with random keys/values and cropped back to n in the
    untimed ``setup`` hook before every call.

    Parameters
    ----------
    recipe : ModelRecipe
        What to build.
    device : str
        ``"cpu"`` or ``"cuda[:i]"``.
    dtype : {"fp32", "bf16", "fp16"}
        Parameter and cache dtype.
    repeats, warmup : int
        Timed calls per depth and untimed calls per depth before them.
    """

    def __init__(
        self, recipe: ModelRecipe, *, device: str, dtype: str, repeats: int, warmup: int
    ) -> None:
        self.recipe, self.device, self.dtype = recipe, device, dtype
        self.repeats, self.warmup = repeats, warmup
        self._depth: int | None = None
        self._model: Any = None
        self._layers: Any = None
        self._owner: Any = None
        self._attr = ""

    def close(self) -> None:
        """Free the model (and the accelerator's cached blocks)."""
        self._model = self._layers = self._owner = None
        self._depth = None
        gc.collect()
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()

    def _ensure(self, depth: int) -> Any:
        if self._depth is None or self._depth < depth:
            self.close()
            self._model = build_model(
                self.recipe, layers=depth, dtype=self.dtype, device=self.device
            )
            self._owner, self._attr, self._layers = _layer_list(self._model)
            self._depth = depth
        return self._model

    def _set_depth(self, depth: int) -> None:
        import torch

        setattr(self._owner, self._attr, torch.nn.ModuleList(list(self._layers)[:depth]))
        self._model.config.num_hidden_layers = depth
        full_types = getattr(self.recipe.config, "layer_types", None)
        if full_types:
            self._model.config.layer_types = _cycle(list(full_types), depth)

    def _filled_cache(self, batch: int, context: int, depth: int) -> Any:
        import torch
        from transformers import DynamicCache

        cfg = self._model.config
        heads = cfg.num_attention_heads
        kv = getattr(cfg, "num_key_value_heads", None) or heads
        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
        cache = DynamicCache(config=cfg)
        if context == 0:
            return cache
        gen = torch.Generator(device=self.device).manual_seed(0)
        for i in range(depth):
            # (batch, kv_heads, context, head_dim); keys and values alike, values do not matter
            k = torch.randn(
                batch,
                kv,
                context,
                head_dim,
                generator=gen,
                device=self.device,
                dtype=self._model.dtype,
            )
            cache.update(k, k.clone(), i)
        return cache

    def __call__(
        self, *, depths: Sequence[int], batch: int, context: int, query: int
    ) -> dict[int, TimingResult]:
        import torch

        model = self._ensure(max(depths))
        vocab = model.config.vocab_size
        gen = torch.Generator().manual_seed(1)
        ids = torch.randint(vocab, (batch, query), generator=gen).to(self.device)
        samples: dict[int, list[float]] = {d: [] for d in depths}
        with torch.inference_mode():
            caches = {}
            for d in depths:
                self._set_depth(d)
                caches[d] = self._filled_cache(batch, context, d)
                self._check(caches[d], ids, batch=batch, context=context, query=query)
            # process CPU time of each call, read around the forward pass itself
            cpu_ms: dict[int, list[float]] = {d: [] for d in depths}
            for r in range(self.repeats):
                # round-robin over depths; reverse every other round so no depth always goes first
                for d in depths if r % 2 == 0 else list(reversed(depths)):
                    self._set_depth(d)
                    cache = caches[d]

                    def crop(cache: Any = cache) -> None:
                        extra = cache.get_seq_length() - context
                        if extra > 0:
                            cache.crop(-extra)

                    def forward(cache: Any = cache, d: int = d) -> Any:
                        c0 = time.process_time_ns()
                        out = model(input_ids=ids, cache=cache, use_cache=True)
                        cpu_ms[d].append((time.process_time_ns() - c0) / 1e6)
                        return out

                    warm = self.warmup if r == 0 else 0
                    res = time_callable(
                        forward, device=self.device, warmup=warm, repeats=1, setup=crop
                    )
                    samples[d].extend(res.samples_ms)
                    del cpu_ms[d][: len(cpu_ms[d]) - len(samples[d])]  # drop the warm-up calls
            self._set_depth(self._depth)
        keep_cpu = self.device == "cpu" and torch.get_num_threads() == 1
        return {
            d: DepthTiming(tuple(s), cpu_samples_ms=tuple(cpu_ms[d]) if keep_cpu else ())
            for d, s in samples.items()
        }

    def _check(self, cache: Any, ids: Any, *, batch: int, context: int, query: int) -> None:
        """Check what is timed before timing it: right logits shape, finite, cache grown by q."""
        import torch

        vocab = self._model.config.vocab_size
        logits = self._model(input_ids=ids, cache=cache, use_cache=True).logits
        finite = bool(torch.isfinite(logits).all())
        if tuple(logits.shape) != (batch, query, vocab) or not finite:
            raise RuntimeError(
                f"forward pass gave logits of shape {tuple(logits.shape)} (finite: {finite}), "
                f"expected {(batch, query, vocab)}."
            )
        if cache.get_seq_length() != context + query:
            raise RuntimeError(
                f"KV cache holds {cache.get_seq_length()} tokens after the pass, expected "
                f"{context + query}."
            )


def _layer_list(model: Any) -> tuple[Any, str, Any]:
    """(owner module, attribute name, ModuleList) of the decoder layers: the ModuleList whose
    length is ``num_hidden_layers`` (``model.layers`` in llama, ``model.decoder.layers`` in OPT,
    ``transformer.h`` in GPT-2)."""
    import torch

    want = model.config.num_hidden_layers
    for _, module in model.named_modules():
        for attr, child in module.named_children():
            if isinstance(child, torch.nn.ModuleList) and len(child) == want:
                return module, attr, child
    raise ValueError(
        f"cannot find the decoder layer list (a ModuleList of {want}) in {type(model).__name__}."
    )


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
        HFForwardTimer(recipe, device=device, dtype=dtype, repeats=grid.repeats, warmup=grid.warmup)
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
                        **{k: fields[k] for k in ("hidden", "ffn", "heads", "kv_heads", "vocab")},
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
                        "runs": 1,
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


def _param_count(recipe: ModelRecipe, depth: int) -> int:
    if recipe.arch is not None:
        return float(recipe.arch.replace(layers=depth).param_count)
    return float("nan")  # not a layout ArchSpec counts


def fit_profile(
    rows: pd.DataFrame,
    *,
    depths: Iterable[int] | None = None,
    hardware: HardwareSpec | None = None,
    recipe: ModelRecipe | None = None,
) -> pd.DataFrame:
    """Per (model, b, n, q, dtype): fit T_fixed + L·T_layer over ``depths`` rows; compare whole.

    Parameters
    ----------
    rows : DataFrame
        Rows with :data:`ROW_COLUMNS` (one model or several).
    depths : iterable of int, optional
        Depths to fit on (default: every depth but the whole model's, or all when only whole
        rows would remain).
    hardware, recipe : optional
        For the roofline_fixed_ms / roofline_layer_ms columns (NaN without them).

    Returns
    -------
    DataFrame
        :data:`FIT_COLUMNS`.
    """
    from perfmodel.roofline import roofline_fixed, roofline_layer

    out = []
    for key, g in rows.groupby(list(FIT_KEY), sort=True):
        use = (
            g[g["depth"].isin(list(depths))] if depths is not None else g[~g["whole"].astype(bool)]
        )
        if use["depth"].nunique() < 2:
            use = g
        if use["depth"].nunique() < 2:
            continue
        fit = fit_depths(use["depth"].to_numpy(), use["median_ms"].to_numpy())
        cpu = pd.to_numeric(use["cpu_median_ms"], errors="coerce").to_numpy(dtype=float)
        if np.isfinite(cpu).all():
            cfit = fit_depths(use["depth"].to_numpy(), cpu)
            cpu_fit = {
                "cpu_t_fixed_ms": cfit["t_fixed_ms"],
                "cpu_t_layer_ms": cfit["t_layer_ms"],
                "cpu_fit_rel_residual": cfit["fit_rel_residual"],
            }
        else:
            cpu_fit = dict.fromkeys(
                ("cpu_t_fixed_ms", "cpu_t_layer_ms", "cpu_fit_rel_residual"), float("nan")
            )
        first = g.iloc[0]
        full = int(first["layers"])
        whole = g[g["depth"] == full]
        whole_ms = float(whole["median_ms"].iloc[0]) if len(whole) else float("nan")
        composed = fit["t_fixed_ms"] + full * fit["t_layer_ms"]
        rf = rl = float("nan")
        dtype = str(first["dtype"])
        if (
            recipe is not None
            and recipe.arch is not None
            and hardware is not None
            and dtype in hardware.peak_flops_per_s
        ):
            arch = recipe.arch.replace(bytes_per_param=_BYTES_PER_PARAM[dtype])
            b, n, q = int(first["batch"]), int(first["context"]), int(first["query"])
            rf = float(
                roofline_fixed(arch, hardware, batch=b, query=q, dtype=dtype)["lower_bound_ms"]
            )
            rl = float(
                roofline_layer(arch, hardware, batch=b, context=n, query=q, dtype=dtype)[
                    "lower_bound_ms"
                ]
            )
        out.append(
            {
                **dict(zip(FIT_KEY, key, strict=True)),
                **{
                    k: first[k]
                    for k in (
                        "family",
                        "layers",
                        "hidden",
                        "ffn",
                        "heads",
                        "kv_heads",
                        "vocab",
                        "tied",
                    )
                },
                **fit,
                "depths": ";".join(str(int(d)) for d in sorted(use["depth"].unique())),
                **cpu_fit,
                "whole_ms": whole_ms,
                "composed_ms": composed,
                "whole_rel_error": (composed - whole_ms) / whole_ms,
                "roofline_fixed_ms": rf,
                "roofline_layer_ms": rl,
                "device": first["device"],
                "measured_at": g["measured_at"].max(),
            }
        )
    return pd.DataFrame(out, columns=list(FIT_COLUMNS))
