"""Noise calibration with maintained accountants (Google's dp-accounting).

Only mechanisms whose accounting is shared by several backends live here; a backend with a mechanism of
its own (e.g. the slicing mechanism's exact RDP curve) keeps its accountant in its module.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tabpriv.budget import _check_delta, _check_epsilon
from tabpriv.errors import PrivacyParameterError

__all__ = ["DP_ACCOUNTING_VERSION", "GaussianCalibration", "calibrate_gaussian", "gaussian_epsilon"]


def _dp_accounting_version() -> str:
    try:
        from importlib.metadata import version

        return version("dp-accounting")
    except Exception:  # pragma: no cover - metadata missing
        return "unknown"


DP_ACCOUNTING_VERSION = _dp_accounting_version()


@dataclass(frozen=True)
class GaussianCalibration:
    """Result of calibrating one Gaussian mechanism.

    Attributes:
        sigma: Noise standard deviation to add to each coordinate.
        sensitivity: L2 sensitivity the noise was calibrated for.
        noise_multiplier: ``sigma / sensitivity``.
        epsilon: Epsilon the mechanism achieves at ``delta`` (<= target).
        delta: Delta.
        accountant: Description of the accountant.

    """

    sigma: float
    sensitivity: float
    noise_multiplier: float
    epsilon: float
    delta: float
    accountant: str


def gaussian_epsilon(noise_multiplier: float, delta: float) -> float:
    """Exact epsilon of one Gaussian mechanism with ``sigma = noise_multiplier * sensitivity``.

    Uses the analytic Gaussian mechanism of Balle & Wang (2018) as implemented in dp-accounting.
    The same figure holds for add/remove and replace-one adjacency, provided the sensitivity is the
    one of that relation.
    """
    import dp_accounting

    if not noise_multiplier > 0:
        raise PrivacyParameterError(f"noise_multiplier must be > 0; got {noise_multiplier!r}.")
    return float(dp_accounting.get_epsilon_gaussian(noise_multiplier, delta))


def calibrate_gaussian(epsilon: float, delta: float, sensitivity: float) -> GaussianCalibration:
    """Smallest Gaussian noise giving (epsilon, delta)-DP for one release of L2 sensitivity ``sensitivity``.

    The noise multiplier from dp-accounting's analytic calibration is nudged up until the exact epsilon
    it achieves is <= the target, so the result never overspends by a rounding error.
    """
    import dp_accounting

    epsilon = _check_epsilon(epsilon)
    delta = _check_delta(delta)
    if not (math.isfinite(sensitivity) and sensitivity > 0):
        raise PrivacyParameterError(f"sensitivity must be finite and > 0; got {sensitivity!r}.")
    z = float(dp_accounting.get_sigma_gaussian(epsilon, delta))
    eps = gaussian_epsilon(z, delta)
    while eps > epsilon:
        z *= 1 + 1e-9
        eps = gaussian_epsilon(z, delta)
    return GaussianCalibration(
        sigma=z * sensitivity,
        sensitivity=float(sensitivity),
        noise_multiplier=z,
        epsilon=eps,
        delta=delta,
        accountant=f"analytic Gaussian mechanism (Balle & Wang 2018), dp-accounting {DP_ACCOUNTING_VERSION}",
    )


# -- zero-concentrated DP and the discrete Gaussian -------------------------------------------------
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

    delta = _check_delta(delta)
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
    epsilon = _check_epsilon(epsilon)
    delta = _check_delta(delta)
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


def calibrate_discrete_gaussian(
    epsilon: float, delta: float, l2_sensitivity: float
) -> DiscreteGaussianCalibration:
    """Smallest discrete Gaussian scale giving ``(epsilon, delta)``-DP via zCDP, by bisection.

    A target above :data:`MAX_DISCRETE_GAUSSIAN_EPSILON` is calibrated to that figure instead.

    ``rho`` is the largest with :func:`zcdp_epsilon` ``<= epsilon`` (:func:`zcdp_rho_for`), and
    ``sigma = sensitivity / sqrt(2 rho)``; sigma is then nudged up until the figure recomputed from it
    is ``<= epsilon``, so the release never overspends by a rounding error. The figure returned is the
    larger of this module's and OpenDP's (:func:`opendp_discrete_gaussian_epsilon`) for that sigma.
    """
    epsilon = min(_check_epsilon(epsilon), MAX_DISCRETE_GAUSSIAN_EPSILON)
    delta = _check_delta(delta)
    if not (math.isfinite(l2_sensitivity) and l2_sensitivity > 0):
        raise PrivacyParameterError(f"l2_sensitivity must be finite and > 0; got {l2_sensitivity!r}.")
    rho_max = zcdp_rho_for(epsilon, delta)
    sigma = l2_sensitivity / math.sqrt(2.0 * rho_max)

    def figures(s: float) -> tuple[float, float]:
        rho_o, eps_o = opendp_discrete_gaussian_epsilon(s, l2_sensitivity, delta)
        r = max(discrete_gaussian_rho(s, l2_sensitivity), rho_o)
        return r, max(zcdp_epsilon(r, delta), eps_o)

    rho, eps = figures(sigma)
    while eps > epsilon:
        sigma *= 1 + 1e-9
        rho, eps = figures(sigma)
    return DiscreteGaussianCalibration(
        sigma=sigma,
        sensitivity=float(l2_sensitivity),
        rho=rho,
        epsilon=eps,
        delta=delta,
        accountant=f"zCDP (rho={rho:.6g}) -> (epsilon, delta), Canonne-Kamath-Steinke 2020 conversion",
    )


# -- DP-SGD under replace-one: Poisson-subsampled Gaussian, PLD accountant ----------------------------
#: Relative tolerance of :func:`calibrate_dpsgd` on the noise multiplier (the returned ``z`` is at most
#: this much above the smallest ``z`` the accountant accepts; its epsilon is never above the target).
DPSGD_CALIBRATION_RTOL = 1e-3

#: Adjacency names accepted by :func:`dpsgd_epsilon`.
DPSGD_ADJACENCIES = ("replace-one", "add/remove-one")


def dpsgd_pld_interval(target_epsilon: float) -> float:
    """The PLD grid (``value_discretization_interval``) used to account DP-SGD at ``target_epsilon``.

    ``target_epsilon / 2000``, clipped to ``[1e-4, 1e-2]``. dp-accounting's PLD rounds every privacy
    loss *up* to the grid (``pessimistic_estimate=True``) and moves truncated tail mass to the worst
    case, so any interval gives an upper bound on epsilon; a coarser one is looser and faster. With
    this rule the figure is within about 0.5% of a 1e-5 grid on the configurations measured
    (``docs/privacy.md``) and one evaluation takes about 0.01-0.3 s.
    """
    return float(min(1e-2, max(1e-4, target_epsilon / 2000.0)))


def _check_dpsgd_args(noise_multiplier: float, sampling_probability: float, steps: int) -> None:
    if not (
        isinstance(noise_multiplier, int | float) and math.isfinite(noise_multiplier) and noise_multiplier > 0
    ):
        raise PrivacyParameterError(f"noise_multiplier must be finite and > 0; got {noise_multiplier!r}.")
    if not (isinstance(sampling_probability, int | float) and 0 < sampling_probability <= 1):
        raise PrivacyParameterError(f"sampling_probability must lie in (0, 1]; got {sampling_probability!r}.")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise PrivacyParameterError(f"steps must be an integer >= 1; got {steps!r}.")


def dpsgd_epsilon(
    noise_multiplier: float,
    sampling_probability: float,
    steps: int,
    delta: float,
    *,
    value_discretization_interval: float = 1e-4,
    adjacency: str = "replace-one",
) -> float:
    """Epsilon at ``delta`` of ``steps`` Poisson-subsampled Gaussian DP-SGD steps (dp-accounting PLD).

    Each step includes every record independently with probability ``sampling_probability``, sums the
    per-record gradients clipped to L2 norm ``C`` and adds ``N(0, (noise_multiplier * C)^2 I)``.
    Under replace-one adjacency (the default; the row count is public) the per-step pair of
    dp-accounting's ``PoissonSampledDpEvent(q, GaussianDpEvent(z))`` with
    ``NeighboringRelation.REPLACE_ONE`` is ``(1-q) N(0, z^2) + q N(-1, z^2)`` against
    ``(1-q) N(0, z^2) + q N(+1, z^2)`` (in units of ``C``): a replaced record moves the sum by up to
    ``2C``, and only when it is sampled. ``adjacency="add/remove-one"`` gives the figure for adding or
    removing one record (reported as an extra only).

    Raises:
        PrivacyParameterError: A parameter is out of range or ``adjacency`` unknown.

    """
    import dp_accounting
    from dp_accounting.pld import PLDAccountant

    _check_dpsgd_args(noise_multiplier, sampling_probability, steps)
    delta = _check_delta(delta)
    relations = {
        "replace-one": dp_accounting.NeighboringRelation.REPLACE_ONE,
        "add/remove-one": dp_accounting.NeighboringRelation.ADD_OR_REMOVE_ONE,
    }
    if adjacency not in relations:
        raise PrivacyParameterError(f"adjacency must be one of {DPSGD_ADJACENCIES}; got {adjacency!r}.")
    acc = PLDAccountant(
        neighboring_relation=relations[adjacency], value_discretization_interval=value_discretization_interval
    )
    step = dp_accounting.PoissonSampledDpEvent(
        float(sampling_probability), dp_accounting.GaussianDpEvent(float(noise_multiplier))
    )
    acc.compose(dp_accounting.SelfComposedDpEvent(step, int(steps)))
    return float(acc.get_epsilon(delta))


@dataclass(frozen=True)
class DPSGDCalibration:
    """Result of calibrating DP-SGD's noise multiplier under replace-one adjacency.

    Attributes:
        noise_multiplier: ``z``; the noise std is ``z * C`` for clipping norm ``C``.
        epsilon: Replace-one epsilon at ``delta`` of the accounted mechanism (<= the target).
        delta: Delta.
        sampling_probability: Poisson sampling rate ``q`` of every step.
        steps: Number of steps ``T``.
        value_discretization_interval: PLD grid used for ``epsilon``.
        target_epsilon: The target.
        accountant: Description of the accountant.
        adjacency: ``"replace-one"``.
        evaluations: Accountant evaluations the calibration took.

    """

    noise_multiplier: float
    epsilon: float
    delta: float
    sampling_probability: float
    steps: int
    value_discretization_interval: float
    target_epsilon: float
    accountant: str
    adjacency: str = "replace-one"
    evaluations: int = 0


def dpsgd_accountant_text(value_discretization_interval: float) -> str:
    """The accountant of DP-SGD, in words (stated in ledgers and reports)."""
    return (
        f"dp-accounting {DP_ACCOUNTING_VERSION} PLD accountant: Poisson-subsampled Gaussian "
        "(PoissonSampledDpEvent of GaussianDpEvent), self-composed over the steps, "
        f"NeighboringRelation.REPLACE_ONE, pessimistic discretisation {value_discretization_interval:g}"
    )


def calibrate_dpsgd(
    epsilon: float,
    delta: float,
    sampling_probability: float,
    steps: int,
    *,
    rtol: float = DPSGD_CALIBRATION_RTOL,
) -> DPSGDCalibration:
    """Smallest noise multiplier (within ``rtol``) whose replace-one epsilon at ``delta`` is <= ``epsilon``.

    Geometric bisection on ``z`` with :func:`dpsgd_epsilon` (replace-one, grid
    :func:`dpsgd_pld_interval` of the target), which decreases in ``z``. The upper end starts at the
    full-batch figure (``q = 1``: one Gaussian of sensitivity ``2 sqrt(T)``, an upper bound on the
    subsampled one) and the search keeps ``epsilon(hi) <= target < epsilon(lo)``; it stops when
    ``hi / lo <= 1 + rtol`` and returns ``hi``, so the result never exceeds the target.

    Raises:
        PrivacyParameterError: No noise multiplier up to 1e6 fits, or a parameter is out of range.

    """
    epsilon = _check_epsilon(epsilon)
    delta = _check_delta(delta)
    _check_dpsgd_args(1.0, sampling_probability, steps)
    if not 0 < rtol < 1:
        raise PrivacyParameterError(f"rtol must lie in (0, 1); got {rtol!r}.")
    vdi = dpsgd_pld_interval(epsilon)
    evaluations = 0

    def eps_of(z: float) -> float:
        nonlocal evaluations
        evaluations += 1
        return dpsgd_epsilon(z, sampling_probability, steps, delta, value_discretization_interval=vdi)

    hi = 2.0 * math.sqrt(steps) * calibrate_gaussian(epsilon, delta, 1.0).noise_multiplier
    e_hi = eps_of(hi)
    while e_hi > epsilon:  # the PLD grid's pessimism can put the analytic figure just above
        hi *= 1.05
        if hi > 1e6:
            raise PrivacyParameterError(
                f"No noise multiplier up to 1e6 gives epsilon <= {epsilon:g} at delta={delta:g} for "
                f"{steps} steps at sampling rate {sampling_probability:g}; raise epsilon or lower steps."
            )
        e_hi = eps_of(hi)
    lo = hi / 2.0
    while eps_of(lo) <= epsilon:
        hi, lo = lo, lo / 2.0
        if lo < 1e-3:  # z = 1e-3 already fits: the target is huge
            break
    while hi / lo > 1.0 + rtol:
        mid = math.sqrt(lo * hi)
        if eps_of(mid) <= epsilon:
            hi = mid
        else:
            lo = mid
    e_hi = eps_of(hi)
    if e_hi > epsilon:  # pragma: no cover - hi always satisfies the target
        raise PrivacyParameterError("DP-SGD calibration failed to keep epsilon within the target.")
    return DPSGDCalibration(
        noise_multiplier=hi,
        epsilon=e_hi,
        delta=delta,
        sampling_probability=float(sampling_probability),
        steps=int(steps),
        value_discretization_interval=vdi,
        target_epsilon=epsilon,
        accountant=dpsgd_accountant_text(vdi),
        evaluations=evaluations,
    )


__all__ += [
    "DPSGD_CALIBRATION_RTOL",
    "DPSGDCalibration",
    "calibrate_dpsgd",
    "dpsgd_accountant_text",
    "dpsgd_epsilon",
    "dpsgd_pld_interval",
]
