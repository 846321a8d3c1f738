"""Gaussian differential privacy (Dong, Roth & Su 2019/2022): exact conversions of mu-GDP."""

from __future__ import annotations

import math

from tabpriv.accounting.interface import Adjacency, check_adjacency
from tabpriv.errors import PrivacyParameterError

__all__ = ["calibrate_gdp_noise", "gdp_delta", "gdp_epsilon", "gdp_mu"]


def gdp_delta(epsilon: float, mu: float) -> float:
    """Exact delta(epsilon) of a mu-GDP mechanism: Phi(-eps/mu + mu/2) - e^eps Phi(-eps/mu - mu/2)."""
    from scipy.stats import norm

    a = float(norm.cdf(-epsilon / mu + mu / 2))
    b = math.exp(epsilon + float(norm.logcdf(-epsilon / mu - mu / 2)))
    return max(0.0, a - b)


def gdp_epsilon(mu: float, delta: float) -> float:
    """Smallest epsilon with ``gdp_delta(epsilon, mu) <= delta`` (exact conversion, rounded up)."""
    from scipy.optimize import brentq

    if not (math.isfinite(mu) and mu > 0):
        raise PrivacyParameterError(f"mu must be finite and > 0; got {mu!r}.")
    if gdp_delta(0.0, mu) <= delta:
        return 0.0
    hi = 1.0
    while gdp_delta(hi, mu) > delta:
        hi *= 2.0
        if hi > 1e6:
            raise PrivacyParameterError(f"mu={mu:g} is too large to convert at delta={delta:g}.")
    eps = float(brentq(lambda e: gdp_delta(e, mu) - delta, 0.0, hi, xtol=1e-12, rtol=1e-12))
    while gdp_delta(eps, mu) > delta:  # make sure the rounding is on the safe side
        eps *= 1 + 1e-9
    return eps


def gdp_mu(epsilon: float, delta: float) -> float:
    """Largest mu (up to 1e-9 relative) whose exact (epsilon, delta) conversion fits the target."""
    from scipy.optimize import brentq

    mu = float(brentq(lambda m: gdp_delta(epsilon, m) - delta, 1e-8, 200.0, xtol=1e-14, rtol=1e-12))
    while gdp_delta(epsilon, mu) > delta:
        mu *= 1 - 1e-9
    return mu


def calibrate_gdp_noise(
    epsilon: float, delta: float, sensitivity: float, *, adjacency: Adjacency = "replace-one"
) -> tuple[float, float, float]:
    """Smallest Gaussian noise scale ``s`` making a release of L2 sensitivity ``sensitivity`` (eps, delta)-DP.

    A Gaussian release of sensitivity ``S`` with noise ``s`` is ``mu = S / s``-GDP. Starting from
    ``S / gdp_mu(epsilon, delta)``, :func:`~tabpriv.accounting.calibrate` nudges ``s`` up by factors
    ``1 + 1e-9`` (no bisection) until the exact conversion :func:`gdp_epsilon` fits the target.

    Returns:
        ``(s, mu, epsilon achieved)``.

    """
    from tabpriv.accounting.calibrate import calibrate

    check_adjacency(adjacency)
    if not (math.isfinite(sensitivity) and sensitivity > 0):
        raise PrivacyParameterError(f"sensitivity must be finite and > 0; got {sensitivity!r}.")
    s0 = sensitivity / gdp_mu(epsilon, delta)
    cal = calibrate(
        lambda s: gdp_epsilon(sensitivity / s, delta), epsilon, hi=s0, grow=1 + 1e-9, bisect=False
    )
    return cal.noise, sensitivity / cal.noise, cal.epsilon
