"""The report's sections: speedup landscape, latency, search, validation, zoo.

Each section is built by one function that returns a :class:`Section` (its title, an
introduction, and blocks of figures, tables and text); a section without data says so in words
(never placeholder numbers). An input named explicitly that is missing or malformed (a profile
folder without profiles, a table that does not exist) raises ``ValueError`` or ``OSError``; a
default input that is absent gives a section without data. The builders are public so that
notebooks can show one section (:func:`explorer.figures.notebook.show`); the HTML page that holds
them is :mod:`explorer.report_html`, and :mod:`explorer.report` builds and writes it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import optuna
    import pandas as pd

__all__ = [
    "REPO_ROOT",
    "SECTION_KEYS",
    "Section",
    "landscape_section",
    "latency_section",
    "search_section",
    "validation_section",
    "zoo_section",
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


def _query_cost_blocks(p: Any, *, batch: int) -> list[Any]:
    """The verification-cost figure where some shape was profiled at q = 1 and two more q."""
    from explorer.figures import query_cost as qc

    try:
        info = qc.get_query_cost_info(p, batch=batch)
    except ValueError:
        return [
            "No shape here was profiled at three or more query lengths q, so how a verification "
            "pass (q = γ + 1 tokens) grows with q is not shown; `specdec profile --query "
            "1,2,3,4,5,6,7,8,9` measures it."
        ]
    return [
        "How a forward pass grows with the tokens it carries, T(q) / T(1) at each shape's full "
        "depth: a verification pass over q = γ + 1 tokens costs this many one-token passes. "
        "Below the dashed line, checking q draft tokens at once is cheaper than running them "
        "one by one; where a curve dips, a longer pass is cheaper than a shorter one (measured, "
        "kept by the latency model).",
        qc.plot_query_cost(info),
    ]


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
    blocks += _query_cost_blocks(p, batch=batch)
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
