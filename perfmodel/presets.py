"""Architecture presets: the public model configurations in ``data/reference/model_configs.json``.

Presets are data with their provenance (each entry names the hub id it was read from), not one
class per model. The file is found next to the package (``<repo>/data/reference/``); set
``SPECDEC_REFERENCE_DIR`` or pass ``path`` to read another copy.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path

from perfmodel.arch import ArchSpec

__all__ = ["REFERENCE_DIR_ENV", "get_preset", "load_presets", "preset_names", "reference_dir"]

REFERENCE_DIR_ENV = "SPECDEC_REFERENCE_DIR"
_FILE = "model_configs.json"
_FIELDS = ("layers", "hidden", "ffn", "heads", "kv_heads", "vocab", "tied_embeddings", "family")


def reference_dir() -> Path:
    """Folder holding ``model_configs.json``: ``$SPECDEC_REFERENCE_DIR`` or ``<repo>/data/reference``."""
    env = os.environ.get(REFERENCE_DIR_ENV)
    return Path(env) if env else Path(__file__).resolve().parents[1] / "data" / "reference"


def _resolve(path: str | os.PathLike[str] | None) -> Path:
    p = Path(path) if path is not None else reference_dir()
    return p / _FILE if p.is_dir() else p


@lru_cache(maxsize=8)
def _load(path: Path, mtime_ns: int) -> dict[str, ArchSpec]:
    raw = json.loads(path.read_text(encoding="utf-8"))
    presets = {}
    for name, entry in raw.items():
        if name.startswith("_"):  # "_about" and other notes
            continue
        missing = [f for f in _FIELDS if f not in entry]
        if missing:
            raise ValueError(f"preset {name!r} in {path} lacks fields {missing}.")
        presets[name] = ArchSpec(
            **{f: entry[f] for f in _FIELDS},
            max_positions=entry.get("max_positions", 2048),
            bytes_per_param=entry.get("bytes_per_param", 2.0),
            name=name,
            source=entry.get("source"),
        )
    return presets


def load_presets(path: str | os.PathLike[str] | None = None) -> dict[str, ArchSpec]:
    """All presets by name.

    Parameters
    ----------
    path : str or path-like, optional
        A ``model_configs.json`` file or the folder holding it. Default: :func:`reference_dir`.

    Returns
    -------
    dict[str, ArchSpec]
        Name -> spec, with ``spec.name`` the preset name and ``spec.source`` the hub id.

    References
    ----------
    ``data/reference/model_configs.json`` (each entry's ``source``).
    """
    p = _resolve(path)
    if not p.is_file():
        raise FileNotFoundError(f"no model configurations at {p} (set {REFERENCE_DIR_ENV}).")
    return dict(_load(p, p.stat().st_mtime_ns))


def preset_names(path: str | os.PathLike[str] | None = None) -> list[str]:
    """Names of the presets, in file order."""
    return list(load_presets(path))


def get_preset(name: str, *, path: str | os.PathLike[str] | None = None) -> ArchSpec:
    """The preset called ``name``; ``ValueError`` listing the known names if there is none.

    Examples
    --------
    >>> get_preset("llama-65b").param_count
    65285660672
    """
    presets = load_presets(path)
    if name not in presets:
        raise ValueError(f"unknown preset {name!r}; known presets: {', '.join(presets)}.")
    return presets[name]
