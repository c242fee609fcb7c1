"""benchmarks/gpu_profile.sh runs end to end on CPU with its tiny grid (the smoke test that
must pass before the script spends a GPU session's minutes), in two passes whose samples pool."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

from perfmodel.gemm_table import GemmTable

REPO = Path(__file__).resolve().parents[2]


def test_gpu_profile_script_tiny_grid_on_cpu(tmp_path):
    env = {
        **os.environ,
        "OUT": str(tmp_path),
        "PROFILE_TINY": "1",
        "PROFILE_PASSES": "2",
        # the script runs `python`: make it this interpreter
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    proc = subprocess.run(
        ["bash", str(REPO / "benchmarks" / "gpu_profile.sh")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    summary = json.loads((tmp_path / "gpu_profile_summary.json").read_text(encoding="utf-8"))
    assert summary["tiny"] and summary["failed"] == [] and len(summary["done"]) == 6
    assert summary["passes"] == 2 and summary["done"][3] == "draft-w128-l2 (pass 2)"
    csvs = [
        p for p in (tmp_path / "profiles").rglob("*.csv")
        if not p.name.endswith(".fit.csv") and p.name != "gemm.csv"
    ]  # fmt: skip
    assert len(csvs) == 3
    for path in csvs:
        rows = pd.read_csv(path)
        # the second pass pooled its samples into the first pass's rows
        assert (rows["runs"] == 2).all() and (rows["repeats"] == 4).all(), path
    (gemm,) = (tmp_path / "profiles").rglob("gemm.csv")
    table = GemmTable.from_csv(gemm)
    # the tiny draft (128 wide, vocab 32000) and the two 256-wide presets, at m = 1, 2
    assert {(128, 128), (128, 32000), (256, 256), (256, 50272)} <= set(table.pairs)
    assert set(table.curves[(128, 32000)].m) == {1.0, 2.0}
    assert (pd.read_csv(gemm)["runs"] == 1).all()  # timed in the first pass only
