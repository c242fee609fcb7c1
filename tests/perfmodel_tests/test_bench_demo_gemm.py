"""benchmarks/bench_demo_gemm.py: a demo-sized profile's fit with and without the GEMM table."""

from __future__ import annotations

from pathlib import Path

import pytest

from perfmodel.gemm_table import GEMM_TABLE_FILE, GemmTable, model_gemms
from perfmodel.latency_model import load_profile_rows
from tests.benchmark_scripts import load_benchmark

bench = load_benchmark("bench_demo_gemm")
EPYC = Path(__file__).resolve().parents[2] / "data" / "profiles" / "cpu-epyc-1c"


@pytest.fixture(scope="module")
def rows():
    r = load_profile_rows(EPYC)
    return r[r["dtype"] == "fp32"]


@pytest.fixture(scope="module")
def gemm():
    return GemmTable.from_csv(EPYC / GEMM_TABLE_FILE, dtype="fp32")


def test_products_are_the_models_layer_and_head_products(rows):
    got = bench.products_of(rows, ("zoo-w128-l12",))
    want = set(model_gemms(hidden=128, ffn=384, heads=2, kv_heads=2, vocab=4096, opt=False))
    assert got == want and (128, 4096) in got  # the tied LM head


def test_each_mode_fits_its_own_products_and_predicts_every_test_row(rows, gemm):
    res = bench.evaluate(rows, gemm)
    assert tuple(res) == bench.MODES
    fit_products = bench.products_of(rows, bench.FIT) & set(gemm.pairs)
    all_products = bench.products_of(rows, bench.FIT + bench.TEST) & set(gemm.pairs)
    assert res["none"]["products"] == 0
    assert res["fitted"]["products"] == len(fit_products) > 0
    assert res["fitted+predicted"]["products"] == len(all_products) > len(fit_products)
    n = len(
        rows[rows["model"].isin(bench.TEST) & (rows["batch"] == 1) & (rows["context"] == 128)
             & (rows["query"] <= 7)]
    )  # fmt: skip
    for r in res.values():
        assert r["rows"] == n
        assert 0 <= r["median_abs_error"] <= r["p90_abs_error"] <= r["worst_abs_error"]
    # without a table every mode is the same fit
    same = bench.evaluate(rows, None)
    assert same["none"] == same["fitted"] == same["fitted+predicted"] == res["none"]


def test_bad_input_is_one_line_and_exit_2(rows, capsys):
    with pytest.raises(ValueError, match="--test models must be profiled"):
        bench.evaluate(rows, None, test=("no-such-model",))
    with pytest.raises(ValueError, match="must exist"):
        bench.evaluate(rows, None, max_query=0)
    assert bench.main(["--profiles", str(EPYC), "--fit", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "['nope']" in err
