"""Does a cache-residency term lower the latency model's held-out error? (issue 3's worst rows)

The worst held-out rows of the committed EPYC profile are the smallest zoo shapes at one or two
layers (data/README.md, "cpu-epyc-1c"): passes whose weights may still sit in the last-level
cache, while the model's GEMM regressors are products timed cold (weights cycled through 256 MiB).
The seventh session proposed a cache-residency term as the model change that would close the
worst-row goal. This benchmark tries it:

1. Time the device's GEMM-table products warm: every (k, n) of ``<profiles>/gemm.csv`` whose
   weight is at most ``--warm-max-mib``, at the table's row counts, each call on the next of
   copies filling ``--warm-cycle-mib`` (default 4: from the L3, not from a smaller cache that a
   single copy would stay in; ``--sweep-mib`` first times two products per cycled MiB, to show
   where products stop being warm). Larger products cannot be cache-resident: warm = cold.
   ``--warm-gemm CSV`` reuses a table measured before.
2. Fit :class:`ResidentLatency` variants and the committed model leaving each shape out (the
   same loop as ``bench_latency_model.py``, GEMM table strict) and print each one's held-out
   error.

:class:`ResidentLatency` is the committed parametric model with chosen regressors split by the
pass's residency φ = 1 / (1 + (W / C)^p) (W: bytes the pass reuses, C: ``cache_mib``, p:
``--steepness``): the cold regressor times (1 − φ), and the same regressor built from the warm
GEMM table times φ with a coefficient of its own. Split ``gemm``: only the layer's and the
head's GEMM-table terms; ``all``: every byte, FLOP and GEMM term of both. Residency ``self``:
W = L·(layer weights + KV cache) + head, a pass after a pass of the same depth (a draft's γ
passes); ``protocol``: the profile's round-robin order, whose rounds alternate ascending and
descending, so a pass of depth L follows the next shallower depth of the shape's depth set in
half of its calls and the next deeper one in the other half (the ends follow themselves at the
turns): for each predecessor, its layers are warm when (L_prev − 1)·layer + head fit, for the
min(L_prev, L) layers the previous pass ran, and φ is the mean over the two; the head is warm
when L·layer + head fit.

Variants are ``committed`` or ``SPLIT:RESIDENCY:CACHE_MIB[:depth]`` (e.g. ``all:self:20``;
``:depth``: the neighbour correction's ratios taken with the parametric model at the predicted
depth instead of at one layer, :class:`DepthCorrectedModel`).

On the EPYC (``data/residency/cpu-epyc-1c-bench.txt``; data/README.md, "cpu-epyc-1c") products
stay warm up to about 8 MiB cycled, and no variant beats the committed model's corrected
prediction: at C = 8 MiB the split lowers the pure parametric model's error, and the neighbour
correction undoes it, whether its ratios are taken at one layer or at the predicted depth
(``data/residency/cpu-epyc-1c-bench-depth.txt``). Below the knee (C = 4-6 MiB, and with the
round-robin order mended) the best variant leaves 7 rows over 15% against the committed 9, but
its worst row (zoo-w256 at one layer) is still 26% off
(``data/residency/cpu-epyc-1c-bench-self-small.txt``, ``-bench-alternating.txt``).

Usage: python benchmarks/bench_residency.py [--profiles DIR] [--warm-gemm CSV]
       [--variants committed,gemm:self:32,...] [--worst 5]
Prints a table and the worst rows of each variant, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from perfmodel.arch import ArchSpec
from perfmodel.gemm_table import GEMM_TABLE_FILE, GemmTable
from perfmodel.latency_model import ARCH_KEY, LatencyModel, load_profile_rows
from perfmodel.latency_profiles import BYTES_PER_PARAM
from perfmodel.latency_tables import ArchLatency, NeighbourCorrection, _key
from perfmodel.latency_terms import (
    DEFAULT_FLOPS_PER_BYTE,
    FIXED_TERMS,
    LAYER_TERMS,
    ParametricLatency,
    _check_bnq,
    fit_relative,
    fixed_terms,
    gemm_features,
    layer_terms,
    rows_bytes_per_param,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_latency_model import held_out  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT = REPO / "data" / "profiles" / "cpu-epyc-1c"

# The regressors each split divides between cold and warm: (layer terms, fixed terms).
SPLITS = {
    "gemm": (("gemm_ms",), ("head_gemm_ms",)),
    "all": (
        ("weight_bytes", "matmul_flops_m1_4", "matmul_flops_m4_16", "matmul_flops_m16_up",
         "roofline_max", "gemm_ms"),
        ("head_bytes", "head_flops_m1_4", "head_flops_m4_16", "head_flops_m16_up",
         "roofline_max", "head_gemm_ms"),
    ),
}  # fmt: skip
RESIDENCIES = ("self", "protocol")
DEFAULT_VARIANTS = (
    "committed", "gemm:self:8", "gemm:self:12", "gemm:protocol:12", "all:self:8",
    "all:self:12", "all:protocol:12", "all:self:32",
)  # fmt: skip


def residency(working_bytes: ArrayLike, cache_bytes: float, steepness: float) -> NDArray:
    """φ = 1 / (1 + (W / C)^p): 1 for a working set well inside the cache, 0 well beyond it."""
    w = np.asarray(working_bytes, dtype=np.float64)
    return 1.0 / (1.0 + (w / cache_bytes) ** steepness)


def warm_table(warm: GemmTable | None, cold: GemmTable | None) -> GemmTable | None:
    """The cold table's pairs timed warm where ``warm`` has them, else cold (too large to stay
    in the cache); pairs the cold table lacks (a left-out shape's) are left out here too."""
    if cold is None or warm is None:
        return cold
    curves = {p: warm.curves.get(p, c) for p, c in cold.curves.items()}
    return GemmTable(curves=curves, dtype=cold.dtype, statistic=cold.statistic)


def _previous_depths(depths: tuple[int, ...], layers: float) -> tuple[float, float]:
    """The depths a pass of ``layers`` follows in the profiler's round-robin, half of its calls
    each: rounds alternate ascending and descending (``profiler.forward_timer``), so a depth
    follows the one below it in ascending rounds and the one above it in descending rounds, and
    the shallowest and the deepest follow themselves at the turns."""
    if int(layers) not in depths:
        return float(layers), float(layers)  # a depth never profiled: after a pass of its own
    i = depths.index(int(layers))
    return float(depths[max(i - 1, 0)]), float(depths[min(i + 1, len(depths) - 1)])


@dataclass(frozen=True)
class ResidentLatency(ParametricLatency):
    """The committed parametric model with regressors split by cache residency (module doc)."""

    warm: GemmTable | None = None  # the cold table's pairs, timed warm where measured
    cache_bytes: float = 32.0 * 2**20
    steepness: float = 6.0
    mode: str = "self"
    split: str = "gemm"
    warm_layer_coef: NDArray = field(default_factory=lambda: np.zeros(0))
    warm_fixed_coef: NDArray = field(default_factory=lambda: np.zeros(0))
    depth_sets: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.mode not in RESIDENCIES:
            raise ValueError(f"`mode in {RESIDENCIES}` must hold, but got mode={self.mode!r}.")
        if self.split not in SPLITS:
            raise ValueError(f"`split in {tuple(SPLITS)}` must hold, but got {self.split!r}.")
        if not (np.isfinite(self.cache_bytes) and self.cache_bytes > 0):
            raise ValueError(f"`cache_bytes > 0` must hold, but got {self.cache_bytes!r}.")

    @staticmethod
    def design(
        *, hidden, ffn, heads, kv_heads, opt, vocab, batch, context, query, layers,
        previous_layers, bytes_per_param, flops_per_byte, gemm, warm, cache_bytes, steepness,
        mode, split,
    ) -> tuple[NDArray, NDArray]:  # fmt: skip
        """(fixed regressors, per-layer regressors): the committed ones, split columns times
        (1 − φ), then the split columns' warm versions times φ. ``warm``: the cold table's
        pairs timed warm (:func:`warm_table`)."""
        shape = {"hidden": hidden, "ffn": ffn, "heads": heads, "kv_heads": kv_heads, "opt": opt}
        kw = {"bytes_per_param": bytes_per_param, "flops_per_byte": flops_per_byte}
        fixed, per_layer = [], []
        for table in (gemm, warm):
            g, hg = gemm_features(table, **shape, vocab=vocab, batch=batch, query=query)
            per_layer.append(
                layer_terms(**shape, batch=batch, context=context, query=query, gemm_ms=g, **kw)
            )
            fixed.append(
                fixed_terms(
                    hidden=hidden, vocab=vocab, batch=batch, query=query, head_gemm_ms=hg, **kw
                )
            )
        # bytes a pass reuses: the committed regressors' weight and KV-cache bytes, head bytes
        cold_layer, cold_fixed = per_layer[0], fixed[0]
        layer_bytes = (
            cold_layer[..., LAYER_TERMS.index("weight_bytes")]
            + cold_layer[..., LAYER_TERMS.index("kv_bytes")]
        )
        head_bytes = cold_fixed[..., FIXED_TERMS.index("head_bytes")]
        L = np.asarray(layers, float)
        prev = [np.asarray(p, float) for p in previous_layers]  # (before, after): half each
        if mode == "self":
            phi_layer = residency(L * layer_bytes + head_bytes, cache_bytes, steepness)
        else:  # the layers the previous pass ran, warm when what it read after them fits
            phi_layer = np.mean(
                [
                    residency((p - 1) * layer_bytes + head_bytes, cache_bytes, steepness)
                    * np.minimum(p, L) / L
                    for p in prev
                ],
                axis=0,
            )  # fmt: skip
        phi_head = residency(L * layer_bytes + head_bytes, cache_bytes, steepness)
        out = []
        for (cold, hot), names, split_names, phi in (
            (fixed, FIXED_TERMS, SPLITS[split][1], phi_head),
            (per_layer, LAYER_TERMS, SPLITS[split][0], phi_layer),
        ):
            phi = np.broadcast_to(phi, cold.shape[:-1])
            cols = [cold[..., i] * (1 - phi) if n in split_names else cold[..., i]
                    for i, n in enumerate(names)]  # fmt: skip
            cols += [hot[..., names.index(n)] * phi for n in split_names]
            out.append(np.stack(cols, axis=-1))
        return out[0], out[1]

    @classmethod
    def fit(
        cls,
        rows: pd.DataFrame,
        *,
        statistic: str = "median_ms",
        flops_per_byte: float = DEFAULT_FLOPS_PER_BYTE,
        gemm: GemmTable | None = None,
        warm: GemmTable | None = None,
        cache_bytes: float = 32.0 * 2**20,
        steepness: float = 6.0,
        mode: str = "self",
        split: str = "gemm",
        depth_sets: dict | None = None,
    ) -> ResidentLatency:
        """Non-negative least squares on relative error over every row, as the committed fit.

        ``depth_sets``: arch key -> the depths its profile ran (protocol residency); default
        those of ``rows``."""
        B = rows_bytes_per_param(rows)
        warm = warm_table(warm, gemm)
        sets = dict(depth_sets) if depth_sets is not None else depth_sets_of(rows)
        depth = rows["depth"].to_numpy(float)
        keys = [_row_key(r) for r in rows[list(ARCH_KEY)].itertuples(index=False)]
        prev = np.array(
            [_previous_depths(sets.get(k, ()), d) for k, d in zip(keys, depth, strict=True)]
        ).T
        ft, lt = cls.design(
            hidden=rows["hidden"].to_numpy(), ffn=rows["ffn"].to_numpy(),
            heads=rows["heads"].to_numpy(), kv_heads=rows["kv_heads"].to_numpy(),
            opt=(rows["family"] == "opt").to_numpy(), vocab=rows["vocab"].to_numpy(),
            batch=rows["batch"].to_numpy(), context=rows["context"].to_numpy(),
            query=rows["query"].to_numpy(), layers=depth, previous_layers=prev,
            bytes_per_param=B, flops_per_byte=flops_per_byte, gemm=gemm, warm=warm,
            cache_bytes=cache_bytes, steepness=steepness, mode=mode, split=split,
        )  # fmt: skip
        X = np.concatenate([ft, depth[:, None] * lt], axis=1)
        coef = fit_relative(X, rows[statistic].to_numpy(dtype=float))
        nf, nl = len(FIXED_TERMS), len(LAYER_TERMS)
        nfs = ft.shape[1] - nf
        return cls(
            layer_coef=coef[nf + nfs : nf + nfs + nl], fixed_coef=coef[:nf],
            bytes_per_param=B, flops_per_byte=flops_per_byte, gemm=gemm, warm=warm,
            cache_bytes=cache_bytes, steepness=steepness, mode=mode, split=split,
            warm_layer_coef=coef[nf + nfs + nl :], warm_fixed_coef=coef[nf : nf + nfs],
            depth_sets=sets,
        )  # fmt: skip

    def parts(
        self, arch: ArchSpec, batch: ArrayLike, context: ArrayLike, query: ArrayLike
    ) -> tuple[NDArray, NDArray]:
        """(T_fixed, T_layer) in ms of ``arch`` at its depth (the split makes both depend on it)."""
        b, n, q = _check_bnq(batch, context, query)
        prev = _previous_depths(self.depth_sets.get(_key(arch), ()), arch.layers)
        ft, lt = self.design(
            hidden=arch.hidden, ffn=arch.ffn, heads=arch.heads, kv_heads=arch.kv_heads,
            opt=arch.family == "opt", vocab=arch.vocab, batch=b, context=n, query=q,
            layers=float(arch.layers), previous_layers=prev,
            bytes_per_param=self.bytes_per_param, flops_per_byte=self.flops_per_byte,
            gemm=self.gemm, warm=self.warm, cache_bytes=self.cache_bytes,
            steepness=self.steepness, mode=self.mode, split=self.split,
        )  # fmt: skip
        fixed = ft @ np.concatenate([self.fixed_coef, self.warm_fixed_coef])
        layer = lt @ np.concatenate([self.layer_coef, self.warm_layer_coef])
        return fixed, layer


@dataclass(frozen=True)
class DepthCorrectedModel(LatencyModel):
    """A latency model whose neighbour correction, for a shape never profiled, takes the
    profiled shapes' ratios with the parametric model at the depth asked for (built once per
    depth), not at one layer: for a parametric model whose per-layer cost changes with depth."""

    def latency_fn(self, arch: ArchSpec, *, profiled: bool = True) -> ArchLatency:
        if not profiled or self.is_profiled(arch) or self.neighbours is None:
            return super().latency_fn(arch, profiled=profiled)
        cache = self.__dict__.setdefault("_by_depth", {})
        if arch.layers not in cache:
            cache[arch.layers] = NeighbourCorrection.build(
                self.tables, self.parametric, scale=self.neighbours.scale,
                shrink=self.neighbours.shrink, layers=arch.layers,
            )  # fmt: skip
        table = cache[arch.layers].table(arch, self.parametric)
        return ArchLatency(arch=arch, parametric=self.parametric, profiled=table)


def _row_key(values) -> tuple:
    return (str(values[0]), *map(int, values[1:6]), bool(values[6]))


def depth_sets_of(rows: pd.DataFrame) -> dict[tuple, tuple[int, ...]]:
    """Arch key -> the sorted depths its rows were measured at."""
    out: dict[tuple, set[int]] = {}
    for r in rows[[*ARCH_KEY, "depth"]].itertuples(index=False):
        out.setdefault(_row_key(r[:-1]), set()).add(int(r[-1]))
    return {k: tuple(sorted(v)) for k, v in out.items()}


def parse_variant(text: str) -> dict | None:
    """``committed`` -> None; ``SPLIT:RESIDENCY:CACHE_MIB[:depth]`` -> its settings (``depth``:
    the neighbour correction taken at the predicted depth, :class:`DepthCorrectedModel`);
    ValueError else."""
    if text == "committed":
        return None
    parts = text.split(":")
    rule = (
        f"a variant must be 'committed' or SPLIT:RESIDENCY:CACHE_MIB[:depth] with SPLIT in "
        f"{tuple(SPLITS)}, RESIDENCY in {RESIDENCIES} and CACHE_MIB > 0, but got {text!r}"
    )
    depth = len(parts) == 4 and parts[3] == "depth"
    if depth:
        parts = parts[:3]
    if len(parts) != 3 or parts[0] not in SPLITS or parts[1] not in RESIDENCIES:
        raise ValueError(rule)
    try:
        mib = float(parts[2])
    except ValueError:
        raise ValueError(rule) from None
    if not (np.isfinite(mib) and mib > 0):
        raise ValueError(rule)
    return {
        "split": parts[0], "mode": parts[1], "cache_bytes": mib * 2**20, "depth_correction": depth,
    }  # fmt: skip


def measure_warm_table(
    cold_csv: Path, out_dir: Path, *, rounds: int, repeats: int, cycle_mib: float, max_mib: float
) -> Path:
    """Time the cold table's products of at most ``max_mib`` warm, ``rounds`` runs pooled."""
    from profiler.gemm import profile_gemms, write_gemm_rows

    cold = pd.read_csv(cold_csv)
    cold = cold[cold["dtype"] == cold["dtype"].value_counts().idxmax()]
    size = cold["k"] * cold["n"] * cold["dtype"].map(BYTES_PER_PARAM)
    small = cold[size <= max_mib * 2**20]
    if small.empty:
        raise ValueError(f"no product of {cold_csv} is at most {max_mib} MiB.")
    pairs = sorted({(int(k), int(n)) for k, n in zip(small["k"], small["n"], strict=True)})
    m_values = sorted({int(m) for m in small["m"]})
    dtype = str(small["dtype"].iloc[0])
    out_dir.mkdir(parents=True, exist_ok=True)
    from tqdm import tqdm

    steps = [(r, i) for r in range(rounds) for i in range(0, len(pairs), 16)]
    for r, i in tqdm(steps, desc="warm products", file=sys.stderr):
        rows = profile_gemms(
            pairs[i : i + 16], m_values, dtype=dtype, repeats=repeats,
            cycle_bytes=int(cycle_mib * 2**20),
        )  # fmt: skip
        write_gemm_rows(out_dir, rows, accumulate=r > 0 or i > 0)
    return out_dir / GEMM_TABLE_FILE


def _over(errors: dict[str, list[float]], limit: float) -> int:
    """How many of the per-shape errors exceed ``limit`` in absolute value."""
    return int(sum(np.sum(np.abs(np.asarray(v)) > limit) for v in errors.values()))


def cycle_sweep(
    pairs: list[tuple[int, int]], cycle_mib: list[float], *, repeats: int, dtype: str = "fp32"
) -> list[dict]:
    """One-row and two-row product times per cycled MiB: where products stop being warm.

    A product cycled through copies filling less than the cache the process really gets runs
    at its warm time; past it, at its cold time. The knee is the effective last-level cache
    (on a shared VM smaller than the one ``lscpu`` reports), which ``--warm-cycle-mib`` must stay
    under and which the variants' CACHE_MIB should be near.
    """
    from profiler.gemm import profile_gemms

    out = []
    for mib in cycle_mib:
        df = profile_gemms(
            pairs, [1, 2], dtype=dtype, repeats=repeats, cycle_bytes=int(mib * 2**20)
        )
        column = "cpu_median_ms" if df["cpu_median_ms"].notna().all() else "median_ms"
        for r in df.itertuples():
            out.append({"cycle_mib": mib, "k": int(r.k), "n": int(r.n), "m": int(r.m),
                        "ms": float(getattr(r, column))})  # fmt: skip
    return out


def run_variant(rows, *, statistic, flops_per_byte, gemm, warm, settings, steepness, sets):
    fit, model_cls = None, LatencyModel
    if settings is not None:
        settings = dict(settings)
        if settings.pop("depth_correction"):
            model_cls = DepthCorrectedModel
        fit = partial(
            ResidentLatency.fit, warm=warm, steepness=steepness, depth_sets=sets, **settings
        )
    return held_out(
        rows, statistic=statistic, flops_per_byte=flops_per_byte, gemm=gemm, parametric_fit=fit,
        model_cls=model_cls,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--profiles", default=str(DEFAULT))
    p.add_argument("--warm-gemm", metavar="CSV", help="warm products measured before")
    p.add_argument(
        "--warm-out",
        metavar="DIR",
        help="where to write the warm table (default runs/residency/<device>)",
    )
    p.add_argument("--warm-rounds", type=int, default=3)
    p.add_argument("--warm-repeats", type=int, default=5)
    p.add_argument("--warm-cycle-mib", type=float, default=4.0)
    p.add_argument(
        "--sweep-mib",
        default="0,2,4,6,8,12,16,32",
        help="cycled MiB at which to time the sweep's products first (empty: no sweep)",
    )
    p.add_argument("--sweep-pairs", default="128x4096,256x4096", help="KxN products of the sweep")
    p.add_argument("--warm-max-mib", type=float, default=48.0)
    p.add_argument("--threads", type=int, default=1, help="torch threads for the warm products")
    p.add_argument("--steepness", type=float, default=6.0)
    p.add_argument("--variants", default=",".join(DEFAULT_VARIANTS))
    p.add_argument("--worst", type=int, default=5)
    args = p.parse_args(argv)

    def usage(msg: str) -> int:
        print(f"bench_residency: {msg}", file=sys.stderr)
        return 2

    try:
        variants = {v: parse_variant(v) for v in args.variants.split(",") if v}
    except ValueError as exc:
        return usage(str(exc))
    if not variants:
        return usage("--variants must name at least one variant.")
    for name, low in (("warm_rounds", 1), ("warm_repeats", 1), ("threads", 1)):
        if getattr(args, name) < low:
            return usage(
                f"--{name.replace('_', '-')} >= {low} must hold, got {getattr(args, name)}."
            )
    if not (args.steepness > 0 and args.warm_cycle_mib >= 0 and args.warm_max_mib > 0):
        return usage("--steepness > 0, --warm-cycle-mib >= 0 and --warm-max-mib > 0 must hold.")
    try:
        sweep_mib = [float(x) for x in args.sweep_mib.split(",") if x.strip()]
        sweep_pairs = [tuple(int(v) for v in x.split("x")) for x in args.sweep_pairs.split(",")]
        if any(not (np.isfinite(x) and x >= 0) for x in sweep_mib) or any(
            len(pair) != 2 or min(pair) < 1 for pair in sweep_pairs
        ):
            raise ValueError
    except ValueError:
        return usage(
            "--sweep-mib must be numbers >= 0 and --sweep-pairs KxN products with K, N >= 1 "
            f"(e.g. 128x4096), but got {args.sweep_mib!r} and {args.sweep_pairs!r}."
        )
    folder = Path(args.profiles)
    cold_csv = folder / GEMM_TABLE_FILE
    if not cold_csv.is_file():
        return usage(f"{folder} has no {GEMM_TABLE_FILE}: nothing to split by residency.")
    try:
        full = LatencyModel.from_profiles(folder)
    except ValueError as exc:
        return usage(str(exc))
    if sweep_mib or not args.warm_gemm:  # timing products: the threads the cold table used
        import torch

        torch.set_num_threads(args.threads)
    sweep = []
    if sweep_mib:
        sweep = cycle_sweep(sweep_pairs, sweep_mib, repeats=15, dtype=full.dtype)
        print("product time (ms) by cycled MiB, m = 1 / 2 rows:")
        for k, n in sweep_pairs:
            cells = [
                "/".join(
                    f"{w['ms']:.3f}"
                    for w in sweep
                    if (w["k"], w["n"], w["cycle_mib"]) == (k, n, mib)
                )
                for mib in sweep_mib
            ]
            print(
                f"  {k}x{n}: "
                + "  ".join(f"{mib:g} MiB {c}" for mib, c in zip(sweep_mib, cells, strict=True))
            )
    if args.warm_gemm:
        warm_csv = Path(args.warm_gemm)
    else:
        out = Path(args.warm_out) if args.warm_out else REPO / "runs" / "residency" / folder.name
        warm_csv = measure_warm_table(
            cold_csv, out, rounds=args.warm_rounds, repeats=args.warm_repeats,
            cycle_mib=args.warm_cycle_mib, max_mib=args.warm_max_mib,
        )  # fmt: skip
    try:
        warm = GemmTable.from_csv(warm_csv, dtype=full.dtype)
    except ValueError as exc:
        return usage(str(exc))
    rows = load_profile_rows(folder)
    rows = rows[rows["dtype"] == full.dtype]
    sets = depth_sets_of(rows)
    gemm = full.parametric.gemm
    print(
        f"profiles: {folder} ({len(rows)} rows); warm products: {warm_csv} ({len(warm.pairs)} pairs)"
    )
    print(
        f"{'':20} {'corrected (the committed prediction)':^35}   {'pure parametric':^27}\n"
        f"{'variant':20} {'median':>7} {'p90':>7} {'worst':>7} {'>15%':>5} {'>10%':>5}   "
        f"{'median':>7} {'worst':>7} {'>15%':>5} {'>10%':>5}"
    )
    results = {}
    for name, settings in variants.items():
        out = run_variant(
            rows, statistic=full.statistic, flops_per_byte=full.parametric.flops_per_byte,
            gemm=gemm, warm=warm, settings=settings, steepness=args.steepness, sets=sets,
        )  # fmt: skip
        s, pure = out["corrected"], out["pure"]
        e = np.abs([w["error"] for w in out["rows"]])
        results[name] = {
            "median_abs_error": s["median_abs_error"], "p90_abs_error": s["p90_abs_error"],
            "worst_abs_error": s["worst_abs_error"], "rows_over_15pct": s["rows_over_15pct"],
            "rows_over_10pct": int((e > 0.10).sum()), "rows": int(len(e)),
            "pure_parametric": {
                k: pure[k] for k in ("median_abs_error", "p90_abs_error", "worst_abs_error",
                                     "rows_over_15pct")
            } | {"rows_over_10pct": _over(out["pure_errors"], 0.10)},
            "worst_rows": [
                {k: w[k] for k in ("model", "depth", "batch", "context", "query",
                                   "measured_ms", "predicted_ms", "error")}
                for w in out["rows"][: args.worst]
            ],
        }  # fmt: skip
        r, pp = results[name], results[name]["pure_parametric"]
        print(
            f"{name:20} {r['median_abs_error']:>7.1%} {r['p90_abs_error']:>7.1%} "
            f"{r['worst_abs_error']:>7.1%} {r['rows_over_15pct']:>5} {r['rows_over_10pct']:>5}   "
            f"{pp['median_abs_error']:>7.1%} {pp['worst_abs_error']:>7.1%} "
            f"{pp['rows_over_15pct']:>5} {pp['rows_over_10pct']:>5}",
            flush=True,
        )
    for name, r in results.items():
        print(f"\n{name}: worst rows")
        for w in r["worst_rows"]:
            print(
                f"  {w['model'][:22]:22} L={w['depth']:<2} b={w['batch']} n={w['context']:<4} "
                f"q={w['query']:<2} measured {w['measured_ms']:9.3f} predicted "
                f"{w['predicted_ms']:9.3f} ({w['error']:+.1%})"
            )
    print(
        json.dumps(
            {
                "profiles": str(folder),
                "warm_gemm": str(warm_csv),
                "steepness": args.steepness,
                "warm_cycle_mib": args.warm_cycle_mib,
                "statistic": full.statistic,
                "cycle_sweep": sweep,
                "variants": results,
            }  # fmt: skip
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
