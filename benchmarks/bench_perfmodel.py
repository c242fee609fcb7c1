"""How many (α, γ, latency) configurations per second the vectorised perfmodel scores.

Each configuration is one (acceptance_rate, gamma, draft_ms, target_ms, verify_ms) tuple scored
by ``perfmodel.speculative_throughput`` (validation included): E[τ], the step breakdown,
tokens/s, baseline and speedup. A second figure scores whole γ curves with
``perfmodel.speedup_curve`` (γ = 0..16 per configuration, counting each (config, γ) point).
Goal: at least 1e6 configurations per second on the project's 2-core dev machine.

Run: ``python benchmarks/bench_perfmodel.py [--size N] [--repeats R]``. The last line of stdout
is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import numpy as np

import perfmodel


def _configs(size: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    target = rng.uniform(5.0, 80.0, size)  # ms
    return {
        "acceptance_rate": rng.uniform(0.0, 1.0, size),
        "gamma": rng.integers(0, 17, size),
        "draft_ms": target * rng.uniform(0.01, 0.5, size),
        "target_ms": target,
        "verify_ms": target * rng.uniform(1.0, 1.3, size),
    }


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _time(fn, repeats: int) -> list[float]:
    fn()  # warm-up: first-touch page faults, numpy dispatch caches
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1_000_000, help="configurations per call")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    c = _configs(args.size)
    point = _time(
        lambda: perfmodel.speculative_throughput(
            c["gamma"],
            acceptance_rate=c["acceptance_rate"],
            draft_ms=c["draft_ms"],
            target_ms=c["target_ms"],
            verify_ms=c["verify_ms"],
        ),
        args.repeats,
    )
    curve_size = max(args.size // 17, 1)
    curve = _time(
        lambda: perfmodel.speedup_curve(
            acceptance_rate=c["acceptance_rate"][:curve_size],
            draft_ms=c["draft_ms"][:curve_size],
            target_ms=c["target_ms"][:curve_size],
        ),
        args.repeats,
    )
    point_s, curve_s = statistics.median(point), statistics.median(curve)
    point_rate = args.size / point_s
    curve_rate = curve_size * 17 / curve_s
    spread = (max(point) - min(point)) / point_s
    print(f"machine: {_cpu_name()}, {os.cpu_count()} CPUs, numpy {np.__version__}")
    print(
        f"speculative_throughput: {args.size:,} configurations in {point_s * 1e3:.1f} ms "
        f"(median of {args.repeats}, spread {spread:.0%}) -> {point_rate:.3g} configurations/s"
    )
    print(
        f"speedup_curve: {curve_size:,} configurations x 17 gammas in {curve_s * 1e3:.1f} ms "
        f"-> {curve_rate:.3g} (configuration, gamma) points/s"
    )
    print(f"goal >= 1e6 configurations/s: {'met' if point_rate >= 1e6 else 'NOT met'}")
    print(
        json.dumps(
            {
                "benchmark": "perfmodel",
                "size": args.size,
                "repeats": args.repeats,
                "median_s": point_s,
                "configs_per_s": point_rate,
                "curve_points_per_s": curve_rate,
                "goal_configs_per_s": 1e6,
                "goal_met": point_rate >= 1e6,
                "cpu": _cpu_name(),
                "cpus": os.cpu_count(),
                "numpy": np.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()
