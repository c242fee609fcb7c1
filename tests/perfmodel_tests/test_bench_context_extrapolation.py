"""benchmarks/bench_context_extrapolation.py: rebuilds a committed shape, profiles it at the
given contexts and compares with the latency model of the committed folder."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "bench_context_extrapolation.py"
PROFILES = REPO / "data" / "profiles" / "cpu-epyc-1c"

sys.path.insert(0, str(REPO / "benchmarks"))
from bench_context_extrapolation import model_args  # noqa: E402


def test_model_args_rebuild_the_committed_shapes():
    zoo = pd.read_csv(PROFILES / "zoo-w128-l12.csv")
    args = model_args(zoo)
    assert args[:4] == ["--model", "data/zoo/target", "--name", "zoo-w128-l12"]
    assert args[args.index("--hidden") + 1] == "128" and args[args.index("--layers") + 1] == "12"
    assert model_args(pd.read_csv(PROFILES / "opt-125m.csv")) == [
        "--model", "opt-125m", "--name", "opt-125m"
    ]  # fmt: skip


def test_a_context_inside_the_profiled_box_is_measured_and_compared():
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--shapes", "zoo-w128-l12", "--context", "256",
         "--min-time-ms", "0"],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    # 256 and the control, the largest profiled context (512): depths (1, 2, 4, 12) x batch
    # (1, 4) x query (1, 4) each
    assert summary["contexts"] == [256] and summary["beyond"]["rows"] == 4 * 2 * 2
    assert summary["control"]["rows"] == 4 * 2 * 2
    assert set(summary["beyond"]["per_model"]) == {"zoo-w128-l12"}
    assert 0 < summary["control"]["median_abs_error"] < 1.0  # measured, not a copy of the model
