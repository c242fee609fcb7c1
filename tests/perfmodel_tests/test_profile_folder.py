"""A profile folder may hold a model perfmodel does not describe (a two-matrix MLP whose head
width is not hidden / heads): its readers leave that model out instead of failing on the whole
folder (the latency model for a search, the report's figures). A two-matrix MLP with grouped- or
multi-query attention (Starcoder2, GPT-BigCode, Falcon-7B) is described."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from perfmodel import ArchSpec, LatencyModel
from perfmodel.latency_profiles import describable, load_profile_rows

SOURCE = Path(__file__).resolve().parents[2] / "data" / "profiles" / "cpu-epyc-1c"


def profile_folder(tmp_path: Path, *, with_llama: bool = True) -> Path:
    """zoo-target (if ``with_llama``), falcon-like (opt-125m's rows as a multi-query two-matrix
    model) and odd-head (opt-125m's rows with heads of 32 at hidden 768 and 12 heads)."""
    out = tmp_path / "profiles"
    out.mkdir(parents=True)
    if with_llama:
        for name in ("zoo-target.csv", "zoo-target.fit.csv"):
            shutil.copy(SOURCE / name, out / name)
    for suffix in (".csv", ".fit.csv"):
        frame = pd.read_csv(SOURCE / f"opt-125m{suffix}")
        frame["model"], frame["kv_heads"] = "falcon-like", 1
        frame.to_csv(out / f"falcon-like{suffix}", index=False)
        frame = pd.read_csv(SOURCE / f"opt-125m{suffix}")
        frame["model"], frame["head_dim"] = "odd-head", 32
        frame.to_csv(out / f"odd-head{suffix}", index=False)
    return out


def test_describable_rows():
    frame = pd.DataFrame({"family": ["llama", "llama", "opt", "opt", "opt", "llama"],
                          "heads": [8, 8, 8, 8, 8, 8], "kv_heads": [8, 1, 8, 1, 8, 8],
                          "hidden": 512, "head_dim": [None, 64, 64, None, 32, 128]})  # fmt: skip
    assert describable(frame).tolist() == [True, True, True, True, False, True]
    assert describable(frame, own_head_width=False).tolist() == [True] * 4 + [False, False]


def test_the_latency_models_reader_leaves_the_model_out(tmp_path):
    folder = profile_folder(tmp_path)
    rows = load_profile_rows(folder)
    assert set(rows["model"]) == {"zoo-target", "falcon-like"}
    with pytest.raises(ValueError, match="left out, not a shape perfmodel describes: odd-head"):
        load_profile_rows([folder / "odd-head.csv"])
    # the multi-query two-matrix shape is fitted: its own table
    model = LatencyModel.from_profiles(folder, dtype="fp32")
    opt = rows[rows["model"] == "falcon-like"].iloc[0]
    spec = ArchSpec(layers=1, hidden=int(opt.hidden), ffn=int(opt.ffn), heads=int(opt.heads),
                    kv_heads=1, vocab=int(opt.vocab), tied_embeddings=bool(opt.tied),
                    family="opt")  # fmt: skip
    assert model.is_profiled(spec) and not model.is_profiled(spec.replace(kv_heads=spec.heads))
