"""The `specdec` console script: one subcommand per module under `explorer.commands`.

Every subcommand module exposes ``HELP`` (one line), ``add_arguments(parser)`` and
``run(args) -> dict``; it may also expose ``format_text(result) -> str`` for the human-readable
output. Modules import heavy libraries (torch, transformers, optuna) inside ``run`` so that
``specdec --help`` and ``specdec predict`` start quickly.

Contract (DESIGN.md): with ``--json`` the last line of stdout is one JSON object; bad input exits
with code 2 and one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence

# Subcommand name -> module under explorer.commands. A command whose module is not there yet is
# simply not offered.
COMMANDS = {
    "predict": "predict",
    "profile": "profile",
    "generate": "generate",
    "acceptance": "acceptance",
    "train": "train",
    "search": "search",
    "validate": "validate",
    "report": "report",
    "demo": "demo",
}


class UsageError(ValueError):
    """Bad input found after parsing; reported as one line and exit code 2."""


class _OneLineParser(argparse.ArgumentParser):
    """argparse prints usage plus a message; the contract is one line on stderr and exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")
        raise SystemExit(2)


def _load_commands() -> dict[str, object]:
    modules = {}
    for name, module_name in COMMANDS.items():
        try:
            modules[name] = importlib.import_module(f"explorer.commands.{module_name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"explorer.commands.{module_name}":
                raise
    return modules


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, object]]:
    modules = _load_commands()
    parser = _OneLineParser(
        prog="specdec",
        description=(
            "Which draft model should I use for speculative decoding on my hardware, what "
            "speedup will it give, and what draft should I train?"
        ),
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_OneLineParser)
    for name, module in modules.items():
        p = sub.add_parser(
            name,
            help=module.HELP,
            description=getattr(module, "DESCRIPTION", module.HELP),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(p)
        p.add_argument(
            "--json",
            action="store_true",
            help="print one JSON object as the last line of stdout",
        )
    return parser, modules


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        # "[Errno 13] Permission denied: '/x'" reads as a crash; say what could not be used
        name = str(exc.filename)
        text = f"cannot use {name!r}: {exc.strerror}; give a path this user can read or write."
    else:
        text = str(exc) or exc.__class__.__name__
    return " ".join(text.split())


def main(argv: Sequence[str] | None = None) -> int:
    parser, modules = build_parser()
    args = parser.parse_args(argv)
    module = modules[args.command]
    try:
        result = module.run(args)
    except (ValueError, OSError) as exc:  # OSError: a path that cannot be read or written
        sys.stderr.write(f"specdec {args.command}: error: {_one_line(exc)}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write(f"specdec {args.command}: interrupted; partial work was not saved\n")
        return 130
    if args.json:
        sys.stdout.write(json.dumps(result, default=_json_default) + "\n")
    else:
        fmt = getattr(module, "format_text", None)
        sys.stdout.write((fmt(result) if fmt else json.dumps(result, indent=2)) + "\n")
    return 0


def _json_default(obj: object) -> object:
    # numpy scalars and arrays, paths
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
