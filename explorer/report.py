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

import numpy as np

from perfmodel.atomic import atomic_write_text

if TYPE_CHECKING:  # pragma: no cover
    import optuna
    import pandas as pd
    import plotly.graph_objects as go

__all__ = [
    "SECTION_KEYS",
    "Section",
    "build_report",
    "load_study",
    "render_html",
    "write_report",
]

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
    target_latency: Any = None,
    latency_source: str | None = None,
) -> Section:
    """The analytical speedup landscape; needs no measurements, so it always has data.

    The verification cost v(b, γ) comes from the roofline of ``target`` on ``hardware``, or from
    ``target_latency`` (a :class:`perfmodel.LatencyFn`, e.g. a profiled target on this machine,
    described by ``latency_source``) when given.
    """
    from explorer.figures import landscape as fl
    from perfmodel import get_hardware, get_preset

    if target_latency is None:
        latency = fl.RooflineLatency(get_preset(target), get_hardware(hardware))
        source = latency.describe()
        where = (
            f"the roofline of {target} on {hardware} at context {context}, which is memory-bound "
            "at batch 1 (verification is free) and compute-bound at large batch (verification "
            "costs more, speculation pays less)"
        )
    else:
        latency = target_latency
        source = latency_source or "the target's latency function"
        where = f"{source}, at context {context}"
    info = fl.get_speedup_landscape_info(
        batches=batches,
        overhead_ratios=overhead_ratios,
        target_latency=latency,
        context=context,
        latency_source=source,
    )
    intro = (
        "Speculative decoding lets a small draft model propose γ tokens that the large target "
        "model checks in one forward pass. Whether that is faster than plain decoding depends on "
        "three numbers: the acceptance rate α (how often the target keeps a proposed token), the "
        "latency ratio c = T_draft / T_target (how cheap a draft token is), and how much the "
        "verification pass over γ+1 tokens costs compared with an ordinary one-token pass. These "
        "figures are computed from the model alone (no measurements). The batch menu (top right) "
        f"switches between batch sizes; the verification cost comes from {where}. "
        "The slider adds a per-step overhead (sampling, acceptance, cache rollback) as a fraction "
        "of one target pass. The dotted curves are Leviathan et al.'s walltime factor, which this "
        "model reduces to at batch 1 with no overhead."
    )
    b0 = 0
    facts = {
        "batches": [int(b) for b in info.batch],
        "max_speedup_batch1": float(info.optimal_speedup[b0, 0].max()),
        "latency_source": source,
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


def latency_section(
    profiles: str | os.PathLike[str] | None,
    *,
    batch: int | None = None,
    query: int | None = None,
) -> Section:
    """Per-layer and per-token latency from profile CSVs, with roofline bounds.

    ``batch`` and ``query`` pick the rows shown (default: 1 where profiled, else the smallest).
    """
    title = "Latency on real hardware (profiles)"
    intro = (
        "A draft's latency per token, not its size alone, decides what it is worth. The profiler "
        "times the real model class at several depths and splits a forward pass into a fixed "
        "part (embeddings, LM head) and a per-layer part, T = T_fixed + L·T_layer. Layers run one "
        "after another, so at equal parameter count a deep, narrow draft is slower than a shallow, "
        "wide one wherever a layer's time is dominated by fixed costs rather than by its size. "
        "The roofline lower bound (bytes / bandwidth, FLOPs / peak) is drawn beside."
    )
    from explorer.figures import latency as fl

    folder = Path(profiles) if profiles is not None else REPO_ROOT / "data" / "profiles"
    if profiles is None and (not folder.is_dir() or not any(folder.rglob("*.fit.csv"))):
        return _missing(
            "latency",
            title,
            intro,
            f"no profiles under {folder} (run `specdec profile`, or pass --profiles DIR).",
        )
    p = fl.load_profiles(folder)  # an explicit folder that is empty or malformed: ValueError
    if batch is None:
        batch = 1 if (p.fits["batch"] == 1).any() else int(p.fits["batch"].min())
    at_b = p.fits[p.fits["batch"] == batch]
    if query is None:
        query = 1 if (at_b["query"] == 1).any() else int(at_b["query"].min())
    layer = fl.get_layer_latency_info(p, batch=batch, query=query)
    # Over depth, only comparable shapes (one layer family, vocabulary and tying), so that the
    # parameter axis of the depth-effect figure compares like with like.
    token = fl.get_token_latency_info(p, batch=batch, query=query, group="largest")
    effect = fl.get_depth_effect_info(token)
    blocks: list[Any] = [
        f"Profiles read from {p.source}: {p.fits['model'].nunique()} models on "
        f"{len(p.devices)} device(s) ({', '.join(p.devices)}); shown at batch {batch} with "
        f"{query} new token(s) per row, as {fl.STATISTIC_LABELS[layer.statistic]}"
        + (
            " (the process CPU time of one-thread runs: the uncontended latency on a machine "
            "shared with other jobs, and what the latency model is fitted to)."
            if layer.statistic == "cpu"
            else "."
        )
        + " The per-token figures show the largest family of comparable shapes (one layer "
        "layout and vocabulary).",
        fl.plot_layer_latency(layer),
        fl.plot_token_latency(token),
        fl.plot_depth_effect(token),
    ]
    if len(effect.depth):
        blocks.append(
            "Shapes of about the same parameter count (within 15%) but different depth; "
            "'× fastest' is each shape's per-token latency over the fastest of its budget:"
        )
        blocks.append(fl.depth_effect_table(effect))
    else:
        blocks.append(
            "No two profiled shapes have about the same parameter count (within 15%) at "
            "different depths, so the depth effect cannot be read off a matched pair here."
        )
    blocks.append("The depth fits behind these figures (one row per profiled model):")
    blocks.append(_fit_table(p.fits, batch=batch, query=query))
    facts = {
        "devices": list(p.devices),
        "models": int(p.fits["model"].nunique()),
        "batch": batch,
        "query": query,
    }
    return Section("latency", title, intro, blocks, facts=facts)


def _fit_table(fits: pd.DataFrame, *, batch: int, query: int) -> pd.DataFrame:
    import pandas as pd

    use = fits[(fits["batch"] == batch) & (fits["query"] == query)].copy()
    use = use.sort_values(["device", "hidden", "layers", "context"])
    table = pd.DataFrame(
        {
            "device": use["device"],
            "model": use["model"],
            "layers": use["layers"],
            "hidden": use["hidden"],
            "ffn": use["ffn"],
            "context": use["context"],
            "dtype": use["dtype"],
            "T_fixed ms (wall)": use["t_fixed_ms"],
            "T_layer ms (wall)": use["t_layer_ms"],
            "roofline layer ms": use["roofline_layer_ms"],
            "fit residual %": 100 * use["fit_rel_residual"],
        }
    )
    for col, name in (
        ("cpu_t_fixed_ms", "T_fixed ms (CPU)"),
        ("cpu_t_layer_ms", "T_layer ms (CPU)"),
    ):
        if col in use:
            table[name] = use[col]
    if "whole_rel_error" in use:
        table["whole vs composed %"] = 100 * use["whole_rel_error"]
    return table.reset_index(drop=True)


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
    try:
        # two objectives: cost against tokens/s; one: the `params` attribute against it
        blocks.append(fs.plot_pareto(fs.get_pareto_info(study)))
    except ValueError as exc:
        blocks.append(f"No Pareto front: {exc}")
    blocks.append(fs.plot_history(fs.get_history_info(study)))
    blocks.append(fs.plot_importance(fs.get_importance_info(study)))
    table = fs.study_summary(study)
    if len(table):
        blocks.append("The best feasible configurations (for two objectives: the Pareto front):")
        blocks.append(table)
    facts = {"study": study.study_name, "complete_trials": n_complete}
    return Section("search", title, intro, blocks, facts=facts)


def validation_section(
    validation: str | os.PathLike[str] | None, *, study: optuna.Study | None = None
) -> Section:
    """Predicted vs measured α, latency, tokens/s and speedup for every validated draft.

    The table comes from ``validation`` (a file ``specdec validate`` wrote), else from the
    study's trials that validation annotated (``measured_*`` user attributes).
    """
    import pandas as pd

    from explorer.figures import validation as fv

    title = "Validation: predicted vs measured"
    intro = (
        "Predictions are only worth what they are checked against. Validation trains (distils) "
        "the drafts the search proposed, measures their latency and acceptance rate, and runs "
        "real speculative decoding with them; each point compares what the model predicted "
        "before the draft existed with what was measured (on the diagonal = exact)."
    )
    if validation is not None:
        frame, source = fv.load_table(validation), str(validation)
    else:
        frame, source = _validated_trials(study), f"study {study.study_name!r}" if study else ""
        if frame is None:
            reason = (
                "no validation table was given (--validation FILE) and "
                + (
                    f"no trial of study {study.study_name!r} has measured values yet"
                    if study is not None
                    else "there is no study to read validated trials from"
                )
                + " (run `specdec validate --study NAME`)."
            )
            return _missing("validation", title, intro, reason)
    info = fv.get_validation_info(frame)
    errors = fv.validation_error_table(info)
    blocks: list[Any] = [
        f"{len(info.label)} validated draft(s) from {source}.",
        fv.plot_predicted_vs_measured(info),
        fv.plot_validation_errors(info),
        "Errors per quantity (predicted / measured − 1):",
        errors,
        "Every validated draft:",
        pd.DataFrame(frame),
    ]
    facts = {
        "drafts": len(info.label),
        "quantities": list(info.quantity),
        "median_abs_error_pct": {
            q: _finite(v) for q, v in zip(info.quantity, errors["median |error| %"], strict=True)
        },
    }
    return Section("validation", title, intro, blocks, facts=facts)


def _finite(value: float) -> float | None:
    return None if value != value else float(value)  # NaN -> None for JSON


def _validated_trials(study: optuna.Study | None) -> pd.DataFrame | None:
    """Trials of ``study`` that carry measured values, as a validation table, or None."""
    if study is None:
        return None
    from explorer.search import trials_frame

    frame = trials_frame(study)
    measured = [c for c in frame.columns if str(c).startswith("measured_")]
    if frame.empty or not measured:
        return None
    frame = frame.dropna(subset=measured, how="all")
    return frame if len(frame) else None


def zoo_section(drafts_csv: str | os.PathLike[str] | None) -> Section:
    """The zoo's measured drafts: shallow-wide vs deep-narrow at matched parameter counts."""
    from explorer.figures import validation as fv
    from explorer.figures import zoo as fz
    from explorer.train import portable_path

    title = "Shallow-wide vs deep-narrow drafts (model zoo)"
    intro = (
        "The seed paper (Yan et al. 2024, 'Decoding Speculative Decoding') found that, at about "
        "the same parameter count, a shallow and wide draft gives more speculative throughput "
        "than a deep and narrow one: its latency is lower while its acceptance rate is about the "
        "same. The zoo's drafts were all distilled from the same target with the same token "
        "budget and measured on this machine (α̂ on HumanEval prompts, per-token latency, real "
        "speculative runs). The model's prediction for each draft uses its measured α and "
        "latencies, so any gap is the step model's."
    )
    path = Path(drafts_csv) if drafts_csv is not None else REPO_ROOT / "data" / "zoo" / "drafts.csv"
    if drafts_csv is None and not path.is_file():
        return _missing(
            "zoo",
            title,
            intro,
            f"no zoo table at {path} (the zoo is built by scripts/build_zoo.sh).",
        )
    table = fv.load_table(path)
    zoo = fv.get_zoo_info(table)
    pairs = fv.get_shape_pairs_info(zoo)
    check = fv.get_validation_info(fv.zoo_validation_frame(zoo))
    blocks: list[Any] = [
        f"{len(zoo.name)} drafts from {portable_path(path)}; greedy decoding, each draft at the γ that its "
        "measurements favour.",
        fv.plot_zoo_tradeoff(zoo),
    ]
    if len(pairs.shallow):
        blocks += [
            fv.plot_shape_pairs(pairs),
            "Pairs of distilled drafts within 1.5× of each other's parameter count, shallower "
            "first (greedy decoding):",
            fv.shape_pairs_table(pairs),
        ]
        if "best_gamma_t1" in table.columns:
            t1 = fv.get_shape_pairs_info(fv.get_zoo_info(table, decoding="t1"))
            blocks += ["The same pairs when sampling at temperature 1:", fv.shape_pairs_table(t1)]
    else:
        blocks.append(
            "No two distilled drafts of different depth are within 1.5× of each other's "
            "parameter count."
        )
    blocks += [
        "Model vs measured for the zoo (perfmodel with each draft's measured α and per-token "
        "latencies, the verification pass taken to cost one target token, no overhead):",
        fv.validation_error_table(check),
    ]
    alpha_loss = None
    if set(fz.alpha_loss_columns()) <= set(table.columns):
        alpha_loss = fz.get_alpha_loss_info(table)
        blocks += [
            "The seed paper found that a draft's acceptance follows its language-modelling "
            "quality only weakly. Here, each draft's α̂ against its validation loss:",
            fz.plot_alpha_loss(alpha_loss),
        ]
    target = path.parent / "target"
    if (target / "training_log.csv").is_file():
        blocks += [
            f"The target's training curve ({portable_path(target)}), every stage:",
            fz.plot_training_curve(fz.get_training_curve_info(target)),
        ]
    facts = {
        "drafts": len(zoo.name),
        "pairs": len(pairs.shallow),
        "median_gain_pct": _finite(float(np.median(pairs.measured_gain_pct)))
        if len(pairs.shallow)
        else None,
        "spearman_loss_alpha_t1": None if alpha_loss is None else _finite(alpha_loss.spearman_t1),
    }
    return Section("zoo", title, intro, blocks, facts=facts)


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

    from explorer.search import RUNS_DIR, default_storage, mask_url, open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if storage is None and study_name is None:
        candidates = sorted(RUNS_DIR.glob("*.db"), key=lambda p: p.stat().st_mtime)
        if not candidates:
            return None, None, f"no study given and no search database under {RUNS_DIR}."
        storage = f"sqlite:///{candidates[-1]}"
        note = "(the most recently written search database under runs/; choose with --study)"
    else:
        note = None
    url = storage or default_storage(study_name)
    shown = mask_url(url)
    local = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else None
    if local is None and "://" not in url:
        local = url  # a journal file
    if local is not None and not Path(local).is_file():
        if study_name is not None:
            raise ValueError(f"study {study_name!r} does not exist: there is no {shown}.")
        raise ValueError(f"the study storage {shown} does not exist.")
    store = open_storage(url, study_name=study_name or "report")
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
table.data td { white-space: nowrap; }
table.data td:first-child, table.data th:first-child { text-align: left; }
.figure { margin: 1em 0 1.5em; }
.table-wrap { overflow-x: auto; max-width: 100%; }
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
            parts.append(f'<div class="table-wrap">{_table_html(block)}</div>')
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
