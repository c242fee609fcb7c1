"""benchmarks/bench_head_in_pass.py: one small zoo shape end to end, and bad input -> exit 2."""

from __future__ import annotations

import json

import pytest

from tests.benchmark_scripts import load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("bench_head_in_pass")


def test_times_the_head_inside_the_pass_and_alone(bench, one_thread, capsys):
    argv = ["--widths", "128", "--rounds", "1", "--min-time-ms", "2", "--built-layers", "3"]
    assert bench.main(argv) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["results"][0]
    assert result["width"] == 128 and result["head_bytes"] == 128 * 4096 * 4
    assert result["built_layers"] == 3
    for q in ("1", "2", "3", "4"):
        med = result["median_ms"][q]
        assert all(med[k] > 0 for k in ("pass", "head_in_pass", "warm", "cold"))
        assert med["head_in_pass"] < med["pass"]  # the head is part of the pass
        assert result["calls"][q]["pass"] == result["calls"][q]["head_in_pass"] >= 5


@pytest.mark.parametrize(
    "args",
    [
        ("--widths", "100"),
        ("--widths", "x"),
        ("--rounds", "0"),
        ("--min-time-ms", "0"),
        ("--built-layers", "0"),
    ],  # fmt: skip
)
def test_bad_input_exits_2_with_one_line(bench, args, capsys):
    assert bench.main(list(args)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
