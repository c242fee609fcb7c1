"""Every notebook under notebooks/ executes top to bottom (nbclient, kernel python3).

The jupytext ``.py`` file is the source; the paired ``.ipynb`` is kept in git without outputs
and must hold the same cells. Each test executes a fresh copy in a temporary folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import jupytext
import nbformat
import pytest
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
SOURCES = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py"))
# A notebook should take well under a minute; this is a hang guard on a loaded 2-core machine.
CELL_TIMEOUT_S = 240


def test_the_four_notebooks_exist():
    names = [p.stem for p in SOURCES]
    assert names == ["01_speedup_landscape", "02_latency", "03_draft_search", "04_validation"]


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_paired_ipynb_is_in_sync_and_stripped(source):
    paired = source.with_suffix(".ipynb")
    assert paired.is_file(), f"run `jupytext --sync {source.name}`"
    nb = nbformat.read(paired, as_version=4)
    py = jupytext.read(source)
    assert [c.source for c in nb.cells] == [c.source for c in py.cells], "run jupytext --sync"
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, "outputs not stripped"
    params = [c for c in py.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1, "one cell tagged `parameters`"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_notebook_executes(source, tmp_path):
    nb = jupytext.read(source)
    copy = tmp_path / source.with_suffix(".ipynb").name
    start = time.perf_counter()
    NotebookClient(
        nb,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute()
    nbformat.write(nb, copy)
    elapsed = time.perf_counter() - start
    errors = [
        out
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        if out.get("output_type") == "error"
    ]
    assert not errors, errors
    printed = "".join(
        out.get("text", "")
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        if out.get("output_type") == "stream"
    )
    assert printed.strip(), "the model-vs-measured cells print something"
    assert elapsed < 4 * CELL_TIMEOUT_S


def test_example_study_folder_is_removed_when_the_process_exits(tmp_path):
    # The notebooks' fallback study journals into a temporary folder: it must exist while the
    # kernel runs (the study reads it) and be gone afterwards, not pile up under /tmp.
    script = (
        "import tempfile\n"
        "from pathlib import Path\n"
        "from explorer.figures.notebook import make_small_study\n"
        "study = make_small_study(trials=3)\n"
        "assert len(study.trials) == 3\n"
        "made = sorted(Path(tempfile.gettempdir()).glob('specdec-nb-*/*.log'))\n"
        "print(len(made))\n"
    )
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1", done.stdout
    assert not list(tmp_path.glob("specdec-nb-*"))
