"""Import a script under benchmarks/ or scripts/ as a module, so tests can call its functions."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"


def load_benchmark(name: str) -> ModuleType:
    """``benchmarks/<name>.py`` as a module (not run as a script)."""
    return _load(BENCHMARKS / f"{name}.py", name)


def load_script(name: str) -> ModuleType:
    """``scripts/<name>.py`` as a module (not run as a script)."""
    return _load(ROOT / "scripts" / f"{name}.py", name)


def _load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses with postponed annotations look their module up
    spec.loader.exec_module(module)
    return module
