"""What the notebooks call: find their inputs (or make small ones), show sections, print checks.

The notebooks under ``notebooks/`` hold no logic: a parameters cell, then calls into this module,
:mod:`explorer.figures` and :mod:`perfmodel`. Whatever needs a decision (is there a study? are
there profiles?) is decided here, so every notebook runs top to bottom on a fresh checkout.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # pragma: no cover
    import optuna

    from explorer.figures.landscape import SpeedupLandscapeInfo

__all__ = [
    "REPO_ROOT",
    "landscape_checks",
    "latency_checks",
    "make_small_study",
    "open_study",
    "show",
]

REPO_ROOT = Path(__file__).resolve().parent.parent.parent


def show(item: Any) -> None:
    """Display a report :class:`~explorer.report.Section` (text, figures, tables) or one object."""
    from IPython.display import HTML, Markdown, display

    from explorer.report import Section

    if not isinstance(item, Section):
        display(item)
        return
    display(Markdown(f"### {item.title}\n\n{item.intro}"))
    if item.missing is not None:
        display(Markdown(f"**No data:** {item.missing}"))
    for block in item.blocks:
        if isinstance(block, str):
            display(Markdown(block))
        elif isinstance(block, tuple) and block and block[0] == "html":
            display(HTML(block[1]))
        else:
            display(block)


# --- landscape -----------------------------------------------------------------------------------


def landscape_checks(info: SpeedupLandscapeInfo) -> pd.DataFrame:
    """Model vs closed form: the landscape against Leviathan et al.'s factor and Cor. 3.9.

    Rows: the largest difference between this model at batch ``info.batch[0]`` without overhead
    and Leviathan's walltime factor (0 when ``batch[0] == 1`` with v = 1), and between the
    break-even α of γ = 1 and c (Leviathan's corollary: γ = 1 pays iff α > c).
    """
    first_o = int(np.argmin(info.overhead_ratio))
    diff = np.abs(info.speedup[0, first_o] - info.leviathan_factor)
    rows = [
        {
            "check": f"max |speedup − Leviathan factor| (batch {info.batch[0]}, "
            f"overhead {info.overhead_ratio[first_o]:g})",
            "value": float(diff.max()),
        }
    ]
    if 1 in info.break_even_gamma.tolist():
        j = info.break_even_gamma.tolist().index(1)
        be = info.break_even_alpha[0, first_o, j]
        ok = np.isfinite(be)
        rows.append(
            {
                "check": "max |break-even α(γ=1) − c| (Leviathan Cor. 3.9, where v = 1)",
                "value": float(np.abs(be[ok] - info.latency_ratio[ok]).max())
                if ok.any()
                else np.nan,
            }
        )
    return pd.DataFrame(rows)


# --- latency -------------------------------------------------------------------------------------


def latency_checks(profiles: str | os.PathLike[str]) -> pd.DataFrame:
    """Per profiled model: measured per-layer time against its roofline bound, and fit quality.

    ``roofline / measured`` is the fraction of the bound reached (1 = at the roofline);
    ``whole vs composed %`` compares the whole model timed with T_fixed + L·T_layer, where the
    profiler timed both.
    """
    from explorer.figures.latency import load_profiles

    fits = load_profiles(profiles).fits
    fits = fits[fits["query"] == fits["query"].min()]
    # CPU time of the one-thread runs where the profiler recorded it (the uncontended latency).
    cpu = "cpu_t_layer_ms" in fits and fits["cpu_t_layer_ms"].notna().all()
    layer = fits["cpu_t_layer_ms"] if cpu else fits["t_layer_ms"]
    residual = fits["cpu_fit_rel_residual"] if cpu else fits["fit_rel_residual"]
    kind = "CPU time" if cpu else "wall"
    out = pd.DataFrame(
        {
            "device": fits["device"],
            "model": fits["model"],
            "batch": fits["batch"],
            "context": fits["context"],
            f"T_layer ms ({kind})": layer,
            "T_layer ms (roofline)": fits["roofline_layer_ms"],
            "roofline / measured": fits["roofline_layer_ms"] / layer,
            "depth-fit residual %": 100 * residual,
        }
    )
    if "whole_rel_error" in fits:
        out["whole vs composed %"] = 100 * fits["whole_rel_error"]
    return out.sort_values(["device", "batch", "model"]).reset_index(drop=True)


# --- search --------------------------------------------------------------------------------------


def make_small_study(
    folder: str | os.PathLike[str] | None = None,
    *,
    target: str = "llama-7b",
    hardware: str = "H200",
    acceptance_rate: float | None = None,
    trials: int = 40,
    seed: int = 0,
) -> optuna.Study:
    """Run a small two-objective search (tokens/s vs parameters) into a journal file in ``folder``.

    The target's and the drafts' latencies come from the roofline of ``hardware``; α from the
    zoo's acceptance model when ``data/zoo/drafts.csv`` exists, else ``acceptance_rate``
    (default 0.7 as a what-if). When ``folder`` is None the journal goes to a temporary folder,
    which is removed when the Python process (the notebook's kernel) exits.
    """
    from explorer import search as s
    from explorer.objective import Objective, SearchProblem

    if folder is None:
        folder = Path(tempfile.mkdtemp(prefix="specdec-nb-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
    folder = Path(folder)
    spec = s.resolve_target(target)
    space = s.space_for(spec, space_file=None)
    target_latency, draft_latency, _ = s.build_latency(spec, hardware=hardware)
    if acceptance_rate is None and not s.DEFAULT_DRAFTS_CSV.is_file():
        acceptance_rate = 0.7
    acceptance, _ = s.build_acceptance(alpha=acceptance_rate)
    problem = SearchProblem(
        target=spec,
        target_latency=target_latency,
        draft_latency=draft_latency,
        acceptance=acceptance,
        cost="params",
    )
    objective = Objective(problem=problem, space=space, mode="multi")
    return s.run_search(
        objective,
        study_name="notebook-example",
        n_trials=trials,
        storage=str(folder / "notebook-example.log"),  # a journal file: faster than SQLite
        seed=seed,
        settings={"target": target, "mode": "multi", "cost": "params"},
        progress=False,
    )


def open_study(
    study: str | None = None, storage: str | None = None, *, fallback_trials: int = 40
) -> tuple[optuna.Study, str]:
    """The named study, else the newest one under ``runs/``, else a small one made now.

    Returns the study and a sentence saying which it is.
    """
    from explorer.report import load_study

    found, shown, _ = load_study(study, storage)
    if found is not None:
        return found, f"study {found.study_name!r} from {shown}"
    made = make_small_study(trials=fallback_trials)
    return made, (
        f"no study under runs/ yet, so a small example search ({fallback_trials} trials, "
        "llama-7b target, H200 roofline) was run into a temporary folder"
    )
