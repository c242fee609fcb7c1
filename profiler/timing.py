"""Timers for latency measurement: `perf_counter_ns` on CPU, CUDA events on GPU.

Keep the timing harness apart from what is timed (STYLE.md): :func:`time_callable` warms up,
synchronises, repeats and keeps the raw samples; :class:`StepTimer` times sections of a loop (the
engine's draft / verify / overhead phases) with the right clock for the device.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch


@dataclass(frozen=True)
class TimingResult:
    """Raw samples of one timed callable, in milliseconds, with their summary."""

    samples_ms: tuple[float, ...]

    @property
    def median_ms(self) -> float:
        return statistics.median(self.samples_ms)

    @property
    def min_ms(self) -> float:
        return min(self.samples_ms)

    @property
    def max_ms(self) -> float:
        return max(self.samples_ms)

    @property
    def iqr_ms(self) -> float:
        """Interquartile range (spread) of the samples."""
        if len(self.samples_ms) < 2:
            return 0.0
        q = statistics.quantiles(self.samples_ms, n=4, method="inclusive")
        return q[2] - q[0]


def _is_cuda(device: torch.device | str) -> bool:
    return torch.device(device).type == "cuda"


def time_callable(
    fn: Callable[[], object],
    *,
    device: torch.device | str = "cpu",
    warmup: int = 2,
    repeats: int = 5,
    setup: Callable[[], object] | None = None,
) -> TimingResult:
    """Time ``fn()`` ``repeats`` times after ``warmup`` untimed calls.

    ``setup`` (untimed) runs before every call, for example to reset a KV cache. On CUDA the
    clock is a pair of CUDA events with a synchronisation before reading them; on CPU it is
    ``time.perf_counter_ns``.
    """
    if repeats < 1:
        raise ValueError(f"`repeats >= 1` must hold, but got {repeats=}.")
    if warmup < 0:
        raise ValueError(f"`warmup >= 0` must hold, but got {warmup=}.")
    cuda = _is_cuda(device)
    for _ in range(warmup):
        if setup is not None:
            setup()
        fn()
    if cuda:
        torch.cuda.synchronize(device)
    samples: list[float] = []
    for _ in range(repeats):
        if setup is not None:
            setup()
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize(device)
            start.record()
            fn()
            end.record()
            end.synchronize()
            samples.append(float(start.elapsed_time(end)))
        else:
            t0 = time.perf_counter_ns()
            fn()
            samples.append((time.perf_counter_ns() - t0) / 1e6)
    return TimingResult(tuple(samples))


@dataclass
class StepTimer:
    """Accumulates wall time per named section of a loop, with the device's clock.

    Usage::

        timer = StepTimer(device)
        with timer.section("draft"):
            ...
        timer.totals_ms()["draft"]

    On CUDA each section records a pair of events; they are resolved (one synchronisation) when
    :meth:`collect` or :meth:`totals_ms` is called, so timing does not serialise the loop more
    than the work itself does.
    """

    device: torch.device | str = "cpu"
    _pending: list[tuple[str, object, object]] = field(default_factory=list)
    _totals_ms: dict[str, float] = field(default_factory=dict)
    _last_ms: dict[str, float] = field(default_factory=dict)

    def section(self, name: str) -> _Section:
        return _Section(self, name)

    def collect(self) -> dict[str, float]:
        """Resolve pending CUDA events; return the milliseconds of each section since the last
        call (the per-step breakdown)."""
        if self._pending:
            torch.cuda.synchronize(self.device)
            for name, start, end in self._pending:
                ms = float(start.elapsed_time(end))
                self._last_ms[name] = self._last_ms.get(name, 0.0) + ms
            self._pending.clear()
        out, self._last_ms = self._last_ms, {}
        for name, ms in out.items():
            self._totals_ms[name] = self._totals_ms.get(name, 0.0) + ms
        return out

    def totals_ms(self) -> dict[str, float]:
        self.collect()
        return dict(self._totals_ms)


class _Section:
    def __init__(self, timer: StepTimer, name: str) -> None:
        self.timer, self.name = timer, name
        self.cuda = _is_cuda(timer.device)

    def __enter__(self) -> _Section:
        if self.cuda:
            self.start = torch.cuda.Event(enable_timing=True)
            self.start.record()
        else:
            self.t0 = time.perf_counter_ns()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.cuda:
            end = torch.cuda.Event(enable_timing=True)
            end.record()
            self.timer._pending.append((self.name, self.start, end))
        else:
            ms = (time.perf_counter_ns() - self.t0) / 1e6
            self.timer._last_ms[self.name] = self.timer._last_ms.get(self.name, 0.0) + ms


def device_name(device: torch.device | str) -> str:
    """A human name of the device: the GPU's name, or the CPU model from /proc/cpuinfo."""
    if _is_cuda(device):
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()
