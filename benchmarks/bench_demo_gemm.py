"""Would timing the GEMM table help `specdec demo` on a CPU with no committed profile?

On a CPU with no committed profile, the demo's first stage (``explorer.demo_profile``) profiles
forward passes of three shapes only: the zoo target and two zoo-vocabulary drafts (widths 128 and
256 in the quick budget) at depths 1 and 2, b = 1, n = 128, q = 1..7. It does not time the
matrix products of ``gemm.csv``, which on the full EPYC profile lower the held-out error (data/
README.md, "cpu-epyc-1c"). This benchmark asks whether they would help there: from a committed
profile it takes the rows the demo would have measured (``--fit`` shapes at ``--depths``, b = 1,
n = ``--context``, q <= ``--max-query``), fits the latency model to them with

- ``none``: no GEMM table (what the demo does);
- ``fitted``: the products of the fitted shapes (``specdec profile --gemm`` on the same three
  shapes, seconds);
- ``fitted+predicted``: those and the predicted shapes' products (as if the demo also timed the
  products of every width the search proposes);

and predicts the ``--test`` shapes' rows at every profiled depth (b = 1, the same n and q).
The product times come from the folder's ``gemm.csv``. Prints each mode's error
(|predicted / measured - 1|) and one JSON line.

Usage: python benchmarks/bench_demo_gemm.py [--profiles DIR] [--fit A,B,C] [--test D,E]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from perfmodel.gemm_table import GEMM_TABLE_FILE, GemmTable, model_gemms  # noqa: E402
from perfmodel.latency_model import LatencyModel, _gemm_table, load_profile_rows  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_latency_model import _arch, abs_error_summary  # noqa: E402

DEFAULT = REPO / "data" / "profiles" / "cpu-epyc-1c"
FIT = ("zoo-target", "zoo-w128-l12", "zoo-w256-l12")  # the shapes the quick demo profiles
TEST = ("zoo-w192-l12", "zoo-w512-l12", "zoo-w1024-l12")
MODES = ("none", "fitted", "fitted+predicted")


def _names(rows: pd.DataFrame, names: tuple[str, ...], what: str) -> None:
    known = sorted(set(rows["model"]))
    missing = [n for n in names if n not in known]
    if missing:
        raise ValueError(
            f"{what} models must be profiled in the folder ({known}), but got {missing}."
        )


def products_of(rows: pd.DataFrame, names: tuple[str, ...]) -> set[tuple[int, int]]:
    """The (k, n) matrix products of the named models' layers and heads."""
    out: set[tuple[int, int]] = set()
    for name in names:
        r = rows[rows["model"] == name].iloc[0]
        out |= set(
            model_gemms(
                hidden=int(r.hidden), ffn=int(r.ffn), heads=int(r.heads),
                kv_heads=int(r.kv_heads), vocab=int(r.vocab), opt=r.family == "opt",
            )
        )  # fmt: skip
    return out


def evaluate(
    rows: pd.DataFrame,
    gemm: GemmTable | None,
    *,
    fit: tuple[str, ...] = FIT,
    test: tuple[str, ...] = TEST,
    depths: tuple[int, ...] = (1, 2),
    max_query: int = 7,
    context: int = 128,
    statistic: str = "auto",
) -> dict[str, dict]:
    """Mode -> error summary of the ``test`` shapes' rows predicted from the ``fit`` shapes'."""
    _names(rows, fit, "--fit")
    _names(rows, test, "--test")
    sel = rows[(rows["batch"] == 1) & (rows["context"] == context) & (rows["query"] <= max_query)]
    train = sel[sel["model"].isin(fit) & sel["depth"].isin(depths)]
    target = sel[sel["model"].isin(test)]
    if train.empty or target.empty:
        raise ValueError(
            f"rows at b = 1, n = {context}, q <= {max_query} (and depths {depths} to fit) must "
            f"exist, but got {len(train)} to fit and {len(target)} to predict."
        )
    out: dict[str, dict] = {}
    for mode in MODES:
        table = None
        if gemm is not None and mode != "none":
            keep = products_of(rows, fit if mode == "fitted" else fit + test)
            table = gemm.without(set(gemm.pairs) - keep) if keep & set(gemm.pairs) else None
        model = LatencyModel.fit(train, statistic=statistic, gemm=table, exclude_gemms=False)
        measured = target[model.statistic].to_numpy(dtype=float)
        errors = []
        for r, ms in zip(target.itertuples(), measured, strict=True):
            predicted = model.latency_fn(_arch(r, r.depth))(r.batch, r.context, r.query)
            errors.append(float(predicted) / ms - 1)
        # "rows" first, "products" after it: the JSON line's order of keys
        out[mode] = (
            {"rows": len(errors), "products": len(table.pairs) if table is not None else 0}
            | abs_error_summary(np.abs(errors))
            | {"bias": float(np.mean(errors))}
        )
    return out


def _tuple(text: str, kind=str) -> tuple:
    return tuple(kind(x) for x in text.split(",") if x.strip())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--profiles", default=str(DEFAULT))
    p.add_argument("--fit", default=",".join(FIT), help="models whose rows are fitted")
    p.add_argument("--test", default=",".join(TEST), help="models whose rows are predicted")
    p.add_argument("--depths", default="1,2", help="depths of the fitted rows (the demo's: 1,2)")
    p.add_argument("--max-query", type=int, default=7)
    p.add_argument("--context", type=int, default=128)
    p.add_argument("--dtype", default=None, help="rows of this dtype (default: the most frequent)")
    args = p.parse_args(argv)
    folder = Path(args.profiles)
    try:
        depths = _tuple(args.depths, int)
        rows = load_profile_rows(folder)
        dtype = args.dtype or str(rows["dtype"].value_counts().idxmax())
        rows = rows[rows["dtype"] == dtype]
        if rows.empty:
            raise ValueError(
                f"--dtype must be one the profiles were measured in, but got {dtype!r}."
            )
        gemm = _gemm_table(folder / GEMM_TABLE_FILE, dtype)  # None: no products of this dtype
        res = evaluate(
            rows, gemm, fit=_tuple(args.fit), test=_tuple(args.test), depths=depths,
            max_query=args.max_query, context=args.context,
        )  # fmt: skip
    except ValueError as e:
        print(f"bench_demo_gemm: {e}", file=sys.stderr)
        return 2
    print(f"profiles: {folder}; fitted: {args.fit} at depths {args.depths}; predicted: {args.test}")
    print(f"b = 1, n = {args.context}, q = 1..{args.max_query}; |predicted / measured - 1|")
    print(f"{'GEMM table':18s} {'products':>8s} {'rows':>5s} {'median':>7s} {'p90':>7s} "
          f"{'worst':>7s} {'>15%':>5s} {'bias':>7s}")  # fmt: skip
    for mode, r in res.items():
        print(
            f"{mode:18s} {r['products']:8d} {r['rows']:5d} {r['median_abs_error']:7.1%} "
            f"{r['p90_abs_error']:7.1%} {r['worst_abs_error']:7.1%} {r['rows_over_15pct']:5d} "
            f"{r['bias']:+7.1%}"
        )
    print(json.dumps({"profiles": str(folder), "fit": args.fit, "test": args.test,
                      "depths": list(depths), "max_query": args.max_query,
                      "context": args.context, "modes": res}))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
