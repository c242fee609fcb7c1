"""Acceptance sources: anything that gives α (and α_i) for draft shapes, behind one interface.

:class:`AcceptanceSource` is the ``predict(**features) -> AcceptancePrediction`` protocol the
explorer scores drafts with. Besides the fitted
:class:`perfmodel.acceptance_model.AcceptanceModel`, two sources implement it:
:class:`FixedAcceptance` (α or α_i given directly, a what-if) and :func:`acceptance_from_file`
(a measured acceptance file). numpy and pandas only.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike, NDArray

from perfmodel.acceptance_tables import _first, _isnan, load_acceptance_table

__all__ = ["AcceptancePrediction", "AcceptanceSource", "FixedAcceptance", "acceptance_from_file"]


@dataclass(frozen=True)
class AcceptancePrediction:
    """Predicted acceptance for one or many draft shapes.

    Attributes
    ----------
    acceptance_rate : ndarray, shape (m,)
        Predicted α (the median of the predictive distribution).
    lower, upper : ndarray, shape (m,)
        Interval for α at probability ``level`` (equal to α for a fixed or measured α).
    level : float
        Probability the interval covers, in (0, 1).
    position_acceptance : ndarray, shape (m, γ_max) or None
        Predicted α_i, when the source has per-position rates.
    source : str
        Where the numbers come from: ``"model"``, ``"fixed"`` or a file path.
    """

    acceptance_rate: NDArray[np.float64]
    lower: NDArray[np.float64]
    upper: NDArray[np.float64]
    level: float
    position_acceptance: NDArray[np.float64] | None = None
    source: str = "model"

    def __post_init__(self) -> None:
        a = np.atleast_1d(np.asarray(self.acceptance_rate, dtype=np.float64))
        lo = np.broadcast_to(np.asarray(self.lower, dtype=np.float64), a.shape).copy()
        hi = np.broadcast_to(np.asarray(self.upper, dtype=np.float64), a.shape).copy()
        if ((a < 0) | (a > 1)).any() or np.isnan(a).any():
            raise ValueError(f"`0 <= acceptance_rate <= 1` must hold, but got acceptance_rate={a}.")
        if not (0 < self.level < 1):
            raise ValueError(f"`0 < level < 1` must hold, but got level={self.level}.")
        object.__setattr__(self, "acceptance_rate", a)
        object.__setattr__(self, "lower", lo)
        object.__setattr__(self, "upper", hi)
        if self.position_acceptance is not None:
            p = np.asarray(self.position_acceptance, dtype=np.float64)
            p = np.broadcast_to(p, a.shape + p.shape[-1:]).copy()
            object.__setattr__(self, "position_acceptance", p)


@runtime_checkable
class AcceptanceSource(Protocol):
    """Anything that gives α for draft shapes: a fitted model, a fixed α, a measured file.

    ``predict`` takes the draft features as keyword arrays (``params``, ``depth``, ``hidden``,
    ``training_tokens``, ``distilled``; sources that ignore shape ignore them) and returns an
    :class:`AcceptancePrediction` broadcast over them.
    """

    def predict(self, **features: ArrayLike) -> AcceptancePrediction:
        """α for the draft shapes described by ``features``."""
        ...


def _broadcast_size(features: Mapping[str, ArrayLike]) -> tuple[int, ...]:
    arrays = [np.asarray(v) for v in features.values() if v is not None]
    return np.broadcast_shapes(*(a.shape for a in arrays)) if arrays else ()


@dataclass(frozen=True)
class FixedAcceptance:
    """α (or α_i) given directly: a what-if, or a measured value for one known draft.

    Parameters
    ----------
    acceptance_rate : float or None
        α in [0, 1]. May be omitted when ``position_acceptance`` is given; α is then the
        geometric mean of the α_i (same probability of accepting all of them).
    position_acceptance : sequence of float or None
        α_i, i = 1..m, each in [0, 1].
    source : str
        Label shown in outputs (``"fixed"``, or the file it was read from).

    Examples
    --------
    >>> FixedAcceptance(acceptance_rate=0.8).predict(params=[1e6, 2e6]).acceptance_rate.tolist()
    [0.8, 0.8]
    """

    acceptance_rate: float | None = None
    position_acceptance: tuple[float, ...] | None = None
    source: str = "fixed"

    def __post_init__(self) -> None:
        if self.acceptance_rate is None and self.position_acceptance is None:
            raise ValueError(
                "`acceptance_rate is not None or position_acceptance is not None` must hold, "
                "but got neither."
            )
        if self.acceptance_rate is not None:
            a = self.acceptance_rate
            if not (isinstance(a, int | float) and 0.0 <= float(a) <= 1.0):
                raise ValueError(
                    f"`0 <= acceptance_rate <= 1` must hold, but got acceptance_rate={a!r}."
                )
            object.__setattr__(self, "acceptance_rate", float(a))
        if self.position_acceptance is not None:
            p = tuple(float(x) for x in self.position_acceptance)
            if not p or any(not (0.0 <= x <= 1.0) for x in p):
                raise ValueError(
                    "`0 <= position_acceptance[i] <= 1` must hold for every i (at least one), "
                    f"but got position_acceptance={list(p)}."
                )
            object.__setattr__(self, "position_acceptance", p)
            if self.acceptance_rate is None:
                # The scalar α a scalar-only consumer sees: the geometric mean of the α_i, which
                # gives the same probability of accepting all m proposals.
                object.__setattr__(self, "acceptance_rate", float(np.prod(p) ** (1.0 / len(p))))

    def predict(self, **features: ArrayLike) -> AcceptancePrediction:
        shape = _broadcast_size(features)
        size = int(np.prod(shape)) if shape else 1
        a = np.full(size, self.acceptance_rate)
        pos = None
        if self.position_acceptance is not None:
            pos = np.tile(np.asarray(self.position_acceptance), (size, 1))
        return AcceptancePrediction(a, a, a, 0.9, pos, self.source)


def acceptance_from_file(path: str | os.PathLike[str]) -> FixedAcceptance:
    """Read a measured acceptance file as a fixed acceptance source.

    Parameters
    ----------
    path : path
        A JSON file with ``acceptance_rate`` (α̂) and optionally ``position_acceptance`` (α̂_i)
        at the top level or under ``"result"``/``"summary"``; or a JSON/CSV file that
        :func:`load_acceptance_table` reads, with exactly one row.

    Returns
    -------
    FixedAcceptance
        Labelled with the file path.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"acceptance file {str(path)!r} does not exist.")
    if path.suffix == ".json":
        obj = json.loads(path.read_text())
        for key in ("result", "summary", "acceptance"):
            if isinstance(obj, dict) and isinstance(obj.get(key), dict):
                if any(k in obj[key] for k in ("acceptance_rate", "alpha")):
                    obj = obj[key]
        if isinstance(obj, dict):
            alpha = _first(obj, "acceptance_rate")
            pos = _first(obj, "position_acceptance")
            if alpha is not None or pos is not None:
                if pos is not None:
                    pos = [x for x in pos if x is not None and not _isnan(x)]
                return FixedAcceptance(
                    acceptance_rate=None if alpha is None else float(alpha),
                    position_acceptance=tuple(pos) if pos else None,
                    source=str(path),
                )
    table = load_acceptance_table(path)
    if len(table) != 1:
        raise ValueError(
            "`an acceptance file holds one measurement` must hold, but got "
            f"{len(table)} rows in {str(path)!r}; pass it as a table to fit the model instead."
        )
    return FixedAcceptance(
        acceptance_rate=float(table["acceptance_rate"].iloc[0]), source=str(path)
    )
