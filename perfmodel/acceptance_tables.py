"""Measured acceptance tables: draft shape/α pairs read into one tidy table.

One row per trained draft with its shape, size, training budget and the α measured against the
target, from ``data/zoo/drafts.csv``, a user's CSV, a JSON file or a folder of acceptance JSON
files (``data/acceptance/``). Column aliases used by those files (``layers``, ``hidden_size``,
``alpha``, ``tau`` ...) are renamed to the model's names, and :data:`FEATURES` lists the draft
features :class:`perfmodel.acceptance_model.AcceptanceModel` regresses α on. numpy and pandas
only.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["FEATURES", "load_acceptance_table"]

# Feature names in the order the model uses them, and how each raw column becomes a feature.
FEATURES: tuple[str, ...] = ("params", "depth", "hidden", "training_tokens", "distilled")
_LOG_FEATURES = frozenset({"params", "hidden", "training_tokens"})

# Column names other tables use for the same quantity (drafts.csv, user CSVs, acceptance JSON).
_ALIASES: dict[str, tuple[str, ...]] = {
    "depth": ("layers", "num_layers", "num_hidden_layers", "n_layers", "draft_layers"),
    "hidden": ("hidden_size", "d_model", "draft_hidden"),
    "params": ("param_count", "parameters", "n_params", "num_params", "draft_params"),
    "training_tokens": ("tokens", "train_tokens", "training_tokens_total", "token_budget"),
    "distilled": ("is_distilled", "distill"),
    "acceptance_rate": ("alpha", "acceptance", "alpha_hat"),
    "mean_accepted_length": ("tau", "mean_tokens_per_step"),
    "position_acceptance": ("alpha_i", "position_acceptance_rates"),
    "draft": ("name", "draft_name", "draft_id", "model"),
}


def load_acceptance_table(source: str | os.PathLike[str] | pd.DataFrame) -> pd.DataFrame:
    """Measured draft/α pairs as a tidy table with the model's column names.

    Parameters
    ----------
    source : path or DataFrame
        A CSV (``data/zoo/drafts.csv`` or a user's own), a JSON file (one object or a list of
        objects; a nested ``"draft"`` object is flattened), a folder of such JSON files
        (``data/acceptance/``), or a DataFrame.

    Returns
    -------
    DataFrame
        Columns ``depth``, ``hidden``, ``params``, ``training_tokens``, ``distilled`` (bool),
        ``acceptance_rate``, ``draft`` (a name to group by), and any other columns as given.
        Column aliases (``layers``, ``hidden_size``, ``alpha``, ``tau`` ...) are renamed; α is
        recovered from ``mean_accepted_length`` and ``gamma`` when only τ was recorded.
    """
    if isinstance(source, pd.DataFrame):
        df = source.copy()
        label = "the given table"
    else:
        path = Path(source)
        label = str(path)
        if path.is_dir():
            rows = [r for f in sorted(path.glob("*.json")) for r in _json_rows(f)]
            if not rows:
                raise ValueError(
                    f"`a folder of acceptance JSON files` must hold, but {label!r} has none."
                )
            df = pd.DataFrame(rows)
        elif not path.exists():
            raise FileNotFoundError(f"acceptance table {label!r} does not exist.")
        elif path.suffix == ".json":
            df = pd.DataFrame(_json_rows(path))
        else:
            df = pd.read_csv(path)
    df = df.rename(columns=_alias_map(df.columns))
    if "acceptance_rate" not in df and {"mean_accepted_length", "gamma"} <= set(df.columns):
        from perfmodel.acceptance import acceptance_rate_from_tokens_per_step

        df["acceptance_rate"] = acceptance_rate_from_tokens_per_step(
            df["mean_accepted_length"].to_numpy(float), df["gamma"].to_numpy(int)
        )
    missing = [c for c in (*FEATURES, "acceptance_rate") if c not in df]
    if "distilled" in missing:
        df["distilled"] = False
        missing.remove("distilled")
    if missing:
        raise ValueError(
            f"`the acceptance table has columns {[*FEATURES, 'acceptance_rate']}` must hold, "
            f"but {label!r} lacks {missing} (has {list(df.columns)})."
        )
    df["distilled"] = df["distilled"].map(_as_bool)
    for col in ("depth", "hidden", "params", "training_tokens", "acceptance_rate"):
        df[col] = pd.to_numeric(df[col], errors="coerce")
    df = df.dropna(subset=["acceptance_rate", "depth", "hidden", "params", "training_tokens"])
    bad = df[(df["acceptance_rate"] < 0) | (df["acceptance_rate"] > 1)]
    if len(bad):
        raise ValueError(
            "`0 <= acceptance_rate <= 1` must hold for every row, but got "
            f"acceptance_rate={bad['acceptance_rate'].iloc[0]} in {label!r}."
        )
    for col in ("params", "hidden", "training_tokens", "depth"):
        if (df[col] <= 0).any():
            raise ValueError(
                f"`{col} > 0` must hold for every row, but got {col}={df[col].min()} in {label!r}."
            )
    if "draft" not in df:
        df["draft"] = [
            f"L{int(r.depth)}-H{int(r.hidden)}-T{int(r.training_tokens)}{'-d' if r.distilled else ''}"
            for r in df.itertuples()
        ]
    return df.reset_index(drop=True)


def _alias_map(columns: Sequence[str]) -> dict[str, str]:
    present = set(columns)
    out = {}
    for name, aliases in _ALIASES.items():
        if name in present:
            continue
        for alias in aliases:
            if alias in present:
                out[alias] = name
                break
    return out


def _json_rows(path: Path) -> list[dict[str, Any]]:
    obj = json.loads(path.read_text())
    items = (
        obj if isinstance(obj, list) else obj.get("rows", [obj]) if isinstance(obj, dict) else []
    )
    rows = []
    for item in items:
        row = {}
        for key, value in item.items():
            if isinstance(value, dict) and key in ("draft", "result", "summary", "config"):
                row.update({k: v for k, v in value.items() if not isinstance(v, dict | list)})
            else:
                row[key] = value
        rows.append(row)
    return rows


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "y", "t")
    return bool(value) and not _isnan(value)


def _first(obj: Mapping[str, Any], name: str) -> Any:
    for key in (name, *_ALIASES.get(name, ())):
        if key in obj:
            return obj[key]
    return None


def _isnan(x: Any) -> bool:
    return isinstance(x, float) and math.isnan(x)
