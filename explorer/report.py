"""One self-contained HTML report: speedup landscape, latency, search, validation, zoo.

The report is a single file: plotly.js is inlined once in ``<head>`` (plotly's offline bundle), each
figure is a ``<div>`` drawn by a short inline script, tables are pandas HTML. Nothing is fetched
when it is opened. It is written atomically, so a reader never sees half a report.

Each section is built by one function that returns a :class:`Section`; a section without data
says so in words (never placeholder numbers). Inputs the user named explicitly and that are wrong
(a study that does not exist, a profile folder without profiles) raise ``ValueError``, which the
CLI turns into exit code 2.

Modules: :mod:`explorer.report_sections` (:class:`Section` and one builder per section),
:mod:`explorer.report_html` (the HTML page), this one (finding the inputs, building every
section, writing the file). Their public names are all importable from here.
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from explorer.report_html import render_html
from explorer.report_sections import (
    REPO_ROOT,
    SECTION_KEYS,
    Section,
    landscape_section,
    latency_section,
    search_section,
    validation_section,
    zoo_section,
)
from perfmodel.atomic import atomic_write_text

if TYPE_CHECKING:  # pragma: no cover
    import optuna

__all__ = [
    "REPO_ROOT",
    "SECTION_KEYS",
    "Section",
    "build_report",
    "landscape_section",
    "latency_section",
    "load_study",
    "render_html",
    "search_section",
    "validation_section",
    "write_report",
    "zoo_section",
]


# --- inputs --------------------------------------------------------------------------------------


def load_study(
    study_name: str | None, storage: str | None
) -> tuple[optuna.Study | None, str | None, str | None]:
    """Load a study for the report; return ``(study, storage shown masked, note)``.

    - ``storage`` given: the named study there, or its most recent study when no name is given;
    - only ``study_name``: the search's default storage for it, ``sqlite:///runs/<name>.db``;
    - neither: the most recently written ``runs/*.db`` of the search, if any.

    A named study that does not exist, or a storage that cannot be opened, raises
    ``ValueError`` (with the studies that do exist); no study at all is not an error.
    """
    import optuna

    from explorer.search import RUNS_DIR, open_existing_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if storage is None and study_name is None:
        candidates = sorted(RUNS_DIR.glob("*.db"), key=lambda p: p.stat().st_mtime)
        if not candidates:
            return None, None, f"no study given and no search database under {RUNS_DIR}."
        storage = f"sqlite:///{candidates[-1]}"
        note = "(the most recently written search database under runs/; choose with --study)"
    else:
        note = None
    store, shown = open_existing_storage(storage, study_name=study_name)
    try:
        summaries = optuna.get_all_study_summaries(storage=store, include_best_trial=False)
    except Exception as exc:  # noqa: BLE001 - an unreadable storage is bad input here
        raise ValueError(f"cannot read the study storage {shown}: {type(exc).__name__}") from None
    names = [s.study_name for s in summaries]
    if study_name is None:
        if not summaries:
            return None, shown, f"the storage {shown} holds no study."
        latest = max(summaries, key=lambda s: (s.datetime_start or _dt.datetime.min, s._study_id))
        study_name = latest.study_name
        if len(names) > 1:
            note = f"(the most recent of {len(names)} studies in the storage; choose with --study)"
    elif study_name not in names:
        listed = ", ".join(repr(n) for n in sorted(names)) or "none"
        raise ValueError(
            f"study {study_name!r} does not exist in {shown}; the studies there are: {listed}."
        )
    return optuna.load_study(study_name=study_name, storage=store), shown, note


# --- entry point ---------------------------------------------------------------------------------


def build_report(
    *,
    study_name: str | None = None,
    storage: str | None = None,
    profiles: str | os.PathLike[str] | None = None,
    validation: str | os.PathLike[str] | None = None,
    zoo: str | os.PathLike[str] | None = None,
    study: optuna.Study | None = None,
    landscape: dict[str, Any] | None = None,
    first: Sequence[Section] = (),
) -> tuple[list[Section], dict[str, str]]:
    """Build every section; return them with the inputs they came from.

    Parameters
    ----------
    study_name, storage : str, optional
        The Optuna study and its storage URL or journal path (see :func:`load_study` for the
        defaults: the search's ``sqlite:///runs/<study>.db``, or the newest one).
    profiles : path, optional
        A folder of profile CSVs (``data/profiles/<device>``) or the folder of device folders.
        Default: ``data/profiles``.
    validation : path, optional
        The table ``specdec validate`` wrote. Default: the validation module's default output.
    zoo : path, optional
        The zoo table. Default: ``data/zoo/drafts.csv``.
    study : optuna.Study, optional
        An already-loaded study (the demo passes its own); overrides ``study_name``.
    landscape : dict, optional
        Keyword arguments of :func:`landscape_section` (e.g. a profiled target's latency).
    first : sequence of Section
        Sections put before the standard ones (the demo's summary).
    """
    inputs: dict[str, str] = {}
    if study is not None:
        from explorer.search import mask_url

        shown, note = mask_url(storage), None
    else:
        study, shown, note = load_study(study_name, storage)
    inputs["study"] = f"{study.study_name} ({shown})" if study is not None else "none"
    profiles_path = Path(profiles) if profiles is not None else None
    if profiles_path is not None:
        _check_profiles_folder(profiles_path)
    inputs["profiles"] = str(profiles_path or "data/profiles (default)")
    if validation is not None and not Path(validation).is_file():
        raise FileNotFoundError(f"validation table {str(validation)!r} does not exist.")
    inputs["validation"] = str(validation or "default")
    if zoo is not None and not Path(zoo).is_file():
        raise FileNotFoundError(f"zoo table {str(zoo)!r} does not exist.")
    inputs["zoo table"] = str(zoo or "data/zoo/drafts.csv (default)")
    sections = [
        *first,
        landscape_section(**(landscape or {})),
        latency_section(profiles_path),
        search_section(study, storage_display=shown, note=note),
        validation_section(validation, study=study),
        zoo_section(zoo),
    ]
    return sections, inputs


def _make_readable(path: Path) -> None:
    # The atomic writer's temporary file is created 0600; a report is for others to read.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def _check_profiles_folder(path: Path) -> None:
    if not path.exists():
        raise FileNotFoundError(f"profile folder {str(path)!r} does not exist.")
    if not path.is_dir():
        raise NotADirectoryError(f"profile path {str(path)!r} is not a folder.")
    if not any(path.rglob("*.csv")):
        raise ValueError(f"profile folder {str(path)!r} holds no profile CSV files (*.csv).")


def write_report(
    out: str | os.PathLike[str],
    *,
    title: str = "specdec-explorer report",
    **kwargs: Any,
) -> dict[str, Any]:
    """Build the report and write it atomically to ``out``; return a summary for ``--json``.

    Keyword arguments are those of :func:`build_report`.
    """
    out = Path(out)
    if out.suffix.lower() not in (".html", ".htm"):
        raise ValueError(f"`--out` must name an .html file, but got {str(out)!r}.")
    sections, inputs = build_report(**kwargs)
    text = render_html(sections, title=title, inputs=inputs)
    atomic_write_text(out, text)
    _make_readable(out)
    return {
        "path": str(out),
        "bytes": len(text.encode("utf-8")),
        "sections": {
            s.key: (
                {"status": "ok", **s.facts}
                if s.has_data
                else {"status": "no data", "reason": s.missing}
            )
            for s in sections
        },
        "figures": sum(1 for s in sections for b in s.blocks if hasattr(b, "to_plotly_json")),
    }
