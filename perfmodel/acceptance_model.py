"""Acceptance model: predict α (and α_i) for a draft shape that was never trained.

A draft's acceptance rate α (``acceptance_rate``, DESIGN.md) is learned from measured pairs: one
row per trained draft with its shape, size, training budget and the α measured against the
target. The model is a Gaussian process on logit(α) over standardised features

    log(params), depth, log(hidden), log(training_tokens), distilled

with an RBF kernel plus a linear kernel (so a trend such as "more parameters, higher α" carries
beyond the data instead of reverting to the mean) plus white noise; the hyperparameters maximise
the marginal likelihood under weak log-normal priors (a handful of drafts cannot pin five free
length scales, so one shared length scale is used). It returns a mean and an interval, and
:meth:`AcceptanceModel.leave_one_out` refits it once per draft left out and reports how far the
held-out prediction was from the measurement: the number to quote before trusting a prediction.

Two other acceptance sources share the same ``predict`` interface: :class:`FixedAcceptance`
(α or α_i given directly, a what-if) and :func:`acceptance_from_file` (a measured acceptance
file). numpy, scipy and pandas only.

Modules: :mod:`perfmodel.acceptance_tables` (reading measured tables, the feature names),
:mod:`perfmodel.acceptance_sources` (the ``predict`` interface, fixed and file sources),
:mod:`perfmodel.acceptance_gp` (the kernel and its hyperparameter fit), this one (the fitted
model and its leave-one-out check). Every public name is importable from here.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy import linalg, special, stats

from perfmodel.acceptance_gp import _NOISE_FLOOR, _fit_kernel, _Kernel
from perfmodel.acceptance_sources import (
    AcceptancePrediction,
    AcceptanceSource,
    FixedAcceptance,
    acceptance_from_file,
)
from perfmodel.acceptance_tables import (
    _LOG_FEATURES,
    FEATURES,
    _alias_map,
    load_acceptance_table,
)

__all__ = [
    "FEATURES",
    "AcceptanceModel",
    "AcceptancePrediction",
    "AcceptanceSource",
    "FixedAcceptance",
    "LeaveOneOutReport",
    "acceptance_from_file",
    "load_acceptance_table",
]

# logit(α) is clipped this far from 0 and 1: a draft measured at α = 1 on a short trace must not
# become +∞ in the regression.
_ALPHA_CLIP = 1e-3


@dataclass(frozen=True)
class LeaveOneOutReport:
    """How well the model predicts a draft it has not seen: one refit per draft left out.

    Attributes
    ----------
    table : DataFrame
        One row per draft: ``draft``, ``measured``, ``predicted``, ``lower``, ``upper``,
        ``abs_error`` (|predicted − measured|, in α) and ``covered`` (measured inside the
        interval).
    median_abs_error, mean_abs_error, max_abs_error : float
        Of α over the drafts.
    coverage : float
        Fraction of drafts whose measured α fell inside the interval (nominal: ``level``).
    level : float
        The interval's nominal probability.
    """

    table: pd.DataFrame
    median_abs_error: float
    mean_abs_error: float
    max_abs_error: float
    coverage: float
    level: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "drafts": int(len(self.table)),
            "median_abs_error": self.median_abs_error,
            "mean_abs_error": self.mean_abs_error,
            "max_abs_error": self.max_abs_error,
            "coverage": self.coverage,
            "level": self.level,
        }


@dataclass(frozen=True)
class AcceptanceModel:
    """A fitted acceptance model: α for a draft shape from measured pairs.

    Build one with :meth:`fit`; predict with :meth:`predict`. Frozen: a fit is a value.

    Attributes
    ----------
    table : DataFrame
        The measurements it was fitted on (see :func:`load_acceptance_table`).
    features : tuple of str
        Features used (those of :data:`FEATURES` that vary in the table).
    level : float
        Probability of the predicted interval.
    """

    table: pd.DataFrame
    features: tuple[str, ...]
    level: float
    _center: NDArray = field(repr=False)
    _scale: NDArray = field(repr=False)
    _y_mean: float = field(repr=False)
    _x: NDArray = field(repr=False)
    _kernel: _Kernel = field(repr=False)
    _chol: tuple[NDArray, bool] = field(repr=False)
    _weights: NDArray = field(repr=False)
    # mean over drafts of logit(α_i) − logit(α), i = 1..m (None without per-position data)
    _position_offset: NDArray | None = field(default=None, repr=False)

    @classmethod
    def fit(
        cls,
        table: pd.DataFrame | str | os.PathLike[str],
        *,
        level: float = 0.9,
        restarts: int = 4,
        seed: int = 0,
    ) -> AcceptanceModel:
        """Fit the Gaussian process to measured pairs.

        Parameters
        ----------
        table : DataFrame or path
            Measured drafts; anything :func:`load_acceptance_table` reads. Needs >= 3 distinct
            drafts.
        level : float
            Probability of the predicted interval, in (0, 1).
        restarts : int
            Optimiser starts for the hyperparameters (the first at the prior medians).
        seed : int
            Seed of the restart points.

        Returns
        -------
        AcceptanceModel

        Notes
        -----
        y = logit(clip(α, 1e-3, 1 − 1e-3)) − mean; x = standardised features; the kernel is
        s_f² exp(−|x − x'|² / 2ℓ²) + s_l² x·x' + s_n² δ. Hyperparameters maximise
        log p(y | x, θ) + log p(θ) with log-normal priors (L-BFGS-B, ``restarts`` starts). The
        predictive distribution of logit(α) for a new draft is normal; the interval maps its
        quantiles through the logistic function. When rows carry ``position_acceptance``, α_i
        is predicted as logistic(logit(α̂) + δ_i) with δ_i the mean offset of position i from
        α in the measured drafts.

        References
        ----------
        Rasmussen and Williams, *Gaussian Processes for Machine Learning*, MIT Press 2006,
        algorithm 2.1 and section 5.4.
        """
        if not (0 < level < 1):
            raise ValueError(f"`0 < level < 1` must hold, but got level={level}.")
        df = load_acceptance_table(table)
        n_drafts = df["draft"].nunique()
        if n_drafts < 3:
            raise ValueError(
                f"`at least 3 measured drafts` must hold to fit the acceptance model, but got {n_drafts}."
            )
        raw = _raw_features(df, FEATURES)
        varying = tuple(f for f, col in zip(FEATURES, raw.T, strict=True) if np.ptp(col) > 0)
        if not varying:
            raise ValueError(
                "`the drafts differ in at least one feature` must hold, but all rows have one shape."
            )
        raw = _raw_features(df, varying)
        center = raw.mean(0)
        scale = raw.std(0)
        x = (raw - center) / scale
        y_raw = special.logit(
            np.clip(df["acceptance_rate"].to_numpy(float), _ALPHA_CLIP, 1 - _ALPHA_CLIP)
        )
        y_mean = float(y_raw.mean())
        y = y_raw - y_mean
        kernel = _fit_kernel(x, y, restarts=restarts, seed=seed)
        cov = kernel.cross(x, x) + (kernel.noise_sd**2 + _NOISE_FLOOR**2) * np.eye(len(y))
        chol = linalg.cho_factor(cov, lower=True)
        weights = linalg.cho_solve(chol, y)
        return cls(
            table=df,
            features=varying,
            level=level,
            _center=center,
            _scale=scale,
            _y_mean=y_mean,
            _x=x,
            _kernel=kernel,
            _chol=chol,
            _weights=weights,
            _position_offset=_position_offsets(df),
        )

    @property
    def hyperparameters(self) -> dict[str, float]:
        """Fitted kernel parameters (logit scale, standardised inputs)."""
        k = self._kernel
        return {
            "signal_sd": k.signal_sd,
            "length_scale": k.length_scale,
            "linear_sd": k.linear_sd,
            "noise_sd": k.noise_sd,
        }

    def predict_logit(self, **features: ArrayLike) -> tuple[NDArray, NDArray]:
        """Mean and standard deviation of logit(α) for draft shapes, shape (m,).

        The standard deviation is that of a new measurement (latent uncertainty plus the
        fitted noise), since a prediction is compared with a measured α.
        """
        missing = [f for f in self.features if features.get(f) is None]
        if missing:
            raise ValueError(
                f"`features {list(self.features)} are given` must hold to predict α, but {missing} are missing."
            )
        cols = [np.asarray(features[f], dtype=np.float64) for f in self.features]
        cols = [c.ravel() for c in np.broadcast_arrays(*cols)]
        for f, c in zip(self.features, cols, strict=True):
            if f in _LOG_FEATURES and (c <= 0).any():
                raise ValueError(f"`{f} > 0` must hold, but got {f}={c.min()}.")
        raw = np.stack(
            [
                np.log(c) if f in _LOG_FEATURES else c
                for f, c in zip(self.features, cols, strict=True)
            ],
            1,
        )
        xs = (raw - self._center) / self._scale
        k_star = self._kernel.cross(xs, self._x)  # (m, n)
        mean = self._y_mean + k_star @ self._weights
        v = linalg.cho_solve(self._chol, k_star.T)  # (n, m)
        var = self._kernel.diag(xs) - (k_star * v.T).sum(1) + self._kernel.noise_sd**2
        return mean, np.sqrt(np.maximum(var, 1e-12))

    def predict(self, **features: ArrayLike) -> AcceptancePrediction:
        """Predicted α with its interval for draft shapes.

        Parameters
        ----------
        **features : array_like
            ``params`` (count), ``depth`` (layers), ``hidden`` (width), ``training_tokens``
            (count), ``distilled`` (bool); broadcast together. Extra keywords are ignored.

        Returns
        -------
        AcceptancePrediction
            Median α (logistic of the predictive mean of logit α) and the ``level`` interval.

        Examples
        --------
        >>> import pandas as pd
        >>> t = pd.DataFrame({"depth": [1, 2, 4, 2], "hidden": [64, 64, 128, 128],
        ...     "params": [1e5, 2e5, 8e5, 4e5], "training_tokens": 1e6,
        ...     "acceptance_rate": [0.3, 0.4, 0.6, 0.5]})
        >>> m = AcceptanceModel.fit(t)
        >>> p = m.predict(params=3e5, depth=2, hidden=96, training_tokens=1e6, distilled=False)
        >>> bool(p.lower[0] < p.acceptance_rate[0] < p.upper[0])
        True
        """
        mean, sd = self.predict_logit(**features)
        z = stats.norm.ppf(0.5 + self.level / 2)
        pos = None
        if self._position_offset is not None:
            pos = special.expit(mean[:, None] + self._position_offset[None, :])
        return AcceptancePrediction(
            acceptance_rate=special.expit(mean),
            lower=special.expit(mean - z * sd),
            upper=special.expit(mean + z * sd),
            level=self.level,
            position_acceptance=pos,
            source="model",
        )

    def predict_frame(self, frame: pd.DataFrame) -> AcceptancePrediction:
        """:meth:`predict` for the rows of a table with the feature columns."""
        frame = frame.rename(columns=_alias_map(frame.columns))
        return self.predict(**{f: frame[f].to_numpy(float) for f in self.features if f in frame})

    def leave_one_out(self, *, restarts: int = 2) -> LeaveOneOutReport:
        """Refit without each draft in turn and predict it: the model's honest error.

        Parameters
        ----------
        restarts : int
            Optimiser starts per refit.

        Returns
        -------
        LeaveOneOutReport
            Per-draft measured vs predicted α and the summary errors.

        Notes
        -----
        Rows that share a ``draft`` name (one draft measured on several prompt sets) are left
        out together, so the held-out draft's own repeats cannot leak into its prediction.
        """
        df = self.table
        rows = []
        for name, held in df.groupby("draft", sort=False):
            train = df[df["draft"] != name]
            if train["draft"].nunique() < 3:
                continue
            try:
                model = AcceptanceModel.fit(train, level=self.level, restarts=restarts)
            except ValueError:
                continue
            pred = model.predict_frame(held)
            measured = float(held["acceptance_rate"].mean())
            rows.append(
                {
                    "draft": name,
                    "measured": measured,
                    "predicted": float(pred.acceptance_rate.mean()),
                    "lower": float(pred.lower.mean()),
                    "upper": float(pred.upper.mean()),
                }
            )
        if not rows:
            raise ValueError(
                "`at least 4 measured drafts` must hold for a leave-one-out estimate, but got fewer."
            )
        table = pd.DataFrame(rows)
        table["abs_error"] = (table["predicted"] - table["measured"]).abs()
        table["covered"] = (table["lower"] <= table["measured"]) & (
            table["measured"] <= table["upper"]
        )
        return LeaveOneOutReport(
            table=table,
            median_abs_error=float(table["abs_error"].median()),
            mean_abs_error=float(table["abs_error"].mean()),
            max_abs_error=float(table["abs_error"].max()),
            coverage=float(table["covered"].mean()),
            level=self.level,
        )


def _raw_features(df: pd.DataFrame, names: Sequence[str]) -> NDArray:
    cols = []
    for f in names:
        c = df[f].to_numpy(dtype=np.float64)
        cols.append(np.log(c) if f in _LOG_FEATURES else c)
    return np.stack(cols, 1)


def _position_offsets(df: pd.DataFrame) -> NDArray | None:
    if "position_acceptance" not in df:
        return None
    offsets = []
    for alpha, pos in zip(df["acceptance_rate"], df["position_acceptance"], strict=True):
        if isinstance(pos, str):
            try:
                pos = json.loads(pos)
            except json.JSONDecodeError:
                continue
        if not isinstance(pos, list | tuple | np.ndarray) or len(pos) == 0:
            continue
        p = np.array([np.nan if v is None else v for v in pos], dtype=np.float64)
        clip = lambda v: np.clip(v, _ALPHA_CLIP, 1 - _ALPHA_CLIP)  # noqa: E731
        offsets.append(special.logit(clip(p)) - special.logit(clip(alpha)))
    if not offsets:
        return None
    m = max(len(o) for o in offsets)
    padded = np.full((len(offsets), m), np.nan)
    for i, o in enumerate(offsets):
        padded[i, : len(o)] = o
    with np.errstate(all="ignore"):
        mean = np.nanmean(padded, axis=0)
    # a position no draft reached gets the last known offset
    for i in range(m):
        if np.isnan(mean[i]):
            mean[i] = mean[i - 1] if i > 0 else 0.0
    return mean
