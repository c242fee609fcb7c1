"""benchmarks/bench_dtype.py on the committed CPU profiles."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "bench_dtype.py"


def _run(profiles: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--profiles", profiles],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_compares_the_shapes_profiled_in_both_dtypes():
    out = _run("data/profiles/cpu-epyc-1c")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout.strip().splitlines()[-1])["rows"]
    assert {r["model"] for r in rows} >= {"draft-w128-l12", "draft-w2048-l12", "zoo-w128-l12"}
    for r in rows:
        assert r["fp32_ms"] > 0 and r["bf16_ms"] > 0
        assert abs(r["ratio"] - r["bf16_ms"] / r["fp32_ms"]) < 1e-9


def test_a_folder_without_bf16_rows_exits_2_with_one_line():
    out = _run("data/profiles/cpu-xeon-2.5ghz-1c")
    assert out.returncode == 2
    assert len(out.stderr.strip().splitlines()) == 1 and "bf16" in out.stderr
