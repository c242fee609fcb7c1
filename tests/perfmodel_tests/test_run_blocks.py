"""Each pooled run's share of a profile row's samples (``run_samples``), and the noise floor
that benchmarks/bench_latency_model.py computes from it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from perfmodel.latency_profiles import join_blocks, run_blocks
from tests.benchmark_scripts import load_benchmark


def test_run_blocks_reads_counts_blocks_and_legacy_rows():
    assert run_blocks("5;5;26", repeats=36, runs=3) == [(5, 1), (5, 1), (26, 1)]
    assert run_blocks("5;5;61/3", repeats=71, runs=5) == [(5, 1), (5, 1), (61, 3)]
    assert run_blocks(7, repeats=7, runs=1) == [(7, 1)]  # a one-run cell read back as a number
    assert run_blocks(np.int64(7), repeats=7, runs=1) == [(7, 1)]
    # written before the column existed: every run of a row had the same number of calls
    assert run_blocks(None, repeats=15, runs=3) == [(5, 1)] * 3
    assert run_blocks(float("nan"), repeats=16, runs=3) == [(16, 3)]  # uneven: one block
    for blocks in ([(5, 1), (5, 1), (61, 3)], [(3, 1)]):
        text = join_blocks(blocks)
        assert run_blocks(text, repeats=sum(n for n, _ in blocks),
                          runs=sum(r for _, r in blocks)) == blocks  # fmt: skip


@pytest.mark.parametrize(
    ("cell", "match"),
    [("5;x", "counts like"), ("5;0", ">= 1"), ("5;4", "add up"), ("5;4/0", ">= 1")],
)
def test_run_blocks_rejects_bad_cells(cell, match):
    with pytest.raises(ValueError, match=match):
        run_blocks(cell, repeats=10, runs=2)


def test_noise_floor_splits_runs_of_different_lengths():
    # run 1: 2 samples at 1.0; run 2: 4 samples at 2.0; a block of 2 unknown runs at 9.0
    samples = [1.0, 1.0] + [2.0] * 4 + [9.0] * 3
    rows = pd.DataFrame(
        {"runs": [4], "run_samples": ["2;4;3/2"], "cpu_samples_ms": [";".join(map(str, samples))]}
    )
    rep = load_benchmark("bench_latency_model").repeatability(rows, "cpu_median_ms")
    pooled = 2.0  # median of all nine samples
    assert rep["runs_compared"] == 2  # the block of two runs is skipped
    assert rep["worst_abs_deviation"] == pytest.approx(abs(1.0 / pooled - 1))
    assert rep["median_abs_deviation"] == pytest.approx(np.median([0.5, 0.0]))


def test_run_medians_are_each_recorded_runs_median():
    row = pd.DataFrame(
        {"runs": [3], "run_samples": ["2;3;4/1"],
         "cpu_samples_ms": [";".join(map(str, [1.0, 3.0, 5.0, 6.0, 7.0, 8.0, 8.0, 9.0, 9.0]))]}
    ).iloc[0]  # fmt: skip
    bench = load_benchmark("bench_latency_model")
    assert bench.run_medians(row, "cpu_samples_ms") == [2.0, 6.0, 8.5]
    one = pd.DataFrame({"runs": [1], "cpu_samples_ms": ["1.0;2.0"]}).iloc[0]
    assert bench.run_medians(one, "cpu_samples_ms") == []


def test_held_out_lists_the_worst_rows_first():
    from tests.perfmodel_tests.test_latency_model import _rows

    rows = _rows()
    rows["runs"], rows["median_ms"] = 1, rows["median_ms"].astype(float)
    spoiled = (rows["model"] == "w256") & (rows["depth"] == 2) & (rows["query"] == 4)
    spoiled &= (rows["batch"] == 1) & (rows["context"] == 128)
    rows.loc[spoiled, "median_ms"] *= 1.5  # one row measured 50% slow
    out = load_benchmark("bench_latency_model").held_out(
        rows, statistic="median_ms", flops_per_byte=10.0
    )
    worst = out["rows"]
    assert len(worst) == len(rows)
    errors = [abs(w["error"]) for w in worst]
    assert errors == sorted(errors, reverse=True)
    top = worst[0]
    assert (top["model"], top["depth"], top["batch"], top["context"], top["query"]) == (
        "w256",
        2,
        1,
        128,
        4,
    )
    assert top["error"] < -0.2  # predicted well under the spoiled measurement
    assert top["predicted_ms"] == pytest.approx(top["measured_ms"] * (1 + top["error"]))
    assert top["run_medians_ms"] == []


def test_length_split_bands_the_held_out_error_by_measured_pass_length():
    split = load_benchmark("bench_latency_model").length_split(
        [
            {"measured_ms": 0.7, "error": 0.24},
            {"measured_ms": 1.5, "error": -0.05},
            {"measured_ms": 24.0, "error": 0.156},
            {"measured_ms": 30.0, "error": 0.01},
            {"measured_ms": 40.0, "error": -0.03},
        ]
    )
    assert [b["label"] for b in split] == ["< 2 ms", "2-50 ms"]  # no pass of 50 ms or more
    short, middle = split
    assert (short["rows"], short["rows_over_15pct"]) == (2, 1)
    assert short["worst_abs_error"] == pytest.approx(0.24)
    assert short["median_abs_error"] == pytest.approx(0.145)
    assert (middle["rows"], middle["rows_over_15pct"]) == (3, 1)
    assert middle["median_abs_error"] == pytest.approx(0.03)


def test_model_size_split_is_for_cpu_profiles_unless_a_cache_is_given():
    split_cache_mib = load_benchmark("bench_latency_model").split_cache_mib
    cpu = pd.Series(["cpu-epyc-1c", "cpu-epyc-1c"])
    assert split_cache_mib(None, cpu) == 8.0
    assert split_cache_mib(None, pd.Series(["h200", "h200"])) is None
    assert split_cache_mib(None, pd.Series(["cpu-epyc-1c", "h200"])) is None
    assert split_cache_mib(50.0, pd.Series(["h200"])) == 50.0


@pytest.mark.parametrize("size", ["0", "-1", "nan"])
def test_cache_size_must_be_positive(size, capsys):
    assert load_benchmark("bench_latency_model").main(["--cache-mib", size]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--cache-mib must be a size in MiB above 0" in err[0]


def test_held_out_fits_with_the_depth_fit_asked_for(capsys):
    from tests.perfmodel_tests.test_latency_model import _rows

    bench = load_benchmark("bench_latency_model")
    rows = _rows(widths=(128, 256, 512))
    rows.loc[rows["depth"] == 4, "median_ms"] *= 1.08  # the deepest passes ran slow
    worst = {
        fit: max(abs(w["error"]) for w in bench.held_out(
            rows, statistic="median_ms", flops_per_byte=10.0, depth_fit=fit
        )["rows"] if w["depth"] == 1)
        for fit in ("absolute", "relative")
    }  # fmt: skip
    assert worst["relative"] != pytest.approx(worst["absolute"], rel=1e-3)
    with pytest.raises(ValueError, match="depth_fit"):
        bench.held_out(rows, statistic="median_ms", flops_per_byte=10.0, depth_fit="weighted")
    with pytest.raises(SystemExit) as exc:
        bench.main(["--depth-fit", "weighted"])
    assert exc.value.code == 2 and "--depth-fit" in capsys.readouterr().err
