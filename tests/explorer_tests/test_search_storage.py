"""Studies in shared storage: two workers lose or duplicate no trial; a killed study resumes.

SQLite and a journal file run everywhere; PostgreSQL runs when SPECDEC_TEST_POSTGRES_URL names a
server (``.ci/postgres.sh`` starts one on loopback). In CI (``CI=true``) a missing or unreachable
server is a failure, not a skip.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid

import optuna
import pytest
from optuna.trial import TrialState

from explorer.objective import Objective
from explorer.search import (
    check_study_name,
    mask_url,
    open_existing_storage,
    open_storage,
    run_search,
)

from .search_support import TINY_SPACE, problem

N_TRIALS = 12


def _check_once_each(study, n):
    trials = study.get_trials(deepcopy=False)
    states = [t.state for t in trials]
    assert states.count(TrialState.COMPLETE) == n, states
    assert len(trials) == n, f"extra trials: {[(t.number, t.state) for t in trials]}"
    assert sorted(t.number for t in trials) == list(range(n))
    assert len({t._trial_id for t in trials}) == n
    workers = {t.user_attrs["worker"] for t in trials}
    assert len(workers) == 2, f"expected both workers to run trials, got {workers}"
    for t in trials:
        assert t.user_attrs["tokens_per_s"] == t.value  # each trial's record is its own


def _two_workers(storage: str, name: str):
    objective = Objective(problem(), TINY_SPACE)
    study = run_search(
        objective, study_name=name, n_trials=N_TRIALS, storage=storage, workers=2, progress=False
    )
    _check_once_each(study, N_TRIALS)
    # rerunning with the same target is a no-op: the study already holds N complete trials
    again = run_search(
        objective, study_name=name, n_trials=N_TRIALS, storage=storage, workers=2, progress=False
    )
    assert len(again.get_trials(deepcopy=False)) == N_TRIALS
    return study


def test_two_workers_sqlite(tmp_path):
    _two_workers(f"sqlite:///{tmp_path / 'study.db'}", "two-sqlite")


def test_two_workers_journal(tmp_path):
    _two_workers(str(tmp_path / "study.log"), "two-journal")


def _postgres_url() -> str:
    url = os.environ.get("SPECDEC_TEST_POSTGRES_URL")
    if not url:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but SPECDEC_TEST_POSTGRES_URL is not set (see .ci/postgres.sh)")
        pytest.skip("SPECDEC_TEST_POSTGRES_URL is not set")
    return url


def test_two_workers_postgresql():
    url = _postgres_url()
    name = f"two-pg-{uuid.uuid4().hex[:8]}"
    try:
        storage = open_storage(url, study_name=name)
    except (
        ValueError
    ) as exc:  # unreachable: a failure, whether in CI or not, since it was asked for
        pytest.fail(f"PostgreSQL at {mask_url(url)} is unreachable: {exc}")
    try:
        _two_workers(url, name)
    finally:
        optuna.delete_study(study_name=name, storage=storage)


def _complete_in_sqlite(db) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
            return conn.execute("SELECT COUNT(*) FROM trials WHERE state = 'COMPLETE'").fetchone()[
                0
            ]
    except sqlite3.Error:  # tables not made yet, or locked for a moment
        return 0


def test_killed_study_resumes_to_the_requested_count(tmp_path):
    db = tmp_path / "killed.db"
    url = f"sqlite:///{db}"
    total = 24
    cmd = [
        sys.executable, "-m", "explorer.cli", "search", "--target", "llama-7b", "--hardware", "H200",
        "--alpha", "0.8", "--trials", str(total), "--storage", url, "--study", "killed",
        "--depth", "1:4", "--no-progress", "--json",
    ]  # fmt: skip
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    complete = 0
    deadline = time.monotonic() + 120
    try:
        # poll with plain read-only SQL: opening an Optuna storage here would race the run's own
        # creation of the tables
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
            complete = _complete_in_sqlite(db)
            if complete >= 3:
                break
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, (
        f"run ended before it was killed: {proc.stderr.read().decode()}"
    )
    assert 3 <= complete < total, complete

    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    study = optuna.load_study(study_name="killed", storage=open_storage(url, study_name="killed"))
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    assert len(done) == total
    assert len({t.number for t in done}) == total
    # at most the one trial the kill interrupted is left unfinished
    assert len(study.get_trials(deepcopy=False)) - total <= 1


@pytest.mark.parametrize("name", ["a/b", "/abs/x", ".", "..", "", "a b", 3])
def test_study_names_that_are_not_plain_file_names_are_refused(name, tmp_path):
    with pytest.raises(ValueError, match="study name matches"):
        check_study_name(name)
    with pytest.raises(ValueError, match="study name matches"):
        run_search(Objective(problem(), TINY_SPACE), study_name=name, n_trials=1, progress=False)


def test_open_existing_storage_creates_nothing(tmp_path):
    for url in (f"sqlite:///{tmp_path / 'no.db'}", str(tmp_path / "no.log")):
        with pytest.raises(ValueError, match="study 'x' does not exist"):
            open_existing_storage(url, study_name="x")
    assert list(tmp_path.iterdir()) == []
    # an existing one opens, and reads the study a search wrote
    url = f"sqlite:///{tmp_path / 'yes.db'}"
    run_search(
        Objective(problem(), TINY_SPACE), study_name="x", n_trials=2, storage=url, progress=False
    )
    store, shown = open_existing_storage(url, study_name="x")
    assert shown == url
    assert len(optuna.load_study(study_name="x", storage=store).trials) == 2


def test_a_file_that_is_not_a_journal_is_refused_by_name_and_left_as_it_was(tmp_path):
    # a journal path that names an SQLite file (or any other file) was a bare JSON or UTF-8
    # error; it is the rule, the path, and for SQLite the URL to use instead
    url = f"sqlite:///{tmp_path / 'real.db'}"
    run_search(
        Objective(problem(), TINY_SPACE), study_name="x", n_trials=1, storage=url, progress=False
    )
    (tmp_path / "notes.txt").write_text("not a journal\n")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    sqlite = (
        r"journal file` must hold, but .*real\.db' is an SQLite database: pass --storage sqlite:///"
    )
    with pytest.raises(ValueError, match=sqlite):
        open_storage(str(tmp_path / "real.db"), study_name="x")
    with pytest.raises(ValueError, match=r"journal file` must hold, but .*notes\.txt' is not \("):
        open_storage(str(tmp_path / "notes.txt"), study_name="x")
    with pytest.raises(ValueError, match=sqlite):
        open_existing_storage(str(tmp_path / "real.db"), study_name="x")
    with pytest.raises(ValueError, match=sqlite):  # a search would have written into it
        run_search(Objective(problem(), TINY_SPACE), study_name="x", n_trials=1,
                   storage=str(tmp_path / "real.db"), progress=False)  # fmt: skip
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    # a real journal, and one whose only log a crash cut short, still open
    journal = str(tmp_path / "study.log")
    run_search(Objective(problem(), TINY_SPACE), study_name="j", n_trials=1, storage=journal,
               progress=False)  # fmt: skip
    assert (
        len(optuna.load_study(study_name="j", storage=open_storage(journal, study_name="j")).trials)
        == 1
    )
    (tmp_path / "cut.log").write_bytes((tmp_path / "study.log").read_bytes().split(b"\n")[0][:20])
    open_storage(str(tmp_path / "cut.log"), study_name="c")
