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
