"""One self-contained HTML report: speedup landscape, latency, search, validation, zoo.

The report is a single file: plotly.js is inlined once in ``<head>`` (plotly's offline bundle), each
figure is a ``<div>`` drawn by a short inline script, tables are pandas HTML. Nothing is fetched
when it is opened. It is written atomically, so a reader never sees half a report.

Each section is built by one function that returns a :class:`Section`; a section without data
says so in words (never placeholder numbers). Inputs the user named explicitly and that are wrong
(a study that does not exist, a profile folder without profiles) raise ``ValueError``, which the
CLI turns into exit code 2.
"""

from __future__ import annotations

import datetime as _dt
import html
import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from perfmodel.atomic import atomic_write_text

if TYPE_CHECKING:  # pragma: no cover
    import optuna
    import pandas as pd
    import plotly.graph_objects as go

__all__ = ["SECTION_KEYS", "Section", "build_report", "render_html", "write_report"]

# Stable ids: the report's anchors, the test's checks and `specdec report --json`'s keys.
SECTION_KEYS = ("landscape", "latency", "search", "validation", "zoo")

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Section:
    """One part of the report.

    ``blocks`` holds, in order, plotly figures, pandas tables and paragraphs (``str``, plain text
    that is escaped) or ``("html", markup)`` pairs for trusted markup built here.
    """

    key: str
    title: str
    intro: str
    blocks: list[Any] = field(default_factory=list)
    missing: str | None = None  # why there is no data; the section then shows only this
    facts: dict[str, Any] = field(default_factory=dict)  # numbers for --json and the tests

    @property
    def has_data(self) -> bool:
        return self.missing is None


# --- sections ------------------------------------------------------------------------------------


def landscape_section(
    *,
    target: str = "llama-65b",
    hardware: str = "H200",
    batches: Sequence[int] = (1, 32, 128),
    overhead_ratios: Sequence[float] = (0.0, 0.05, 0.1, 0.2),
    context: int = 512,
) -> Section:
    """The analytical speedup landscape; needs no measurements, so it always has data."""
    from explorer.figures import landscape as fl
    from perfmodel import get_hardware, get_preset

    latency = fl.RooflineLatency(get_preset(target), get_hardware(hardware))
    info = fl.get_speedup_landscape_info(
        batches=batches,
        overhead_ratios=overhead_ratios,
        target_latency=latency,
        context=context,
        latency_source=latency.describe(),
    )
    intro = (
        "Speculative decoding lets a small draft model propose γ tokens that the large target "
        "model checks in one forward pass. Whether that is faster than plain decoding depends on "
        "three numbers: the acceptance rate α (how often the target keeps a proposed token), the "
        "latency ratio c = T_draft / T_target (how cheap a draft token is), and how much the "
        "verification pass over γ+1 tokens costs compared with an ordinary one-token pass. These "
        "figures are computed from the model alone (no measurements). The batch menu (top right) "
        f"switches between batch sizes; the verification cost comes from the roofline of {target} "
        f"on {hardware} at context {context}, which is memory-bound at batch 1 (verification is "
        "free) and compute-bound at large batch (verification costs more, speculation pays less). "
        "The slider adds a per-step overhead (sampling, acceptance, cache rollback) as a fraction "
        "of one target pass. The dotted curves are Leviathan et al.'s walltime factor, which this "
        "model reduces to at batch 1 with no overhead."
    )
    b0 = 0
    facts = {
        "batches": [int(b) for b in info.batch],
        "max_speedup_batch1": float(info.optimal_speedup[b0, 0].max()),
        "target": target,
        "hardware": hardware,
    }
    blocks: list[Any] = [
        fl.plot_speedup_landscape(info),
        fl.plot_speedup_curves(info),
        fl.plot_optimal_gamma(info),
        fl.plot_break_even(info),
        (
            "Reading it: in the heatmap, each cell is the best speedup over γ ∈ 0..γ_max; hover "
            "for the optimal γ. Left of the red line no γ beats plain decoding. Leviathan et "
            "al.'s corollary, α > c suffices for γ = 1, is the dotted diagonal of the last figure."
        ),
    ]
    return Section("landscape", "Speedup landscape (model)", intro, blocks, facts=facts)


def _missing(key: str, title: str, intro: str, reason: str) -> Section:
    return Section(key, title, intro, missing=reason)


def latency_section(profiles: str | os.PathLike[str] | None) -> Section:
    """Per-layer and per-token latency from profile CSVs, with roofline bounds."""
    title = "Latency on real hardware (profiles)"
    intro = (
        "A draft's latency per token, not its size alone, decides what it is worth. The profiler "
        "times the real model class at several depths and splits a forward pass into a fixed "
        "part (embeddings, LM head) and a per-layer part, T = T_fixed + L·T_layer. Layers run one "
        "after another, so at equal parameter count a deep, narrow draft is slower than a shallow, "
        "wide one wherever a layer's time is dominated by fixed costs rather than by its size. "
        "The roofline lower bound (bytes / bandwidth, FLOPs / peak) is drawn beside."
    )
    try:
        from explorer.figures import latency as fl
    except ImportError as exc:  # the profiler's modules have not landed
        return _missing("latency", title, intro, f"the latency figures are unavailable ({exc}).")
    return fl.latency_section_blocks(profiles, title=title, intro=intro)


def search_section(
    study: optuna.Study | None, *, storage_display: str | None = None, note: str | None = None
) -> Section:
    """Pareto front, history, importance and best trials of a draft search."""
    from explorer.figures import search as fs

    title = "Draft search (Optuna study)"
    intro = (
        "The search proposes draft shapes (depth, width, heads, ...) and a γ, predicts the "
        "speculative tokens/s of each with the fitted latency and acceptance models, and keeps "
        "the configurations that give the most tokens/s for their cost. Nothing here was trained "
        "or run: these are predictions; the validation section checks some of them."
    )
    if study is None:
        return _missing("search", title, intro, note or "no study was given (pass --study NAME).")
    n_complete = len(fs._complete_trials(study))
    if n_complete == 0:
        return _missing(
            "search", title, intro, f"study {study.study_name!r} has no complete trials yet."
        )
    where = f" in {storage_display}" if storage_display else ""
    blocks: list[Any] = [
        f"Study {study.study_name!r}{where}: {n_complete} complete trials, "
        f"{len(study.directions)} objective(s). {note or ''}".strip()
    ]
    if len(study.directions) >= 2:
        blocks.append(fs.plot_pareto(fs.get_pareto_info(study)))
    blocks.append(fs.plot_history(fs.get_history_info(study)))
    blocks.append(fs.plot_importance(fs.get_importance_info(study)))
    table = fs.study_summary(study)
    if len(table):
        blocks.append("The best feasible configurations (for two objectives: the Pareto front):")
        blocks.append(table)
    facts = {"study": study.study_name, "complete_trials": n_complete}
    return Section("search", title, intro, blocks, facts=facts)


def validation_section(validation: str | os.PathLike[str] | None) -> Section:
    """Predicted vs measured α, latency and tokens/s for validated drafts."""
    title = "Validation: predicted vs measured"
    intro = (
        "Predictions are only worth what they are checked against. Validation trains the proposed "
        "drafts, measures their latency and acceptance, and runs real speculative decoding with "
        "them; each point compares what the model predicted with what was measured (on the "
        "diagonal = exact)."
    )
    try:
        from explorer.figures import validation as fv
    except ImportError as exc:
        return _missing(
            "validation", title, intro, f"the validation figures are unavailable ({exc})."
        )
    return fv.validation_section_blocks(validation, title=title, intro=intro)


def zoo_section(drafts_csv: str | os.PathLike[str] | None) -> Section:
    """The zoo's measured drafts: shallow-wide vs deep-narrow at matched parameter counts."""
    title = "Shallow-wide vs deep-narrow drafts (model zoo)"
    intro = (
        "The seed paper found that, at about the same parameter count, a shallow and wide draft "
        "gives more speculative throughput than a deep and narrow one, because its latency is "
        "lower while its acceptance rate is about the same. The zoo's drafts were all distilled "
        "from the same target with the same token budget, and measured on this machine."
    )
    try:
        from explorer.figures import validation as fv
    except ImportError as exc:
        return _missing("zoo", title, intro, f"the zoo figures are unavailable ({exc}).")
    return fv.zoo_section_blocks(drafts_csv, title=title, intro=intro)


# --- inputs --------------------------------------------------------------------------------------


def mask_storage_url(url: str) -> str:
    """The storage URL with any password replaced by ``***`` (never print a password)."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return "<storage>"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def load_study(
    study_name: str | None, storage: str | None, *, default_storage: str | None = None
) -> tuple[optuna.Study | None, str | None, str | None]:
    """Load the named study, or the most recent one in the default storage.

    Returns ``(study, storage_display, note)``. A named study that does not exist, or a storage
    that cannot be opened, raises ``ValueError`` naming the studies that do exist.
    """
    import optuna

    url = storage or default_storage
    if url is None:
        return None, None, "no study was given (pass --study NAME and --storage URL)."
    shown = mask_storage_url(url)
    if storage is None and url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        if not path.exists():
            if study_name is not None:
                raise ValueError(
                    f"study {study_name!r} does not exist: the default storage {shown} has no "
                    "database yet (run `specdec search` first, or pass --storage URL)."
                )
            return None, None, f"no study yet: the default storage {shown} does not exist."
    try:
        summaries = optuna.get_all_study_summaries(storage=url, include_best_trial=False)
    except Exception as exc:  # noqa: BLE001 - any storage failure is bad input here
        raise ValueError(f"cannot open the study storage {shown}: {type(exc).__name__}") from None
    names = [s.study_name for s in summaries]
    if study_name is None:
        if not summaries:
            return None, shown, f"the storage {shown} holds no study."
        latest = max(
            summaries,
            key=lambda s: (s.datetime_start or _dt.datetime.min, s._study_id),
        )
        study = optuna.load_study(study_name=latest.study_name, storage=url)
        note = f"(the most recent of {len(names)} studies in the storage; choose one with --study)"
        return study, shown, note
    if study_name not in names:
        listed = ", ".join(repr(n) for n in sorted(names)) or "none"
        raise ValueError(
            f"study {study_name!r} does not exist in {shown}; the studies there are: {listed}."
        )
    return optuna.load_study(study_name=study_name, storage=url), shown, None


# --- HTML ----------------------------------------------------------------------------------------

_CSS = """
body { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
       max-width: 1100px; margin: 0 auto; padding: 1.5em 2em 4em; color: #222; line-height: 1.5; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 2px solid #ddd; padding-bottom: 0.2em;
       margin-top: 2.2em; }
.meta { color: #666; font-size: 0.9em; }
.missing { background: #fff6e0; border-left: 4px solid #e0a800; padding: 0.6em 1em; }
nav ul { columns: 2; } nav a { text-decoration: none; }
table.data { border-collapse: collapse; font-size: 0.85em; margin: 1em 0; }
table.data th, table.data td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: right; }
table.data th { background: #f4f4f4; }
table.data td:first-child, table.data th:first-child { text-align: left; }
.figure { margin: 1em 0 1.5em; }
dl.defs dt { font-weight: bold; float: left; clear: left; width: 4em; }
dl.defs dd { margin-left: 4.5em; }
"""


def _figure_html(fig: go.Figure, div_id: str) -> str:
    # include_plotlyjs=False: the bundle is inlined once in <head>.
    return fig.to_html(
        full_html=False,
        include_plotlyjs=False,
        div_id=div_id,
        config={"displaylogo": False, "responsive": True},
    )


def _table_html(table: pd.DataFrame) -> str:
    return table.to_html(
        index=False,
        classes="data",
        border=0,
        na_rep="–",
        float_format=lambda v: f"{v:.4g}",
        escape=True,
    )


def _section_html(section: Section) -> str:
    import pandas as pd

    parts = [f'<section id="{section.key}">', f"<h2>{html.escape(section.title)}</h2>"]
    parts.append(f"<p>{html.escape(section.intro)}</p>")
    if section.missing is not None:
        parts.append(f'<p class="missing">No data: {html.escape(section.missing)}</p>')
    n_fig = 0
    for block in section.blocks:
        if isinstance(block, str):
            parts.append(f"<p>{html.escape(block)}</p>")
        elif isinstance(block, tuple) and len(block) == 2 and block[0] == "html":
            parts.append(block[1])
        elif isinstance(block, pd.DataFrame):
            parts.append(_table_html(block))
        else:  # a plotly figure
            n_fig += 1
            div = _figure_html(block, f"fig-{section.key}-{n_fig}")
            parts.append(f'<div class="figure">{div}</div>')
    parts.append("</section>")
    return "\n".join(parts)


def _provenance(inputs: dict[str, str]) -> str:
    import numpy
    import optuna
    import plotly

    rows = [
        ("written", _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")),
        ("machine", f"{platform.node()} ({platform.machine()}, {os.cpu_count()} CPUs)"),
        (
            "software",
            f"python {platform.python_version()}, numpy {numpy.__version__}, optuna "
            f"{optuna.__version__}, plotly {plotly.__version__}",
        ),
        *inputs.items(),
    ]
    items = "".join(f"<li>{html.escape(k)}: {html.escape(str(v))}</li>" for k, v in rows)
    return f'<ul class="meta">{items}</ul>'


def render_html(sections: Sequence[Section], *, title: str, inputs: dict[str, str]) -> str:
    """The whole report as one HTML string, plotly.js inlined once in <head>."""
    from plotly.offline import get_plotlyjs

    nav = "".join(
        f'<li><a href="#{s.key}">{html.escape(s.title)}</a>'
        f"{'' if s.has_data else ' (no data)'}</li>"
        for s in sections
    )
    defs = (
        '<dl class="defs">'
        "<dt>γ</dt><dd>draft tokens proposed per speculative step.</dd>"
        "<dt>α</dt><dd>acceptance rate: probability that a proposal is accepted given that all "
        "before it in the step were.</dd>"
        "<dt>τ</dt><dd>tokens emitted per step (accepted proposals + the target's one), in "
        "[1, γ+1].</dd>"
        "<dt>c</dt><dd>latency ratio T_draft / T_target of one-token passes.</dd>"
        "<dt>speedup</dt><dd>speculative tokens/s divided by plain decoding tokens/s of the "
        "target at the same batch.</dd></dl>"
    )
    body = "\n".join(_section_html(s) for s in sections)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>{_CSS}</style>
<script type="text/javascript">{get_plotlyjs()}</script>
</head>
<body>
<h1>{html.escape(title)}</h1>
<p>Which draft model should be used for speculative decoding on this hardware, what speedup will
it give, and what draft should be trained? This report shows the model's answer (the landscape),
what was measured (latency, the zoo), what the search proposes, and how far predictions were from
real runs. Figures are interactive: hover for values, drag to zoom, double-click to reset.</p>
{defs}
{_provenance(inputs)}
<nav><ul>{nav}</ul></nav>
{body}
</body>
</html>
"""


# --- entry point ---------------------------------------------------------------------------------


def default_storage_url() -> str | None:
    """The search's default storage URL, if the search module says one."""
    try:
        from explorer import search
    except ImportError:
        return None
    for name in ("default_storage_url", "DEFAULT_STORAGE", "DEFAULT_STORAGE_URL"):
        value = getattr(search, name, None)
        if callable(value):
            return str(value())
        if isinstance(value, str):
            return value
    return None


def build_report(
    *,
    study_name: str | None = None,
    storage: str | None = None,
    profiles: str | os.PathLike[str] | None = None,
    validation: str | os.PathLike[str] | None = None,
    zoo: str | os.PathLike[str] | None = None,
    study: optuna.Study | None = None,
) -> tuple[list[Section], dict[str, str]]:
    """Build every section; return them with the inputs they came from.

    Parameters
    ----------
    study_name, storage : str, optional
        The Optuna study and its storage URL. Without ``study_name`` the most recent study of the
        storage (default: the search's SQLite file under ``runs/``) is shown.
    profiles : path, optional
        A folder of profile CSVs (``data/profiles/<device>``) or the folder of device folders.
        Default: ``data/profiles``.
    validation : path, optional
        The table ``specdec validate`` wrote. Default: the validation module's default output.
    zoo : path, optional
        The zoo table. Default: ``data/zoo/drafts.csv``.
    study : optuna.Study, optional
        An already-loaded study (the demo passes its own); overrides ``study_name``.
    """
    inputs: dict[str, str] = {}
    if study is not None:
        shown, note = mask_storage_url(storage) if storage else None, None
    else:
        study, shown, note = load_study(study_name, storage, default_storage=default_storage_url())
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
        landscape_section(),
        latency_section(profiles_path),
        search_section(study, storage_display=shown, note=note),
        validation_section(validation),
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
