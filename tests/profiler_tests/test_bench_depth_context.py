"""benchmarks/bench_depth_context.py on a tiny shape: alternating pairs of real profiler runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "bench_depth_context.py"
TINY = "--layers 3 --hidden 64 --ffn 128 --heads 1 --kv-heads 1"


def _run(*extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--shape", TINY, "--query", "1,2", "--min-time-ms", "0",
         "--extra", "--repeats 2 --warmup 0 --batch 1 --context 8", *extra],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_pairs_time_depth_one_in_both_sets():
    out = _run("--pairs", "2", "--sets", "1,2;1,2,3")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["sets"] == ["1,2", "1,2,3"]
    assert [r["query"] for r in result["rows"]] == [1, 2]
    for r in result["rows"]:
        assert len(r["first_ms"]) == len(r["second_ms"]) == 2
        assert min(r["first_ms"] + r["second_ms"]) > 0
        assert 0 <= r["second_slower_pairs"] <= 2
        ratios = [b / a for a, b in zip(r["first_ms"], r["second_ms"], strict=True)]
        assert abs(r["median_ratio"] - float(sorted(ratios)[0] + sorted(ratios)[1]) / 2) < 1e-9


def test_bad_sets_exit_2_with_one_line():
    out = _run("--sets", "2,4;1,2")
    assert out.returncode == 2
    assert "--sets must be two depth lists" in out.stderr
