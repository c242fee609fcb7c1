"""`specdec report`: one self-contained HTML file with the figures and tables of the project.

The work is in :mod:`explorer.report`; this module parses flags and formats the summary.
"""

from __future__ import annotations

import argparse
from typing import Any

HELP = "write one self-contained HTML report (landscape, latency, search, validation, zoo)"
DESCRIPTION = """\
Write a single HTML file, readable offline (plotly.js is embedded), with:
  - the speedup landscape of the analytical model (always),
  - per-layer and per-token latency from the profiles (--profiles, default data/profiles),
  - the Pareto front, history and parameter importance of a search (--study/--storage; default:
    the most recent study in the search's default storage under runs/),
  - predicted vs measured alpha, latency and tokens/s from `specdec validate` (--validation),
  - the zoo's shallow-wide vs deep-narrow comparison (data/zoo/drafts.csv).
A section without data says so. A named study that does not exist or a profile folder without
profiles is an error (exit 2). The file is written atomically.

example:
  specdec report --out runs/report.html
  specdec report --out runs/report.html --study draft-search --storage sqlite:///runs/search.db
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, metavar="FILE.html", help="the report to write")
    parser.add_argument("--study", metavar="NAME", help="Optuna study name to show")
    parser.add_argument(
        "--storage",
        metavar="URL",
        help="Optuna storage URL (default: the search's SQLite file under runs/)",
    )
    parser.add_argument(
        "--profiles",
        metavar="DIR",
        help="folder of profile CSVs, data/profiles/<device> or data/profiles (default)",
    )
    parser.add_argument(
        "--validation",
        metavar="FILE",
        help="predicted-vs-measured table written by `specdec validate` (CSV or JSON)",
    )
    parser.add_argument(
        "--zoo", metavar="FILE", help="zoo table of measured drafts (default data/zoo/drafts.csv)"
    )
    parser.add_argument("--title", default="specdec-explorer report", help="report title")


def run(args: argparse.Namespace) -> dict[str, Any]:
    from explorer.report import write_report

    return write_report(
        args.out,
        title=args.title,
        study_name=args.study,
        storage=args.storage,
        profiles=args.profiles,
        validation=args.validation,
        zoo=args.zoo,
    )


def format_text(result: dict[str, Any]) -> str:
    lines = [
        f"wrote {result['path']} ({result['bytes'] / 1e6:.1f} MB, {result['figures']} figures)"
    ]
    for key, info in result["sections"].items():
        if info["status"] == "ok":
            lines.append(f"  {key:<11} ok")
        else:
            lines.append(f"  {key:<11} no data: {info['reason']}")
    return "\n".join(lines)
