"""Write the exact ``params`` of profile rows that hold it rounded to 6 digits (one-off).

Until commit 37f3a4a the profile writer could write the ``params`` column (a parameter count)
as a float with 6 significant digits (``7.81875e+07``). This script recomputes each such row's
count the way the profiler does (the row's model resolved from its ``source`` with its shape
columns as overrides, ``ArchSpec.param_count`` at the row's ``depth``), checks that the exact
count rounds to the committed value (else it stops and writes nothing for that file), and
rewrites only that field: every other byte of the file is kept. Files are written atomically.

Usage: python scripts/backfill_params.py data/profiles/cpu-epyc-1c [more folders]
(run once on 2026-12-01 for cpu-epyc-1c and cpu-xeon-2.5ghz-1c).
"""

from __future__ import annotations

import csv
import functools
import io
import sys
from pathlib import Path

from perfmodel.arch import ArchSpec
from perfmodel.atomic import atomic_write_text
from perfmodel.latency_profiles import _csv_files
from profiler.build import resolve_model

_SHAPE = ("layers", "hidden", "ffn", "heads", "kv_heads")


def _exact_params(row: dict[str, str]) -> int:
    shape = tuple(int(row[k]) for k in _SHAPE)
    return int(_arch(row["source"], shape).replace(layers=int(row["depth"])).param_count)


@functools.cache
def _arch(source: str, shape: tuple[int, ...]) -> ArchSpec:
    """The spec of a profile's model (``source`` with ``shape`` as overrides), resolved once per
    file and shape rather than once per row."""
    kind, _, rest = source.partition(":")
    model = rest.removesuffix(" +overrides")
    if kind not in ("preset", "path") or not model:
        raise ValueError(f"`source` must be 'preset:NAME' or 'path:FILE', but got {source!r}.")
    arch = resolve_model(model, overrides=dict(zip(_SHAPE, shape, strict=True))).arch
    if arch is None:
        raise ValueError(f"no ArchSpec for the model of {source!r}.")
    return arch


def backfill_file(path: Path) -> int:
    """Rewrite ``path``'s rounded ``params`` cells exactly; returns how many were rewritten.

    Raises
    ------
    ValueError
        When an exact count does not round to the committed cell (nothing is written).
    """
    with path.open(newline="") as f:
        text = f.read()
    lines = text.splitlines(keepends=True)
    header = next(csv.reader([lines[0]]))
    if "params" not in header:
        return 0
    col = header.index("params")
    out, changed = [lines[0]], 0
    for number, line in enumerate(lines[1:], start=2):
        fields = next(csv.reader([line]))
        cell = fields[col]
        if not cell or cell.isdigit():
            out.append(line)
            continue
        row = dict(zip(header, fields, strict=True))
        exact = _exact_params(row)
        if float(f"{exact:.6g}") != float(cell):
            raise ValueError(
                f"{path}:{number}: exact params {exact} does not round to the file's {cell}."
            )
        fields[col] = str(exact)
        buf = io.StringIO()
        csv.writer(buf, lineterminator=line[len(line.rstrip("\r\n")) :]).writerow(fields)
        out.append(buf.getvalue())
        changed += 1
    if changed:
        atomic_write_text(path, "".join(out))
    return changed


def main(folders: list[str]) -> None:
    for folder in folders:
        for path in _csv_files(folder):  # the folder's <model>.csv files
            n = backfill_file(path)
            if n:
                print(f"{path}: {n} rows")


if __name__ == "__main__":
    main(sys.argv[1:])
