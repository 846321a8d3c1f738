"""Accounting of the slicing mechanism (Greenewald et al., NeurIPS 2024): ``(U, XU + V)``, ``U`` public.

Two routes, both rigorous upper bounds on the replace-one epsilon of one release with ``m'`` projections
of an encoded row of L2 sensitivity ``Delta`` in ``d`` dimensions and noise ``N(0, sigma^2)``:

* **RDP** (:func:`slicing_epsilon`): for one column ``u ~ N(0, I/d)`` the pair ``(u, Xu + v)`` has the
  exact Renyi divergence ``-1/(2(alpha-1)) ln(1 - alpha(alpha-1) Delta^2/(d sigma^2))``; the ``m'``
  columns are independent, so the curve is multiplied by ``m'``; converted to ``(epsilon, delta)`` with
  the Canonne-Kamath-Steinke / Balle et al. 2020 conversion, alpha optimised numerically.
* **Exact privacy profile** (:func:`slicing_profile_epsilon`, the default since issue 14): ``U`` is
  released and independent of the data, so the release's hockey-stick divergence is the average over
  ``U`` of that of the Gaussian mechanism with shift ``mu(U) = ||(x - x')U|| / sigma``; since
  ``(x - x')U ~ N(0, (||x - x'||^2/d) I_{m'})``, ``||(x - x')U||^2 ~ (||x - x'||^2/d) chi^2_{m'}`` and,
  the Gaussian profile being increasing in ``mu``, the worst pair has ``||x - x'|| = Delta``:
  ``delta(eps) = E_{c ~ chi^2_{m'}} [delta_{mu(c)}(eps)]``, ``mu(c)^2 = c Delta^2 / (d sigma^2)``, with
  the mu-GDP profile ``delta_mu(eps) = Phi(-eps/mu + mu/2) - e^eps Phi(-eps/mu - mu/2)`` (Dong, Roth &
  Su 2022; Balle & Wang 2018). The expectation is bounded **from above by construction**: the integrand
  is non-decreasing in ``c``, so on cells ``[c_i, c_{i+1})`` it is at most its value at ``c_{i+1}``
  (an upper Riemann sum with the exact chi-square cell masses from scipy), the mass above the last cell
  counts with ``delta = 1``, and an allowance of ``1e-9`` relative plus ``1e-15`` absolute covers the
  floating-point rounding of the special functions. Epsilon is then the smallest figure (by bisection,
  rounded up) at which that upper bound is ``<= delta``.
"""

from __future__ import annotations

import functools
import math
from typing import Any

from tabpriv.errors import PrivacyParameterError

__all__ = [
    "SLICING_EXACT_ACCOUNTANT",
    "SLICING_PROFILE_CELLS",
    "SLICING_RDP_ACCOUNTANT",
    "rdp_to_dp",
    "slicing_epsilon",
    "slicing_profile_delta",
    "slicing_profile_epsilon",
    "slicing_rdp",
]

SLICING_RDP_ACCOUNTANT = (
    "exact RDP curve of the slicing mechanism (Gaussian projection + Gaussian noise), converted to "
    "(epsilon, delta) with the Canonne-Kamath-Steinke / Balle et al. 2020 conversion, alpha optimised "
    "numerically"
)

SLICING_EXACT_ACCOUNTANT = (
    "exact privacy profile of the slicing mechanism (U public): delta(eps) = E over "
    "|(x-x')U|^2 ~ (Delta^2/d) chi^2_{m'} of the Gaussian mechanism's profile, bounded above by an upper "
    "Riemann sum with exact chi-square cell masses (scipy) plus the truncated tail and a rounding allowance"
)

#: Cells of the upper Riemann sum of :func:`slicing_profile_delta`.
SLICING_PROFILE_CELLS = 20_000

#: Chi-square mass left out at either end of the grid (the upper part counts with delta = 1).
_TAIL = 1e-14


def _alpha_max(sigma: float, d: int, sensitivity: float) -> float:
    """Largest order for which the curve is finite: alpha(alpha-1) < d sigma^2 / Delta^2."""
    c = d * sigma * sigma / (sensitivity * sensitivity)
    return 0.5 + math.sqrt(0.25 + c)


def slicing_rdp(alpha: float, sigma: float, d: int, n_projections: int, sensitivity: float) -> float:
    """Exact Renyi-DP epsilon of the slicing mechanism at order ``alpha`` (``inf`` outside its domain).

    ``eps_alpha = -(m' / (2 (alpha - 1))) * ln(1 - alpha (alpha - 1) Delta^2 / (d sigma^2))``.
    """
    if alpha <= 1:
        raise PrivacyParameterError(f"The Renyi order must be > 1; got {alpha!r}.")
    t = alpha * (alpha - 1.0) * sensitivity**2 / (d * sigma * sigma)
    if t >= 1.0:
        return math.inf
    return -n_projections / (2.0 * (alpha - 1.0)) * math.log1p(-t)


def rdp_to_dp(alpha: float, rdp: float, delta: float) -> float:
    """Improved RDP -> (epsilon, delta) conversion (Canonne-Kamath-Steinke 2020, Prop. 12).

    ``eps = rdp + ln((alpha - 1) / alpha) - (ln delta + ln alpha) / (alpha - 1)``, floored at 0; this is
    the conversion dp-accounting's RDP accountant uses.
    """
    if not math.isfinite(rdp):
        return math.inf
    eps = rdp + math.log1p(-1.0 / alpha) - (math.log(delta) + math.log(alpha)) / (alpha - 1.0)
    return max(0.0, eps)


def slicing_epsilon(
    sigma: float, d: int, n_projections: int, sensitivity: float, delta: float
) -> tuple[float, float]:
    """Epsilon at ``delta`` of one run of the mechanism by the RDP route, minimised over real orders.

    Returns:
        ``(epsilon, alpha)`` at the optimum (a dense log grid refined by a bounded scalar search).

    """
    import numpy as np
    from scipy.optimize import minimize_scalar

    a_max = _alpha_max(sigma, d, sensitivity)
    hi = 1.0 + (a_max - 1.0) * (1.0 - 1e-9)
    grid = 1.0 + np.geomspace(1e-4, hi - 1.0, 400)

    def f(a: float) -> float:
        return rdp_to_dp(a, slicing_rdp(a, sigma, d, n_projections, sensitivity), delta)

    t = grid * (grid - 1.0) * sensitivity**2 / (d * sigma * sigma)
    with np.errstate(divide="ignore", invalid="ignore"):
        rdp = np.where(t < 1.0, -n_projections / (2.0 * (grid - 1.0)) * np.log1p(-np.minimum(t, 1.0)), np.inf)
        vals = rdp + np.log1p(-1.0 / grid) - (math.log(delta) + np.log(grid)) / (grid - 1.0)
    vals = np.where(np.isfinite(vals), np.maximum(vals, 0.0), np.inf)
    i = int(np.argmin(vals))
    lo_a = float(grid[max(i - 1, 0)])
    hi_a = float(grid[min(i + 1, len(grid) - 1)])
    best_a, best = float(grid[i]), float(vals[i])
    if hi_a > lo_a:
        res = minimize_scalar(f, bounds=(lo_a, hi_a), method="bounded", options={"xatol": 1e-10})
        if float(res.fun) < best:
            best_a, best = float(res.x), float(res.fun)
    return best, best_a


@functools.lru_cache(maxsize=64)
def _chi2_cells(n_projections: int, cells: int) -> tuple[Any, Any, float]:
    """Right ends ``c_1..c_N`` of the cells and their chi-square masses, and the mass above ``c_N``.

    The first cell is ``[0, c_1)`` (with ``c_1`` the ``1e-14`` quantile), the others split
    ``[c_1, c_N]`` (``c_N`` the ``1 - 1e-14`` quantile) evenly; masses are differences of the survival
    function, which telescope to exactly ``1 - sf(c_N)``.
    """
    import numpy as np
    from scipy.stats import chi2

    c_lo = float(chi2.ppf(_TAIL, n_projections))
    c_hi = float(chi2.isf(_TAIL, n_projections))
    right = np.linspace(c_lo, c_hi, cells)
    sf = chi2.sf(right, n_projections)
    masses = np.diff(np.concatenate(([1.0], sf)))
    masses = -masses  # sf(c_{i-1}) - sf(c_i) >= 0
    return right, np.maximum(masses, 0.0), float(sf[-1])


def _gaussian_profile(eps: float, mu: Any) -> Any:
    """mu-GDP profile ``Phi(-eps/mu + mu/2) - e^eps Phi(-eps/mu - mu/2)`` (vectorised, 0 at mu = 0)."""
    import numpy as np
    from scipy.special import log_ndtr, ndtr

    mu = np.asarray(mu, dtype=np.float64)
    safe = np.maximum(mu, 1e-300)
    with np.errstate(over="ignore"):
        val = ndtr(-eps / safe + safe / 2) - np.exp(eps + log_ndtr(-eps / safe - safe / 2))
    return np.where(mu > 0, np.clip(val, 0.0, 1.0), 0.0)


def slicing_profile_delta(
    eps: float,
    sigma: float,
    d: int,
    n_projections: int,
    sensitivity: float,
    *,
    cells: int = SLICING_PROFILE_CELLS,
) -> tuple[float, float]:
    """Upper and lower bounds on the exact ``delta(eps)`` of the slicing release (module docstring).

    Returns:
        ``(upper, lower)``: ``upper`` (the figure used) includes the truncated tail and the rounding
        allowance; ``lower`` is the lower Riemann sum (``upper - lower`` is the quadrature slack).

    """
    import numpy as np

    if not (math.isfinite(sigma) and sigma > 0):
        raise PrivacyParameterError(f"sigma must be finite and > 0; got {sigma!r}.")
    right, masses, tail = _chi2_cells(int(n_projections), int(cells))
    scale = sensitivity * sensitivity / (d * sigma * sigma)
    f_right = _gaussian_profile(float(eps), np.sqrt(scale * right))
    upper = float(np.dot(f_right, masses)) + tail
    lower = float(np.dot(f_right[:-1], masses[1:]))
    return min(1.0, upper * (1.0 + 1e-9) + 1e-15), lower


def slicing_profile_epsilon(
    sigma: float,
    d: int,
    n_projections: int,
    sensitivity: float,
    delta: float,
    *,
    cells: int = SLICING_PROFILE_CELLS,
    xtol: float = 1e-9,
) -> float:
    """Smallest epsilon (rounded up by at most ``xtol`` relative) with ``slicing_profile_delta <= delta``.

    A rigorous upper bound on the exact epsilon of the release; never above the RDP figure by more
    than the quadrature slack (tests compare the two).
    """
    if not 0 < delta < 1:
        raise PrivacyParameterError(f"delta must lie in (0, 1); got {delta!r}.")

    def up(e: float) -> float:
        return slicing_profile_delta(e, sigma, d, n_projections, sensitivity, cells=cells)[0]

    if up(0.0) <= delta:
        return 0.0
    from scipy.optimize import brentq

    hi = 1.0
    while up(hi) > delta:
        hi *= 2.0
        if hi > 1e6:
            raise PrivacyParameterError(f"sigma={sigma:g} is too small to convert at delta={delta:g}.")
    eps = float(brentq(lambda e: math.log(up(e)) - math.log(delta), 0.0, hi, xtol=1e-12, rtol=xtol))
    while up(eps) > delta:  # brentq's root may sit on either side: round up until the bound holds
        eps += xtol * max(eps, 1e-12)
    return eps
