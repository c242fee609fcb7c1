"""hardware_for: the datasheet of a known GPU, or a CPU's measurement, cached in hardware.json."""

from __future__ import annotations

import json

import pytest

import profiler.hardware_probe as hp
import profiler.timing
from perfmodel.hardware import HardwareSpec, get_hardware
from perfmodel.latency_model import _ridge_point


def test_known_gpu_datasheet_is_written_beside_the_profiles(tmp_path, monkeypatch):
    monkeypatch.setattr(profiler.timing, "device_name", lambda device="cpu": "NVIDIA H200")
    monkeypatch.setattr(
        hp, "measure_hardware", lambda device: pytest.fail("measured a datasheet GPU")
    )
    spec = hp.hardware_for("cuda", cache_dir=tmp_path)
    assert spec == get_hardware("H200")
    raw = json.loads((tmp_path / hp.HARDWARE_FILE).read_text())
    assert raw["name"] == "h200"
    assert raw["source"] == spec.source
    # the latency model fitted from this folder alone uses the GPU's ridge point
    ridge = _ridge_point(tmp_path / hp.HARDWARE_FILE, "bf16")
    assert ridge == pytest.approx(spec.peak_flops("bf16") / spec.memory_bandwidth_bytes_per_s)
    assert ridge > 100


def test_known_gpu_without_write_leaves_the_folder_alone(tmp_path, monkeypatch):
    monkeypatch.setattr(profiler.timing, "device_name", lambda device="cpu": "NVIDIA H200")
    hp.hardware_for("cuda", cache_dir=tmp_path, write=False)
    assert not (tmp_path / hp.HARDWARE_FILE).exists()


def test_cpu_measurement_is_cached_and_reused(tmp_path, monkeypatch):
    calls = []
    slug = hp.device_slug("cpu")

    def fake_measure(device):
        calls.append(device)
        return HardwareSpec(
            name=slug,
            memory_bandwidth_bytes_per_s=2.0e10,
            peak_flops_per_s={"fp32": 1.0e11},
            source="fake",
        )

    monkeypatch.setattr(hp, "measure_hardware", fake_measure)
    first = hp.hardware_for("cpu", cache_dir=tmp_path)
    second = hp.hardware_for("cpu", cache_dir=tmp_path)
    assert calls == ["cpu"]
    assert first == second
    assert json.loads((tmp_path / hp.HARDWARE_FILE).read_text())["name"] == slug
