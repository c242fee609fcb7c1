"""Optuna storage of a draft search: URLs, journal files, SQLite tuning, masked passwords.

Storage is an Optuna storage URL (DESIGN.md, "Contracts"):

- default ``sqlite:///runs/<study>.db``: embedded and resumable; rerunning the same command
  continues the study until it holds the requested number of complete trials;
- any RDB URL Optuna accepts (``postgresql://...``, ``mysql+pymysql://...``): machines join with
  the same ``--storage URL --study NAME``; ``postgresql://`` uses psycopg (version 3);
- anything without ``://`` is a journal file path (``JournalStorage`` over
  ``JournalFileBackend``, Optuna 5's names), which machines sharing a file system can join.

Passwords in URLs are never printed: :func:`mask_url`. The study that runs on a storage is
:mod:`explorer.search`.
"""

from __future__ import annotations

import functools
import json
import re
import time
import warnings
from pathlib import Path
from typing import Any

__all__ = [
    "REPO_ROOT",
    "RUNS_DIR",
    "check_study_name",
    "default_storage",
    "ensure_runs_dir",
    "mask_url",
    "open_existing_storage",
    "open_storage",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
RUNS_DIR = REPO_ROOT / "runs"
# RDB heartbeat: a trial whose process died is marked FAIL once this stale (s) at the next run.
_HEARTBEAT_INTERVAL_S = 10
_GRACE_PERIOD_S = 30
# seconds SQLite waits for a lock held by another worker before giving up
_SQLITE_TIMEOUT_S = 120


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


def check_study_name(study_name: object) -> None:
    """Raise ``ValueError`` unless ``study_name`` is a plain file name (``[A-Za-z0-9_.-]+``).

    A study's name becomes a file or folder under ``runs/`` (its default storage, its
    validation and serving files), so a name with a path separator, or ``.`` / ``..``, would put
    them elsewhere.

    Examples
    --------
    >>> check_study_name("draft-search_2")
    >>> check_study_name("../x")
    Traceback (most recent call last):
    ...
    ValueError: `study name matches [A-Za-z0-9_.-]+ and is not . or ..` must hold, but got study='../x'.
    """
    if (
        not isinstance(study_name, str)
        or not re.fullmatch(r"[A-Za-z0-9_.\-]+", study_name)
        or study_name in (".", "..")
    ):
        raise ValueError(
            "`study name matches [A-Za-z0-9_.-]+ and is not . or ..` must hold, but got "
            f"study={study_name!r}."
        )


def default_storage(study_name: str) -> str:
    """``sqlite:///runs/<study>.db`` (absolute path under the repository's ``runs/``).

    Raises
    ------
    ValueError
        ``study_name`` is not a plain file name (:func:`check_study_name`).
    """
    check_study_name(study_name)
    return f"sqlite:///{RUNS_DIR / (study_name + '.db')}"


def open_existing_storage(storage: str | None, *, study_name: str | None) -> tuple[Any, str]:
    """Open a storage that must already exist; return ``(storage, its URL masked)``.

    For reading a study (validate, report): a SQLite file or journal file that is not there is
    a ``ValueError`` and is not created, where :func:`open_storage` (for a search) would create
    it. ``storage`` None means the default storage of ``study_name``.

    Raises
    ------
    ValueError
        The local storage file does not exist, the study name is not a plain file name (for the
        default storage), or the storage cannot be opened.
    """
    if storage is None and study_name is None:
        raise ValueError("`a storage or a study name is given` must hold, but got neither.")
    url = storage or default_storage(str(study_name))
    shown = mask_url(url)
    local = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else None
    if local is None and "://" not in url:
        local = url  # a journal file
    if local is not None and not Path(local.split("?")[0]).is_file():
        if study_name is not None:
            raise ValueError(f"study {study_name!r} does not exist: there is no {shown}.")
        raise ValueError(f"the study storage {shown} does not exist.")
    return open_storage(url, study_name=study_name or "report"), shown


def _check_journal_file(path: Path, shown: str) -> None:
    """Raise ``ValueError`` when ``path`` is a file that is not an Optuna journal (an SQLite
    database, any other text): Optuna's journal backend would skip what it cannot read and then
    append its logs to it. A missing or empty file is a new journal."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    with path.open("rb") as f:
        head = f.read(1 << 16)
    if head.startswith(b"SQLite format 3\x00"):
        raise ValueError(
            f"`--storage FILE is an Optuna journal file` must hold, but {shown!r} is an SQLite "
            f"database: pass --storage sqlite:///{path}."
        )
    first, newline, _ = head.partition(b"\n")
    try:
        if newline:
            json.loads(first.decode("utf-8"))
        elif not first.startswith(b"{"):  # a first log cut short by a crash is still a journal
            raise ValueError("not a JSON log")
    except ValueError as exc:
        reason = " ".join(str(exc).split())[:200]
        raise ValueError(
            f"`--storage FILE is an Optuna journal file` must hold, but {shown!r} is not (its "
            f"first line: {reason})."
        ) from None


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
            _check_journal_file(path, shown)  # before the backend could append to another file
            path.parent.mkdir(parents=True, exist_ok=True)
            return JournalStorage(
                JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path)))
            )
        except OSError as exc:
            raise ValueError(
                f"cannot open journal storage {shown!r}: {exc.strerror or exc}."
            ) from None
        except ValueError as exc:  # a later line that is not JSON or not UTF-8
            if "journal file` must hold" in str(exc):
                raise
            reason = " ".join(str(exc).split())[:200]
            raise ValueError(
                f"`--storage FILE is an Optuna journal file` must hold, but {shown!r} is not "
                f"({reason})."
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


def ensure_runs_dir() -> Path:
    RUNS_DIR.mkdir(parents=True, exist_ok=True)
    return RUNS_DIR
