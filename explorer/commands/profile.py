"""`specdec profile`: per-layer forward latency of a real architecture on this device.

Builds the model with its Hugging Face class and random weights (profiler.build), times it at
two or more depths over a (batch, context, query) grid and fits T = T_fixed + L·T_layer
(profiler.layers), printing the roofline bound and achieved bandwidth beside each measurement.
Rows are merged into ``<out>/<model>.csv`` and ``<out>/<model>.fit.csv`` (data/README.md).
"""

from __future__ import annotations

import argparse
import math
from typing import Any

HELP = "measure per-layer forward latency of a model on this CPU/GPU (depth differencing)"
DESCRIPTION = """\
Time one forward pass of a model (random weights, nothing downloaded) at batch b, with n tokens
already in the KV cache and q new tokens per row, at two or more depths L, and fit

  T(b, n, q) = T_fixed(b, q) + L * T_layer(b, n, q)

so one layer of a 65B model is measured without allocating all of its layers. The model is a
preset (data/reference/), a Hugging Face folder or config.json, optionally with shape overrides.
Results are merged into <out>/<model>.csv (one row per depth, batch, context, query, dtype) and
<out>/<model>.fit.csv (T_fixed_ms, T_layer_ms, fit residual); columns in data/README.md.

With --gemm, no model is built: each linear layer's product y = x W^T (x: m x k, W: n x k) is
timed at m = b * q rows for every batch and query given, and merged into <out>/gemm.csv.

examples:
  specdec profile --model llama-7b --layers 4 --hidden 256 --ffn 688 --heads 4 --device cpu --json
  specdec profile --model llama-7b --hidden 512 --ffn 1376 --heads 8 --gemm --query 1,2,3,4,5
  specdec profile --model llama-65b --device cpu --batch 1 --context 128 --query 1,4
  specdec profile --model data/zoo/target --device cpu --whole --depths 1,2,4
"""

_DTYPES = {"cpu": ("fp32", "bf16"), "cuda": ("bf16", "fp16", "fp32")}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        required=True,
        metavar="NAME|FOLDER|CONFIG.json",
        help="preset name, Hugging Face model folder, or config.json",
    )
    shape = parser.add_argument_group("shape overrides (integers >= 1)")
    for flag, what in (
        ("--layers", "decoder layers of the full model"),
        ("--hidden", "model width"),
        ("--ffn", "MLP inner width"),
        ("--heads", "attention heads (must divide --hidden)"),
        ("--kv-heads", "key/value heads (must divide --heads)"),
    ):
        shape.add_argument(flag, type=int, metavar="N", help=what)
    parser.add_argument("--name", help="name of the profile files (default from the model)")
    parser.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="allow a folder whose config names its own model code (auto_map); off by default",
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:i] (default cpu)")
    parser.add_argument(
        "--dtype", help="fp32|bf16 on cpu (default fp32), bf16|fp16|fp32 on cuda (default bf16)"
    )
    parser.add_argument("--batch", default="1", metavar="B,..", help="batch sizes (default 1)")
    parser.add_argument(
        "--context", default="128", metavar="N,..", help="tokens in the KV cache (default 128)"
    )
    parser.add_argument(
        "--query", default="1,4", metavar="Q,..", help="new tokens per row (default 1,4)"
    )
    parser.add_argument(
        "--depths",
        default="1,2",
        metavar="L,..",
        help="depths to time, >= 2 distinct (default 1,2)",
    )
    parser.add_argument(
        "--whole", action="store_true", help="also time the full-depth model and compare"
    )
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per point (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls first (default 1)")
    parser.add_argument(
        "--min-time-ms",
        type=float,
        default=0.0,
        metavar="MS",
        help="time each point beyond --repeats until its timed calls add up to MS milliseconds"
        " (at most 200 calls per depth): more samples for short, noisy passes (default 0: off)",
    )
    parser.add_argument(
        "--block",
        type=int,
        default=1,
        metavar="N",
        help="timed calls per depth and round, back to back after one untimed call (default 1:"
        " one call per depth and round, as the committed profiles); > 1 times passes run in a"
        " row, as a draft runs its gamma passes",
    )
    parser.add_argument(
        "--flush-mib",
        type=float,
        default=0.0,
        metavar="MIB",
        help="stream MIB MiB through the caches before every timed call, so each pass starts"
        " with the model's weights evicted, as a draft's first pass after the target's (default"
        " 0: no flush, as the committed profiles; e.g. 64 for a 32 MiB L3)",
    )
    parser.add_argument(
        "--threads", type=int, help="torch CPU threads (default torch's; part of the device name)"
    )
    parser.add_argument(
        "--out", metavar="DIR", help="output folder (default data/profiles/<device slug>)"
    )
    parser.add_argument(
        "--accumulate",
        action="store_true",
        help="pool the new samples with earlier rows of the same points (recomputing medians and"
        " fits) instead of replacing them: several runs made at different times average out"
        " the machine's drift",
    )
    parser.add_argument("--no-write", action="store_true", help="measure and print only")
    parser.add_argument(
        "--gemm",
        action="store_true",
        help="instead of forward passes, time the model's linear-layer products (q, k, v, o, MLP,"
        " LM head) at m = batch x query rows, merged into <out>/gemm.csv: what the latency model"
        " composes a never-profiled shape from (seconds; no model is built)",
    )
    parser.add_argument(
        "--gemm-cycle-mib",
        type=float,
        default=256.0,
        metavar="MIB",
        help="with --gemm: cycle each product through copies of its weight filling this many MiB,"
        " so it comes from memory as in a forward pass (default 256; 0: one copy, cache-warm)",
    )


def _grid(args: argparse.Namespace) -> Any:
    from explorer.cli import UsageError
    from explorer.cli_args import int_list
    from profiler.layers import ProfileGrid

    if args.repeats < 1 or args.warmup < 0:
        raise UsageError(
            f"`--repeats >= 1 and --warmup >= 0` must hold, but got {args.repeats}, {args.warmup}."
        )
    if args.block < 1:
        raise UsageError(f"`--block >= 1` must hold, but got {args.block}.")
    if not (math.isfinite(args.min_time_ms) and args.min_time_ms >= 0):
        raise UsageError(f"`--min-time-ms >= 0` must hold, but got {args.min_time_ms}.")
    if not (math.isfinite(args.flush_mib) and args.flush_mib >= 0):
        raise UsageError(f"`--flush-mib >= 0` must hold, but got {args.flush_mib}.")
    depths = int_list(args.depths, flag="--depths")
    if len(set(depths)) < 2:
        raise UsageError(f"--depths needs at least two distinct depths, but got {args.depths!r}.")
    return ProfileGrid(
        batch=tuple(int_list(args.batch, flag="--batch")),
        context=tuple(int_list(args.context, flag="--context", minimum=0)),
        query=tuple(int_list(args.query, flag="--query")),
        depths=tuple(depths),
        whole=args.whole,
        repeats=args.repeats,
        warmup=args.warmup,
        min_time_ms=args.min_time_ms,
        block=args.block,
        flush_mib=args.flush_mib,
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    from explorer.cli import UsageError

    grid = _grid(args)
    if args.no_write and args.accumulate:
        raise UsageError("--accumulate pools into the written CSVs; it cannot go with --no-write.")
    device = str(args.device)
    kind = device.split(":")[0]
    if kind not in _DTYPES:
        raise UsageError(f"`--device in ('cpu', 'cuda')` must hold, but got --device {device!r}.")
    dtype = args.dtype or ("fp32" if kind == "cpu" else "bf16")
    if dtype not in _DTYPES[kind]:
        raise UsageError(f"`--dtype in {_DTYPES[kind]}` must hold on {kind}, but got {dtype!r}.")
    overrides = {
        k: getattr(args, k)
        for k in ("layers", "hidden", "ffn", "heads", "kv_heads")
        if getattr(args, k) is not None
    }

    import torch

    if kind == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda was asked for, but torch sees no CUDA device here.")
    if args.threads is not None:
        if args.threads < 1:
            raise UsageError(f"`--threads >= 1` must hold, but got {args.threads}.")
        torch.set_num_threads(args.threads)

    from pathlib import Path

    from tqdm import tqdm

    from profiler.build import resolve_model
    from profiler.hardware_probe import device_slug, hardware_for
    from profiler.layers import profile_model
    from profiler.profile_store import write_profile

    recipe = resolve_model(
        args.model,
        overrides=overrides,
        name=args.name,
        trust_remote_code=args.trust_remote_code,
    )
    out_dir = Path(args.out) if args.out else Path("data/profiles") / device_slug(device)
    if args.gemm:
        return _run_gemm(args, recipe, grid, device=device, dtype=dtype, out_dir=out_dir)
    hardware = hardware_for(device, cache_dir=out_dir, write=not args.no_write)
    points = grid.points()
    with tqdm(total=len(points), desc=recipe.name, unit="pt", leave=False) as bar:

        def progress(label: str) -> None:
            bar.set_postfix_str(label, refresh=False)
            bar.update(1)

        profile = profile_model(
            recipe, grid=grid, device=device, dtype=dtype, hardware=hardware, progress=progress
        )
    paths: list[str] = []
    pooled_runs = 1
    if not args.no_write:
        try:
            written = write_profile(profile, out_dir, accumulate=args.accumulate)
        except ValueError as err:
            raise UsageError(str(err)) from None
        paths = [str(p) for p in written.paths]
        if args.accumulate:  # rows written before the `runs` column existed count as one run
            pooled_runs = int(written.rows["runs"].fillna(1).max())
    rows = profile.rows
    first = rows.iloc[0]
    keep = [
        "depth", "batch", "context", "query", "median_ms", "iqr_ms", "min_ms", "cpu_median_ms",
        "repeats", "roofline_ms", "roofline_bound", "achieved_bandwidth_bytes_per_s",
        "bandwidth_fraction", "loadavg_1m",
    ]  # fmt: skip
    fit_keep = [
        "batch", "context", "query", "t_fixed_ms", "t_layer_ms", "fit_residual_ms",
        "fit_rel_residual", "whole_ms", "composed_ms", "whole_rel_error",
        "roofline_fixed_ms", "roofline_layer_ms",
    ]  # fmt: skip
    return {
        "model": recipe.name,
        "source": recipe.source,
        "layers": recipe.layers,
        "device": str(first["device"]),
        "device_name": str(first["device_name"]),
        "dtype": dtype,
        "threads": int(first["threads"]),
        "hardware": {
            "name": hardware.name,
            "memory_bandwidth_bytes_per_s": hardware.memory_bandwidth_bytes_per_s,
            "peak_flops_per_s": dict(hardware.peak_flops_per_s),
            "source": hardware.source,
        },
        "measurements": _records(rows[keep]),
        "fits": _records(profile.fits[fit_keep]),
        "paths": paths,
        "pooled_runs": pooled_runs,
    }


def _run_gemm(
    args: argparse.Namespace, recipe: Any, grid: Any, *, device: str, dtype: str, out_dir: Any
) -> dict[str, Any]:
    from tqdm import tqdm

    from explorer.cli import UsageError
    from perfmodel.gemm_table import model_gemms
    from profiler.gemm import profile_gemms, write_gemm_rows

    if not args.gemm_cycle_mib >= 0:
        raise UsageError(f"`--gemm-cycle-mib >= 0` must hold, but got {args.gemm_cycle_mib}.")
    arch = recipe.arch
    if arch is None:
        raise UsageError(
            f"--gemm needs a model whose layers perfmodel describes (llama or opt family), "
            f"but {recipe.name!r} is neither."
        )
    pairs = model_gemms(
        hidden=arch.hidden, ffn=arch.ffn, heads=arch.heads, kv_heads=arch.kv_heads,
        vocab=arch.vocab, opt=arch.family == "opt", head_dim=arch.head_size,
    )  # fmt: skip
    m_values = sorted({b * q for b in grid.batch for q in grid.query})
    with tqdm(total=len(pairs), desc=f"{recipe.name} GEMMs", unit="product", leave=False) as bar:

        def progress(label: str) -> None:
            bar.set_postfix_str(label, refresh=False)
            bar.update(1)

        rows = profile_gemms(
            pairs, m_values, device=device, dtype=dtype, warmup=args.warmup,
            repeats=args.repeats, cycle_bytes=int(args.gemm_cycle_mib * 2**20), progress=progress,
        )  # fmt: skip
    paths: list[str] = []
    if not args.no_write:
        try:
            paths = [str(write_gemm_rows(out_dir, rows, accumulate=args.accumulate))]
        except ValueError as err:
            raise UsageError(str(err)) from None
    keep = ["k", "n", "m", "median_ms", "iqr_ms", "min_ms", "cpu_median_ms",
            "achieved_bandwidth_bytes_per_s", "achieved_flops_per_s"]  # fmt: skip
    return {
        "model": recipe.name,
        "source": recipe.source,
        "gemm": True,
        "device": str(rows["device"].iloc[0]),
        "device_name": str(rows["device_name"].iloc[0]),
        "dtype": dtype,
        "threads": int(rows["threads"].iloc[0]),
        "products": [list(p) for p in pairs],
        "m": m_values,
        "measurements": _records(rows[keep]),
        "paths": paths,
    }


def _records(frame: Any) -> list[dict[str, Any]]:
    import math

    out = []
    for rec in frame.to_dict(orient="records"):
        out.append(
            {
                k: (
                    None
                    if isinstance(v, float) and math.isnan(v)
                    else getattr(v, "item", lambda v=v: v)()
                )
                for k, v in rec.items()
            }
        )
    return out


def _fmt(v: Any, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def _format_gemm(result: dict[str, Any]) -> str:
    lines = [
        f"{result['model']} ({result['source']}): {len(result['products'])} linear-layer products"
        f" on {result['device_name']} [{result['device']}], {result['dtype']}, "
        f"{result['threads']} threads",
        "",
        f"{'k':>6} {'n':>6} {'m':>4} {'median ms':>10} {'iqr ms':>8} {'GB/s':>7} {'GFLOP/s':>8}",
    ]
    for m in result["measurements"]:
        lines.append(
            f"{m['k']:>6} {m['n']:>6} {m['m']:>4} {m['median_ms']:>10.4f} {m['iqr_ms']:>8.4f} "
            f"{m['achieved_bandwidth_bytes_per_s'] / 1e9:>7.2f} "
            f"{m['achieved_flops_per_s'] / 1e9:>8.2f}"
        )
    if result["paths"]:
        lines += ["", "wrote " + ", ".join(result["paths"])]
    return "\n".join(lines)


def format_text(result: dict[str, Any]) -> str:
    if result.get("gemm"):
        return _format_gemm(result)
    hw = result["hardware"]
    lines = [
        f"{result['model']} ({result['source']}, {result['layers']} layers) on "
        f"{result['device_name']} [{result['device']}], {result['dtype']}, "
        f"{result['threads']} threads",
        f"roofline hardware: {hw['memory_bandwidth_bytes_per_s'] / 1e9:.1f} GB/s, "
        + ", ".join(f"{k} {v / 1e9:.1f} GFLOP/s" for k, v in hw["peak_flops_per_s"].items())
        + f" ({hw['source'].split(':')[0]})",
        "",
        f"{'L':>3} {'b':>4} {'n':>6} {'q':>3} {'median ms':>10} {'iqr ms':>8} {'roofline ms':>11} "
        f"{'bound':>7} {'GB/s':>7} {'of peak':>7} {'load':>5}",
    ]
    for m in result["measurements"]:
        bw = m["achieved_bandwidth_bytes_per_s"]
        lines.append(
            f"{m['depth']:>3} {m['batch']:>4} {m['context']:>6} {m['query']:>3} "
            f"{m['median_ms']:>10.3f} {m['iqr_ms']:>8.3f} {_fmt(m['roofline_ms'], '11.3f')} "
            f"{m['roofline_bound'] or '-':>7} {_fmt(None if bw is None else bw / 1e9, '7.2f')} "
            f"{_fmt(m['bandwidth_fraction'], '7.1%')} {m['loadavg_1m']:>5.2f}"
        )
    lines += [
        "",
        "depth fit T = T_fixed + L*T_layer (ms):",
        f"{'b':>4} {'n':>6} {'q':>3} {'T_fixed':>9} {'T_layer':>9} {'resid':>7} "
        f"{'whole':>9} {'composed':>9} {'error':>7}",
    ]
    for f in result["fits"]:
        lines.append(
            f"{f['batch']:>4} {f['context']:>6} {f['query']:>3} {f['t_fixed_ms']:>9.3f} "
            f"{f['t_layer_ms']:>9.3f} {f['fit_rel_residual']:>7.1%} {_fmt(f['whole_ms'], '9.3f')} "
            f"{_fmt(f['composed_ms'] if f['whole_ms'] is not None else None, '9.3f')} "
            f"{_fmt(f['whole_rel_error'], '7.1%')}"
        )
    if result["paths"]:
        lines += ["", "wrote " + ", ".join(result["paths"])]
    if result.get("pooled_runs", 1) > 1:
        lines.append(f"pooled with earlier runs: up to {result['pooled_runs']} runs per point")
    return "\n".join(lines)
