"""Hardware facts and the roofline bound."""

from __future__ import annotations

import numpy as np
import pytest

from perfmodel import (
    HardwareSpec,
    get_hardware,
    get_preset,
    hardware_names,
    roofline,
    roofline_fixed,
    roofline_layer,
)


def test_hardware_entries():
    assert hardware_names() == ["A100-80GB", "H100-SXM", "H200"]
    # NVIDIA datasheets: A100 80GB SXM 2,039 GB/s and 312 TFLOPS bf16 dense; H100 SXM 3.35 TB/s
    # and 989 TFLOPS bf16 dense; H200 4.8 TB/s and 989 TFLOPS bf16 dense.
    assert get_hardware("A100-80GB").memory_bandwidth_bytes_per_s == 2.039e12
    assert get_hardware("A100-80GB").peak_flops("bf16") == 312e12
    assert get_hardware("H100-SXM").memory_bandwidth_bytes_per_s == 3.35e12
    assert get_hardware("H200").memory_bandwidth_bytes_per_s == 4.8e12
    assert get_hardware("H200").peak_flops("bf16") == 989e12
    assert all("datasheet" in get_hardware(n).source for n in hardware_names())
    with pytest.raises(ValueError, match="known"):
        get_hardware("B200")
    with pytest.raises(ValueError, match="dtype"):
        get_hardware("H200").peak_flops("int3")
    with pytest.raises(TypeError):
        get_hardware("H200").peak_flops_per_s["bf16"] = 1.0  # read-only


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(memory_bandwidth_bytes_per_s=0.0, peak_flops_per_s={"bf16": 1e12}),
        dict(memory_bandwidth_bytes_per_s=1e12, peak_flops_per_s={}),
        dict(memory_bandwidth_bytes_per_s=1e12, peak_flops_per_s={"bf16": -1.0}),
    ],
)
def test_hardware_validation(kwargs):
    with pytest.raises(ValueError, match="must"):
        HardwareSpec(name="x", source="y", **kwargs)


def test_roofline_memory_bound_at_batch_one():
    arch, hw = get_preset("llama-65b"), get_hardware("H200")
    r = roofline(arch, hw, batch=1, context=0)
    # reads every weight except the input embedding table (only gathered)
    weights_read = (arch.param_count - arch.vocab * arch.hidden) * 2.0
    gathered = arch.hidden * 2.0  # one embedding row
    assert r["bytes"] == weights_read + arch.kv_cache_bytes_per_token + gathered  # + KV written
    assert r["lower_bound_s"] == r["memory_s"] > r["compute_s"]
    assert r["lower_bound_ms"] == pytest.approx(r["bytes"] / 4.8e12 * 1e3, rel=1e-12)


def test_roofline_compute_bound_at_large_batch_and_vectorised():
    arch, hw = get_preset("llama-7b"), get_hardware("A100-80GB")
    r = roofline(arch, hw, batch=np.array([1, 1024]), context=128, query=8)
    assert r["lower_bound_s"].shape == (2,)
    assert r["memory_s"][0] > r["compute_s"][0]
    assert r["compute_s"][1] > r["memory_s"][1]
    assert r["flops"][1] == pytest.approx(1024 * 8 * arch.flops_per_token(128))


def test_roofline_parts_add_up():
    arch, hw = get_preset("opt-66b"), get_hardware("H100-SXM")
    kw = dict(batch=4, query=5)
    whole = roofline(arch, hw, context=512, **kw)
    layer = roofline_layer(arch, hw, context=512, **kw)
    fixed = roofline_fixed(arch, hw, **kw)
    for key in ("bytes", "flops"):
        assert whole[key] == pytest.approx(fixed[key] + arch.layers * layer[key], rel=1e-12)
    assert whole["lower_bound_s"] <= fixed["lower_bound_s"] + arch.layers * layer["lower_bound_s"]
    # KV read and written per layer: b·(n + q)·2·kv_heads·head_dim·bytes
    kv = 4 * (512 + 5) * 2 * arch.kv_heads * arch.head_dim * 2.0
    assert layer["bytes"] == pytest.approx(arch.layer_param_count * 2.0 + kv)


def test_the_fixed_part_gathers_a_position_row_only_where_there_is_a_table():
    # GPT-NeoX (rotary) gathers token rows only; OPT and GPT-2 a position row too
    opt, hw = get_preset("opt-1.3b"), get_hardware("H200")
    neox, gpt2 = opt.replace(position_table_rows=0), opt.replace(position_table_rows=1024)
    kw = dict(batch=4, query=5)
    base = roofline_fixed(opt, hw, **kw)["bytes"]
    assert base - roofline_fixed(neox, hw, **kw)["bytes"] == 4 * 5 * opt.hidden * 2.0
    assert roofline_fixed(gpt2, hw, **kw)["bytes"] == base
    assert opt.param_count - neox.param_count == (opt.max_positions + 2) * opt.hidden


@pytest.mark.parametrize("bad", [dict(batch=0), dict(context=-1), dict(query=0), dict(query=1.5)])
def test_roofline_validation(bad):
    kw = dict(batch=1, context=0, query=1) | bad
    with pytest.raises(ValueError, match="must"):
        roofline(get_preset("llama-7b"), get_hardware("H200"), **kw)
