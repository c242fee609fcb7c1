"""The inputs of a validation: its plan, the search's problem and the trials to validate.

:class:`ValidationPlan` says how the proposed drafts are trained and run;
:func:`problem_from_settings` rebuilds the search's problem from the settings a study stores, so
the predictions are the ones the search made; :func:`_top_trials` picks the top distinct feasible
trials by predicted tokens/s; :func:`profile_threads` reads the torch threads a device's profiles
were measured with, the default for the runs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from explorer.objective import SearchProblem

__all__ = [
    "CONFIG_KEYS",
    "REPO_ROOT",
    "ValidationPlan",
    "problem_from_settings",
    "profile_threads",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIG_KEYS = ("depth", "hidden", "ffn", "heads", "kv_heads", "gamma")


@dataclass(frozen=True)
class ValidationPlan:
    """How to train and run the proposed drafts.

    Parameters
    ----------
    token_budget : int
        Training tokens per draft, >= 1.
    out_dir : Path
        Where drafts (``drafts/<name>``) and tables go.
    target_dir : Path
        The trained target (Hugging Face folder): the teacher and the verifier.
    prompts : Path
        Prompt file (JSONL with ``prompt``).
    first_prompt, n_prompts : int
        Held-out slice of the prompts: ``[first_prompt, first_prompt + n_prompts)``. The zoo
        measures α on the first 32, so the default starts at 32.
    max_new_tokens : int
        Tokens generated per prompt.
    seq_len, batch_size, lr, eval_windows, seed
        Training settings (the zoo's draft settings by default; fewer validation windows).
    temperature : float
        Sampling temperature of the runs, >= 0 (default 1: the zoo's ``acceptance_rate`` column,
        which the acceptance model is fitted to, is α at temperature 1; 0 is greedy).
    threads : int, optional
        torch threads for the runs (default: those the device profile was measured with).
    time_basis : {"auto", "cpu", "wall"}
        What "measured" time means. ``"wall"``: the engine's wall clock. ``"cpu"``: the wall
        clock scaled by the run's process-CPU / wall ratio, the time the run would take on an
        idle machine with ``threads`` threads; this is what a latency model fitted to
        ``cpu_median_ms`` predicts, and the only fair comparison on a shared machine. ``"auto"``:
        ``"cpu"`` when the study's latency model was fitted to CPU time, else ``"wall"``. Both
        are always reported.
    corpus, tokenizer_dir, cache_dir : Path, optional
        Training corpus, tokenizer and cache (default: the zoo's, as ``TrainConfig`` has them).
    """

    token_budget: int
    out_dir: Path
    target_dir: Path = REPO_ROOT / "data" / "zoo" / "target"
    prompts: Path = REPO_ROOT / "data" / "prompts" / "humaneval.jsonl"
    first_prompt: int = 32
    n_prompts: int = 8
    max_new_tokens: int = 64
    seq_len: int = 256
    batch_size: int = 8
    lr: float = 3e-3
    eval_windows: int = 8
    seed: int = 0
    temperature: float = 1.0
    threads: int | None = None
    time_basis: str = "auto"
    corpus: Path | None = None
    tokenizer_dir: Path | None = None
    cache_dir: Path | None = None

    def __post_init__(self) -> None:
        for name in (
            "token_budget",
            "n_prompts",
            "max_new_tokens",
            "seq_len",
            "batch_size",
            "eval_windows",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be an integer >= 1, but got {name}={value!r}.")
        if not (0.0 <= self.temperature < float("inf")):
            raise ValueError(
                f"`0 <= temperature` must hold, but got temperature={self.temperature}."
            )
        if self.time_basis not in ("auto", "cpu", "wall"):
            raise ValueError(
                f"`time_basis in ('auto', 'cpu', 'wall')` must hold, but got time_basis={self.time_basis!r}."
            )
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"`threads >= 1` must hold, but got threads={self.threads}.")
        if self.first_prompt < 0:
            raise ValueError(
                f"`first_prompt >= 0` must hold, but got first_prompt={self.first_prompt}."
            )
        for name in ("out_dir", "target_dir", "prompts"):
            object.__setattr__(self, name, Path(getattr(self, name)))
        if not (self.target_dir / "config.json").is_file():
            raise ValueError(
                f"`the target is a trained model folder` must hold, but {str(self.target_dir)!r} has no config.json."
            )


def problem_from_settings(settings: dict[str, Any]) -> SearchProblem:
    """Rebuild the search's problem from the settings a study stores (``SETTINGS_ATTR``)."""
    from explorer import search as s

    if not settings:
        raise ValueError(
            "`the study was made by specdec search` must hold, but it has no stored settings."
        )
    target = s.resolve_target(settings["target"])
    latency = settings.get("latency", {})
    if latency.get("kind") == "latency_model":
        target_latency, draft_latency, _ = s.build_latency(
            target, device_profile=latency["device_profile"]
        )
    elif latency.get("kind") == "roofline":
        target_latency, draft_latency, _ = s.build_latency(target, hardware=latency["hardware"])
    else:
        raise ValueError(f"`a known latency source in the study` must hold, but got {latency!r}.")
    acc = settings.get("acceptance", {})
    if acc.get("kind") == "fixed":
        acceptance, _ = s.build_acceptance(alpha=acc["acceptance_rate"])
    elif acc.get("kind") in ("file", "model"):
        acceptance, _ = s.build_acceptance(acceptance=acc["path"])
    else:
        raise ValueError(f"`a known acceptance source in the study` must hold, but got {acc!r}.")
    return SearchProblem(
        target=target,
        target_latency=target_latency,
        draft_latency=draft_latency,
        acceptance=acceptance,
        batch=int(settings.get("batch", 1)),
        context=int(settings.get("context", 128)),
        overhead_ms=float(settings.get("overhead_ms", 0.0)),
        training_tokens=settings.get("training_tokens"),
        cost=settings.get("cost", "params"),
    )


def _top_trials(study: Any, top: int) -> list[Any]:
    from explorer.search import trials_frame

    frame = trials_frame(study)
    if frame.empty or not frame["feasible"].any():
        raise ValueError(
            f"`the study has a feasible complete trial` must hold, but {study.study_name!r} has none."
        )
    frame = frame[frame["feasible"]].sort_values(
        ["tokens_per_s", "number"], ascending=[False, True]
    )
    numbers = frame.drop_duplicates(list(CONFIG_KEYS))["number"].head(top).tolist()
    by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
    return [by_number[n] for n in numbers]


def profile_threads(device_profile: str | os.PathLike[str] | None) -> int | None:
    """torch threads the profiles of a device folder were measured with (``threads`` column)."""
    if device_profile is None:
        return None
    for path in sorted(Path(device_profile).glob("*.csv")):
        if path.name.endswith(".fit.csv"):
            continue
        try:
            frame = pd.read_csv(path, usecols=["threads"], nrows=1)
        except (ValueError, OSError):
            continue
        if len(frame) and pd.notna(frame["threads"].iloc[0]):
            return int(frame["threads"].iloc[0])
    return None
