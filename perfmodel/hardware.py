"""Accelerator facts for roofline bounds: memory bandwidth and peak dense FLOP/s per dtype.

Figures are the vendor's datasheet numbers for dense (not 2:4 sparse) tensor-core math; the
sparse figures NVIDIA prints first are twice these.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

__all__ = ["HardwareSpec", "get_hardware", "hardware_names"]


@dataclass(frozen=True)
class HardwareSpec:
    """One accelerator's peak rates.

    Parameters
    ----------
    name : str
        E.g. ``"H100-SXM"``.
    memory_bandwidth_bytes_per_s : float
        Peak DRAM (HBM) bandwidth, bytes/s, > 0.
    peak_flops_per_s : Mapping[str, float]
        Peak dense FLOP/s by dtype name (``"bf16"``, ``"fp16"``, ``"fp32"``, ...), each > 0.
    source : str
        Where the figures come from.

    Examples
    --------
    >>> get_hardware("H200").peak_flops("bf16")
    989000000000000.0
    """

    name: str
    memory_bandwidth_bytes_per_s: float
    peak_flops_per_s: Mapping[str, float]
    source: str

    def __post_init__(self) -> None:
        bw = self.memory_bandwidth_bytes_per_s
        if not isinstance(bw, int | float) or not 0 < bw < float("inf"):
            raise ValueError(
                f"`memory_bandwidth_bytes_per_s > 0` must hold, but got memory_bandwidth_bytes_per_s={bw!r}."
            )
        if not self.peak_flops_per_s:
            raise ValueError(
                "`peak_flops_per_s` must name at least one dtype, but got an empty mapping."
            )
        for dtype, flops in self.peak_flops_per_s.items():
            if not isinstance(flops, int | float) or not 0 < flops < float("inf"):
                raise ValueError(f"`peak_flops_per_s[{dtype!r}] > 0` must hold, but got {flops!r}.")
        # read-only copy, so the frozen spec cannot change under a caller
        object.__setattr__(self, "peak_flops_per_s", MappingProxyType(dict(self.peak_flops_per_s)))

    def peak_flops(self, dtype: str) -> float:
        """Peak dense FLOP/s for ``dtype``; ``ValueError`` naming the known dtypes otherwise."""
        if dtype not in self.peak_flops_per_s:
            raise ValueError(
                f"`dtype in {sorted(self.peak_flops_per_s)}` must hold for {self.name}, but got dtype={dtype!r}."
            )
        return float(self.peak_flops_per_s[dtype])


_HARDWARE = {
    spec.name: spec
    for spec in (
        HardwareSpec(
            name="A100-80GB",
            memory_bandwidth_bytes_per_s=2.039e12,  # SXM4 80GB; the PCIe card has 1.935e12
            peak_flops_per_s={"bf16": 312e12, "fp16": 312e12, "tf32": 156e12, "fp32": 19.5e12},
            source="NVIDIA A100 Tensor Core GPU datasheet (2021), A100 80GB SXM column",
        ),
        HardwareSpec(
            name="H100-SXM",
            memory_bandwidth_bytes_per_s=3.35e12,
            peak_flops_per_s={
                "fp8": 1979e12,
                "bf16": 989e12,
                "fp16": 989e12,
                "tf32": 494.5e12,
                "fp32": 67e12,
            },
            source="NVIDIA H100 Tensor Core GPU datasheet (2023), H100 SXM column (dense = sparse/2)",
        ),
        HardwareSpec(
            name="H200",
            memory_bandwidth_bytes_per_s=4.8e12,
            peak_flops_per_s={
                "fp8": 1979e12,
                "bf16": 989e12,
                "fp16": 989e12,
                "tf32": 494.5e12,
                "fp32": 67e12,
            },
            source="NVIDIA H200 Tensor Core GPU datasheet (2024), H200 SXM column (dense = sparse/2)",
        ),
    )
}


def hardware_names() -> list[str]:
    """Names accepted by :func:`get_hardware`."""
    return list(_HARDWARE)


def get_hardware(name: str) -> HardwareSpec:
    """The built-in spec called ``name`` (``"A100-80GB"``, ``"H100-SXM"``, ``"H200"``)."""
    if name not in _HARDWARE:
        raise ValueError(f"unknown hardware {name!r}; known: {', '.join(_HARDWARE)}.")
    return _HARDWARE[name]
