"""The ``params`` column of the committed profiles is exact, and the backfill that made it so."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from perfmodel.latency_profiles import _csv_files
from tests.benchmark_scripts import ROOT, load_script

backfill = load_script("backfill_params")

PROFILES = [
    p for d in sorted((ROOT / "data" / "profiles").iterdir()) if d.is_dir() for p in _csv_files(d)
]


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("path", PROFILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_committed_params_are_whole_and_exact(path, monkeypatch):
    monkeypatch.chdir(ROOT)  # rows name their config files relative to the repository root
    rows = _rows(path)
    assert rows and all(r["params"].isdigit() for r in rows), "params written as a whole number"
    for r in rows:
        assert int(r["params"]) == backfill._exact_params(r)


def _with_params(src: Path, dst: Path, cell: str) -> bytes:
    lines = src.open(newline="").read().splitlines(keepends=True)[:3]
    header = next(csv.reader([lines[0]]))
    fields = next(csv.reader([lines[1]]))
    fields[header.index("params")] = cell
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(fields)
    lines[1] = buf.getvalue()
    dst.write_text("".join(lines))
    return dst.read_bytes()


def test_backfill_rewrites_only_rounded_params(tmp_path):
    src = ROOT / "data" / "profiles" / "cpu-epyc-1c" / "draft-w1024-l12.csv"
    exact = _rows(src)[0]["params"]
    path = tmp_path / "draft-w1024-l12.csv"
    before = _with_params(src, path, f"{int(exact):.6g}")
    assert f"{int(exact):.6g}" != exact  # the cell really was rounded
    assert backfill.backfill_file(path) == 1
    after = path.read_bytes()
    assert _rows(path)[0]["params"] == exact
    old, new = before.splitlines(keepends=True), after.splitlines(keepends=True)
    assert new[0] == old[0] and new[2:] == old[2:]  # every other line kept byte for byte
    assert new[1] == old[1].replace(f",{int(exact):.6g},".encode(), f",{exact},".encode())
    assert backfill.backfill_file(path) == 0 and path.read_bytes() == after  # idempotent


def test_backfill_refuses_a_count_that_does_not_match(tmp_path):
    src = ROOT / "data" / "profiles" / "cpu-epyc-1c" / "draft-w1024-l12.csv"
    path = tmp_path / "draft-w1024-l12.csv"
    before = _with_params(src, path, "7.8e+07")
    with pytest.raises(ValueError, match="does not round to the file's 7.8e\\+07"):
        backfill.backfill_file(path)
    assert path.read_bytes() == before  # nothing written
