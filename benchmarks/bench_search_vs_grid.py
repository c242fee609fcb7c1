"""How close the Optuna search gets to the exhaustive grid's optimum, and after how many trials.

The grid (``explorer.grid``) scores every configuration of the default space of the target
(``SearchSpace.for_target``) through perfmodel; its best feasible tokens/s is the reference. The
search (TPE, multivariate, Optuna's constraint mechanism) runs ``--trials`` trials per seed in
memory; for each seed we record the first trial whose best feasible value is within 1% of the
grid optimum. Goal: within 1% in at most 200 trials on the default space.

Scenarios: no budget, and a parameter budget at half the size of the unconstrained optimum's
draft (the optimum then sits on the constraint boundary, the hard case for a sampler).

Latency: ``--device-profile DIR`` (the fitted latency model) when given, else the roofline bound
of ``--hardware`` (default H200) plus ``--layer-launch-ms`` per layer, so deep drafts pay for
their depth. Acceptance: ``--acceptance FILE`` (a drafts table, fitted), else
``data/zoo/drafts.csv`` for the zoo's target, else a synthetic table whose α grows with log
parameters (the zoo's drafts say nothing about a preset target's drafts).

Run: ``python benchmarks/bench_search_vs_grid.py [--target llama-7b] [--trials 200] [--seeds 5]``,
or on the zoo: ``--target data/zoo/target --device-profile data/profiles/<device>``.
The last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent


def _synthetic_drafts(vocab: int) -> pd.DataFrame:
    # The same known α law the tests use, so the benchmark and the tests score one table.
    if str(REPO) not in sys.path:  # run as a script from anywhere: the repo root holds tests/
        sys.path.insert(0, str(REPO))
    from tests.explorer_tests.search_support import synthetic_drafts

    return synthetic_drafts(12, 0, vocab=vocab)


def main() -> None:
    import optuna

    from explorer import search as s
    from explorer.grid import grid_search
    from explorer.objective import Objective, RooflineLatency, SearchProblem
    from explorer.space import SearchSpace
    from perfmodel.acceptance_model import AcceptanceModel
    from perfmodel.hardware import get_hardware

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--target", default="llama-7b")
    ap.add_argument("--device-profile")
    ap.add_argument("--hardware", default="H200")
    ap.add_argument("--layer-launch-ms", type=float, default=0.03)
    ap.add_argument("--acceptance")
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--seeds", type=int, default=5)
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    target = s.resolve_target(args.target)
    if args.device_profile:
        target_latency, draft_latency, latency_info = s.build_latency(
            target, device_profile=args.device_profile
        )
    else:
        draft_latency = RooflineLatency(
            get_hardware(args.hardware), layer_launch_ms=args.layer_launch_ms
        )
        target_latency = draft_latency(target)
        latency_info = {
            "kind": "roofline",
            "hardware": args.hardware,
            "layer_launch_ms": args.layer_launch_ms,
        }
    # the zoo's measured drafts describe the zoo's target only; a preset target gets the
    # synthetic table unless a table is given
    zoo_target = Path(args.target).resolve() == (REPO / "data" / "zoo" / "target").resolve()
    drafts = Path(args.acceptance) if args.acceptance else REPO / "data" / "zoo" / "drafts.csv"
    if drafts.is_file() and (args.acceptance or zoo_target):
        acceptance, acceptance_info = (
            AcceptanceModel.fit(drafts),
            {"kind": "model", "path": str(drafts)},
        )
    else:
        acceptance, acceptance_info = (
            AcceptanceModel.fit(_synthetic_drafts(target.vocab)),
            {"kind": "synthetic"},
        )
    space = SearchSpace.for_target(target)
    base = SearchProblem(
        target=target,
        target_latency=target_latency,
        draft_latency=draft_latency,
        acceptance=acceptance,
    )
    t0 = time.perf_counter()
    free_best = grid_search(base, space).best
    grid_s = time.perf_counter() - t0

    scenarios = {}
    for name, budget in (
        ("unconstrained", None),
        ("params_budget_half_optimum", 0.5 * float(free_best["params"])),
    ):
        problem = SearchProblem(**{**base.__dict__, "max_params": budget})
        t0 = time.perf_counter()
        grid = grid_search(problem, space)
        grid_time = time.perf_counter() - t0
        optimum = float(grid.best["tokens_per_s"])
        hits, gaps, times = [], [], []
        for seed in range(args.seeds):
            study = optuna.create_study(
                direction="maximize",
                sampler=optuna.samplers.TPESampler(
                    seed=seed, multivariate=True, n_startup_trials=10
                ),
            )
            t0 = time.perf_counter()
            study.optimize(Objective(problem, space), n_trials=args.trials)
            times.append(time.perf_counter() - t0)
            values = [
                t.value if all(v <= 0 for v in t.constraints.values()) else -np.inf
                for t in study.trials
            ]
            running = np.maximum.accumulate(values)
            within = np.flatnonzero(running >= 0.99 * optimum)
            hits.append(int(within[0]) + 1 if within.size else None)
            gaps.append(float(1 - running[-1] / optimum))
        reached = [h for h in hits if h is not None]
        scenarios[name] = {
            "max_params": budget,
            "grid_configs": len(grid.table),
            "grid_feasible": grid.feasible_count,
            "grid_s": round(grid_time, 3),
            "grid_optimum_tokens_per_s": optimum,
            "grid_best": {
                k: int(grid.best[k])
                for k in ("depth", "hidden", "ffn", "heads", "kv_heads", "gamma")
            },
            "seeds_within_1pct": f"{len(reached)}/{args.seeds}",
            "trials_to_1pct": hits,
            "median_trials_to_1pct": statistics.median(reached) if reached else None,
            "final_gap": [round(g, 5) for g in gaps],
            "search_s_per_trial": round(statistics.median(times) / args.trials, 4),
        }
        print(
            f"{name}: grid {len(grid.table)} configs ({grid.feasible_count} feasible) in {grid_time:.2f} s, "
            f"optimum {optimum:.1f} tok/s; TPE within 1% in {len(reached)}/{args.seeds} seeds, "
            f"trials to 1%: {hits}, final gap {[f'{g:.2%}' for g in gaps]}"
        )
    goal = all(
        sc["median_trials_to_1pct"] is not None
        and sc["seeds_within_1pct"].split("/")[0] == str(args.seeds)
        and max(sc["trials_to_1pct"]) <= 200
        for sc in scenarios.values()
    )
    print(
        json.dumps(
            {
                "benchmark": "search_vs_grid",
                "target": args.target,
                "space": space.to_dict(),
                "space_size": space.size,
                "latency": latency_info,
                "acceptance": acceptance_info,
                "trials": args.trials,
                "seeds": args.seeds,
                "first_grid_s": round(grid_s, 3),
                "scenarios": scenarios,
                "goal_within_1pct_in_200_trials": goal,
            }
        )
    )


if __name__ == "__main__":
    main()
