"""Small synthetic inputs for the figure and report tests: profiles, a zoo table, a validation.

The numbers follow the shapes of the real files (the profiler's CSV columns, scripts/
measure_zoo.py's drafts.csv, `specdec validate`'s predicted/measured columns) but are made up;
they only exercise the code paths.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from perfmodel import ArchSpec

DEVICE = "cpu-synthetic"


def _arch(layers: int, hidden: int) -> ArchSpec:
    return ArchSpec(
        layers=layers, hidden=hidden, ffn=4 * hidden, heads=4, kv_heads=4, vocab=4096,
        tied_embeddings=True, family="llama",
    )  # fmt: skip


def write_profiles(folder: Path, *, device: str = DEVICE) -> Path:
    """Fits and rows for widths 128..1024 at depths 1, 2, 4, 8; T_layer grows with hidden²."""
    out = folder / device
    out.mkdir(parents=True, exist_ok=True)
    for hidden in (128, 256, 512, 1024):
        fits, rows = [], []
        for query in (1, 4):
            t_layer = 0.05 + 2e-7 * hidden**2 * (1 + 0.1 * (query - 1))
            t_fixed = 0.3 + 1e-4 * hidden
            shape = {
                "model": f"d8-h{hidden}", "family": "llama", "layers": 8, "hidden": hidden,
                "ffn": 4 * hidden, "heads": 4, "kv_heads": 4, "vocab": 4096, "tied": True,
                "batch": 1, "context": 128, "query": query, "dtype": "fp32",
            }  # fmt: skip
            fits.append(
                {
                    **shape,
                    "t_fixed_ms": t_fixed,
                    "t_layer_ms": t_layer,
                    "fit_residual_ms": 0.01,
                    "fit_rel_residual": 0.01,
                    "depths": "1;2;4;8",
                    "whole_ms": np.nan,
                    "composed_ms": t_fixed + 8 * t_layer,
                    "whole_rel_error": np.nan,
                    "roofline_fixed_ms": 0.1 * t_fixed,
                    "roofline_layer_ms": 0.2 * t_layer,
                    "device": device,
                    "measured_at": "2026-01-01T00:00:00Z",
                }
            )
            for depth in (1, 2, 4, 8):
                rows.append(
                    {
                        **shape,
                        "depth": depth,
                        "params": _arch(depth, hidden).param_count,
                        "median_ms": t_fixed + depth * t_layer,
                        "device": device,
                    }
                )
        pd.DataFrame(fits).to_csv(out / f"d8-h{hidden}.fit.csv", index=False)
        pd.DataFrame(rows).to_csv(out / f"d8-h{hidden}.csv", index=False)
    return out


def zoo_frame() -> pd.DataFrame:
    """Six drafts in matched pairs (d1 wide vs d4 narrow, ...) plus one not distilled."""
    shapes = [
        ("d1-h512", 1, 512, True, 0.62),
        ("d4-h256", 4, 256, True, 0.64),
        ("d2-h384", 2, 384, True, 0.63),
        ("d8-h192", 8, 192, True, 0.65),
        ("d1-h256", 1, 256, True, 0.52),
        ("d2-h256-nodistil", 2, 256, False, 0.45),
    ]
    target_ms = 20.0
    rows = []
    for name, depth, hidden, distilled, alpha in shapes:
        arch = _arch(depth, hidden)
        draft_ms = 0.4 + 0.5 * depth + 1e-6 * hidden**2
        row = {
            "name": name, "depth": depth, "hidden": hidden, "ffn": 4 * hidden, "heads": 4,
            "params": arch.param_count, "training_tokens": 1_000_000, "distilled": distilled,
            "val_loss": 2.0 - alpha,
        }  # fmt: skip
        for g in range(1, 9):
            row[f"alpha_greedy_g{g}"] = alpha
            row[f"tau_greedy_g{g}"] = (1 - alpha ** (g + 1)) / (1 - alpha)
        row["acceptance_rate"] = alpha
        row["draft_ms_per_token"] = draft_ms
        row["target_ms_per_token"] = target_ms
        row["best_gamma"] = 3
        tau = row["tau_greedy_g3"]
        row["spec_tokens_per_s"] = 1000 * tau / (3 * draft_ms + target_ms) * 0.95
        row["baseline_tokens_per_s"] = 1000 / target_ms
        row["speedup"] = row["spec_tokens_per_s"] / row["baseline_tokens_per_s"]
        rows.append(row)
    return pd.DataFrame(rows)


def validation_frame() -> pd.DataFrame:
    """Three validated trials with predicted and measured α, draft latency, tokens/s, speedup."""
    return pd.DataFrame(
        {
            "trial": [3, 7, 11],
            "depth": [1, 2, 4],
            "hidden": [512, 384, 256],
            "gamma": [3, 4, 3],
            "predicted_acceptance_rate": [0.60, 0.62, 0.65],
            "measured_acceptance_rate": [0.58, 0.66, 0.61],
            "predicted_draft_pass_ms": [1.0, 1.5, 2.5],
            "measured_draft_pass_ms": [1.1, 1.4, 2.6],
            "predicted_tokens_per_s": [90.0, 85.0, 70.0],
            "measured_tokens_per_s": [86.0, 88.0, 66.0],
            "predicted_speedup": [1.8, 1.7, 1.4],
            "measured_speedup": [1.72, 1.76, 1.32],
        }
    )
