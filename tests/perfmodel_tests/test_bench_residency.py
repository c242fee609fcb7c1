"""benchmarks/bench_residency.py: the residency-split model, its parts and its command line."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from perfmodel.gemm_table import GemmTable
from perfmodel.latency_model import LatencyModel
from perfmodel.latency_terms import ParametricLatency, _layer_matmul_params
from tests.benchmark_scripts import load_benchmark
from tests.perfmodel_tests.test_latency_model import _arch, _rows

bench = load_benchmark("bench_residency")


def _gemm(pairs, scale: float) -> GemmTable:
    rows = pd.DataFrame(
        [
            {
                "dtype": "fp32",
                "k": k,
                "n": n,
                "m": m,
                "median_ms": scale * k * n * (1 + 0.2 * m) * 1e-7,
            }
            for k, n in pairs
            for m in (1, 2, 4, 17, 68)
        ]
    )
    return GemmTable.from_rows(rows)


def test_residency_is_one_inside_the_cache_half_at_its_size_and_falls_beyond():
    phi = bench.residency([1.0, 32.0, 64.0, 1024.0], cache_bytes=32.0, steepness=6.0)
    assert phi[0] == pytest.approx(1.0) and phi[1] == pytest.approx(0.5)
    assert phi[2] < 0.02 and phi[3] < 1e-6
    assert np.all(np.diff(phi) < 0)


@pytest.mark.parametrize("text", ["gemm", "all:self", "all:nearby:32", "x:self:32", "all:self:0",
                                  "all:self:big", "all:self:nan", "all:self:8:deep"])  # fmt: skip
def test_parse_variant_refuses_what_is_not_a_variant(text):
    with pytest.raises(ValueError, match="SPLIT:RESIDENCY:CACHE_MIB"):
        bench.parse_variant(text)


def test_parse_variant_reads_its_settings():
    assert bench.parse_variant("committed") is None
    assert bench.parse_variant("all:protocol:20") == {
        "split": "all", "mode": "protocol", "cache_bytes": 20 * 2**20, "depth_correction": False,
    }  # fmt: skip
    assert bench.parse_variant("gemm:self:8:depth")["depth_correction"] is True


def test_warm_table_keeps_the_cold_pairs_warm_where_timed_and_cold_where_not():
    cold = _gemm([(64, 64), (128, 256), (512, 512)], scale=2.0)
    warm = _gemm([(64, 64), (128, 256), (32, 32)], scale=1.0)
    table = bench.warm_table(warm, cold)
    assert (
        table.pairs == cold.pairs
    )  # a pair only the warm table has (a left-out shape's) is not used
    assert table.ms(4, 64, 64) == pytest.approx(warm.ms(4, 64, 64))
    assert table.ms(4, 512, 512) == pytest.approx(cold.ms(4, 512, 512))  # never timed warm
    assert bench.warm_table(None, cold) is cold and bench.warm_table(warm, None) is None


def test_previous_depths_are_the_profilers_alternating_round_robin():
    depths = (1, 2, 4, 12)
    # profiler.forward_timer: rounds alternate ascending and descending
    order = [d for r in range(80) for d in (depths if r % 2 == 0 else depths[::-1])]
    for d in depths:
        seen = [a for a, b in zip(order, order[1:], strict=False) if b == d]
        before, after = bench._previous_depths(depths, d)
        # half of its calls each (the very first call of all has no predecessor)
        assert abs(seen.count(before) - 40) <= 1 and abs(seen.count(after) - 40) <= 1
        assert len(seen) == 80 - (d == depths[0])
    assert bench._previous_depths(depths, 1) == (1.0, 2.0)
    assert bench._previous_depths(depths, 4) == (2.0, 12.0)
    assert bench._previous_depths(depths, 7) == (7.0, 7.0)  # never run: after a pass of its own


@pytest.mark.parametrize("split", ["gemm", "all"])
def test_no_residency_fits_as_the_committed_model(split):
    rows = _rows()
    committed = ParametricLatency.fit(rows, flops_per_byte=10.0)
    tiny = bench.ResidentLatency.fit(rows, flops_per_byte=10.0, cache_bytes=1.0, split=split)
    for w in (128, 512):
        a = _arch(w, layers=3)
        for got, want in zip(
            tiny.parts(a, [1, 4], 256, 5), committed.parts(a, [1, 4], 256, 5), strict=True
        ):
            np.testing.assert_allclose(got, want, rtol=1e-6)


def _resident_rows(cache_bytes: float) -> pd.DataFrame:
    """Rows whose layers read weights at 5 GB/s from memory and 50 GB/s from the cache."""
    rows = _rows(widths=(128, 192, 256, 384, 512, 768, 1024))
    layer = 4.0 * _layer_matmul_params(
        rows["hidden"].to_numpy(float), rows["ffn"].to_numpy(float),
        rows["heads"].to_numpy(float), rows["kv_heads"].to_numpy(float), False,
    )  # fmt: skip
    kv = (rows["batch"] * (rows["context"] + rows["query"]) * 2 * rows["hidden"] * 4.0).to_numpy()
    head = 4.0 * rows["vocab"].to_numpy(float) * rows["hidden"].to_numpy(float)
    depth = rows["depth"].to_numpy(float)
    phi = bench.residency(depth * (layer + kv) + head, cache_bytes, 6.0)
    saving = depth * layer * phi * (1 / 5e6 - 1 / 5e7)  # ms: cold minus warm reads
    rows["median_ms"] = rows["median_ms"] - saving
    return rows


def test_the_split_model_recovers_a_device_whose_cached_weights_read_faster():
    cache = 12 * 2**20
    rows = _resident_rows(cache)
    fit = bench.ResidentLatency.fit(
        rows, flops_per_byte=10.0, cache_bytes=cache, split="all", mode="self"
    )
    committed = ParametricLatency.fit(rows, flops_per_byte=10.0)
    errors = {}
    for name, model in (("split", fit), ("committed", committed)):
        pred = []
        for r in rows.itertuples():
            f, per_layer = model.parts(_arch(r.hidden, layers=r.depth), r.batch, r.context, r.query)
            pred.append(f + r.depth * per_layer)
        errors[name] = np.max(np.abs(np.array(pred) / rows["median_ms"].to_numpy() - 1))
    assert errors["split"] < 0.01 < errors["committed"]


def test_latency_model_fits_with_another_parametric_fit():
    rows = _resident_rows(12 * 2**20)
    calls = []

    def fit(r, **kw):
        calls.append(sorted(kw))
        return bench.ResidentLatency.fit(r, cache_bytes=12 * 2**20, split="all", **kw)

    model = LatencyModel.fit(rows, parametric_fit=fit, exclude=[_arch(384)])
    assert calls == [["flops_per_byte", "gemm", "statistic"]]
    assert isinstance(model.parametric, bench.ResidentLatency)
    truth = rows[(rows["hidden"] == 384) & (rows["depth"] == 2) & (rows["batch"] == 1)]
    r = truth.iloc[0]
    fn = model.latency_fn(_arch(384, layers=2), profiled=False)  # the parametric model alone
    assert fn(1, r["context"], r["query"]) == pytest.approx(r["median_ms"], rel=0.01)


def test_measure_warm_table_times_the_small_products_only(tmp_path):
    cold = tmp_path / "gemm.csv"
    pd.DataFrame(
        [
            {"dtype": "fp32", "k": k, "n": n, "m": m, "median_ms": 0.01}
            for k, n in ((32, 64), (64, 64), (4096, 4096))
            for m in (1, 3)
        ]  # fmt: skip
    ).to_csv(cold, index=False)
    path = bench.measure_warm_table(
        cold, tmp_path / "warm", rounds=2, repeats=2, cycle_mib=0.1, max_mib=1.0
    )
    table = pd.read_csv(path)
    assert sorted({(k, n) for k, n in zip(table["k"], table["n"], strict=True)}) == [
        (32, 64), (64, 64),
    ]  # fmt: skip
    assert sorted(table["m"].unique()) == [1, 3]
    assert (table["runs"] == 2).all()  # the two rounds pooled


@pytest.mark.parametrize(
    "argv, match",
    [
        (["--variants", "all:self"], "SPLIT:RESIDENCY:CACHE_MIB"),
        (["--variants", ","], "at least one variant"),
        (["--warm-rounds", "0"], "--warm-rounds >= 1"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(argv, match, capsys):
    assert bench.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and match in err[0]


def test_a_folder_without_a_gemm_table_exits_2(tmp_path, capsys):
    _rows().assign(cpu_median_ms=1.0).to_csv(tmp_path / "w.csv", index=False)
    assert bench.main(["--profiles", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "gemm.csv" in err[0]


def test_cycle_sweep_times_each_product_at_one_and_two_rows_per_cycled_size():
    out = bench.cycle_sweep([(32, 64)], [0.0, 0.05], repeats=2)
    assert [(w["cycle_mib"], w["m"]) for w in out] == [(0.0, 1), (0.0, 2), (0.05, 1), (0.05, 2)]
    assert all(w["ms"] > 0 and (w["k"], w["n"]) == (32, 64) for w in out)


@pytest.mark.parametrize(
    "argv", [["--sweep-mib", "4,x"], ["--sweep-pairs", "128"], ["--sweep-pairs", "0x64"]]
)
def test_a_bad_sweep_exits_2_with_one_line(argv, capsys):
    assert bench.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--sweep-pairs KxN" in err[0]


def test_depth_corrected_model_takes_the_neighbour_ratios_at_the_asked_depth():
    rows = _resident_rows(12 * 2**20)
    left_out = _arch(384, layers=4)
    plain = LatencyModel.fit(rows, exclude=[left_out])
    depth = bench.DepthCorrectedModel.fit(rows, exclude=[left_out])
    # the committed parametric model's parts do not depend on depth: the same prediction
    for layers in (1, 4):
        a = left_out.replace(layers=layers)
        assert depth.latency_fn(a)(1, 128, 4) == pytest.approx(plain.latency_fn(a)(1, 128, 4))
    assert sorted(depth.__dict__["_by_depth"]) == [1, 4]
    # a profiled shape is its own table, whatever the depth
    a = _arch(256, layers=3)
    assert depth.latency_fn(a)(4, 512, 1) == pytest.approx(plain.latency_fn(a)(4, 512, 1))

    def fit(r, **kw):
        return bench.ResidentLatency.fit(r, cache_bytes=12 * 2**20, split="all", **kw)

    split = bench.DepthCorrectedModel.fit(rows, exclude=[left_out], parametric_fit=fit)
    one_layer = LatencyModel.fit(rows, exclude=[left_out], parametric_fit=fit)
    truth = rows[(rows["hidden"] == 384) & (rows["depth"] == 4) & (rows["batch"] == 1)]
    r = truth.iloc[0]
    got = split.latency_fn(left_out)(1, r["context"], r["query"])
    assert got == pytest.approx(r["median_ms"], rel=0.02)  # ratios at depth 4: near exact
    assert abs(got / r["median_ms"] - 1) <= abs(
        one_layer.latency_fn(left_out)(1, r["context"], r["query"]) / r["median_ms"] - 1
    )
