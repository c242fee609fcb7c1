"""Run an Optuna study over the draft space: storage, worker processes, resumption, results.

Storage is an Optuna storage URL (DESIGN.md, "Contracts"):

- default ``sqlite:///runs/<study>.db``: embedded and resumable; rerunning the same command
  continues the study until it holds the requested number of complete trials;
- any RDB URL Optuna accepts (``postgresql://...``, ``mysql+pymysql://...``): machines join with
  the same ``--storage URL --study NAME``; ``postgresql://`` uses psycopg (version 3);
- anything without ``://`` is a journal file path (``JournalStorage`` over
  ``JournalFileBackend``, Optuna 5's names), which machines sharing a file system can join.

``workers`` > 1 starts that many processes on this machine, each running ``study.optimize`` with
its share of the remaining trials; the study in the storage is the only coordination (no
scheduler of our own). Passwords in URLs are never printed: :func:`mask_url`.
"""

from __future__ import annotations

import functools
import json
import math
import multiprocessing
import os
import re
import socket
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from explorer.grid import pareto_front
from explorer.objective import CONFIG_COLUMNS, PREDICTION_ATTRS, Objective, directions
from explorer.space import SearchSpace

__all__ = [
    "SETTINGS_ATTR",
    "default_storage",
    "mask_url",
    "open_storage",
    "run_search",
    "study_results",
    "trials_frame",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
RUNS_DIR = REPO_ROOT / "runs"
# Study user attribute holding what the study was created for (target, space, mode, budgets).
SETTINGS_ATTR = "specdec_settings"
# Settings that must match when a study is resumed or joined: changing one mixes two problems.
_IDENTITY_KEYS = ("target", "mode", "space", "batch", "context", "cost", "acceptance")
# RDB heartbeat: a trial whose process died is marked FAIL once this stale (s) at the next run.
_HEARTBEAT_INTERVAL_S = 10
_GRACE_PERIOD_S = 30
# seconds SQLite waits for a lock held by another worker before giving up
_SQLITE_TIMEOUT_S = 120


# --- storage ----------------------------------------------------------------------------------


def mask_url(url: str | None) -> str | None:
    """``url`` with any password replaced by ``***``.

    Examples
    --------
    >>> mask_url("postgresql://user:secret@db:5432/x")
    'postgresql://user:***@db:5432/x'
    >>> mask_url("runs/study.log")
    'runs/study.log'
    """
    if url is None:
        return None
    return re.sub(r"(://[^/:@]*:)[^@/]*@", r"\1***@", url)


def _scrub(text: str, url: str) -> str:
    """Remove the password of ``url`` from an error message, wherever it appears."""
    m = re.search(r"://[^/:@]*:([^@/]*)@", url)
    out = text.replace(url, mask_url(url))
    if m and m.group(1):
        out = out.replace(m.group(1), "***")
    return out


def default_storage(study_name: str) -> str:
    """``sqlite:///runs/<study>.db`` (absolute path under the repository's ``runs/``)."""
    return f"sqlite:///{RUNS_DIR / (study_name + '.db')}"


def _driver_url(url: str) -> str:
    # SQLAlchemy's default PostgreSQL driver is psycopg2; the project ships psycopg 3.
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def open_storage(storage: str | None, *, study_name: str) -> Any:
    """An Optuna storage object for a URL or journal path (see the module docstring).

    Raises
    ------
    ValueError
        The storage cannot be reached or opened; the message names the masked URL and why.
    """
    import optuna
    from optuna.storages import JournalStorage, RDBStorage
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    url = storage or default_storage(study_name)
    shown = mask_url(url)
    if "://" not in url:
        path = Path(url)
        if path.is_dir():
            raise ValueError(
                f"`--storage is an RDB URL or a journal file` must hold, but {shown!r} is a folder."
            )
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            return JournalStorage(
                JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path)))
            )
        except OSError as exc:
            raise ValueError(
                f"cannot open journal storage {shown!r}: {exc.strerror or exc}."
            ) from None
    url = _driver_url(url)
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///") :].split("?")[0]
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        kwargs["engine_kwargs"] = {"creator": functools.partial(_sqlite_connect, path)}
    else:
        kwargs["engine_kwargs"] = {"pool_pre_ping": True, "connect_args": _connect_timeout(url)}
    last: Exception | None = None
    for _ in range(3):
        try:
            with warnings.catch_warnings():
                # heartbeat_interval is "experimental" in Optuna 5; the warning is noise to users
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return RDBStorage(
                    url,
                    heartbeat_interval=_HEARTBEAT_INTERVAL_S,
                    grace_period=_GRACE_PERIOD_S,
                    **kwargs,
                )
        except (ImportError, ModuleNotFoundError) as exc:
            raise ValueError(
                f"cannot open storage {shown!r}: missing database driver ({exc.name})."
            ) from None
        except Exception as exc:  # sqlalchemy's errors: unreachable host, bad credentials, bad URL
            ours = isinstance(exc, optuna.exceptions.OptunaError | ValueError)
            if not (ours or "sqlalchemy" in type(exc).__module__):
                raise
            last = exc
            # two processes creating the tables of a new database at once: the loser retries
            if "already exists" not in str(exc):
                break
            time.sleep(0.5)
    reason = _scrub(" ".join(str(getattr(last, "orig", None) or last).split()), url)
    raise ValueError(f"cannot open storage {shown!r}: {reason[:300]}") from None


def _sqlite_connect(path: str) -> Any:
    """A SQLite connection in WAL mode with synchronous=NORMAL.

    Every trial writes ~25 attributes, each its own transaction; with SQLite's default rollback
    journal each commit is an fsync (~15 ms on a busy disk, 0.4 s a trial). WAL with
    synchronous=NORMAL commits without fsync, loses nothing when a process is killed (only the
    last commits on power loss), and lets worker processes read while one writes.
    """
    import sqlite3

    conn = sqlite3.connect(path, timeout=_SQLITE_TIMEOUT_S, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def _connect_timeout(url: str) -> dict[str, Any]:
    # fail fast on an unreachable server instead of waiting for the OS's TCP timeout
    if url.startswith("postgresql"):
        return {"connect_timeout": 10}
    if url.startswith("mysql"):
        return {"connect_timeout": 10}
    return {}


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
    if not re.fullmatch(r"[A-Za-z0-9_.\-]+", study_name):
        raise ValueError(
            f"`study name matches [A-Za-z0-9_.-]+` must hold, but got study={study_name!r}."
        )
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


def ensure_runs_dir() -> Path:
    RUNS_DIR.mkdir(parents=True, exist_ok=True)
    return RUNS_DIR


def space_for(
    target: Any, *, space_file: str | os.PathLike[str] | None, **bounds: Any
) -> SearchSpace:
    """The search space: defaults for the target, then a space file, then flag bounds."""
    space = SearchSpace.for_target(target)
    if space_file is not None:
        space = SearchSpace.from_file(space_file, base=space)
    return space.with_overrides(**bounds)


# --- building the problem from names and files -------------------------------------------------

DEFAULT_DRAFTS_CSV = REPO_ROOT / "data" / "zoo" / "drafts.csv"


def resolve_target(target: str) -> Any:
    """An ``ArchSpec`` from a preset name, a Hugging Face folder or a ``config.json`` path."""
    from perfmodel.arch import ArchSpec
    from perfmodel.presets import get_preset, preset_names

    path = Path(target)
    if path.is_dir():
        path = path / "config.json"
        if not path.is_file():
            raise ValueError(
                f"`--target is a preset or a model folder` must hold, but {target!r} has no config.json."
            )
    if path.is_file() and path.suffix == ".json":
        try:
            config = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"`{str(path)!r} is valid JSON` must hold, but {exc}.") from None
        return ArchSpec.from_hf_config(config, name=path.parent.name, source=str(path))
    if target in preset_names():
        return get_preset(target)
    raise ValueError(
        f"`--target is a preset ({', '.join(preset_names())}), a model folder or a config.json` must "
        f"hold, but got {target!r}."
    )


def build_acceptance(
    *,
    alpha: float | None = None,
    acceptance: str | None = None,
    drafts_csv: str | os.PathLike[str] | None = None,
) -> tuple[Any, dict[str, Any]]:
    """The acceptance source and its description for the study settings.

    ``alpha`` (what-if) wins, then ``acceptance`` (a measured file: one measurement is used as
    it is, a table of several drafts is fitted), then the model fitted to ``drafts_csv``
    (default ``data/zoo/drafts.csv``).
    """
    from perfmodel.acceptance_model import AcceptanceModel, FixedAcceptance, acceptance_from_file

    if alpha is not None:
        return FixedAcceptance(acceptance_rate=alpha), {"kind": "fixed", "acceptance_rate": alpha}
    if acceptance is not None:
        path = Path(acceptance)
        try:
            src = acceptance_from_file(path) if path.is_file() else None
        except ValueError as exc:
            if "holds one measurement" not in str(exc):
                raise
            src = None
        if src is not None:
            return src, {"kind": "file", "path": str(path), "acceptance_rate": src.acceptance_rate}
        model = AcceptanceModel.fit(path)
        return model, {
            "kind": "model",
            "path": str(path),
            "drafts": int(model.table["draft"].nunique()),
        }
    path = Path(drafts_csv) if drafts_csv is not None else DEFAULT_DRAFTS_CSV
    if not path.is_file():
        raise ValueError(
            f"`a table of measured drafts for the acceptance model` must exist, but {str(path)!r} does "
            "not; pass --alpha A (what-if) or --acceptance FILE."
        )
    model = AcceptanceModel.fit(path)
    return model, {
        "kind": "model",
        "path": str(path),
        "drafts": int(model.table["draft"].nunique()),
    }


def build_latency(
    target: Any,
    *,
    device_profile: str | os.PathLike[str] | None = None,
    hardware: str | None = None,
) -> tuple[Any, Any, dict[str, Any]]:
    """Target latency function, draft latency provider and their description.

    ``device_profile`` (a ``data/profiles/<device>/`` folder) fits the profiled latency model
    (``perfmodel.latency_model``); ``hardware`` (a name of ``perfmodel.hardware_names()``) uses
    the roofline bound instead, for a device without profiles.
    """
    if device_profile is not None:
        return _profile_latency(target, Path(device_profile))
    if hardware is not None:
        from explorer.objective import RooflineLatency
        from perfmodel.hardware import get_hardware, hardware_names

        if hardware not in hardware_names():
            raise ValueError(f"`--hardware in {hardware_names()}` must hold, but got {hardware!r}.")
        provider = RooflineLatency(get_hardware(hardware))
        return provider(target), provider, {"kind": "roofline", "hardware": hardware}
    raise ValueError(
        "`--device-profile DIR or --hardware NAME is given` must hold, but got neither."
    )


def _profile_latency(target: Any, folder: Path) -> tuple[Any, Any, dict[str, Any]]:
    from perfmodel.latency_model import LatencyModel

    if not folder.is_dir():
        raise ValueError(
            f"`--device-profile is a folder of profile CSVs` must hold, but {str(folder)!r} is not a folder."
        )
    model = LatencyModel.from_profiles(folder)
    info = {
        "kind": "latency_model",
        "device_profile": str(folder),
        "device": model.device,
        "statistic": model.statistic,
        "target_profiled": model.is_profiled(target),
    }
    return model.latency_fn(target), model.latency_fn, info


def check_budgets(problem: Any, space: SearchSpace) -> None:
    """Raise ``ValueError`` when no draft of the space meets the budgets.

    Parameters, memory and draft time grow with depth and KV cache with γ, so the smallest
    drafts are those at the space's least depth and γ; every width there is scored.
    """
    from explorer.objective import predict_configs

    small = space.with_overrides(depth_max=space.depth_min, gamma_max=space.gamma_min).enumerate()
    scored = predict_configs(problem, small)
    if scored["feasible"].any():
        return
    checks = (
        ("max_params", "params", "params_over_budget", "{:.4g} parameters"),
        ("max_memory_bytes", "memory_bytes", "memory_over_budget", "{:.4g} bytes"),
        ("max_draft_ms", "draft_pass_ms", "draft_ms_over_max", "{:.4g} ms per pass"),
    )
    for budget, column, constraint, unit in checks:
        if constraint in scored and (scored[constraint] > 0).all():
            smallest = scored[column].min()
            raise ValueError(
                f"`{budget} >= the smallest draft of the space` must hold, but the smallest draft "
                f"has {unit.format(smallest)} and {budget}={getattr(problem, budget):.4g}."
            )
    raise ValueError(
        "`some draft of the space meets every budget at once` must hold, but none does."
    )
