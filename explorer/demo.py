"""`specdec demo`: the main job end to end on this machine, on the shipped defaults.

Four stages, each with a progress bar:

1. **profile**: latency profiles of this machine for the zoo's target and the draft space. The
   committed profiles in ``data/profiles/<device>/`` are reused when their CPU is this one (the
   torch thread count is then set to theirs, so the runs below are timed as they were); what is
   missing (the zoo target, drafts with the zoo's vocabulary) is profiled now, briefly.
2. **search**: a short multi-objective Optuna search (predicted tokens/s against draft
   parameters) for the zoo target, latency from the profiles, α from the acceptance model fitted
   to the zoo's measured drafts; SQLite under the output folder (``runs/demo/`` by default).
3. **validate**: the best proposal is distilled from the target with the zoo's training code
   (a short run; ``--quick``: a tiny budget), then run for real with the speculative engine on
   HumanEval prompts, against plain decoding through the same engine.
4. **report**: one self-contained HTML report with a summary of this run first.

The result holds predicted and measured tokens/s, speedup, α and draft latency of the chosen
draft and γ, and the report's path.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = ["FULL", "QUICK", "DemoBudget", "run_demo"]

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ZOO = REPO_ROOT / "data" / "zoo"
DEFAULT_OUT = REPO_ROOT / "runs" / "demo"
COMMITTED_PROFILES = REPO_ROOT / "data" / "profiles"
PROMPTS = REPO_ROOT / "data" / "prompts" / "humaneval.jsonl"
# α used when the zoo has no measured drafts to fit the acceptance model to (said in the report).
FALLBACK_ALPHA = 0.6


@dataclass(frozen=True)
class DemoBudget:
    """How much each stage does. ``QUICK`` fits in about two minutes, ``FULL`` in ten.

    ``FULL`` distils the chosen draft on the zoo drafts' own budget (393216 tokens), so the
    acceptance model, fitted to the zoo, predicts α inside the range it was fitted on.
    """

    name: str
    trials: int  # complete trials of the search
    train_tokens: int  # distillation budget of the chosen draft
    seq_len: int
    batch_size: int
    eval_windows: int
    prompts: int  # HumanEval prompts of the real runs
    new_tokens: int  # tokens generated per prompt
    context: int  # prompt tokens kept (the search's n)
    profile_repeats: int
    profile_queries: tuple[int, ...]  # q values profiled for a missing target
    draft_widths: tuple[int, ...]  # widths profiled when the draft space has no profile
    depth_max: int  # deepest draft the search may propose
    gamma_max: int


QUICK = DemoBudget(
    name="quick", trials=24, train_tokens=4096, seq_len=128, batch_size=8, eval_windows=4,
    prompts=2, new_tokens=32, context=128, profile_repeats=2, profile_queries=(1, 4),
    draft_widths=(128, 256), depth_max=4, gamma_max=6,
)  # fmt: skip
FULL = DemoBudget(
    name="full", trials=200, train_tokens=393216, seq_len=256, batch_size=8, eval_windows=16,
    prompts=8, new_tokens=64, context=128, profile_repeats=3, profile_queries=(1, 2, 4, 8),
    draft_widths=(128, 256, 384), depth_max=8, gamma_max=8,
)  # fmt: skip


def _bar(total: int | None, desc: str, unit: str, enabled: bool):
    import sys

    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled, file=sys.stderr, leave=True)


# --- 1. profile ----------------------------------------------------------------------------------


_SLUG = re.compile(r"^(cpu-.+)-(\d+)c$")


def _matching_committed(slug: str) -> tuple[Path | None, int | None]:
    """A committed ``data/profiles/<device>`` of this CPU (any thread count) and its threads."""
    m = _SLUG.match(slug)
    if m is None or not COMMITTED_PROFILES.is_dir():
        folder = COMMITTED_PROFILES / slug
        return (folder, None) if folder.is_dir() else (None, None)
    base, threads = m.group(1), int(m.group(2))
    found = []
    for folder in sorted(COMMITTED_PROFILES.iterdir()):
        mm = _SLUG.match(folder.name)
        if folder.is_dir() and mm and mm.group(1) == base and any(folder.glob("*.csv")):
            found.append((int(mm.group(2)) != threads, int(mm.group(2)), folder))
    if not found:
        return None, None
    _, n, folder = min(found)  # this thread count first
    return folder, n


def _profiled_keys(folder: Path) -> set[tuple]:
    from perfmodel.latency_model import ARCH_KEY, load_profile_rows

    try:
        rows = load_profile_rows(folder)
    except ValueError:
        return set()
    keys = rows[list(ARCH_KEY)].drop_duplicates().itertuples(index=False)
    return {(str(k[0]), *map(int, k[1:6]), bool(k[6])) for k in keys}


def _arch_key(arch: Any) -> tuple:
    return (
        arch.family,
        arch.hidden,
        arch.ffn,
        arch.heads,
        arch.kv_heads,
        arch.vocab,
        bool(arch.tied_embeddings),
    )


def profile_stage(
    *, zoo: Path, out: Path, budget: DemoBudget, progress: bool, echo: Callable[[str], None]
) -> dict[str, Any]:
    """Reuse or make the latency profiles the search needs; return the folder and what was done."""
    import torch

    from explorer import search as s
    from profiler.build import resolve_model
    from profiler.hardware_probe import device_slug, hardware_for
    from profiler.layers import ProfileGrid, profile_model
    from profiler.profile_store import write_profile

    committed, threads = _matching_committed(device_slug("cpu"))
    if threads is not None:
        torch.set_num_threads(threads)
    slug = device_slug("cpu")
    folder = out / "profiles" / slug
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    reused: list[str] = []
    if committed is not None:
        for f in sorted(committed.iterdir()):
            if f.is_file() and (f.suffix == ".csv" or f.name == "hardware.json"):
                shutil.copy2(f, folder / f.name)
                if f.name.endswith(".fit.csv"):
                    reused.append(f.name.removesuffix(".fit.csv"))
        echo(f"profile: reusing {len(reused)} committed profiles of {committed.name} "
             f"(torch threads = {torch.get_num_threads()})")  # fmt: skip
    else:
        echo(f"profile: no committed profile of this CPU ({slug}); profiling now")
    target = s.resolve_target(str(zoo / "target"))
    have = _profiled_keys(folder)
    todo: list[tuple[str, dict[str, int], ProfileGrid]] = []
    q = tuple(sorted({*budget.profile_queries, 1}))
    if _arch_key(target) not in have:
        grid = ProfileGrid(batch=(1,), context=(budget.context,), query=q, depths=(1, 2),
                           whole=target.layers > 2, repeats=budget.profile_repeats)  # fmt: skip
        todo.append(("zoo-target", {}, grid))
    same_vocab = {k for k in have if k[5] == target.vocab and k != _arch_key(target)}
    if len(same_vocab) < 2:
        for w in budget.draft_widths:
            heads = max(1, w // 64)
            shape = {"layers": 2, "hidden": w, "ffn": 64 * math.ceil(8 * w / 3 / 64),
                     "heads": heads, "kv_heads": heads}  # fmt: skip
            grid = ProfileGrid(batch=(1,), context=(budget.context,), query=q, depths=(1, 2),
                               repeats=budget.profile_repeats)  # fmt: skip
            todo.append((f"zoo-draft-w{w}", shape, grid))
    profiled: list[str] = []
    if todo:
        hardware = hardware_for("cpu", cache_dir=folder)
        total = sum(len(g.points()) for _, _, g in todo)
        with _bar(total, "1/4 profile", "pt", progress) as bar:
            for name, shape, grid in todo:
                recipe = resolve_model(str(zoo / "target"), overrides=shape, name=name)

                def tick(label: str, bar: Any = bar, name: str = name) -> None:
                    bar.set_postfix_str(f"{name} {label}", refresh=False)
                    bar.update(1)

                prof = profile_model(recipe, grid=grid, device="cpu", dtype="fp32",
                                     hardware=hardware, progress=tick)  # fmt: skip
                write_profile(prof, folder)
                profiled.append(name)
    else:
        with _bar(1, "1/4 profile", "step", progress) as bar:
            bar.update(1)
    return {
        "device": slug,
        "threads": int(torch.get_num_threads()),
        "folder": str(folder),
        "reused_from": str(committed) if committed is not None else None,
        "reused": reused,
        "profiled": profiled,
    }


# --- 2. search -----------------------------------------------------------------------------------


def search_stage(
    *,
    zoo: Path,
    out: Path,
    profiles: Path,
    budget: DemoBudget,
    seed: int,
    progress: bool,
    echo: Callable[[str], None],
) -> dict[str, Any]:
    """Run the short search; return the study, its storage and the best feasible trial."""
    import optuna

    from explorer import search as s
    from explorer.objective import Objective, SearchProblem

    target = s.resolve_target(str(zoo / "target"))
    space = s.space_for(target, space_file=None)
    space = space.with_overrides(
        depth_max=min(space.depth_max, budget.depth_max),
        gamma_max=min(space.gamma_max, budget.gamma_max),
    )
    target_latency, draft_latency, latency_info = s.build_latency(target, device_profile=profiles)
    drafts_csv = zoo / "drafts.csv"
    if drafts_csv.is_file():
        acceptance, acceptance_info = s.build_acceptance(acceptance=str(drafts_csv))
    else:
        acceptance, acceptance_info = s.build_acceptance(alpha=FALLBACK_ALPHA)
        acceptance_info = {**acceptance_info, "note": f"no {drafts_csv}: α is a what-if"}
        echo(f"search: no measured drafts at {drafts_csv}; α = {FALLBACK_ALPHA} (what-if)")
    problem = SearchProblem(
        target=target,
        target_latency=target_latency,
        draft_latency=draft_latency,
        acceptance=acceptance,
        batch=1,
        context=budget.context,
        training_tokens=float(budget.train_tokens),
        cost="params",
    )
    s.check_budgets(problem, space)
    name = f"demo-{budget.name}"
    storage = f"sqlite:///{out / 'demo.db'}"
    store = s.open_storage(storage, study_name=name)
    try:  # a fresh study each run: the profiles it was built on may have changed
        optuna.delete_study(study_name=name, storage=store)
    except KeyError:
        pass
    settings = {
        "target": str(zoo / "target"),
        "target_name": target.name,
        "mode": "multi",
        "cost": "params",
        "space": space.to_dict(),
        "batch": 1,
        "context": budget.context,
        "latency": latency_info,
        "acceptance": acceptance_info,
    }
    study = s.run_search(
        Objective(problem=problem, space=space, mode="multi"),
        study_name=name,
        n_trials=budget.trials,
        storage=storage,
        seed=seed,
        settings=settings,
        progress=progress,
    )
    best = _best_trial(study)
    return {
        "study": study,
        "problem": problem,
        "storage": storage,
        "best": best,
        "target": target,
        "target_latency": target_latency,
        "draft_latency": draft_latency,
        "latency": latency_info,
        "acceptance": acceptance_info,
    }


def _best_trial(study: Any) -> Any:
    """The feasible complete trial with the most predicted tokens/s (the first on ties).

    ``explorer.validate._top_trials`` makes the same choice for ``top=1``; this one is shown
    before validation starts.
    """
    from optuna.trial import TrialState

    trials = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if all(v <= 0 for v in t.constraints.values())
    ]
    if not trials:
        raise ValueError(f"the demo search {study.study_name!r} found no feasible draft.")
    return max(trials, key=lambda t: (t.values[0], -t.number))


# --- 3. validate ---------------------------------------------------------------------------------


def _draft_name(config: dict[str, Any]) -> str:
    return f"d{config['depth']}-h{config['hidden']}"


def validate_stage(
    *,
    zoo: Path,
    out: Path,
    searched: dict[str, Any],
    budget: DemoBudget,
    seed: int,
    progress: bool,
    echo: Callable[[str], None],
) -> dict[str, Any]:
    """Distil the best proposal and run it for real (``explorer.validate``), predicted vs measured.

    The study gets the truth written back (a copy of the trial with ``measured_*`` attributes),
    and ``validation.csv`` / ``validation.json`` go to ``out``.
    """
    from explorer.validate import ValidationPlan, summarize, validate_study, write_validation

    plan = ValidationPlan(
        token_budget=budget.train_tokens,
        out_dir=out / "validate",
        target_dir=zoo / "target",
        prompts=PROMPTS,
        n_prompts=budget.prompts,
        max_new_tokens=budget.new_tokens,
        seq_len=budget.seq_len,
        batch_size=budget.batch_size,
        eval_windows=budget.eval_windows,
        seed=seed,
        tokenizer_dir=zoo / "tokenizer",
    )
    load_before = os.getloadavg()[0]
    with _bar(1, "3/4 validate", "draft", progress) as bar:
        table = validate_study(
            searched["study"], plan=plan, top=1, problem=searched["problem"], log=echo
        )
        bar.update(1)
    load = max(load_before, os.getloadavg()[0])
    summary = summarize(table)
    paths = write_validation(table, out, summary=summary)
    row = {k: (None if isinstance(v, float) and math.isnan(v) else v)
           for k, v in table.iloc[0].to_dict().items()}  # fmt: skip
    row = {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
    row["name"] = _draft_name(row)
    target_ms = row.get("predicted_target_ms")
    row["predicted_baseline_tokens_per_s"] = 1e3 / target_ms if target_ms else None
    return {
        "row": row,
        "path": str(paths["csv"]),
        "summary": summary,
        "gamma": row["gamma"],
        "loadavg_1m": load,
    }


# --- 4. report -----------------------------------------------------------------------------------


def _summary_section(result: dict[str, Any]) -> Any:
    import pandas as pd

    from explorer.report import Section

    row = result["validate"]["row"]
    table = pd.DataFrame(
        [
            ("tokens/s (speculative)", row["predicted_tokens_per_s"], row["measured_tokens_per_s"]),
            ("tokens/s (plain decoding)", row["predicted_baseline_tokens_per_s"],
             row["measured_baseline_tokens_per_s"]),
            ("speedup (×)", row["predicted_speedup"], row["measured_speedup"]),
            ("α (acceptance rate)", row["predicted_acceptance_rate"],
             row["measured_acceptance_rate"]),
            ("draft ms per pass", row["predicted_draft_pass_ms"], row["measured_draft_pass_ms"]),
            ("target ms per pass", row.get("predicted_target_ms"), row.get("measured_target_ms")),
        ],
        columns=["quantity", "predicted", "measured"],
    )  # fmt: skip
    prof = result["profile"]
    times = ", ".join(f"{k} {v:.0f} s" for k, v in result["stage_seconds"].items())
    intro = (
        f"`specdec demo{' --quick' if result['budget']['name'] == 'quick' else ''}` on this "
        f"machine ({prof['device']}, {prof['threads']} torch thread(s)): it profiled the latency "
        "of the zoo's target and draft shapes (or reused the committed profiles of this CPU), "
        f"searched {result['budget']['trials']} draft configurations with Optuna, distilled the "
        f"best one ({row['name']}, γ={row['gamma']}) on {row['token_budget']} tokens and ran it "
        "for real against plain decoding. The predictions were made before the draft existed; "
        f"'tokens/s at the measured α' = {row['predicted_tokens_per_s_measured_alpha']:.1f} "
        "is the step model fed the α that was then measured. Stage times: "
        f"{times}. The latency model is fitted to the profiles, which record the uncontended "
        "CPU time of one-thread runs where they can; the real runs are wall-clock, so on a busy "
        "machine (1-minute load average during validation: "
        f"{result['validate']['loadavg_1m']:.1f} on {os.cpu_count()} CPUs) measured latencies "
        "can be much longer than predicted."
    )
    return Section(
        "demo",
        "This run: predicted vs measured",
        intro,
        [table],
        facts={"draft": row["name"], "gamma": row["gamma"]},
    )


def run_demo(
    *,
    quick: bool = False,
    out: str | Path | None = None,
    zoo: str | Path | None = None,
    seed: int = 0,
    progress: bool = True,
    echo: Callable[[str], None] | None = None,
    budget: DemoBudget | None = None,
) -> dict[str, Any]:
    """Run the four stages; return what the terminal table and ``--json`` show.

    ``budget`` overrides the one ``quick`` picks (:data:`QUICK` or :data:`FULL`).

    Raises
    ------
    ValueError
        When the zoo target or tokenizer is missing, or no draft is feasible.
    """
    import sys

    echo = echo or (lambda text: sys.stderr.write(text + "\n"))
    budget = budget or (QUICK if quick else FULL)
    zoo = Path(zoo) if zoo is not None else DEFAULT_ZOO
    out = Path(out) if out is not None else DEFAULT_OUT
    for need in ("target/config.json", "tokenizer"):
        if not (zoo / need).exists():
            raise ValueError(
                f"the zoo is incomplete: {str(zoo / need)!r} does not exist (build it with "
                "scripts/build_zoo.sh, or pass --zoo DIR)."
            )
    out.mkdir(parents=True, exist_ok=True)
    times: dict[str, float] = {}
    result: dict[str, Any] = {"budget": asdict(budget), "out": str(out), "stage_seconds": times}

    t = time.perf_counter()
    result["profile"] = profile_stage(zoo=zoo, out=out, budget=budget, progress=progress, echo=echo)
    times["profile"] = time.perf_counter() - t

    t = time.perf_counter()
    searched = search_stage(zoo=zoo, out=out, profiles=Path(result["profile"]["folder"]),
                            budget=budget, seed=seed, progress=progress, echo=echo)  # fmt: skip
    times["search"] = time.perf_counter() - t
    result["search"] = {
        "study": searched["study"].study_name,
        "storage": searched["storage"],
        "best_trial": searched["best"].number,
        "latency": searched["latency"],
        "acceptance": searched["acceptance"],
    }

    t = time.perf_counter()
    result["validate"] = validate_stage(zoo=zoo, out=out, searched=searched, budget=budget,
                                        seed=seed, progress=progress, echo=echo)  # fmt: skip
    times["validate"] = time.perf_counter() - t

    from explorer.report import write_report

    t = time.perf_counter()
    with _bar(1, "4/4 report", "file", progress) as bar:
        report = write_report(
            out / "report.html",
            title="specdec-explorer demo report",
            study=searched["study"],
            storage=searched["storage"],
            profiles=result["profile"]["folder"],
            validation=result["validate"]["path"],
            zoo=str(zoo / "drafts.csv") if (zoo / "drafts.csv").is_file() else None,
            landscape={
                "target_latency": searched["target_latency"],
                "latency_source": f"the zoo target profiled on {result['profile']['device']}",
                "batches": (1, 4),
                "context": budget.context,
            },
            first=[_summary_section({**result, "stage_seconds": dict(times)})],
        )
        bar.update(1)
    times["report"] = time.perf_counter() - t
    result["report"] = report["path"]
    result["report_sections"] = {k: v["status"] for k, v in report["sections"].items()}
    row = result["validate"]["row"]
    result["summary"] = {
        "draft": row["name"],
        "gamma": row["gamma"],
        "params": row["params"],
        "predicted_tokens_per_s": row["predicted_tokens_per_s"],
        "measured_tokens_per_s": row["measured_tokens_per_s"],
        "predicted_speedup": row["predicted_speedup"],
        "measured_speedup": row["measured_speedup"],
        "predicted_acceptance_rate": row["predicted_acceptance_rate"],
        "measured_acceptance_rate": row["measured_acceptance_rate"],
    }
    result["total_seconds"] = sum(times.values())
    return result
