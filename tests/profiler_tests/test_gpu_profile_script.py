"""benchmarks/gpu_profile.sh runs end to end on CPU with its tiny grid (the smoke test that
must pass before the script spends a GPU session's minutes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from perfmodel.gemm_table import GemmTable

REPO = Path(__file__).resolve().parents[2]


def test_gpu_profile_script_tiny_grid_on_cpu(tmp_path):
    env = {
        **os.environ,
        "OUT": str(tmp_path),
        "PROFILE_TINY": "1",
        # the script runs `python`: make it this interpreter
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    proc = subprocess.run(
        ["bash", str(REPO / "benchmarks" / "gpu_profile.sh")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    summary = json.loads((tmp_path / "gpu_profile_summary.json").read_text(encoding="utf-8"))
    assert summary["tiny"] and summary["failed"] == [] and len(summary["done"]) == 3
    csvs = [
        p for p in (tmp_path / "profiles").rglob("*.csv")
        if not p.name.endswith(".fit.csv") and p.name != "gemm.csv"
    ]  # fmt: skip
    assert len(csvs) == 3
    (gemm,) = (tmp_path / "profiles").rglob("gemm.csv")
    table = GemmTable.from_csv(gemm)
    # the tiny draft (128 wide, vocab 32000) and the two 256-wide presets, at m = 1, 2
    assert {(128, 128), (128, 32000), (256, 256), (256, 50272)} <= set(table.pairs)
    assert set(table.curves[(128, 32000)].m) == {1.0, 2.0}
