"""What machine is this: a file-safe device slug, and a HardwareSpec for roofline bounds.

GPUs the perfmodel knows (A100, H100, H200) use their datasheet figures. Any other device (every
CPU) is measured once: memory bandwidth from a large array copy (bytes read + written per second)
and peak FLOP/s from a square matrix product per dtype. The result is cached as
``hardware.json`` beside the profiles, with ``source`` saying it was measured, when and how, so
later runs reuse it instead of measuring again on a loaded machine.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

from perfmodel.atomic import atomic_write_json
from perfmodel.hardware import HardwareSpec, get_hardware

__all__ = [
    "HARDWARE_FILE",
    "device_slug",
    "hardware_for",
    "measure_hardware",
]

HARDWARE_FILE = "hardware.json"

# GPU name fragment -> perfmodel.hardware name; first match wins (H200 before H100).
_KNOWN_GPUS = (("h200", "H200"), ("h100", "H100-SXM"), ("a100", "A100-80GB"))

_DROP_WORDS = {"intel", "amd", "processor", "cpu", "nvidia", "genuineintel", "with", "core"}


def _threads() -> int:
    import torch

    return int(torch.get_num_threads())


def device_slug(device: str = "cpu") -> str:
    """A short file-safe name of the device, the folder under ``data/profiles/``.

    CPUs: ``cpu-<model words>-<torch threads>c`` (threads change the speed, so they are part of
    the name), e.g. ``cpu-xeon-2.5ghz-2c``. GPUs: the lower-cased name without the vendor, e.g.
    ``h200``, ``a100-sxm4-80gb``.
    """
    from profiler.timing import device_name

    name = device_name(device).lower()
    name = re.sub(r"\((r|tm)\)", " ", name)
    name = re.sub(r"(\d+)\.(\d*?)0*ghz", lambda m: f"{m[1]}.{m[2] or '0'}ghz", name)
    name = name.replace(".0ghz", "ghz")
    words = [w for w in re.split(r"[^a-z0-9.]+", name) if w and w not in _DROP_WORDS]
    body = "-".join(words) or "unknown"
    if str(device).startswith("cuda"):
        return body
    return f"cpu-{body}-{_threads()}c"


def _measure_bandwidth_bytes_per_s(device: str, *, n_bytes: int = 256_000_000) -> float:
    """Best of 5 copies of an ``n_bytes`` array (read + write counted).

    On a CPU the copy (numpy, one thread) is timed by process CPU time as well as wall time and
    the shorter is kept: on a shared machine wall time includes the slices other processes held
    the core, which would make the bandwidth, and so the roofline bound, wrong by the load factor.
    """
    if device == "cpu":
        import numpy as np

        a = np.ones(n_bytes // 4, dtype=np.float32)
        b = np.empty_like(a)
        np.copyto(b, a)
        best = float("inf")
        for _ in range(5):
            t0, c0 = time.perf_counter(), time.process_time()
            np.copyto(b, a)
            best = min(best, time.perf_counter() - t0, time.process_time() - c0)
        return 2 * a.nbytes / best
    import torch

    a = torch.ones(n_bytes // 4, dtype=torch.float32, device=device)
    b = torch.empty_like(a)
    b.copy_(a)
    torch.cuda.synchronize(device)
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        b.copy_(a)
        torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * a.numel() * 4 / best


def _measure_peak_flops_per_s(
    device: str, dtype: str, *, size: int, enough_s: float = 0.05, start: int = 256
) -> tuple[float, int]:
    """Best of 3 products of two square matrices: ``(2·n³ / seconds, n)``.

    ``n`` doubles from ``start`` up to ``size`` while one product takes under ``enough_s``
    seconds: a fast GEMM is measured at ``size``, where it runs at its peak, and a slow one (a
    dtype this CPU has no native instructions for: bf16 without AVX-512 BF16 took 100 s per
    2048-square product) stops at the first size that already keeps the cores busy that long.
    """
    import torch

    from profiler.build import torch_dtype

    # One CPU thread: process CPU time is the uncontended time (see the bandwidth probe).
    cpu_clock = device == "cpu" and torch.get_num_threads() == 1

    def best_of(x: torch.Tensor, repeats: int) -> float:
        best = float("inf")
        for _ in range(repeats):
            if device != "cpu":
                torch.cuda.synchronize(device)
            t0, c0 = time.perf_counter(), time.process_time()
            y = x @ x
            if device != "cpu":
                torch.cuda.synchronize(device)
            best = min(best, time.perf_counter() - t0)
            if cpu_clock:
                best = min(best, time.process_time() - c0)
            del y
        return best

    n = min(start, size)
    while True:
        x = torch.rand(n, n, device=device).to(torch_dtype(dtype))
        first = best_of(x, 2)  # the first product warms the kernel up
        if n >= size or first >= enough_s:
            break
        n *= 2
    return 2 * n**3 / min(first, best_of(x, 3)), n


def measure_hardware(
    device: str = "cpu", *, dtypes: tuple[str, ...] = ("fp32", "bf16")
) -> HardwareSpec:
    """Measure this device's memory bandwidth and matmul FLOP/s (a few seconds on a CPU).

    Parameters
    ----------
    device : str
        ``"cpu"`` or a CUDA device.
    dtypes : tuple of str
        Dtypes whose peak matmul rate to measure.

    Returns
    -------
    HardwareSpec
        ``source`` starts with ``"measured"`` and records the method, threads and time.

    Notes
    -----
    Measured peaks are achieved rates of one large GEMM and one large copy, so they are lower
    than datasheet peaks; a roofline bound built from them is a bound for this software stack.
    """
    size = 2048 if device == "cpu" else 8192
    bw = _measure_bandwidth_bytes_per_s(device)
    measured = {d: _measure_peak_flops_per_s(device, d, size=size) for d in dtypes}
    flops = {d: rate for d, (rate, _) in measured.items()}
    sizes = ", ".join(f"{d} {n}x{n}" for d, (_, n) in measured.items())
    load = os.getloadavg()[0]
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    source = (
        f"measured on {stamp}: bandwidth = best of 5 copies of 256 MB (read+write), peak = best "
        f"of the square matmuls per dtype ({sizes}; up to {size}x{size}, smaller where one "
        "product already takes 50 ms; on a CPU the shorter of wall and process CPU time, the "
        f"latter with one thread only); torch threads={_threads()}, "
        f"1-min load average={load:.2f}"
    )
    return HardwareSpec(
        name=device_slug(device),
        memory_bandwidth_bytes_per_s=float(bw),
        peak_flops_per_s=flops,
        source=source,
    )


def _known_gpu(device: str) -> HardwareSpec | None:
    if not str(device).startswith("cuda"):
        return None
    from profiler.timing import device_name

    name = device_name(device).lower()
    for fragment, hw in _KNOWN_GPUS:
        if fragment in name:
            return get_hardware(hw)
    return None


def hardware_for(
    device: str = "cpu", *, cache_dir: str | os.PathLike[str] | None = None, write: bool = True
) -> HardwareSpec:
    """The HardwareSpec for roofline bounds on ``device``: datasheet, cached or measured.

    Parameters
    ----------
    device : str
        ``"cpu"`` or a CUDA device.
    cache_dir : path, optional
        Folder for ``hardware.json`` (normally ``data/profiles/<device slug>/``). A cached
        measurement is reused when its name matches the device slug; without ``cache_dir`` the
        device is measured every time.
    write : bool
        Write a new measurement to ``cache_dir`` (default); ``False`` only reads the cache.
    """
    known = _known_gpu(device)
    path = Path(cache_dir) / HARDWARE_FILE if cache_dir is not None else None
    slug = device_slug(device)
    if known is not None:
        # the datasheet, written beside the profiles too, so that the latency model fitted from
        # the folder alone uses this device's ridge point (not its CPU default)
        if path is not None and write and not path.is_file():
            _write_hardware(path, known, name=slug)
        return known
    if path is not None and path.is_file():
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            if raw.get("name") == slug:
                return HardwareSpec(
                    name=raw["name"],
                    memory_bandwidth_bytes_per_s=float(raw["memory_bandwidth_bytes_per_s"]),
                    peak_flops_per_s={k: float(v) for k, v in raw["peak_flops_per_s"].items()},
                    source=raw["source"],
                )
        except (ValueError, KeyError, TypeError):
            pass  # unreadable cache: measure again and overwrite it
    spec = measure_hardware(device)
    if path is not None and write:
        _write_hardware(path, spec, name=spec.name)
    return spec


def _write_hardware(path: Path, spec: HardwareSpec, *, name: str) -> None:
    """``hardware.json``: ``name`` (the device slug the cache is matched by) and ``spec``'s
    bandwidth, peak FLOP/s per dtype and source, written atomically."""
    atomic_write_json(
        path,
        {
            "name": name,
            "memory_bandwidth_bytes_per_s": spec.memory_bandwidth_bytes_per_s,
            "peak_flops_per_s": dict(spec.peak_flops_per_s),
            "source": spec.source,
        },
    )
