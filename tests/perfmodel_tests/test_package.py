"""The package contract: light imports, every public name exported, docstring examples run."""

from __future__ import annotations

import doctest
import importlib
import subprocess
import sys

import pytest

import perfmodel

MODULES = [
    "acceptance",
    "arch",
    "comparison",
    "hardware",
    "latency_fn",
    "presets",
    "roofline",
    "throughput",
]


def test_import_does_not_pull_torch():
    code = (
        "import sys, perfmodel; "
        "bad = [m for m in ('torch', 'transformers', 'optuna', 'plotly') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_all_names_exist():
    for name in perfmodel.__all__:
        assert hasattr(perfmodel, name), name


@pytest.mark.parametrize("module", MODULES)
def test_docstring_examples(module):
    mod = importlib.import_module(f"perfmodel.{module}")
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, module
