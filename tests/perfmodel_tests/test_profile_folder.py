"""A profile folder may hold a model perfmodel does not describe (a two-matrix MLP with grouped-
or multi-query attention: Falcon-7B, GPT-BigCode): its readers leave that model out instead of
failing on the whole folder (the latency model for a search, the report's figures)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from perfmodel.latency_profiles import describable, load_profile_rows

SOURCE = Path(__file__).resolve().parents[2] / "data" / "profiles" / "cpu-epyc-1c"


def profile_folder(tmp_path: Path, *, with_llama: bool = True) -> Path:
    out = tmp_path / "profiles"
    out.mkdir(parents=True)
    if with_llama:
        for name in ("zoo-target.csv", "zoo-target.fit.csv"):
            shutil.copy(SOURCE / name, out / name)
    for suffix in (".csv", ".fit.csv"):  # opt-125m's rows as a multi-query two-matrix model
        frame = pd.read_csv(SOURCE / f"opt-125m{suffix}")
        frame["model"], frame["kv_heads"] = "falcon-like", 1
        frame.to_csv(out / f"falcon-like{suffix}", index=False)
    return out


def test_describable_rows():
    frame = pd.DataFrame({"family": ["llama", "llama", "opt", "opt"], "heads": [8, 8, 8, 8],
                          "kv_heads": [8, 1, 8, 1]})  # fmt: skip
    assert describable(frame).tolist() == [True, True, True, False]


def test_the_latency_models_reader_leaves_the_model_out(tmp_path):
    rows = load_profile_rows(profile_folder(tmp_path))
    assert set(rows["model"]) == {"zoo-target"}
    with pytest.raises(ValueError, match="left out, not a shape perfmodel describes: falcon-like"):
        load_profile_rows(profile_folder(tmp_path / "only", with_llama=False))
