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
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy import linalg, optimize, special, stats

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

# Feature names in the order the model uses them, and how each raw column becomes a feature.
FEATURES: tuple[str, ...] = ("params", "depth", "hidden", "training_tokens", "distilled")
_LOG_FEATURES = frozenset({"params", "hidden", "training_tokens"})

# Column names other tables use for the same quantity (drafts.csv, user CSVs, acceptance JSON).
_ALIASES: dict[str, tuple[str, ...]] = {
    "depth": ("layers", "num_layers", "num_hidden_layers", "n_layers", "draft_layers"),
    "hidden": ("hidden_size", "d_model", "draft_hidden"),
    "params": ("param_count", "parameters", "n_params", "num_params", "draft_params"),
    "training_tokens": ("tokens", "train_tokens", "training_tokens_total", "token_budget"),
    "distilled": ("is_distilled", "distill"),
    "acceptance_rate": ("alpha", "acceptance", "alpha_hat"),
    "mean_accepted_length": ("tau", "mean_tokens_per_step"),
    "position_acceptance": ("alpha_i", "position_acceptance_rates"),
    "draft": ("name", "draft_name", "draft_id", "model"),
}

# logit(α) is clipped this far from 0 and 1: a draft measured at α = 1 on a short trace must not
# become +∞ in the regression.
_ALPHA_CLIP = 1e-3
# Noise standard deviation floor on the logit scale (keeps the Cholesky factor well conditioned).
_NOISE_FLOOR = 1e-3


# --- acceptance sources -------------------------------------------------------------------------


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


def _first(obj: Mapping[str, Any], name: str) -> Any:
    for key in (name, *_ALIASES.get(name, ())):
        if key in obj:
            return obj[key]
    return None


def _isnan(x: Any) -> bool:
    return isinstance(x, float) and math.isnan(x)


# --- measured tables ----------------------------------------------------------------------------


def load_acceptance_table(source: str | os.PathLike[str] | pd.DataFrame) -> pd.DataFrame:
    """Measured draft/α pairs as a tidy table with the model's column names.

    Parameters
    ----------
    source : path or DataFrame
        A CSV (``data/zoo/drafts.csv`` or a user's own), a JSON file (one object or a list of
        objects; a nested ``"draft"`` object is flattened), a folder of such JSON files
        (``data/acceptance/``), or a DataFrame.

    Returns
    -------
    DataFrame
        Columns ``depth``, ``hidden``, ``params``, ``training_tokens``, ``distilled`` (bool),
        ``acceptance_rate``, ``draft`` (a name to group by), and any other columns as given.
        Column aliases (``layers``, ``hidden_size``, ``alpha``, ``tau`` ...) are renamed; α is
        recovered from ``mean_accepted_length`` and ``gamma`` when only τ was recorded.
    """
    if isinstance(source, pd.DataFrame):
        df = source.copy()
        label = "the given table"
    else:
        path = Path(source)
        label = str(path)
        if path.is_dir():
            rows = [r for f in sorted(path.glob("*.json")) for r in _json_rows(f)]
            if not rows:
                raise ValueError(
                    f"`a folder of acceptance JSON files` must hold, but {label!r} has none."
                )
            df = pd.DataFrame(rows)
        elif not path.exists():
            raise FileNotFoundError(f"acceptance table {label!r} does not exist.")
        elif path.suffix == ".json":
            df = pd.DataFrame(_json_rows(path))
        else:
            df = pd.read_csv(path)
    df = df.rename(columns=_alias_map(df.columns))
    if "acceptance_rate" not in df and {"mean_accepted_length", "gamma"} <= set(df.columns):
        from perfmodel.acceptance import acceptance_rate_from_tokens_per_step

        df["acceptance_rate"] = acceptance_rate_from_tokens_per_step(
            df["mean_accepted_length"].to_numpy(float), df["gamma"].to_numpy(int)
        )
    missing = [c for c in (*FEATURES, "acceptance_rate") if c not in df]
    if "distilled" in missing:
        df["distilled"] = False
        missing.remove("distilled")
    if missing:
        raise ValueError(
            f"`the acceptance table has columns {[*FEATURES, 'acceptance_rate']}` must hold, "
            f"but {label!r} lacks {missing} (has {list(df.columns)})."
        )
    df["distilled"] = df["distilled"].map(_as_bool)
    for col in ("depth", "hidden", "params", "training_tokens", "acceptance_rate"):
        df[col] = pd.to_numeric(df[col], errors="coerce")
    df = df.dropna(subset=["acceptance_rate", "depth", "hidden", "params", "training_tokens"])
    bad = df[(df["acceptance_rate"] < 0) | (df["acceptance_rate"] > 1)]
    if len(bad):
        raise ValueError(
            "`0 <= acceptance_rate <= 1` must hold for every row, but got "
            f"acceptance_rate={bad['acceptance_rate'].iloc[0]} in {label!r}."
        )
    for col in ("params", "hidden", "training_tokens", "depth"):
        if (df[col] <= 0).any():
            raise ValueError(
                f"`{col} > 0` must hold for every row, but got {col}={df[col].min()} in {label!r}."
            )
    if "draft" not in df:
        df["draft"] = [
            f"L{int(r.depth)}-H{int(r.hidden)}-T{int(r.training_tokens)}{'-d' if r.distilled else ''}"
            for r in df.itertuples()
        ]
    return df.reset_index(drop=True)


def _alias_map(columns: Sequence[str]) -> dict[str, str]:
    present = set(columns)
    out = {}
    for name, aliases in _ALIASES.items():
        if name in present:
            continue
        for alias in aliases:
            if alias in present:
                out[alias] = name
                break
    return out


def _json_rows(path: Path) -> list[dict[str, Any]]:
    obj = json.loads(path.read_text())
    items = (
        obj if isinstance(obj, list) else obj.get("rows", [obj]) if isinstance(obj, dict) else []
    )
    rows = []
    for item in items:
        row = {}
        for key, value in item.items():
            if isinstance(value, dict) and key in ("draft", "result", "summary", "config"):
                row.update({k: v for k, v in value.items() if not isinstance(v, dict | list)})
            else:
                row[key] = value
        rows.append(row)
    return rows


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "y", "t")
    return bool(value) and not _isnan(value)


# --- Gaussian process on logit(α) ---------------------------------------------------------------


@dataclass(frozen=True)
class _Kernel:
    """RBF (one length scale) + linear + white noise, parameters on the natural scale."""

    signal_sd: float
    length_scale: float
    linear_sd: float
    noise_sd: float

    def cross(self, a: NDArray, b: NDArray) -> NDArray:
        # (n, m) squared distances between rows of a (n, d) and b (m, d)
        sq = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
        rbf = self.signal_sd**2 * np.exp(-0.5 * sq / self.length_scale**2)
        return rbf + self.linear_sd**2 * (a @ b.T)

    def diag(self, a: NDArray) -> NDArray:
        return self.signal_sd**2 + self.linear_sd**2 * (a * a).sum(-1)


# Weak log-normal priors on the hyperparameters (logit scale, standardised inputs):
# median, and standard deviation of the log. Reason: with 5-15 drafts the marginal likelihood
# alone can push the noise to zero or a length scale to infinity.
_PRIORS = {
    "signal_sd": (0.5, 1.5),
    "length_scale": (2.0, 1.0),
    "linear_sd": (0.3, 1.5),
    "noise_sd": (0.1, 1.5),
}


def _neg_log_posterior(theta: NDArray, x: NDArray, y: NDArray) -> float:
    k = _Kernel(*np.exp(theta))
    n = len(y)
    cov = k.cross(x, x) + (k.noise_sd**2 + _NOISE_FLOOR**2) * np.eye(n)
    try:
        chol = linalg.cho_factor(cov, lower=True)
    except linalg.LinAlgError:
        return 1e10
    alpha = linalg.cho_solve(chol, y)
    nll = 0.5 * y @ alpha + np.log(np.diag(chol[0])).sum() + 0.5 * n * np.log(2 * np.pi)
    prior = sum(
        0.5 * ((t - np.log(med)) / sd) ** 2
        for t, (med, sd) in zip(theta, _PRIORS.values(), strict=True)
    )
    return float(nll + prior)


def _fit_kernel(x: NDArray, y: NDArray, *, restarts: int, seed: int) -> _Kernel:
    rng = np.random.default_rng(seed)
    start = np.log([med for med, _ in _PRIORS.values()])
    best = None
    for i in range(max(restarts, 1)):
        theta0 = start if i == 0 else start + rng.normal(0, 0.7, size=start.shape)
        res = optimize.minimize(
            _neg_log_posterior, theta0, args=(x, y), method="L-BFGS-B", bounds=[(-7, 4)] * 4
        )
        if best is None or res.fun < best.fun:
            best = res
    return _Kernel(*np.exp(best.x))


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
