"""Run an Optuna study over the draft space: worker processes, resumption, results.

``workers`` > 1 starts that many processes on this machine, each running ``study.optimize`` with
its share of the remaining trials; the study in the storage is the only coordination (no
scheduler of our own). A resumed or joined study must have been created for the same problem
(:data:`SETTINGS_ATTR`).

Modules: :mod:`explorer.study_storage` (storage URLs, journal files, :func:`mask_url`),
:mod:`explorer.problem_inputs` (target, acceptance, latency and space from names and files),
this one (the study and its results). The names of both are importable from here too.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import socket
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from explorer.grid import pareto_front
from explorer.objective import CONFIG_COLUMNS, PREDICTION_ATTRS, Objective, directions
from explorer.problem_inputs import (
    DEFAULT_DRAFTS_CSV,
    build_acceptance,
    build_latency,
    check_budgets,
    resolve_target,
    space_for,
)
from explorer.study_storage import (
    REPO_ROOT,
    RUNS_DIR,
    check_study_name,
    default_storage,
    ensure_runs_dir,
    mask_url,
    open_existing_storage,
    open_storage,
)

__all__ = [
    "SETTINGS_ATTR",
    "check_study_name",
    "default_storage",
    "mask_url",
    "open_existing_storage",
    "open_storage",
    "run_search",
    "study_results",
    "trials_frame",
    # re-exported from explorer.study_storage and explorer.problem_inputs
    "DEFAULT_DRAFTS_CSV",
    "REPO_ROOT",
    "RUNS_DIR",
    "build_acceptance",
    "build_latency",
    "check_budgets",
    "ensure_runs_dir",
    "resolve_target",
    "space_for",
]

# Study user attribute holding what the study was created for (target, space, mode, budgets).
SETTINGS_ATTR = "specdec_settings"
# Settings that must match when a study is resumed or joined: changing one mixes two problems.
_IDENTITY_KEYS = ("target", "mode", "space", "batch", "context", "cost", "acceptance")


# --- the study --------------------------------------------------------------------------------


def _sampler(mode: str, seed: int | None, *, parallel: bool) -> Any:
    import optuna

    return optuna.samplers.TPESampler(
        seed=seed,
        multivariate=True,
        constant_liar=parallel,  # workers avoid proposing what another is evaluating
        n_startup_trials=10,
    )


def _complete_count(study: Any) -> int:
    """Complete trials of the search (copies that ``specdec validate`` adds do not count)."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return sum(1 for t in trials if "validation_of" not in t.user_attrs)


class _StopAtTotal:
    """Callback: stop once the study holds ``total`` complete trials (workers on other machines
    joining the same study stop together)."""

    def __init__(self, total: int) -> None:
        self.total = total

    def __call__(self, study: Any, trial: Any) -> None:
        if _complete_count(study) >= self.total:
            study.stop()


def _check_settings(study: Any, settings: Mapping[str, Any]) -> None:
    stored = study.user_attrs.get(SETTINGS_ATTR)
    if stored is None:
        study.set_user_attr(SETTINGS_ATTR, json.loads(json.dumps(dict(settings), default=str)))
        return
    current = json.loads(json.dumps(dict(settings), default=str))
    diff = [k for k in _IDENTITY_KEYS if stored.get(k) != current.get(k)]
    if diff:
        raise ValueError(
            f"`a resumed study keeps its settings` must hold, but study {study.study_name!r} was "
            f"created with other {diff} (stored: {{{', '.join(f'{k}: {stored.get(k)!r}' for k in diff)}}}); "
            "use a new --study name."
        )


def _worker(
    storage_url: str | None,
    study_name: str,
    objective: Objective,
    n_trials: int,
    total: int,
    seed: int | None,
    parallel: bool,
) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(storage_url, study_name=study_name)
    study = optuna.load_study(
        study_name=study_name,
        storage=storage,
        sampler=_sampler(objective.mode, seed, parallel=parallel),
    )
    study.optimize(_Tagged(objective), n_trials=n_trials, callbacks=[_StopAtTotal(total)], catch=())


class _Tagged:
    """Records which process ran a trial (``worker`` user attribute: host:pid), then evaluates."""

    def __init__(self, objective: Objective) -> None:
        self.objective = objective
        self.tag = f"{socket.gethostname()}:{os.getpid()}"

    def __call__(self, trial: Any) -> Any:
        trial.set_user_attr("worker", self.tag)
        return self.objective(trial)


def run_search(
    objective: Objective,
    *,
    study_name: str,
    n_trials: int,
    storage: str | None = None,
    workers: int = 1,
    seed: int | None = 0,
    settings: Mapping[str, Any] | None = None,
    progress: bool = True,
) -> Any:
    """Create or resume a study and run it until it holds ``n_trials`` complete trials.

    Parameters
    ----------
    objective : Objective
        Problem, space and mode.
    study_name : str
        Study to create or continue.
    n_trials : int
        Complete trials the study must hold at the end (counting earlier runs), >= 1.
    storage : str, optional
        Storage URL or journal path (default ``sqlite:///runs/<study>.db``).
    workers : int
        Processes on this machine, >= 1; each runs ``study.optimize`` with its share.
    seed : int, optional
        Sampler seed (worker i uses seed + i).
    settings : mapping, optional
        What the study is for; stored as a study user attribute and checked on resume.
    progress : bool
        Show a progress bar on stderr.

    Returns
    -------
    optuna.Study
    """
    import optuna
    from tqdm import tqdm

    if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1:
        raise ValueError(f"`trials` must be an integer >= 1, but got trials={n_trials!r}.")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"`workers` must be an integer >= 1, but got workers={workers!r}.")
    check_study_name(study_name)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    store = open_storage(storage, study_name=study_name)
    study = optuna.create_study(
        study_name=study_name,
        storage=store,
        directions=directions(objective.mode),
        load_if_exists=True,
    )
    if [d.name.lower() for d in study.directions] != directions(objective.mode):
        raise ValueError(
            f"`a resumed study keeps its mode` must hold, but study {study_name!r} has "
            f"directions {[d.name.lower() for d in study.directions]}; use a new --study name."
        )
    _check_settings(study, settings or {})
    remaining = n_trials - _complete_count(study)
    if remaining <= 0:
        return study
    # several processes (here or on other machines) share a study: constant liar, distinct seeds
    parallel = workers > 1 or (storage is not None and not storage.startswith("sqlite"))
    bar = tqdm(
        total=n_trials,
        initial=n_trials - remaining,
        desc=f"search {study_name}",
        unit="trial",
        disable=not progress or None,
        file=sys.stderr,
    )
    try:
        if workers == 1:
            sampler = _sampler(objective.mode, seed, parallel=parallel)
            study = optuna.load_study(study_name=study_name, storage=store, sampler=sampler)

            def tick(study: Any, trial: Any) -> None:
                bar.n = min(n_trials, _complete_count(study))
                bar.refresh()

            study.optimize(
                _Tagged(objective),
                n_trials=remaining,
                callbacks=[_StopAtTotal(n_trials), tick],
                catch=(),
            )
        else:
            shares = [remaining // workers + (i < remaining % workers) for i in range(workers)]
            # fork: workers inherit the imported modules (spawn re-imports numpy, scipy, optuna
            # in every worker, seconds each); spawn where fork does not exist.
            methods = multiprocessing.get_all_start_methods()
            ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
            procs = [
                ctx.Process(
                    target=_worker,
                    args=(
                        storage,
                        study_name,
                        objective,
                        share,
                        n_trials,
                        None if seed is None else seed + i,
                        True,
                    ),
                    daemon=False,
                )
                for i, share in enumerate(shares)
                if share > 0
            ]
            for p in procs:
                p.start()
            try:
                while any(p.is_alive() for p in procs):
                    time.sleep(0.5)
                    bar.n = min(n_trials, _complete_count(study))
                    bar.refresh()
            finally:
                for p in procs:
                    p.join()
            failed = [p.exitcode for p in procs if p.exitcode != 0]
            if failed:
                raise RuntimeError(f"{len(failed)} search worker(s) failed (exit codes {failed}).")
        bar.n = min(n_trials, _complete_count(study))
        bar.refresh()
    finally:
        bar.close()
    return study


# --- results -----------------------------------------------------------------------------------


def trials_frame(study: Any) -> pd.DataFrame:
    """Complete trials as a table: number, configuration, predictions, ``feasible``."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    # measured truth that `specdec validate` recorded on a copy of a trial, by original number
    truth = {
        t.user_attrs["validation_of"]: {
            k: v for k, v in t.user_attrs.items() if k.startswith("measured_")
        }
        for t in trials
        if "validation_of" in t.user_attrs
    }
    rows = []
    for t in trials:
        if "validation_of" in t.user_attrs:
            continue
        row: dict[str, Any] = {"number": t.number}
        row.update({k: t.user_attrs.get(k) for k in CONFIG_COLUMNS})
        row.update({k: t.user_attrs.get(k) for k in PREDICTION_ATTRS})
        row.update({f"constraint:{k}": v for k, v in t.constraints.items()})
        row["feasible"] = all(v <= 0 for v in t.constraints.values())
        row.update(truth.get(t.number, {}))
        rows.append(row)
    columns = ["number", *CONFIG_COLUMNS, *PREDICTION_ATTRS, "feasible"]
    return pd.DataFrame(rows, columns=None if rows else columns)


def study_results(study: Any, *, top: int = 5, cost: str = "params") -> dict[str, Any]:
    """Best distinct feasible configurations and the Pareto front (tokens/s up, cost down)."""
    from optuna.trial import TrialState

    frame = trials_frame(study)
    counts = {
        state.name.lower(): len(study.get_trials(deepcopy=False, states=(state,)))
        for state in (TrialState.RUNNING, TrialState.FAIL, TrialState.PRUNED)
    }
    counts["complete"] = _complete_count(study)
    if frame.empty:
        return {"trials": counts, "feasible": 0, "best": [], "pareto": []}
    feasible = frame[frame["feasible"]]
    distinct = feasible.sort_values(
        ["tokens_per_s", "number"], ascending=[False, True]
    ).drop_duplicates(list(CONFIG_COLUMNS))
    front = pareto_front(distinct.assign(cost=distinct[cost]))
    keep = ["number", *CONFIG_COLUMNS, *PREDICTION_ATTRS]
    return {
        "trials": counts,
        "feasible": int(len(feasible)),
        "best": _records(distinct.head(top), keep),
        "pareto": _records(front, keep),
    }


def _records(frame: pd.DataFrame, columns: Sequence[str]) -> list[dict[str, Any]]:
    out = []
    for row in frame[[c for c in columns if c in frame]].to_dict("records"):
        out.append({k: _plain(v) for k, v in row.items()})
    return out


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
