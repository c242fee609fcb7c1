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
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from explorer.demo_budget import FULL, QUICK, DemoBudget, _bar
from explorer.demo_profile import profile_stage

__all__ = ["FULL", "QUICK", "DemoBudget", "run_demo"]

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ZOO = REPO_ROOT / "data" / "zoo"
DEFAULT_OUT = REPO_ROOT / "runs" / "demo"
PROMPTS = REPO_ROOT / "data" / "prompts" / "humaneval.jsonl"
# α used when the zoo has no measured drafts to fit the acceptance model to (said in the report).
FALLBACK_ALPHA = 0.6


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
            ("target ms per verification (q = γ + 1)", row.get("predicted_verify_ms"),
             row.get("measured_verify_ms")),
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
        "is the step model fed the α that was then measured. The measured figures are over "
        "the steps that fed no prompt, which the step model describes (each prompt's first step "
        "also feeds the prompt); with those steps the speculative run made "
        f"{row.get('measured_tokens_per_s_with_prompt', float('nan')):.1f} tokens/s and plain "
        f"decoding {row.get('measured_baseline_tokens_per_s_with_prompt', float('nan')):.1f}. "
        "Stage times: "
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
