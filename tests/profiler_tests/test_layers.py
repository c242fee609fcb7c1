"""profiler.layers: depth differencing, rows and files, a tiny real model on CPU."""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import LlamaConfig

from perfmodel.hardware import HardwareSpec
from profiler.build import resolve_model
from profiler.layers import (
    FIT_COLUMNS,
    ROW_COLUMNS,
    ProfileGrid,
    fit_depths,
    profile_model,
)
from profiler.profile_store import pool_rows, write_profile
from profiler.timing import TimingResult

REPO = Path(__file__).resolve().parents[2]


def test_fit_depths_recovers_line_and_reports_residual():
    fit = fit_depths([1, 2, 4, 8], [3.5, 5.5, 9.5, 17.5])
    assert fit["t_fixed_ms"] == pytest.approx(1.5) and fit["t_layer_ms"] == pytest.approx(2.0)
    assert fit["fit_residual_ms"] == pytest.approx(0.0, abs=1e-12)
    bent = fit_depths([1, 2, 4], [3.0, 5.0, 11.0])
    assert bent["fit_residual_ms"] > 0.1
    with pytest.raises(ValueError, match="distinct"):
        fit_depths([2, 2], [1.0, 1.0])


class SyntheticTimer:
    """T = fixed(b, q) + L * layer(b, n, q) with seeded noise: a known per-layer cost."""

    def __init__(self, noise: float = 0.002) -> None:
        self.rng = np.random.default_rng(0)
        self.noise = noise

    @staticmethod
    def layer_ms(b, n, q):
        return 0.3 + 0.01 * b * q + 1e-4 * b * n

    @staticmethod
    def fixed_ms(b, q):
        return 2.0 + 0.05 * b * q

    def __call__(self, *, depths, batch, context, query):
        out = {}
        for d in depths:
            true = self.fixed_ms(batch, query) + d * self.layer_ms(batch, context, query)
            samples = true * (1 + self.noise * self.rng.standard_normal(7))
            out[d] = TimingResult(tuple(samples))
        return out


def test_depth_differencing_recovers_known_per_layer_cost():
    recipe = resolve_model("llama-7b", overrides={"layers": 8, "hidden": 256, "heads": 4})
    grid = ProfileGrid(batch=(1, 4), context=(0, 512), query=(1, 5), depths=(1, 2, 4), whole=True)
    prof = profile_model(recipe, grid=grid, measure=SyntheticTimer())
    assert list(prof.rows.columns) == list(ROW_COLUMNS)
    assert list(prof.fits.columns) == list(FIT_COLUMNS)
    assert len(prof.rows) == 8 * 4 and set(prof.rows["depth"]) == {1, 2, 4, 8}
    for f in prof.fits.itertuples():
        want = SyntheticTimer.layer_ms(f.batch, f.context, f.query)
        assert f.t_layer_ms == pytest.approx(want, rel=0.05), f
        assert f.t_fixed_ms == pytest.approx(SyntheticTimer.fixed_ms(f.batch, f.query), rel=0.1), f
        assert abs(f.whole_rel_error) < 0.03, f  # composed 8-layer prediction vs "measured"
        assert f.depths == "1;2;4"


def test_rows_have_the_documented_columns():
    text = (REPO / "data" / "README.md").read_text(encoding="utf-8")
    section = text.split("## profiles", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([a-z0-9_]+)`", section, flags=re.M))
    missing = (set(ROW_COLUMNS) | set(FIT_COLUMNS)) - documented
    assert not missing, f"columns not documented in data/README.md: {sorted(missing)}"


def test_grid_validation():
    with pytest.raises(ValueError, match="depth differencing"):
        ProfileGrid(depths=(2,))
    with pytest.raises(ValueError, match="query"):
        ProfileGrid(query=(0,))
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="min_time_ms >= 0"):
            ProfileGrid(min_time_ms=bad)


@pytest.fixture(scope="module")
def tiny_recipe(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    LlamaConfig(
        vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=3,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
    ).save_pretrained(folder)  # fmt: skip
    return resolve_model(str(folder))


def test_min_time_ms_times_until_the_calls_add_up(tiny_recipe):
    from profiler.forward_timer import MAX_REPEATS, HFForwardTimer

    timer = HFForwardTimer(tiny_recipe, device="cpu", dtype="fp32", repeats=2, warmup=1,
                           min_time_ms=100.0)  # fmt: skip
    try:
        res = timer(depths=[1, 2], batch=1, context=8, query=2)
    finally:
        timer.close()
    counts = {len(r.samples_ms) for r in res.values()}
    assert len(counts) == 1  # every depth the same number of calls
    n = counts.pop()
    assert 2 < n <= MAX_REPEATS  # a round of two ~1 ms passes: dozens of rounds
    total = sum(sum(r.samples_ms) for r in res.values())
    before_last = total - sum(r.samples_ms[-1] for r in res.values())
    if n < MAX_REPEATS:  # it stopped at the first round that brought the calls to 100 ms
        assert total >= 100.0 - 1e-6 and before_last < 100.0 + 1e-6


def test_block_times_back_to_back_calls_per_depth(tiny_recipe, one_thread):
    from profiler.forward_timer import HFForwardTimer

    timer = HFForwardTimer(tiny_recipe, device="cpu", dtype="fp32", repeats=4, warmup=1, block=3)
    try:
        res = timer(depths=[1, 2], batch=1, context=8, query=2)
    finally:
        timer.close()
    for r in res.values():  # whole blocks: 4 calls asked, 2 rounds of 3 timed
        assert len(r.samples_ms) == 6 and len(r.cpu_samples_ms) == 6
        assert all(s > 0 for s in r.cpu_samples_ms)
    calls = []  # with warmup=0 too, a block starts with an untimed call
    timer = HFForwardTimer(tiny_recipe, device="cpu", dtype="fp32", repeats=2, warmup=0, block=2)
    try:
        timer._ensure(2)
        model = timer._model
        real = model.forward
        # wraps: the timer reads forward's signature for the cache keyword (profiler.kvcache)
        model.forward = functools.wraps(real)(lambda *a, **k: calls.append(1) or real(*a, **k))
        res = timer(depths=[1, 2], batch=1, context=8, query=1)
    finally:
        timer.close()
    timed = sum(len(r.samples_ms) for r in res.values())
    # per depth: 1 pass learning the cache's shapes, 1 check; then 4 timed, 2 untimed
    assert timed == 4 and len(calls) == 2 + 2 + timed + 2
    with pytest.raises(ValueError, match="block >= 1"):
        ProfileGrid(block=0)
    with pytest.raises(ValueError, match="block >= 1"):
        ProfileGrid(block=True)


def test_flush_streams_a_buffer_before_every_call(tiny_recipe, one_thread):
    from profiler.forward_timer import HFForwardTimer

    timer = HFForwardTimer(tiny_recipe, device="cpu", dtype="fp32", repeats=3, warmup=1,
                           flush_bytes=2**20)  # fmt: skip
    try:
        res = timer(depths=[1, 2], batch=1, context=8, query=2)
    finally:
        timer.close()
    calls = sum(len(r.samples_ms) for r in res.values())
    assert calls == 6 and timer.flushes == calls + 2  # every timed call and each warm-up call
    plain = HFForwardTimer(tiny_recipe, device="cpu", dtype="fp32", repeats=3, warmup=1)
    try:
        plain(depths=[1, 2], batch=1, context=8, query=1)
    finally:
        plain.close()
    assert plain.flushes == 0
    assert ProfileGrid(flush_mib=1.5).flush_bytes == 3 * 2**19
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="flush_mib >= 0"):
            ProfileGrid(flush_mib=bad)
    with pytest.raises(ValueError, match="flush_bytes >= 0"):
        HFForwardTimer(tiny_recipe, device="cpu", dtype="fp32", repeats=1, warmup=0,
                       flush_bytes=-4)  # fmt: skip


def test_tiny_real_model_profiles_on_cpu_and_merges(tiny_recipe, tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        hw = HardwareSpec(
            name="test", memory_bandwidth_bytes_per_s=1e11, peak_flops_per_s={"fp32": 1e12},
            source="a fast machine, so the bound stays below any measurement",
        )  # fmt: skip
        grid = ProfileGrid(
            batch=(1, 2), context=(0, 16), query=(1, 3), depths=(1, 2), whole=True, repeats=2
        )
        prof = profile_model(tiny_recipe, grid=grid, hardware=hw)
    finally:
        torch.set_num_threads(threads)
    rows = prof.rows
    assert len(rows) == 8 * 3 and (rows["median_ms"] > 0).all()
    assert (rows["cpu_median_ms"] > 0).all()  # one thread: process CPU time is a latency
    assert (rows["roofline_ms"] < rows["median_ms"]).all()
    assert (rows["achieved_bandwidth_bytes_per_s"] > 0).all()
    assert rows["samples_ms"].str.count(";").eq(1).all()
    written = write_profile(prof, tmp_path)
    again = write_profile(prof, tmp_path)  # same keys: replaced, not appended
    assert len(pd.read_csv(again.paths[0])) == len(rows)
    assert len(pd.read_csv(written.paths[1])) == len(prof.fits) == 8
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("name", ["cpu-xeon-2.5ghz-1c", "cpu-epyc-1c"])
def test_committed_cpu_profile_rooflines_are_lower_bounds(name):
    """The roofline bound is never above a measured time by more than noise allows."""
    folder = REPO / "data" / "profiles" / name
    files = [f for f in folder.glob("*.csv") if not f.name.endswith(".fit.csv")]
    if not files:
        pytest.skip("no committed CPU profile")
    rows = pd.concat([pd.read_csv(f) for f in files], ignore_index=True)
    rows = rows[np.isfinite(rows["roofline_ms"])]
    assert len(rows) > 0
    # The hardware peaks were measured on this loaded machine (hardware.json), so a bound may
    # exceed the fastest sample by the measurement noise of those peaks: allow 25%.
    ratio = rows["roofline_ms"] / rows["min_ms"]
    worst = rows.loc[ratio.idxmax(), ["model", "depth", "batch", "context", "query"]].to_dict()
    assert ratio.max() <= 1.25, f"roofline {ratio.max():.2f}x the fastest sample at {worst}"
    hw = json.loads((folder / "hardware.json").read_text())
    assert hw["source"].startswith("measured")


def _row(samples, *, cpu=None, depth=1, threads=1, load=0.5, **extra):
    t = TimingResult(tuple(samples))
    c = TimingResult(tuple(cpu if cpu else samples))
    return {
        "model": "m", "depth": depth, "batch": 1, "context": 128, "query": 1, "dtype": "fp32",
        "median_ms": t.median_ms, "iqr_ms": t.iqr_ms, "min_ms": t.min_ms, "max_ms": t.max_ms,
        "repeats": len(samples), "warmup": 1, "samples_ms": ";".join(map(str, samples)),
        "cpu_median_ms": c.median_ms if cpu != () else float("nan"), "cpu_iqr_ms": c.iqr_ms,
        "cpu_samples_ms": ";".join(map(str, c.samples_ms)) if cpu != () else "",
        "achieved_bandwidth_bytes_per_s": 100.0 / t.median_ms, "bandwidth_fraction": 1.0 / t.median_ms,
        "threads": threads, "torch_version": "x", "transformers_version": "y",
        "device_name": "cpu", "loadavg_1m": load, "measured_at": "t", **extra,
    }  # fmt: skip


def test_pool_rows_recomputes_statistics_over_all_samples():
    old = pd.DataFrame([_row([1.0, 2.0, 3.0], load=2.0), _row([9.0], depth=7)])
    new = pd.DataFrame([_row([10.0, 11.0], cpu=[4.0, 5.0]), _row([5.0], depth=2)])
    pooled = pool_rows(old, new)
    assert len(pooled) == 2  # old rows without a new counterpart are not returned
    first = pooled.iloc[0]
    assert first["samples_ms"] == "1.0000;2.0000;3.0000;10.0000;11.0000"
    assert first["median_ms"] == 3.0 and first["min_ms"] == 1.0 and first["max_ms"] == 11.0
    assert first["repeats"] == 5 and first["runs"] == 2 and first["loadavg_1m"] == 2.0
    assert first["run_samples"] == "3;2"  # each run's share of the samples, in order
    assert first["cpu_median_ms"] == 3.0  # CPU samples 1, 2, 3, 4, 5
    assert first["achieved_bandwidth_bytes_per_s"] == pytest.approx(100.0 / 3.0)
    assert first["bandwidth_fraction"] == pytest.approx(1.0 / 3.0)
    assert pooled.iloc[1]["samples_ms"] == "5.0"  # no earlier row: unchanged


def test_pool_rows_refuses_different_settings_and_drops_missing_cpu_samples():
    old = pd.DataFrame([_row([1.0, 2.0], threads=2)])
    with pytest.raises(ValueError, match="different threads"):
        pool_rows(old, pd.DataFrame([_row([1.5])]))
    legacy = pd.DataFrame([_row([1.0, 2.0])])  # no block column: one call per depth and round
    blocked = pd.DataFrame([{**_row([1.5]), "block": 3}])
    with pytest.raises(ValueError, match="different block"):
        pool_rows(legacy, blocked)
    assert pool_rows(legacy, pd.DataFrame([{**_row([1.5]), "block": 1}])).iloc[0]["runs"] == 2
    flushed = pd.DataFrame([{**_row([1.5]), "flush_bytes": 2**26}])
    with pytest.raises(ValueError, match="different flush_bytes"):
        pool_rows(legacy, flushed)  # no flush_bytes column: measured without a flush
    again = pool_rows(flushed, pd.DataFrame([{**_row([2.5]), "flush_bytes": 2**26}]))
    assert again.iloc[0]["runs"] == 2
    no_cpu = pd.DataFrame([_row([1.0, 2.0], cpu=())])
    pooled = pool_rows(no_cpu, pd.DataFrame([_row([3.0])]))
    assert np.isnan(pooled.iloc[0]["cpu_median_ms"]) and pooled.iloc[0]["cpu_samples_ms"] == ""


def test_write_profile_accumulate_pools_and_refits(tiny_recipe, tmp_path):
    grid = ProfileGrid(batch=(1,), context=(8,), query=(1,), depths=(1, 2), repeats=2)

    def timer(offset):
        def measure(*, depths, batch, context, query):
            return {d: TimingResult((1.0 + d + offset, 1.0 + d + offset)) for d in depths}

        return measure

    hw = HardwareSpec(
        name="t", memory_bandwidth_bytes_per_s=1e11, peak_flops_per_s={"fp32": 1e12}, source="test"
    )
    first = profile_model(tiny_recipe, grid=grid, measure=timer(0.0), hardware=hw)
    write_profile(first, tmp_path, accumulate=True)  # nothing earlier: written as it is
    second = profile_model(tiny_recipe, grid=grid, measure=timer(1.0), hardware=hw)
    pooled = write_profile(second, tmp_path, accumulate=True)
    rows = pooled.rows.sort_values("depth")
    assert list(rows["repeats"]) == [4, 4] and list(rows["runs"]) == [2, 2]
    assert list(rows["run_samples"]) == ["2;2", "2;2"]
    assert list(rows["median_ms"]) == [2.5, 3.5]  # samples (2, 2, 3, 3) and (3, 3, 4, 4)
    fit = pooled.fits.iloc[0]
    assert fit["t_layer_ms"] == pytest.approx(1.0) and fit["t_fixed_ms"] == pytest.approx(1.5)
    roof = second.fits.iloc[0]["roofline_fixed_ms"]  # carried over from the new profile
    assert np.isfinite(roof) and fit["roofline_fixed_ms"] == pytest.approx(roof)
    replaced = write_profile(profile_model(tiny_recipe, grid=grid, measure=timer(5.0)), tmp_path)
    assert list(replaced.rows.sort_values("depth")["median_ms"]) == [7.0, 8.0]


def test_large_integer_columns_survive_merging_with_older_rows(tiny_recipe, tmp_path, one_thread):
    def measure(*, depths, batch, context, query):
        return {d: TimingResult((1.0 + d,)) for d in depths}

    old = ProfileGrid(batch=(1,), context=(8,), query=(2,), depths=(1, 2), repeats=1)
    write_profile(profile_model(tiny_recipe, grid=old, measure=measure), tmp_path)
    path = tmp_path / f"{tiny_recipe.name}.csv"
    # rows written before the flush_bytes column existed
    pd.read_csv(path).drop(columns=["flush_bytes"]).to_csv(path, index=False)
    grid = ProfileGrid(batch=(1,), context=(8,), query=(1,), depths=(1, 2), repeats=1,
                       warmup=0, flush_mib=64)  # fmt: skip
    for _ in range(2):  # the second run pools with what the first wrote, read back from the CSV
        write_profile(profile_model(tiny_recipe, grid=grid), tmp_path, accumulate=True)
    rows = pd.read_csv(path)
    flushed = rows[rows["query"] == 1]
    assert set(flushed["flush_bytes"]) == {2**26} and set(flushed["runs"]) == {2}
    assert rows[rows["query"] == 2]["flush_bytes"].isna().all()
    assert "e+" not in path.read_text().split("\n")[1].split(",")[13]  # params written whole


def _multi_query_falcon():
    from transformers import FalconConfig

    # Falcon-7B's layout: multi-query attention, one cached key/value head of four
    return FalconConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                        vocab_size=128, multi_query=True, new_decoder_architecture=False)  # fmt: skip


def _mla_deepseek():
    from transformers import DeepseekV3Config

    # multi-head latent attention: keys 24 wide (16 + 8 rotary), values 8
    return DeepseekV3Config(
        hidden_size=64, intermediate_size=128, moe_intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=4, vocab_size=128, q_lora_rank=32,
        kv_lora_rank=16, qk_rope_head_dim=8, qk_nope_head_dim=16, v_head_dim=8,
        n_routed_experts=4, num_experts_per_tok=2, first_k_dense_replace=1, n_group=1,
        topk_group=1,
    )  # fmt: skip


@pytest.mark.parametrize("make", [_multi_query_falcon, _mla_deepseek])
def test_context_cache_takes_the_shapes_the_model_caches(make, tmp_path):
    # the cache is filled with what a real pass leaves there, not with what the config's
    # head counts would suggest: both layouts failed with context > 0 before
    from profiler.forward_timer import HFForwardTimer

    make().save_pretrained(tmp_path)
    recipe = resolve_model(str(tmp_path))
    timer = HFForwardTimer(recipe, device="cpu", dtype="fp32", repeats=1, warmup=0)
    try:
        res = timer(depths=[1, 2], batch=2, context=5, query=3)  # checks logits and cache length
    finally:
        timer.close()
    assert set(res) == {1, 2} and all(r.samples_ms for r in res.values())


@pytest.mark.parametrize(("context", "query"), [(16, 4), (6, 4)])
def test_sliding_window_layers_profile_past_their_window(context, query, tmp_path):
    # Mistral-7B-v0.1 at a context of 4096 and more: the timed pass's columns are cropped after
    # it, which a full sliding layer refuses unless it records its past states
    from transformers import MistralConfig

    from profiler.forward_timer import HFForwardTimer

    MistralConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, vocab_size=128,
                  sliding_window=8).save_pretrained(tmp_path)  # fmt: skip
    timer = HFForwardTimer(resolve_model(str(tmp_path)), device="cpu", dtype="fp32", repeats=3,
                           warmup=1)  # fmt: skip
    try:
        res = timer(depths=[1, 2], batch=1, context=context, query=query)
    finally:
        timer.close()
    assert all(len(r.samples_ms) == 3 for r in res.values())


def test_rows_record_the_head_width_and_the_latency_model_keys_an_own_one_apart(tmp_path):
    # Qwen3-0.6B-like: heads of 32 at hidden 64 and 4 heads (not 16); its rows say so, and a
    # folder holding it beside an older profile (no head_dim column) fits both, the Qwen3 shape
    # under its own key (the report's figures, whose key holds no head width, leave it out)
    from transformers import Qwen3Config

    from perfmodel import ArchSpec, LatencyModel
    from perfmodel.latency_profiles import describable, load_profile_rows

    Qwen3Config(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, head_dim=32, vocab_size=128).save_pretrained(tmp_path / "q")  # fmt: skip
    grid = ProfileGrid(batch=(1, 2), context=(8, 16), query=(1, 2), depths=(1, 2))
    prof = profile_model(resolve_model(str(tmp_path / "q")), grid=grid, measure=SyntheticTimer())
    assert set(prof.rows["head_dim"]) == {32} and set(prof.fits["head_dim"]) == {32}
    assert describable(prof.rows).all() and not describable(prof.rows, own_head_width=False).any()
    llama = resolve_model("llama-7b", overrides={"layers": 2, "hidden": 256, "heads": 4})
    plain = profile_model(llama, grid=grid, measure=SyntheticTimer())
    assert set(plain.rows["head_dim"]) == {64} and describable(plain.rows).all()
    folder = tmp_path / "profiles"
    write_profile(prof, folder)
    # a folder of own-width models only: the latency model fits it (it once had no rows left)
    alone = LatencyModel.from_profiles(folder)
    old = pd.read_csv(REPO / "data" / "profiles" / "cpu-epyc-1c" / "zoo-target.csv")
    assert "head_dim" not in old.columns  # written before the column
    old.to_csv(folder / "zoo-target.csv", index=False)
    assert set(load_profile_rows(folder)["model"]) == {"zoo-target", prof.rows["model"].iloc[0]}
    model = LatencyModel.from_profiles(folder)
    spec = ArchSpec.from_hf_config(json.loads((tmp_path / "q" / "config.json").read_text()))
    assert spec.head_size == 32
    for m in (alone, model):
        assert m.is_profiled(spec) and not m.is_profiled(spec.replace(head_size=None))
        # the table reproduces the measured rows of its own shape
        for r in prof.rows[prof.rows["depth"] == 2].itertuples():
            got = m.latency_fn(spec)(r.batch, r.context, r.query)
            assert got == pytest.approx(r.median_ms, rel=0.01), r


def test_a_mixture_of_experts_profile_records_its_experts_and_is_left_out_of_the_fit(tmp_path):
    # Mixtral's rows once read as a dense Llama layer of ffn = one expert's width, and were
    # fitted as one; they record the experts now and the latency model leaves them out
    from transformers import MixtralConfig

    from perfmodel.latency_profiles import describable, load_profile_rows

    MixtralConfig(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, vocab_size=128, num_local_experts=4,
                  num_experts_per_tok=2).save_pretrained(tmp_path / "moe")  # fmt: skip
    grid = ProfileGrid(batch=(1,), context=(8,), query=(1,), depths=(1, 2))
    prof = profile_model(resolve_model(str(tmp_path / "moe")), grid=grid, measure=SyntheticTimer())
    assert set(prof.rows["experts"]) == {4} and set(prof.fits["experts"]) == {4}
    assert not describable(prof.rows).any()
    llama = resolve_model("llama-7b", overrides={"layers": 2, "hidden": 256, "heads": 4})
    plain = profile_model(llama, grid=grid, measure=SyntheticTimer())
    assert set(plain.rows["experts"]) == {0} and describable(plain.rows).all()
    folder = tmp_path / "profiles"
    write_profile(prof, folder)
    write_profile(plain, folder)
    assert set(load_profile_rows(folder)["model"]) == set(plain.rows["model"])
