"""Depth fits: T(L) = T_fixed + L · T_layer by least squares, per (model, b, n, q, dtype).

:func:`fit_depths` fits one line to the median times of the depths measured at one point;
:func:`fit_profile` does so for every point of a profile's rows (wall time and, where measured,
process CPU time), compares the composed prediction T_fixed + L_full · T_layer with a timed
full-depth model, and adds the roofline lower bounds of the fixed part and of one layer. Its
output is the ``<model>.fit.csv`` table (:data:`FIT_COLUMNS`; ``data/README.md``, "profiles").
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from perfmodel.hardware import HardwareSpec
from profiler.build import ModelRecipe

__all__ = ["FIT_COLUMNS", "FIT_KEY", "fit_depths", "fit_profile"]

# Columns of <model>.fit.csv.
FIT_COLUMNS = (
    "model", "family", "layers", "hidden", "ffn", "heads", "kv_heads", "head_dim", "experts",
    "vocab", "tied", "batch", "context", "query", "dtype",
    "t_fixed_ms", "t_layer_ms", "fit_residual_ms", "fit_rel_residual", "depths",
    "cpu_t_fixed_ms", "cpu_t_layer_ms", "cpu_fit_rel_residual",
    "whole_ms", "composed_ms", "whole_rel_error",
    "roofline_fixed_ms", "roofline_layer_ms", "device", "measured_at",
)  # fmt: skip
FIT_KEY = ("model", "batch", "context", "query", "dtype")

_BYTES_PER_PARAM = {"fp32": 4.0, "bf16": 2.0, "fp16": 2.0}


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
                "head_dim": first.get("head_dim"),  # rows written before it have none
                "experts": first.get("experts"),  # nor this
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
