"""Zero-concentrated DP (rho) and the discrete Gaussian (Canonne, Kamath & Steinke 2020), with OpenDP."""

from __future__ import annotations

import math
from dataclasses import dataclass

from tabpriv.accounting.calibrate import calibrate
from tabpriv.accounting.interface import Adjacency, DiscreteGaussian, check_adjacency
from tabpriv.budget import check_delta, check_epsilon
from tabpriv.errors import PrivacyParameterError

__all__ = [
    "MAX_DISCRETE_GAUSSIAN_EPSILON",
    "OPENDP_VERSION",
    "ZCDP_CONVERSION",
    "DiscreteGaussianCalibration",
    "calibrate_discrete_gaussian",
    "discrete_gaussian_rho",
    "opendp_discrete_gaussian_epsilon",
    "zcdp_epsilon",
    "zcdp_rho_for",
]

#: How the zCDP figures are converted to (epsilon, delta), in words (stated in reports).
ZCDP_CONVERSION = (
    "rho-zCDP -> (epsilon, delta) by the conversion of Canonne, Kamath & Steinke 2020 (Corollary 13), "
    "minimised over the Renyi order"
)


def _opendp_version() -> str:
    try:
        from importlib.metadata import version

        return version("opendp")
    except Exception:  # pragma: no cover - metadata missing
        return "unknown"


OPENDP_VERSION = _opendp_version()


def discrete_gaussian_rho(sigma: float, l2_sensitivity: float) -> float:
    """The zCDP parameter of the discrete Gaussian ``N_Z(0, sigma^2)`` on an integer query of L2 sensitivity.

    ``rho = sensitivity^2 / (2 sigma^2)`` (Canonne, Kamath & Steinke 2020, Theorem 4); the same figure as
    the continuous Gaussian, for the vector case coordinate-wise with the L2 sensitivity.
    """
    if not (math.isfinite(sigma) and sigma > 0):
        raise PrivacyParameterError(f"sigma must be finite and > 0; got {sigma!r}.")
    if not (math.isfinite(l2_sensitivity) and l2_sensitivity > 0):
        raise PrivacyParameterError(f"l2_sensitivity must be finite and > 0; got {l2_sensitivity!r}.")
    return l2_sensitivity * l2_sensitivity / (2.0 * sigma * sigma)


def _zcdp_eps_at(alpha: float, rho: float, log_delta: float) -> float:
    """``alpha rho + ln(1 - 1/alpha) - (ln delta + ln alpha) / (alpha - 1)`` at one order ``alpha > 1``."""
    return alpha * rho + math.log1p(-1.0 / alpha) - (log_delta + math.log(alpha)) / (alpha - 1.0)


def zcdp_epsilon(rho: float, delta: float) -> float:
    """Smallest epsilon such that a ``rho``-zCDP mechanism is ``(epsilon, delta)``-DP, by the CKS bound.

    Canonne, Kamath & Steinke (2020), Corollary 13: rho-zCDP implies (epsilon, delta)-DP for
    ``epsilon = inf_{alpha > 1} alpha rho + ln(1 - 1/alpha) - (ln delta + ln alpha) / (alpha - 1)``
    (floored at 0). The order is optimised numerically (a dense grid in ``log(alpha - 1)`` refined by
    a bounded scalar search); the objective is smooth and unimodal in ``alpha``. This is the
    conversion OpenDP's ``make_zCDP_to_approxDP`` implements (tests compare the two).

    Raises:
        PrivacyParameterError: ``rho`` not finite and >= 0, or ``delta`` not in (0, 1).

    """
    import numpy as np
    from scipy.optimize import minimize_scalar

    delta = check_delta(delta)
    if not (isinstance(rho, int | float) and math.isfinite(rho) and rho >= 0):
        raise PrivacyParameterError(f"rho must be a finite number >= 0; got {rho!r}.")
    if rho == 0:
        return 0.0
    log_delta = math.log(delta)
    # The minimiser is near 1 + sqrt(ln(1/delta) / rho); search six decades either side of it.
    centre = math.sqrt(-log_delta / rho)
    grid = np.geomspace(max(centre * 1e-6, 1e-12), centre * 1e6, 1200)
    alphas = 1.0 + grid
    vals = alphas * rho + np.log1p(-1.0 / alphas) - (log_delta + np.log(alphas)) / grid
    i = int(np.argmin(vals))
    best = float(vals[i])
    lo, hi = float(alphas[max(i - 1, 0)]), float(alphas[min(i + 1, alphas.size - 1)])
    if hi > lo:
        res = minimize_scalar(
            lambda a: _zcdp_eps_at(a, rho, log_delta), bounds=(lo, hi), method="bounded",
            options={"xatol": 1e-12 * hi},
        )  # fmt: skip
        best = min(best, float(res.fun))
    return max(0.0, best)


def zcdp_rho_for(epsilon: float, delta: float) -> float:
    """Largest ``rho`` with ``zcdp_epsilon(rho, delta) <= epsilon`` (bisection to 1e-12 relative)."""
    epsilon = check_epsilon(epsilon)
    delta = check_delta(delta)
    lo, hi = 0.0, max(1.0, epsilon)
    while zcdp_epsilon(hi, delta) <= epsilon:
        lo, hi = hi, 2.0 * hi
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if zcdp_epsilon(mid, delta) <= epsilon:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-12 * hi:
            break
    if lo <= 0:  # pragma: no cover - epsilon > 0 always admits some rho > 0
        raise PrivacyParameterError(f"Cannot reach epsilon={epsilon} at delta={delta} with any rho > 0.")
    return lo


def opendp_discrete_gaussian_epsilon(
    sigma: float, l2_sensitivity: float, delta: float
) -> tuple[float, float]:
    """``(rho, epsilon)`` of OpenDP's own discrete Gaussian measurement and zCDP -> approx-DP conversion.

    Builds ``make_gaussian`` on ``vector_domain(atom_domain(T="i64"))`` with ``l2_distance(T="f64")``
    at scale ``sigma`` (the measurement tabpriv samples with), maps ``l2_sensitivity`` through it (OpenDP
    rounds conservatively) and converts with ``make_zCDP_to_approxDP``. A second, maintained computation
    of :func:`discrete_gaussian_rho` and :func:`zcdp_epsilon`.
    """
    import opendp.prelude as dp

    dp.enable_features("contrib")
    meas = dp.m.make_gaussian(dp.vector_domain(dp.atom_domain(T="i64")), dp.l2_distance(T="f64"), sigma)
    rho = float(meas.map(float(l2_sensitivity)))
    eps = float(dp.c.make_zCDP_to_approxDP(meas).map(float(l2_sensitivity)).epsilon(delta))
    return rho, eps


#: Largest epsilon a discrete Gaussian is calibrated to: a larger target is calibrated to this one
#: (spending less than asked is always allowed, and the ledger records what was spent). At this epsilon
#: the noise is already below 0.1 counts for any sensitivity up to ~30, so released counts are exact
#: with overwhelming probability; beyond it OpenDP's zCDP -> approx-DP conversion overflows.
MAX_DISCRETE_GAUSSIAN_EPSILON = 1e4


@dataclass(frozen=True)
class DiscreteGaussianCalibration:
    """Result of calibrating one discrete Gaussian mechanism on integer counts.

    Attributes:
        sigma: Scale of the discrete Gaussian ``N_Z(0, sigma^2)`` added to every count.
        sensitivity: Integer-valued query's L2 sensitivity the noise was calibrated for.
        rho: zCDP parameter ``sensitivity^2 / (2 sigma^2)``.
        epsilon: Epsilon at ``delta`` of ``rho``-zCDP (<= target).
        delta: Delta.
        accountant: Description of the accountant.

    """

    sigma: float
    sensitivity: float
    rho: float
    epsilon: float
    delta: float
    accountant: str

    @property
    def mechanism(self) -> DiscreteGaussian:
        """The calibrated mechanism as a typed value (``mechanism.accountant`` is an ``AccountantInfo``)."""
        return DiscreteGaussian(self.sigma, self.sensitivity)


def calibrate_discrete_gaussian(
    epsilon: float, delta: float, l2_sensitivity: float, *, adjacency: Adjacency = "replace-one"
) -> DiscreteGaussianCalibration:
    """Smallest discrete Gaussian scale giving ``(epsilon, delta)``-DP via zCDP, by bisection.

    A target above :data:`MAX_DISCRETE_GAUSSIAN_EPSILON` is calibrated to that figure instead.

    ``rho`` is the largest with :func:`zcdp_epsilon` ``<= epsilon`` (:func:`zcdp_rho_for`), and
    ``sigma = sensitivity / sqrt(2 rho)``; sigma is then nudged up (factors ``1 + 1e-9``,
    :func:`~tabpriv.accounting.calibrate` without bisection) until the figure recomputed from it
    is ``<= epsilon``, so the release never overspends by a rounding error. The figure returned is the
    larger of this module's and OpenDP's (:func:`opendp_discrete_gaussian_epsilon`) for that sigma.
    """
    check_adjacency(adjacency)
    epsilon = min(check_epsilon(epsilon), MAX_DISCRETE_GAUSSIAN_EPSILON)
    delta = check_delta(delta)
    if not (math.isfinite(l2_sensitivity) and l2_sensitivity > 0):
        raise PrivacyParameterError(f"l2_sensitivity must be finite and > 0; got {l2_sensitivity!r}.")
    rho_max = zcdp_rho_for(epsilon, delta)
    sigma = l2_sensitivity / math.sqrt(2.0 * rho_max)

    def figures(s: float) -> tuple[float, float]:
        rho_o, eps_o = opendp_discrete_gaussian_epsilon(s, l2_sensitivity, delta)
        r = max(discrete_gaussian_rho(s, l2_sensitivity), rho_o)
        return r, max(zcdp_epsilon(r, delta), eps_o)

    sigma = calibrate(lambda s: figures(s)[1], epsilon, hi=sigma, grow=1 + 1e-9, bisect=False).noise
    rho, eps = figures(sigma)
    return DiscreteGaussianCalibration(
        sigma=sigma,
        sensitivity=float(l2_sensitivity),
        rho=rho,
        epsilon=eps,
        delta=delta,
        accountant=f"zCDP (rho={rho:.6g}) -> (epsilon, delta), Canonne-Kamath-Steinke 2020 conversion",
    )
