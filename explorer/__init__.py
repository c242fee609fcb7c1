"""explorer: Optuna search over draft shapes, validation by real runs, and the `specdec` CLI.

The public names are re-exported lazily (PEP 562): the CLI imports ``explorer.cli`` on every
start, and importing torch, transformers and optuna eagerly here would cost seconds even for
``specdec predict``.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CorpusSplit": "explorer.corpus",
    "DraftConfig": "explorer.space",
    "GridResult": "explorer.grid",
    "Objective": "explorer.objective",
    "RooflineLatency": "explorer.objective",
    "SearchProblem": "explorer.objective",
    "SearchSpace": "explorer.space",
    "ServingRecommendation": "explorer.serving",
    "TrainConfig": "explorer.train",
    "TrainResult": "explorer.train",
    "ValidationPlan": "explorer.validate",
    "build_report": "explorer.report",
    "grid_search": "explorer.grid",
    "mask_url": "explorer.search",
    "open_storage": "explorer.search",
    "pareto_front": "explorer.grid",
    "predict_configs": "explorer.objective",
    "recommend_serving": "explorer.serving",
    "run_demo": "explorer.demo",
    "run_search": "explorer.search",
    "study_results": "explorer.search",
    "suggest_config": "explorer.space",
    "train_model": "explorer.train",
    "train_tokenizer": "explorer.corpus",
    "validate_study": "explorer.validate",
    "write_report": "explorer.report",
    "write_serving": "explorer.serving",
    "write_validation": "explorer.validate",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'explorer' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
