"""`specdec profile`: a tiny model end to end, and bad input -> exit 2 with one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
from transformers import LlamaConfig

from explorer.cli import main

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-cli")
    LlamaConfig(
        vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, max_position_embeddings=256,
    ).save_pretrained(folder)  # fmt: skip
    return folder


def test_profile_tiny_model_json_and_files(tiny_folder, tmp_path, capsys, one_thread):
    out = tmp_path / "prof"
    committed = REPO / "data" / "profiles" / "cpu-xeon-2.5ghz-1c" / "hardware.json"
    if committed.is_file():  # reuse this machine's measured hardware (skips the probe)
        out.mkdir()
        shutil.copy(committed, out / "hardware.json")
    argv = ["profile", "--model", str(tiny_folder / "config.json"), "--device", "cpu",
            "--threads", "1", "--repeats", "2", "--query", "1,3", "--whole", "--out", str(out),
            "--json"]  # fmt: skip
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["model"] == tiny_folder.name and result["threads"] == 1
    assert len(result["measurements"]) == 4 and len(result["fits"]) == 2
    for m in result["measurements"]:
        assert m["median_ms"] > 0 and m["roofline_ms"] > 0
    rows = pd.read_csv(out / f"{tiny_folder.name}.csv")
    assert len(rows) == 4 and set(rows["depth"]) == {1, 2}
    assert (out / f"{tiny_folder.name}.fit.csv").is_file()


def test_profile_accumulate_pools_a_second_run(tiny_folder, tmp_path, capsys, one_thread):
    out = tmp_path / "prof"
    committed = REPO / "data" / "profiles" / "cpu-xeon-2.5ghz-1c" / "hardware.json"
    if committed.is_file():
        out.mkdir()
        shutil.copy(committed, out / "hardware.json")
    argv = ["profile", "--model", str(tiny_folder / "config.json"), "--threads", "1",
            "--repeats", "2", "--query", "1", "--out", str(out), "--accumulate"]  # fmt: skip
    assert main(argv) == 0 and main(argv) == 0
    assert "pooled with earlier runs: up to 2 runs" in capsys.readouterr().out
    rows = pd.read_csv(out / f"{tiny_folder.name}.csv")
    assert len(rows) == 2 and (rows["runs"] == 2).all() and (rows["repeats"] == 4).all()
    assert rows["cpu_samples_ms"].str.count(";").eq(3).all()
    fits = pd.read_csv(out / f"{tiny_folder.name}.fit.csv")
    assert len(fits) == 1 and fits["t_layer_ms"].notna().all()


def test_profile_text_output(tiny_folder, tmp_path, capsys, one_thread):
    committed = REPO / "data" / "profiles" / "cpu-xeon-2.5ghz-1c" / "hardware.json"
    if committed.is_file():
        shutil.copy(committed, tmp_path / "hardware.json")
    argv = ["profile", "--model", str(tiny_folder), "--layers", "3", "--threads", "1",
            "--repeats", "1", "--query", "2", "--out", str(tmp_path), "--no-write"]  # fmt: skip
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "roofline ms" in text and "T_layer" in text


def test_min_time_ms_is_capped(tiny_folder, tmp_path, capsys, one_thread, monkeypatch):
    import profiler.forward_timer as ft

    base = ["profile", "--model", str(tiny_folder), "--threads", "1", "--repeats", "2",
            "--query", "1,2", "--out", str(tmp_path), "--no-write", "--json"]  # fmt: skip
    assert main(base) == 0
    plain = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["measurements"]
    assert [m["repeats"] for m in plain] == [2] * 4
    monkeypatch.setattr(ft, "MAX_REPEATS", 9)
    assert main([*base, "--min-time-ms", "1e6"]) == 0  # asks for far more: capped
    capped = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["measurements"]
    assert [m["repeats"] for m in capped] == [9] * 4


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--model", "llama-3000b"], "unknown preset"),
        (["--model", "llama-7b", "--heads", "7"], "hidden % heads == 0"),
        (["--model", "/nonexistent/folder"], "is not a model"),
        (["--model", "llama-7b", "--depths", "2"], "two distinct depths"),
        (["--model", "llama-7b", "--query", "0"], "--query"),
        (["--model", "llama-7b", "--dtype", "fp16"], "--dtype"),
        (["--model", "llama-7b", "--device", "tpu"], "--device"),
        (["--model", "llama-7b", "--accumulate"], "--no-write"),
        (["--model", "llama-7b", "--min-time-ms", "-5"], "--min-time-ms >= 0"),
        (["--model", "llama-7b", "--block", "0"], "--block >= 1"),
        (["--model", "llama-7b", "--flush-mib", "-1"], "--flush-mib >= 0"),
        (["--model", "llama-7b", "--flush-mib", "nan"], "--flush-mib >= 0"),
        (["--model", "llama-7b", "--min-time-ms", "nan"], "--min-time-ms >= 0"),
    ],
)
def test_bad_input_exits_2_with_one_line(argv, needle, capsys):
    assert main(["profile", *argv, "--no-write"]) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1, err


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present")
def test_cuda_without_cuda_exits_2(capsys):
    assert main(["profile", "--model", "llama-7b", "--device", "cuda", "--no-write"]) == 2
    assert "no CUDA device" in capsys.readouterr().err


def test_malformed_profile_folder_is_a_value_error(tmp_path):
    from perfmodel.latency_model import LatencyModel

    (tmp_path / "m.csv").write_text("not,a,profile\n1,2,3\n")
    with pytest.raises(ValueError, match="lacks columns"):
        LatencyModel.from_profiles(tmp_path)


def test_custom_model_code_needs_trust_remote_code(tmp_path, capsys, one_thread):
    from tests.profiler_tests.test_build import custom_code_folder

    folder = custom_code_folder(tmp_path)
    base = ["profile", "--model", str(folder), "--device", "cpu", "--threads", "1",
            "--repeats", "1", "--context", "8", "--query", "1", "--no-write"]  # fmt: skip
    assert main(base) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--trust-remote-code" in err, err
    assert main([*base, "--trust-remote-code", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["model"] == "custom-code" and len(result["fits"]) == 1
    assert all(m["median_ms"] > 0 for m in result["measurements"])
