"""Presets load from data/reference/model_configs.json with their sources."""

from __future__ import annotations

import json

import pytest

from perfmodel import get_preset, load_presets, preset_names
from perfmodel.presets import REFERENCE_DIR_ENV


def test_shipped_presets():
    names = preset_names()
    for name in ("llama-7b", "llama-65b", "llama-2-70b", "opt-66b", "wide-sheared-llama-796m"):
        assert name in names
    spec = get_preset("llama-65b")
    assert spec.name == "llama-65b" and spec.source == "huggyllama/llama-65b"
    assert get_preset("llama-2-70b").kv_heads == 8
    assert all(not n.startswith("_") for n in names)


def test_unknown_preset_lists_known_names():
    with pytest.raises(ValueError, match="llama-7b") as info:
        get_preset("llama-8b")
    assert "unknown preset 'llama-8b'" in str(info.value)


def test_other_file_by_argument_and_env(tmp_path, monkeypatch):
    entry = {
        "family": "llama",
        "layers": 2,
        "hidden": 64,
        "ffn": 128,
        "heads": 4,
        "kv_heads": 4,
        "vocab": 100,
        "tied_embeddings": True,
        "source": "test",
    }
    (tmp_path / "model_configs.json").write_text(json.dumps({"_about": "x", "tiny": entry}))
    assert list(load_presets(tmp_path)) == ["tiny"]
    assert get_preset("tiny", path=tmp_path / "model_configs.json").source == "test"
    monkeypatch.setenv(REFERENCE_DIR_ENV, str(tmp_path))
    assert preset_names() == ["tiny"]
    monkeypatch.setenv(REFERENCE_DIR_ENV, str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError):
        preset_names()
