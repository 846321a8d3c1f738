"""The analytic Gaussian mechanism (Balle & Wang 2018) through Google's dp-accounting."""

from __future__ import annotations

import math
from dataclasses import dataclass

from tabpriv.accounting.calibrate import calibrate
from tabpriv.accounting.interface import Adjacency, GaussianMechanism, check_adjacency
from tabpriv.budget import check_delta, check_epsilon
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

    @property
    def mechanism(self) -> GaussianMechanism:
        """The calibrated mechanism as a typed value (``mechanism.accountant`` is an ``AccountantInfo``)."""
        return GaussianMechanism(self.noise_multiplier)


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


def calibrate_gaussian(
    epsilon: float, delta: float, sensitivity: float, *, adjacency: Adjacency = "replace-one"
) -> GaussianCalibration:
    """Smallest Gaussian noise giving (epsilon, delta)-DP for one release of L2 sensitivity ``sensitivity``.

    The noise multiplier from dp-accounting's analytic calibration is nudged up (by factors of
    ``1 + 1e-9``, :func:`~tabpriv.accounting.calibrate` without bisection) until the exact epsilon it
    achieves is <= the target, so the result never overspends by a rounding error.
    """
    import dp_accounting

    check_adjacency(adjacency)
    epsilon = check_epsilon(epsilon)
    delta = check_delta(delta)
    if not (math.isfinite(sensitivity) and sensitivity > 0):
        raise PrivacyParameterError(f"sensitivity must be finite and > 0; got {sensitivity!r}.")
    z0 = float(dp_accounting.get_sigma_gaussian(epsilon, delta))
    cal = calibrate(lambda z: gaussian_epsilon(z, delta), epsilon, hi=z0, grow=1 + 1e-9, bisect=False)
    z, eps = cal.noise, cal.epsilon
    return GaussianCalibration(
        sigma=z * sensitivity,
        sensitivity=float(sensitivity),
        noise_multiplier=z,
        epsilon=eps,
        delta=delta,
        accountant=f"analytic Gaussian mechanism (Balle & Wang 2018), dp-accounting {DP_ACCOUNTING_VERSION}",
    )
