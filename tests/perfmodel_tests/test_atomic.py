"""Atomic writes: the whole new file or the old one, never a temporary file left behind, and an
error that names the path the caller gave (the CLI shows it to the user)."""

from __future__ import annotations

import tempfile

import pytest

from perfmodel.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text


def test_writes_replaces_and_creates_folders(tmp_path):
    path = tmp_path / "a" / "b" / "x.json"
    atomic_write_json(path, {"k": 1})
    assert path.read_text(encoding="utf-8") == '{\n  "k": 1\n}\n'
    atomic_write_text(path, "new")
    assert path.read_text(encoding="utf-8") == "new"
    assert sorted(p.name for p in path.parent.iterdir()) == ["x.json"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "x.txt"
    atomic_write_text(path, "old")

    def boom(*_args, **_kwargs):
        raise RuntimeError("interrupted")

    monkeypatch.setattr("perfmodel.atomic.os.replace", boom)
    with pytest.raises(RuntimeError):
        atomic_write_bytes(path, b"new")
    assert path.read_text(encoding="utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.txt"]


def test_a_file_where_the_folder_should_be_is_named(tmp_path):
    (tmp_path / "afile").write_text("", encoding="utf-8")
    with pytest.raises(NotADirectoryError) as info:
        atomic_write_text(tmp_path / "afile" / "x.html", "x")
    assert info.value.filename == str(tmp_path / "afile")


def test_an_unwritable_folder_names_the_target_not_the_temporary(tmp_path, monkeypatch):
    def denied(*_args, dir=None, **_kwargs):  # noqa: A002 - tempfile.mkstemp's own keyword
        raise PermissionError(13, "Permission denied", f"{dir}/.x.html.abc123.tmp")

    monkeypatch.setattr(tempfile, "mkstemp", denied)
    with pytest.raises(PermissionError) as info:
        atomic_write_text(tmp_path / "x.html", "x")
    assert info.value.filename == str(tmp_path / "x.html")
