"""Gaussian-process kernel on logit(α) and its hyperparameter fit (maximum a posteriori).

RBF kernel with one shared length scale, plus a linear kernel (so a trend carries beyond the
data instead of reverting to the mean), plus white noise; the hyperparameters maximise the
marginal likelihood under weak log-normal priors. Used by
:class:`perfmodel.acceptance_model.AcceptanceModel`. numpy and scipy only.

References
----------
Rasmussen and Williams, *Gaussian Processes for Machine Learning*, MIT Press 2006,
algorithm 2.1 and section 5.4.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import linalg, optimize

__all__: list[str] = []

# Noise standard deviation floor on the logit scale (keeps the Cholesky factor well conditioned).
_NOISE_FLOOR = 1e-3


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
