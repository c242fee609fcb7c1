"""`specdec report`: one self-contained HTML file with every section; bad input exits 2."""

from __future__ import annotations

import json
import re

import optuna
import pytest

from explorer import cli
from explorer.report import SECTION_KEYS, write_report
from tests.explorer_tests import synthetic as syn

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(scope="module")
def storage(tmp_path_factory) -> str:
    """An SQLite storage holding one small two-objective study named 'tiny'."""
    url = f"sqlite:///{tmp_path_factory.mktemp('study') / 'search.db'}"
    study = optuna.create_study(
        study_name="tiny",
        storage=url,
        directions=["maximize", "minimize"],
        sampler=optuna.samplers.RandomSampler(seed=0),
    )

    def objective(trial):
        depth = trial.suggest_int("depth", 1, 8)
        hidden = trial.suggest_int("hidden", 128, 1024, step=128)
        gamma = trial.suggest_int("gamma", 1, 8)
        return 100.0 / (depth + hidden / 1024) + gamma, depth * hidden**2

    study.optimize(objective, n_trials=12)
    return url


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Synthetic profiles, zoo table and validation table (tests/explorer_tests/synthetic.py)."""
    folder = tmp_path_factory.mktemp("inputs")
    syn.write_profiles(folder / "profiles")
    syn.zoo_frame().to_csv(folder / "drafts.csv", index=False)
    syn.validation_frame().to_csv(folder / "validation.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def report(tmp_path_factory, storage, inputs):
    out = tmp_path_factory.mktemp("report") / "report.html"
    summary = write_report(
        out,
        study_name="tiny",
        storage=storage,
        profiles=inputs / "profiles",
        validation=inputs / "validation.csv",
        zoo=inputs / "drafts.csv",
    )
    return out, out.read_text(encoding="utf-8"), summary


def test_report_has_every_section_with_data(report):
    _, text, summary = report
    for key in SECTION_KEYS:
        assert f'<section id="{key}">' in text, key
        assert summary["sections"][key]["status"] == "ok", (key, summary["sections"][key])
        block = text.split(f'<section id="{key}">', 1)[1].split("</section>", 1)[0]
        assert "plotly-graph-div" in block and 'class="missing"' not in block, key
    assert summary["sections"]["search"]["complete_trials"] == 12
    assert summary["sections"]["validation"]["drafts"] == 3
    assert summary["sections"]["zoo"]["pairs"] > 0
    assert text.count('class="dataframe data"') >= 5  # pandas tables


def test_report_is_self_contained(report):
    _, text, summary = report
    assert not re.search(r"<script[^>]+src=[\"']?(https?:)?//", text, re.IGNORECASE)
    assert not re.search(r"<link[^>]+href=[\"']?(https?:)?//", text, re.IGNORECASE)
    # plotly.js inlined exactly once, in <head>, before any figure.
    assert text.count("* plotly.js v") == 1
    head, body = text.split("</head>", 1)
    assert "* plotly.js v" in head
    assert body.count('class="plotly-graph-div"') == summary["figures"] >= 7


def test_sections_without_data_say_so_without_numbers(tmp_path):
    out = tmp_path / "r.html"
    empty_db = f"sqlite:///{tmp_path / 'empty.db'}"
    optuna.storages.RDBStorage(empty_db)
    summary = write_report(out, storage=empty_db)
    search = summary["sections"]["search"]
    # An explicit storage that holds no study: the section says so.
    assert search["status"] == "no data" and "no study" in search["reason"]
    text = out.read_text(encoding="utf-8")
    block = text.split('<section id="search">', 1)[1].split("</section>", 1)[0]
    assert 'class="missing"' in block and "plotly-graph-div" not in block


def test_cli_report_json(tmp_path, storage, capsys):
    out = tmp_path / "cli.html"
    code = cli.main(
        ["report", "--out", str(out), "--study", "tiny", "--storage", storage, "--json"]
    )
    assert code == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["path"] == str(out) and out.is_file()
    assert set(result["sections"]) == set(SECTION_KEYS)


@pytest.mark.parametrize(
    "extra, match",
    [
        (["--study", "no-such-study"], "study 'no-such-study' does not exist"),
        (["--profiles", "{empty}"], "holds no profile CSV"),
        (["--profiles", "{missing}"], "does not exist"),
        (["--validation", "{missing}"], "does not exist"),
    ],
)
def test_cli_report_bad_input_exits_2_with_one_line(tmp_path, storage, capsys, extra, match):
    (tmp_path / "empty").mkdir()
    extra = [e.format(empty=tmp_path / "empty", missing=tmp_path / "missing.csv") for e in extra]
    out = tmp_path / "bad.html"
    code = cli.main(["report", "--out", str(out), "--storage", storage, *extra])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and match in err, err
    assert not out.exists()


def test_unknown_study_lists_the_studies_there(tmp_path, storage):
    with pytest.raises(ValueError, match="'tiny'"):
        write_report(tmp_path / "x.html", study_name="other", storage=storage)


def test_out_must_be_html(tmp_path):
    with pytest.raises(ValueError, match=".html"):
        write_report(tmp_path / "x.pdf")


def test_cli_report_to_a_path_it_cannot_write_exits_2_with_one_line(
    tmp_path, storage, capsys, monkeypatch
):
    (tmp_path / "afile").write_text("", encoding="utf-8")
    code = cli.main(["report", "--out", str(tmp_path / "afile" / "r.html"), "--storage", storage])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"cannot use '{tmp_path / 'afile'}': Not a directory" in err

    def denied(*_args, dir=None, **_kwargs):  # noqa: A002 - tempfile.mkstemp's own keyword
        raise PermissionError(13, "Permission denied", f"{dir}/.r.html.abc123.tmp")

    monkeypatch.setattr("perfmodel.atomic.tempfile.mkstemp", denied)
    out = tmp_path / "r.html"
    code = cli.main(["report", "--out", str(out), "--storage", storage])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"cannot use '{out}': Permission denied" in err and ".tmp" not in err
    assert not out.exists()
