"""Held-out error of the fitted latency model, and depth vs width at equal parameter count.

1. Leave-one-architecture-out: for every profiled shape, fit ``perfmodel.LatencyModel`` to all
   other shapes and predict every row (all depths, batches, contexts, queries) of the left-out
   one as a shape never profiled: the parametric model corrected by its profiled neighbours
   (``NeighbourCorrection``), and, for comparison, the pure parametric model. Goal on CPU:
   median |error| <= 5 %, worst <= 15 %. Where the folder has a GEMM table (``gemm.csv``), the
   left-out shape's matrix products are dropped from it too (``--gemm strict``, default: a shape
   nothing was timed of); ``--gemm kept`` keeps them (a shape whose products were timed, seconds
   with ``specdec profile --gemm``, but not its forward passes); ``--gemm off`` ignores the table.
   Beside it, the noise floor: how far one profiling run's median is from the pooled median of
   several runs of the same point (profiles made with ``--accumulate``).
2. Depth vs width: per-token decoding latency T(b=1, n, q=1) of llama-layout drafts with about
   the same number of layer parameters (12·h²·L, ffn = 2.6875·h) but different depth and width,
   from the model fitted to everything (measured shapes use their measured tables). On GPUs the
   seed paper found latency grows with depth at equal size; the table says whether it does here.

Prints the figures, then one JSON line.

Also printed: the ``--worst`` N held-out rows (measured, predicted, the spread of the row's calls
and the range of its recorded runs' medians: a prediction outside that range is the model's
miss, not the measurement's noise), and per profiled shape T_layer over its products and
T_fixed minus its LM head's product from the GEMM table.

Usage: python benchmarks/bench_latency_model.py [--profiles DIR] [--statistic auto] [--dtype D]
       [--gemm strict|kept|off] [--depth-fit absolute|relative] [--worst 10]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from perfmodel.arch import ArchSpec
from perfmodel.latency_model import ARCH_KEY, LatencyModel, load_profile_rows
from perfmodel.latency_profiles import BYTES_PER_PARAM, parse_samples, run_blocks
from perfmodel.latency_tables import DEPTH_FITS

REPO = Path(__file__).resolve().parents[1]
DEFAULT = REPO / "data" / "profiles" / "cpu-xeon-2.5ghz-1c"

# Rows whose pooled samples' interquartile range is at most this fraction of their median: the
# points measured precisely, where the held-out error is the model's own rather than noise's.
PRECISE_REL_IQR = 0.10

# The goal for every held-out row's |error| on CPU.
WORST_ROW_GOAL = 0.15

# The cache a process gets on the profiled EPYC VM (benchmarks/bench_residency.py): the default
# split of a CPU profile's held-out error by model size.
CPU_CACHE_MIB = 8.0

# (hidden, layers) with 12.06·h²·L within 6 % of 50.6 M layer parameters.
EQUAL_PARAMS = ((2048, 1), (1408, 2), (1024, 4), (704, 8), (512, 16), (384, 28), (256, 64))


def _arch(row, layers: int) -> ArchSpec:
    return ArchSpec(
        layers=int(layers), hidden=int(row.hidden), ffn=int(row.ffn), heads=int(row.heads),
        kv_heads=int(row.kv_heads), vocab=int(row.vocab), tied_embeddings=bool(row.tied),
        family=str(row.family),
    )  # fmt: skip


def held_out(
    rows,
    *,
    statistic: str,
    flops_per_byte: float,
    gemm=None,
    exclude_gemms: bool = True,
    parametric_fit=None,
    model_cls=LatencyModel,
    depth_fit: str = "absolute",
) -> dict[str, dict]:
    """``{"corrected": ..., "pure": ...}``: the error summary of each left-out shape predicted
    with the neighbour correction and with the pure parametric model, from one fit per shape.

    ``gemm``: the device's GEMM table; with ``exclude_gemms`` the left-out shape's products are
    dropped from it too (a shape whose layers and products were never timed). ``parametric_fit``:
    another cross-architecture model's fit (``LatencyModel.fit``'s; default the committed one);
    ``model_cls``: a ``LatencyModel`` subclass to fit and predict with; ``depth_fit``: how each
    shape's depth fit weighs its rows (``LatencyModel.fit``'s)."""
    keys = sorted({tuple(k) for k in rows[list(ARCH_KEY)].itertuples(index=False)}, key=str)
    errors: dict[str, dict[str, list[float]]] = {"corrected": {}, "pure": {}}
    worst: list[dict] = []
    spread: dict[str, list[float]] = {}
    footprint: dict[str, list[float]] = {}
    iqr = "cpu_iqr_ms" if statistic == "cpu_median_ms" else "iqr_ms"
    samples = "cpu_samples_ms" if statistic == "cpu_median_ms" else "samples_ms"
    for key in keys:
        k = (str(key[0]), *map(int, key[1:6]), bool(key[6]))
        m = model_cls.fit(
            rows, statistic=statistic, flops_per_byte=flops_per_byte, exclude=[k], gemm=gemm,
            exclude_gemms=exclude_gemms, parametric_fit=parametric_fit, depth_fit=depth_fit,
        )  # fmt: skip
        mine = rows[
            np.logical_and.reduce([rows[c] == v for c, v in zip(ARCH_KEY, key, strict=True)])
        ]
        name = ",".join(sorted(set(mine["model"])))
        spread[name] = list(mine[iqr] / mine[m.statistic]) if iqr in mine else [np.nan] * len(mine)
        footprint[name] = [_weight_bytes(_arch(r, r.depth)) for r in mine.itertuples()]
        for kind, corrected in (("corrected", True), ("pure", False)):
            errors[kind][name] = [
                m.latency_fn(_arch(r, r.depth), profiled=corrected)(r.batch, r.context, r.query)
                / getattr(r, m.statistic)
                - 1
                for r in mine.itertuples()
            ]
        for r, e, rel in zip(
            mine.itertuples(), errors["corrected"][name], spread[name], strict=True
        ):
            worst.append(
                {"model": name, "depth": int(r.depth), "batch": int(r.batch),
                 "context": int(r.context), "query": int(r.query),
                 "measured_ms": float(getattr(r, m.statistic)),
                 "predicted_ms": float(getattr(r, m.statistic)) * (1 + e), "error": float(e),
                 "rel_iqr": float(rel), "runs": _runs(r),
                 "run_medians_ms": run_medians(r, samples)}
            )  # fmt: skip
    out = {kind: _summary(per, statistic, spread) for kind, per in errors.items()}
    out["errors"], out["pure_errors"] = errors["corrected"], errors["pure"]
    out["footprint"] = footprint
    out["rows"] = sorted(worst, key=lambda w: -abs(w["error"]))
    return out


def _weight_bytes(arch: ArchSpec) -> float:
    """fp32 bytes of a model's weights: its layers, LM head and (untied) embedding."""
    head = arch.vocab * arch.hidden * (1 if arch.tied_embeddings else 2)
    return 4.0 * (arch.layers * arch.layer_param_count + head)


def cache_split(errors: dict, footprint: dict, cache_bytes: float) -> dict:
    """Held-out |error| of rows whose model's fp32 weights fit in ``cache_bytes`` and of the rest."""
    e = np.abs(np.concatenate([np.array(v, float) for v in errors.values()]))
    f = np.concatenate([np.array(footprint[k], float) for k in errors])
    out = {}
    for label, sel in (("fits", f < cache_bytes), ("larger", f >= cache_bytes)):
        out[label] = {
            "rows": int(sel.sum()),
            "median_abs_error": float(np.median(e[sel])) if sel.any() else None,
            "rows_over_15pct": int((e[sel] > WORST_ROW_GOAL).sum()),
        }
    return out


def split_cache_mib(given: float | None, devices: pd.Series) -> float | None:
    """The cache size (MiB) for :func:`cache_split`: ``given``, else 8 MiB on a CPU profile
    (device slugs ``cpu-...``), else None: a GPU's caches are not what decides its rows."""
    if given is not None:
        return given
    if len(devices) and devices.astype(str).str.startswith("cpu").all():
        return CPU_CACHE_MIB
    return None


def _length_bands(t: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """(label, mask) of passes under 2 ms, of 2-50 ms and of 50 ms and more."""
    return [("< 2 ms", t < 2), ("2-50 ms", (t >= 2) & (t < 50)), (">= 50 ms", t >= 50)]


def length_split(rows: list[dict]) -> list[dict]:
    """Held-out |error| by the measured pass length (the bands of :func:`_length_bands`):
    how far the worst-row goal is from passes long enough to be timed precisely."""
    t = np.array([r["measured_ms"] for r in rows], float)
    e = np.abs(np.array([r["error"] for r in rows], float))
    return [
        {"label": label, **abs_error_summary(e[sel])}
        for label, sel in _length_bands(t)
        if sel.any()
    ]


def parts_over_products(
    folder: Path, model: LatencyModel, *, context: int
) -> dict[str, list[dict]]:
    """Per profiled shape (``*.fit.csv``, b = 1), one entry per profiled q: its fitted T_layer
    over the sum of its layer's products at m = q, and its fitted T_fixed minus its LM head's
    product, from the GEMM table (timed cold, as from memory).

    T_fixed minus the head is what the pass spends outside the head (embedding, final norm,
    Python): about the same for every shape, unless the head ran faster in the pass than its
    cold product (a head that stayed in the last-level cache)."""
    gemm = model.parametric.gemm
    out: dict[str, list[dict]] = {}
    cpu = model.statistic == "cpu_median_ms"
    layer_col, fixed_col = (
        ("cpu_t_layer_ms", "cpu_t_fixed_ms") if cpu else ("t_layer_ms", "t_fixed_ms")
    )
    for path in sorted(folder.glob("*.fit.csv")):
        fits = pd.read_csv(path)
        fits = fits[(fits["dtype"] == model.dtype) & (fits["batch"] == 1)]
        fits = fits[fits["context"] == context].sort_values("query")
        if fits.empty or gemm is None:
            continue
        r = fits.iloc[0]
        q = fits["query"].to_numpy(float)
        products = gemm.layer_ms(
            q, hidden=int(r.hidden), ffn=int(r.ffn), heads=int(r.heads),
            kv_heads=int(r.kv_heads), opt=r.family == "opt",
        )  # fmt: skip
        head = gemm.head_ms(q, hidden=int(r.hidden), vocab=int(r.vocab))
        out[str(r.model)] = [
            {"query": int(qi), "layer_over_products": float(t / p),
             "fixed_minus_head_ms": float(f - h),
             "head_bytes": float(r.hidden * r.vocab * BYTES_PER_PARAM[model.dtype])}
            for qi, t, p, f, h in zip(
                fits["query"], fits[layer_col], products, fits[fixed_col], head, strict=True
            )
        ]  # fmt: skip
    return out


def abs_error_summary(abs_errors: np.ndarray) -> dict:
    """Rows, median, p90 and worst of absolute relative errors (None for no rows), and how many
    exceed the worst-row goal (15%)."""
    e = np.asarray(abs_errors, float)
    some = len(e) > 0
    return {
        "rows": int(len(e)),
        "median_abs_error": float(np.median(e)) if some else None,
        "p90_abs_error": float(np.quantile(e, 0.9)) if some else None,
        "worst_abs_error": float(e.max()) if some else None,
        "rows_over_15pct": int((e > WORST_ROW_GOAL).sum()),
    }


def _summary(
    per_arch_errors: dict[str, list[float]], statistic: str, spread: dict[str, list[float]]
) -> dict:
    per_arch = {}
    for name, err in per_arch_errors.items():
        err = np.array(err)
        per_arch[name] = {
            "rows": int(len(err)),
            "median_abs_error": float(np.median(np.abs(err))),
            "worst_abs_error": float(np.max(np.abs(err))),
            "mean_error": float(np.mean(err)),
        }
    e = np.abs(np.concatenate([np.array(v) for v in per_arch_errors.values()]))
    rel_iqr = np.concatenate([np.array(spread[k], float) for k in per_arch_errors])
    precise = e[rel_iqr <= PRECISE_REL_IQR]
    return {
        "precise_rows": {"rel_iqr_at_most": PRECISE_REL_IQR, **abs_error_summary(precise)},
        "rows_over_15pct": int((e > WORST_ROW_GOAL).sum()),
        "statistic": statistic,
        "median_abs_error": float(np.median(e)),
        "p90_abs_error": float(np.quantile(e, 0.9)),
        "worst_abs_error": float(e.max()),
        "worst_arch_median_abs_error": max(v["median_abs_error"] for v in per_arch.values()),
        "per_arch": per_arch,
    }


def _runs(row) -> int:
    """A profile row's pooled runs (1 where the column is missing or empty)."""
    runs = getattr(row, "runs", 1)
    return int(runs) if np.isfinite(runs) else 1


def run_medians(row, column: str) -> list[float]:
    """Each recorded run's median of a pooled profile row (``column``: its samples).

    A row's samples lie run after run, each run's share in ``run_samples``
    (:func:`perfmodel.latency_profiles.run_blocks`). Only blocks that are one run count: runs
    timed until a minimum time differ in length, and where their boundaries were not kept the
    block is skipped. Empty for a row of one run or without samples.
    """
    return _split_runs(row, column)[1]


def _split_runs(row, column: str) -> tuple[np.ndarray, list[float]]:
    """(the row's samples, :func:`run_medians`), the samples parsed once."""
    runs = _runs(row)
    if runs < 2 or not hasattr(row, column):
        return np.array([]), []
    samples = np.array(parse_samples(getattr(row, column)))
    if not len(samples):
        return samples, []
    blocks = run_blocks(getattr(row, "run_samples", None), repeats=len(samples), runs=runs)
    edges = np.cumsum([n for n, _ in blocks])[:-1]
    medians = [
        float(np.median(chunk))
        for chunk, (_, k) in zip(np.split(samples, edges), blocks, strict=True)
        if k == 1
    ]
    return samples, medians


def repeatability(rows, statistic: str) -> dict | None:
    """How far one profiling run's median is from the median over all pooled runs of a point.

    Rows pooled from several runs (``runs`` >= 2, ``specdec profile --accumulate``) hold their
    samples run after run, each run's share in ``run_samples``
    (:func:`perfmodel.latency_profiles.run_blocks`); each run's median over its share is
    compared with the row's pooled median (blocks of several runs whose boundaries were not
    kept are skipped). This is the noise floor of a one-run measurement, against which the held-out
    error above can be read. ``None`` when no row was pooled.
    """
    column = "cpu_samples_ms" if statistic == "cpu_median_ms" else "samples_ms"
    if "runs" not in rows.columns:
        return None
    dev = []
    for r in rows.itertuples():
        samples, medians = _split_runs(r, column)
        if medians:
            pooled = np.median(samples)
            dev += [m / pooled - 1 for m in medians]
    if not dev:
        return None
    d = np.abs(dev)
    return {
        "runs_compared": len(d),
        "median_abs_deviation": float(np.median(d)),
        "p90_abs_deviation": float(np.quantile(d, 0.9)),
        "worst_abs_deviation": float(d.max()),
    }


def spread_by_length(rows, statistic: str) -> list[dict]:
    """Interquartile range over median of each row's pooled calls, by pass length: short
    passes are the noisy ones (why ``--min-time-ms`` times them longer)."""
    iqr = "cpu_iqr_ms" if statistic == "cpu_median_ms" else "iqr_ms"
    rel = (rows[iqr] / rows[statistic]).to_numpy(dtype=float)
    t = rows[statistic].to_numpy(dtype=float)
    out = []
    for label, sel in _length_bands(t):
        v = rel[sel & np.isfinite(rel)]
        if len(v):
            out.append({
                "label": label, "rows": int(len(v)), "median_rel_iqr": float(np.median(v)),
                "p90_rel_iqr": float(np.quantile(v, 0.9)),
            })  # fmt: skip
    return out


def depth_vs_width(model: LatencyModel, *, context: int, vocab: int) -> list[dict]:
    out = []
    for h, L in EQUAL_PARAMS:
        arch = ArchSpec(
            layers=L, hidden=h, ffn=(h * 43 // 16 + 7) // 8 * 8, heads=h // 64,
            kv_heads=h // 64, vocab=vocab, tied_embeddings=False, family="llama",
        )  # fmt: skip
        fn = model.latency_fn(arch)
        parts = fn.breakdown(1, context, 1)
        verify = fn(1, context, 5)
        out.append(
            {
                "hidden": h,
                "layers": L,
                "layer_params": int(arch.layers * arch.layer_param_count),
                "params": int(arch.param_count),
                "profiled_shape": model.is_profiled(arch),
                "token_ms": float(parts["total_ms"]),
                "layers_ms": float(parts["layers_ms"]),
                "fixed_ms": float(parts["fixed_ms"]),
                "q5_ms": float(verify),
            }
        )
    return out


def _span(row: dict) -> str:
    """'lo - hi (k runs)' of a worst row's recorded run medians, '-' without any."""
    m = row["run_medians_ms"]
    if not m:
        return "-"
    return f"{min(m):.3g} - {max(m):.3g} ms ({len(m)} runs)"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--profiles", default=str(DEFAULT))
    p.add_argument("--statistic", default="auto")
    p.add_argument("--context", type=int, default=128)
    p.add_argument("--dtype", default=None, help="rows of this dtype (default: the most frequent)")
    p.add_argument(
        "--gemm",
        choices=("strict", "kept", "off"),
        default="strict",
        help="use the folder's gemm.csv with the left-out shape's products dropped (strict,"
        " default), kept (as when its products were timed, a few seconds with"
        " `specdec profile --gemm`), or not at all (off)",
    )
    p.add_argument(
        "--cache-mib",
        type=float,
        default=None,
        help="cache size for the split of the held-out error by model size (default on a CPU"
        " profile 8: what a process gets of the profiled EPYC VM's 32 MiB L3,"
        " benchmarks/bench_residency.py; on any other device no split unless given)",
    )
    p.add_argument(
        "--depth-fit",
        choices=DEPTH_FITS,
        default="absolute",
        help="how each profiled shape's depth fit weighs its rows: absolute least squares"
        " (default) or relative (each row by 1 / its time, so one- and two-layer rows count as"
        " much as the whole model's)",
    )
    p.add_argument(
        "--worst", type=int, default=10, help="list this many worst held-out rows (default 10)"
    )
    args = p.parse_args(argv)
    if args.cache_mib is not None and not args.cache_mib > 0:
        print(
            f"bench_latency_model: --cache-mib must be a size in MiB above 0, got {args.cache_mib:g}",
            file=sys.stderr,
        )
        return 2

    full = LatencyModel.from_profiles(
        args.profiles, statistic=args.statistic, dtype=args.dtype, use_gemm=args.gemm != "off",
        depth_fit=args.depth_fit,
    )  # fmt: skip
    rows = load_profile_rows(args.profiles)
    rows = rows[rows["dtype"] == full.dtype]
    gemm = full.parametric.gemm
    both = held_out(
        rows, statistic=full.statistic, flops_per_byte=full.parametric.flops_per_byte, gemm=gemm,
        exclude_gemms=args.gemm == "strict", depth_fit=args.depth_fit,
    )  # fmt: skip
    ho, pure = both["corrected"], both["pure"]

    print(f"profiles: {args.profiles} ({len(rows)} rows, {len(full.tables)} shapes, {full.dtype})")
    print(
        f"fitted statistic: {full.statistic}; ridge point {full.parametric.flops_per_byte:.1f} "
        f"FLOP/byte; depth fit: {args.depth_fit}"
    )
    gemm_note = {
        "strict": "GEMM table without the left-out shape's products",
        "kept": "GEMM table with the left-out shape's products",
        "off": "no GEMM table",
    }
    print(
        f"GEMM table: {len(gemm.pairs)} measured products; held-out mode: {gemm_note[args.gemm]}"
        if gemm is not None
        else "GEMM table: none"
    )
    print(
        "\nleave-one-architecture-out error, each shape predicted as never profiled "
        "(parametric + neighbour correction; |predicted/measured - 1|):"
    )
    print(f"{'architecture':44} {'rows':>5} {'median':>8} {'worst':>8} {'bias':>8}")
    for name, v in ho["per_arch"].items():
        print(
            f"{name[:44]:44} {v['rows']:>5} {v['median_abs_error']:>8.1%} "
            f"{v['worst_abs_error']:>8.1%} {v['mean_error']:>+8.1%}"
        )
    print(
        f"all rows: median {ho['median_abs_error']:.1%}, p90 {ho['p90_abs_error']:.1%}, worst "
        f"{ho['worst_abs_error']:.1%} (goal: median <= 5%, worst <= 15%)"
    )
    if args.worst > 0:
        print(f"worst {args.worst} rows (rel. IQR: interquartile range of the calls / median):")
        print(
            f"  {'architecture':24} {'L':>3} {'b':>2} {'n':>4} {'q':>3} {'measured':>9} "
            f"{'predicted':>9} {'error':>7} {'rel.IQR':>7} {'runs':>4}  run medians (min-max)"
        )
        for w in both["rows"][: args.worst]:
            print(
                f"  {w['model'][:24]:24} {w['depth']:>3} {w['batch']:>2} {w['context']:>4} "
                f"{w['query']:>3} {w['measured_ms']:>9.3f} {w['predicted_ms']:>9.3f} "
                f"{w['error']:>+7.1%} {w['rel_iqr']:>7.0%} {w['runs']:>4}  {_span(w)}"
            )
    pr = ho["precise_rows"]
    if pr["rows"]:
        print(
            f"rows measured precisely (interquartile range <= {pr['rel_iqr_at_most']:.0%} of the "
            f"median; {pr['rows']} of {len(rows)}): median {pr['median_abs_error']:.1%}, p90 "
            f"{pr['p90_abs_error']:.1%}, worst {pr['worst_abs_error']:.1%}; rows over 15%: "
            f"{pr['rows_over_15pct']} of these, {ho['rows_over_15pct']} of all"
        )
    print(
        f"pure parametric model (no neighbour correction): median {pure['median_abs_error']:.1%}, "
        f"p90 {pure['p90_abs_error']:.1%}, worst {pure['worst_abs_error']:.1%}"
    )

    cache_mib = split_cache_mib(args.cache_mib, rows["device"])
    split = None
    if cache_mib is None:
        print("by model size: not split (not a CPU profile; --cache-mib gives a cache size)")
    else:
        split = cache_split(both["errors"], both["footprint"], cache_mib * 2**20)
        print(
            f"by model size: rows of models whose fp32 weights fit in {cache_mib:g} MiB: "
            f"{split['fits']['rows']} (median {split['fits']['median_abs_error'] or 0:.1%}, "
            f"{split['fits']['rows_over_15pct']} over 15%); larger: {split['larger']['rows']} "
            f"(median {split['larger']['median_abs_error'] or 0:.1%}, "
            f"{split['larger']['rows_over_15pct']} over 15%)"
        )
    by_length = length_split(both["rows"])
    for band in by_length:
        print(
            f"by pass length, {band['label']}: {band['rows']} rows, median "
            f"{band['median_abs_error']:.1%}, p90 {band['p90_abs_error']:.1%}, worst "
            f"{band['worst_abs_error']:.1%}, {band['rows_over_15pct']} over 15%"
        )
    parts = parts_over_products(Path(args.profiles), full, context=args.context)
    if parts:
        print(
            f"\nfitted parts vs the GEMM table's products, b=1, n={args.context}, over q: T_layer "
            "over its products (min - max); T_fixed minus the head's product (timed cold), ms"
        )
        for name, entries in parts.items():
            lr = [e["layer_over_products"] for e in entries]
            fh = [e["fixed_minus_head_ms"] for e in entries]
            print(
                f"  {name[:40]:40} {min(lr):5.2f} - {max(lr):5.2f}   median {np.median(fh):+7.2f} "
                f"({min(fh):+.2f} - {max(fh):+.2f}) ms  (q = {entries[0]['query']}.."
                f"{entries[-1]['query']})"
            )

    rep = repeatability(rows, full.statistic)
    if rep is not None:
        print(
            f"noise floor: one run's median vs the pooled median of its point "
            f"({rep['runs_compared']} runs): median {rep['median_abs_deviation']:.1%}, "
            f"p90 {rep['p90_abs_deviation']:.1%}, worst {rep['worst_abs_deviation']:.1%}"
        )
    spread = spread_by_length(rows, full.statistic)
    for band in spread:
        print(
            f"spread of the calls of a row (interquartile range / median), passes of "
            f"{band['label']}: {band['rows']} rows, median {band['median_rel_iqr']:.1%}, "
            f"p90 {band['p90_rel_iqr']:.1%}"
        )

    dvw = depth_vs_width(full, context=args.context, vocab=32000)
    print(
        f"\ndepth vs width at ~50 M layer parameters (llama layout, vocab 32000), b=1, "
        f"n={args.context}:"
    )
    print(
        f"{'hidden':>6} {'L':>3} {'params':>8} {'token ms':>9} {'L*T_layer':>9} {'T_fixed':>8} "
        f"{'q=5 ms':>8} profiled"
    )
    for d in dvw:
        print(
            f"{d['hidden']:>6} {d['layers']:>3} {d['params'] / 1e6:>7.0f}M {d['token_ms']:>9.2f} "
            f"{d['layers_ms']:>9.2f} {d['fixed_ms']:>8.2f} {d['q5_ms']:>8.2f} "
            f"{'yes' if d['profiled_shape'] else 'no'}"
        )
    print(
        json.dumps(
            {
                "profiles": str(args.profiles),
                "statistic": full.statistic,
                "gemm": args.gemm if gemm is not None else "none",
                "depth_fit": args.depth_fit,
                "held_out": {k: v for k, v in ho.items() if k != "per_arch"},
                "held_out_per_arch": ho["per_arch"],
                "held_out_worst_rows": both["rows"][: max(args.worst, 0)],
                "held_out_by_model_size": None
                if split is None
                else {"cache_mib": cache_mib, **split},
                "held_out_by_pass_length": by_length,
                "parts_over_products": parts,
                "held_out_pure_parametric": {k: v for k, v in pure.items() if k != "per_arch"},
                "repeatability": rep,
                "spread_by_length": spread,
                "depth_vs_width": dvw,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
