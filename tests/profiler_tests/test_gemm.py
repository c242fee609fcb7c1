"""profiler.gemm: timing linear-layer products, merging gemm.csv; `specdec profile --gemm`."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from explorer.cli import main
from perfmodel.gemm_table import GemmTable
from perfmodel.latency_profiles import load_profile_rows
from profiler.gemm import GEMM_COLUMNS, profile_gemms, write_gemm_rows


def test_profile_gemms_rows_and_columns(one_thread):
    rows = profile_gemms([(32, 48), (64, 16)], [1, 3], repeats=3, cycle_bytes=1 << 16)
    assert list(rows.columns) == list(GEMM_COLUMNS)
    assert len(rows) == 4 and set(zip(rows["k"], rows["n"], strict=True)) == {(32, 48), (64, 16)}
    assert (rows["median_ms"] > 0).all() and (rows["repeats"] == 3).all()
    assert (rows["cpu_median_ms"] > 0).all()  # one thread on CPU: process time kept
    assert (rows["samples_ms"].str.count(";") == 2).all()
    # enough copies of each weight to fill the cycle (32 x 48 fp32 = 6 KiB -> 11 copies)
    assert rows.loc[rows["k"] == 32, "cycle_bytes"].iloc[0] == 11 * 32 * 48 * 4
    assert (rows["achieved_flops_per_s"] > 0).all()


@pytest.mark.parametrize(
    ("pairs", "ms", "kw", "match"),
    [
        ([(0, 4)], [1], {}, "k >= 1"),
        ([], [1], {}, "at least one"),
        ([(4, 4)], [0], {}, "m >= 1"),
        ([(4, 4)], [1], {"dtype": "int8"}, "dtype"),
        ([(4, 4)], [1], {"repeats": 0}, "repeats"),
    ],
)
def test_profile_gemms_bad_input(pairs, ms, kw, match):
    with pytest.raises(ValueError, match=match):
        profile_gemms(pairs, ms, **kw)


def test_write_merges_replaces_and_pools(tmp_path, one_thread):
    first = profile_gemms([(16, 16)], [1, 2], repeats=2, cycle_bytes=0)
    path = write_gemm_rows(tmp_path, first)
    assert path == tmp_path / "gemm.csv" and not list(tmp_path.glob(".*tmp"))
    second = profile_gemms([(16, 16), (8, 8)], [1], repeats=3, cycle_bytes=0)
    merged = pd.read_csv(write_gemm_rows(tmp_path, second))
    assert len(merged) == 3  # (16,16,m=1) replaced, (16,16,m=2) kept, (8,8,1) added
    row = merged[(merged["k"] == 16) & (merged["m"] == 1)].iloc[0]
    assert row["repeats"] == 3 and row["runs"] == 1
    pooled = pd.read_csv(write_gemm_rows(tmp_path, second, accumulate=True))
    row = pooled[(pooled["k"] == 16) & (pooled["m"] == 1)].iloc[0]
    assert row["repeats"] == 6 and row["runs"] == 2
    assert len(str(row["samples_ms"]).split(";")) == 6
    table = GemmTable.from_csv(path)
    assert table.pairs == [(8, 8), (16, 16)] and table.statistic == "cpu_median_ms"


def test_write_refuses_a_broken_table(tmp_path):
    (tmp_path / "gemm.csv").write_text("a,b\n1,2\n")
    rows = pd.DataFrame([{"dtype": "fp32", "k": 1, "n": 1, "m": 1, "median_ms": 1.0}])
    with pytest.raises(ValueError, match="lacks"):
        write_gemm_rows(tmp_path, rows)
    assert (tmp_path / "gemm.csv").read_text() == "a,b\n1,2\n"  # nothing lost


def test_cli_profile_gemm_json_and_profile_readers_skip_the_table(tmp_path, capsys, one_thread):
    argv = ["profile", "--model", "llama-7b", "--layers", "2", "--hidden", "64", "--ffn", "128",
            "--heads", "1", "--kv-heads", "1", "--gemm", "--batch", "1,2", "--query", "1,3",
            "--repeats", "2", "--gemm-cycle-mib", "1", "--out", str(tmp_path), "--json"]  # fmt: skip
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["gemm"] and result["m"] == [1, 2, 3, 6]
    # q, k, v, o (64 x 64), gate/up (64 -> 128), down (128 -> 64), head (64 -> 32000)
    assert sorted(map(tuple, result["products"])) == [(64, 64), (64, 128), (64, 32000), (128, 64)]
    rows = pd.read_csv(tmp_path / "gemm.csv")
    assert len(rows) == 4 * 4 and (rows["threads"] == 1).all()
    with pytest.raises(ValueError, match="no profile CSVs"):  # the table is not a model profile
        load_profile_rows(tmp_path)


def test_cli_profile_gemm_bad_input_exits_2(tmp_path, capsys):
    argv = ["profile", "--model", "no-such-model", "--gemm", "--out", str(tmp_path)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no-such-model" in err[0]
    (tmp_path / "gemm.csv").write_text("a,b\n1,2\n")
    argv = ["profile", "--model", "llama-7b", "--hidden", "64", "--ffn", "64", "--heads", "1",
            "--kv-heads", "1", "--gemm", "--repeats", "1", "--out", str(tmp_path)]  # fmt: skip
    assert main(argv) == 2
    assert "lacks" in capsys.readouterr().err
    argv = ["profile", "--model", "llama-7b", "--gemm", "--gemm-cycle-mib", "-1", "--no-write"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--gemm-cycle-mib >= 0" in err[0]


def test_write_refuses_to_pool_other_settings_and_loses_nothing(tmp_path, one_thread):
    cold = profile_gemms([(16, 16)], [1], repeats=2, cycle_bytes=2**20)
    path = write_gemm_rows(tmp_path, cold)
    before = path.read_text()
    warm = profile_gemms([(16, 16), (8, 8)], [1], repeats=2, cycle_bytes=0)
    with pytest.raises(ValueError, match="different cycle_bytes.*k=16, n=16, m=1"):
        write_gemm_rows(tmp_path, warm, accumulate=True)
    assert path.read_text() == before  # nothing written, nothing lost
    replaced = pd.read_csv(write_gemm_rows(tmp_path, warm))  # without pooling: replaced
    assert sorted(replaced["cycle_bytes"]) == sorted(warm["cycle_bytes"]) and len(replaced) == 2
    assert set(replaced["runs"]) == {1}


def test_write_keeps_whole_numbers_whole_beside_older_rows(tmp_path, one_thread):
    rows = profile_gemms([(16, 16)], [1], repeats=2, cycle_bytes=2**28)
    cycled = int(rows["cycle_bytes"].iloc[0])
    assert cycled >= 2**28 and cycled % 1000 != 0  # 9 digits: %.6g would round it
    # a pair written before the cycle_bytes column existed: merged, the column turns float
    rows.drop(columns=["cycle_bytes"]).assign(k=8, n=8).to_csv(tmp_path / "gemm.csv", index=False)
    table = pd.read_csv(write_gemm_rows(tmp_path, rows))
    assert int(table[table["k"] == 16]["cycle_bytes"].iloc[0]) == cycled
    assert table[table["k"] == 8]["cycle_bytes"].isna().all()
    pooled = pd.read_csv(write_gemm_rows(tmp_path, rows, accumulate=True))  # read back, pooled
    assert int(pooled[pooled["k"] == 16]["runs"].iloc[0]) == 2


def test_pooling_treats_two_missing_settings_as_equal_and_numbers_as_numbers():
    from profiler.profile_store import refuse_other_settings

    prev = pd.Series({"threads": float("nan"), "cycle_bytes": 268435456.0, "torch_version": "2.13"})
    refuse_other_settings(
        prev, {"threads": np.nan, "cycle_bytes": 268435456, "torch_version": "2.13"},
        ("threads", "cycle_bytes", "torch_version"), point="p",
    )  # fmt: skip
    with pytest.raises(ValueError, match="different torch_version: the earlier row of p in f"):
        refuse_other_settings(prev, {"torch_version": "2.12"}, ("torch_version",), point="p",
                              where=" in f")  # fmt: skip


def test_cli_profile_gemm_times_a_head_width_of_its_own(tmp_path, capsys, one_thread):
    # Qwen3-0.6B-like: 4 heads of 32 at hidden 64, so q and o are 64 -> 128 and 128 -> 64
    from transformers import Qwen3Config

    Qwen3Config(hidden_size=64, intermediate_size=96, num_hidden_layers=1, num_attention_heads=4,
                num_key_value_heads=2, head_dim=32, vocab_size=100).save_pretrained(tmp_path / "q")  # fmt: skip
    argv = ["profile", "--model", str(tmp_path / "q"), "--gemm", "--batch", "1", "--query", "1",
            "--repeats", "1", "--no-write", "--json"]  # fmt: skip
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    # q (64 -> 128), k and v (64 -> 64), o (128 -> 64), gate/up (64 -> 96), down (96 -> 64), head
    assert sorted(map(tuple, result["products"])) == [(64, 64), (64, 96), (64, 100), (64, 128),
                                                      (96, 64), (128, 64)]  # fmt: skip
