"""The results of a validation: the summary, the written table and the truth in the study.

:func:`summarize` gives the median errors over the validated drafts (the numbers the goals are
about); :func:`write_validation` writes the table as CSV and JSON, atomically; :func:`_write_back`
records a trial's measured truth in the study, as the study user attribute
``validation:<trial>`` and as a copy of the trial that names the original (``validation_of``).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import pandas as pd

from perfmodel.atomic import atomic_write_json, atomic_write_text

__all__ = [
    "VALIDATION_ATTR_PREFIX",
    "summarize",
    "write_validation",
]

VALIDATION_ATTR_PREFIX = "validation:"


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in row.items():
        if hasattr(v, "item"):
            v = v.item()
        if isinstance(v, float) and not math.isfinite(v):
            v = None
        out[k] = v
    return out


def _write_back(study: Any, trial: Any, row: dict[str, Any]) -> None:
    import optuna

    truth = {
        k: v for k, v in _jsonable(row).items() if k.startswith("measured_") or k.endswith("_error")
    }
    truth.update(
        {
            "token_budget": row["token_budget"],
            "val_loss": _jsonable(row)["val_loss"],
            "time_basis": row["time_basis"],
        }
    )
    study.set_user_attr(f"{VALIDATION_ATTR_PREFIX}{trial.number}", truth)
    # Optuna does not let a finished trial's attributes change; a copy holds the truth next to
    # the prediction, and names the original.
    copy = optuna.trial.create_trial(
        params=trial.params,
        distributions=trial.distributions,
        values=trial.values,
        user_attrs={
            **trial.user_attrs,
            **{k: v for k, v in truth.items() if v is not None},
            "validation_of": trial.number,
        },
        constraints=dict(trial.constraints) or None,
    )
    study.add_trial(copy)


def summarize(table: pd.DataFrame) -> dict[str, Any]:
    """Median absolute errors over the validated drafts (the numbers the goals are about)."""
    if table.empty:
        return {"drafts": 0}

    def med_abs(col: str) -> float | None:
        v = table[col].astype(float).abs().dropna()
        return float(v.median()) if len(v) else None

    return {
        "drafts": int(len(table)),
        "median_abs_rel_error_tokens_per_s_measured_alpha": med_abs(
            "tokens_per_s_rel_error_measured_alpha"
        ),
        "median_abs_rel_error_tokens_per_s_predicted_alpha": med_abs("tokens_per_s_rel_error"),
        "median_abs_rel_error_tokens_per_s_measured_alpha_overhead": med_abs(
            "tokens_per_s_rel_error_measured_alpha_overhead"
        ),
        "median_abs_rel_error_tokens_per_s_predicted_alpha_measured_overhead": med_abs(
            "tokens_per_s_rel_error_measured_overhead"
        ),
        "median_abs_rel_error_speedup_measured_alpha": med_abs("speedup_rel_error_measured_alpha"),
        "median_abs_rel_error_speedup_predicted_alpha": med_abs("speedup_rel_error"),
        "median_abs_error_acceptance_rate": med_abs("acceptance_abs_error"),
        "acceptance_interval_coverage": float(table["acceptance_covered"].mean()),
        "median_abs_rel_error_draft_pass_ms": med_abs("draft_pass_ms_rel_error"),
        "median_abs_rel_error_target_ms": med_abs("target_ms_rel_error"),
        "median_abs_rel_error_verify_ms": med_abs("verify_ms_rel_error"),
        # the goals are about the step model as DESIGN.md defines it: overhead measured, not
        # assumed zero (the as-searched numbers above are reported beside them)
        "goal_measured_alpha_within_5pct": (
            med_abs("tokens_per_s_rel_error_measured_alpha_overhead") or 1.0
        )
        <= 0.05,
        "goal_predicted_alpha_within_10pct": (
            med_abs("tokens_per_s_rel_error_measured_overhead") or 1.0
        )
        <= 0.10,
    }


def write_validation(
    table: pd.DataFrame, out_dir: str | os.PathLike[str], *, summary: dict[str, Any]
) -> dict[str, Path]:
    """``validation.csv`` and ``validation.json`` (rows and summary) under ``out_dir``, atomically."""
    out = Path(out_dir)
    csv_path = atomic_write_text(out / "validation.csv", table.to_csv(index=False))
    json_path = atomic_write_json(
        out / "validation.json",
        {"summary": summary, "rows": [_jsonable(r) for r in table.to_dict("records")]},
    )
    return {"csv": csv_path, "json": json_path}


def _jsonable_rows(table: pd.DataFrame) -> list[dict[str, Any]]:
    return [_jsonable(r) for r in table.to_dict("records")]
