"""`specdec search`: JSON output, serving recommendation, and bad input (exit 2, one line)."""

from __future__ import annotations

import json

import pytest

from explorer.cli import main
from explorer.search import mask_url

BASE = ["search", "--target", "llama-7b", "--hardware", "H200", "--alpha", "0.8", "--no-progress"]


def _run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_search_json_and_recommendation(tmp_path, capsys):
    storage = f"sqlite:///{tmp_path / 's.db'}"
    argv = [*BASE, "--trials", "8", "--storage", storage, "--study", "cli", "--depth", "1:3",
            "--mode", "multi", "--max-params", "2e8", "--recommend", "--out", str(tmp_path / "serve"), "--json"]  # fmt: skip
    code, out, err = _run(argv, capsys)
    assert code == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["trials"]["complete"] == 8
    assert result["best"] and result["pareto"]
    assert all(r["params"] <= 2e8 for r in result["best"] + result["pareto"])
    assert (
        result["best"][0]["tokens_per_s"] >= max(r["tokens_per_s"] for r in result["pareto"]) - 1e-9
    )
    serving = result["serving"]
    assert (tmp_path / "serve" / "serving.csv").is_file() and (
        tmp_path / "serve" / "serving.json"
    ).is_file()
    assert set(serving["gamma_by_batch_size"]) >= {"1", "64"}


def test_resume_to_larger_total(tmp_path, capsys):
    storage = f"sqlite:///{tmp_path / 's.db'}"
    argv = [*BASE, "--storage", storage, "--study", "grow", "--depth", "1:2", "--json"]
    assert _run([*argv, "--trials", "3"], capsys)[0] == 0
    code, out, _ = _run([*argv, "--trials", "5"], capsys)
    assert code == 0 and json.loads(out.splitlines()[-1])["trials"]["complete"] == 5


def test_resume_with_other_settings_is_refused(tmp_path, capsys):
    storage = f"sqlite:///{tmp_path / 's.db'}"
    argv = [*BASE, "--storage", storage, "--study", "same", "--trials", "2"]
    assert _run([*argv, "--depth", "1:2"], capsys)[0] == 0
    code, _, err = _run([*argv, "--depth", "1:3"], capsys)
    assert code == 2 and "keeps its settings" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["--depth", "5:2"], "depth_min <= depth_max"),
        (["--hidden", "4096:1024"], "hidden_min <= hidden_max"),
        (["--max-params", "1e3"], "max_params >= the smallest draft"),
        (["--max-draft-ms", "1e-6"], "max_draft_ms >= the smallest draft"),
        (["--target", "no-such-model"], "--target is a preset"),
    ],
)
def test_bad_input_exits_2_with_one_line(extra, match, tmp_path, capsys):
    argv = [*BASE, "--storage", f"sqlite:///{tmp_path / 'x.db'}", "--trials", "2", *extra]
    code, _, err = _run(argv, capsys)
    assert code == 2, err
    assert match in err and len(err.strip().splitlines()) == 1, err


def test_unreachable_storage_hides_the_password(capsys):
    url = "postgresql://specdec:hunter2secret@127.0.0.1:1/nowhere"
    code, out, err = _run([*BASE, "--storage", url, "--trials", "2"], capsys)
    assert code == 2
    assert "hunter2secret" not in err + out
    assert "specdec:***@127.0.0.1:1" in err and len(err.strip().splitlines()) == 1, err


def test_mask_url():
    assert mask_url("mysql+pymysql://u:p%40ss@h/db") == "mysql+pymysql://u:***@h/db"
    assert mask_url("sqlite:///runs/x.db") == "sqlite:///runs/x.db"
    assert mask_url("postgresql://u@h/db") == "postgresql://u@h/db"


def test_a_target_point_outside_its_profile_is_noted(tmp_path, capsys):
    # the zoo target is profiled at batch 1 and 4, contexts 128 and 256, q = 1..9 and 17
    base = ["search", "--target", "data/zoo/target", "--device-profile",
            "data/profiles/cpu-epyc-1c", "--alpha", "0.7", "--trials", "2", "--no-progress",
            "--depth", "1:2", "--json"]  # fmt: skip
    storage = f"sqlite:///{tmp_path / 's.db'}"
    code, out, err = _run([*base, "--storage", storage, "--study", "inside"], capsys)
    assert code == 0, err
    assert "notes" not in json.loads(out.strip().splitlines()[-1])
    argv = [*base, "--storage", storage, "--study", "outside", "--batch", "8", "--context", "1500"]
    code, out, err = _run(argv, capsys)
    assert code == 0, err
    notes = json.loads(out.strip().splitlines()[-1])["notes"]
    assert [n.split(":")[0] for n in notes] == [
        "the target's batch 8 is outside its profiled batch 1..4",
        "the target's context 1500 is outside its profiled context 128..256",
    ]
