"""The slicing release's exact privacy profile: an upper bound, checked three ways.

(1) never above the RDP route; (2) against a Monte-Carlo estimate of the privacy loss (within 5
standard errors, on the safe side up to the quadrature slack); (3) against the independent
recomputation in :mod:`tabpriv.audit.recompute` (scipy ``quad`` over the chi-square density).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from tabpriv.accounting import slicing_epsilon, slicing_profile_delta, slicing_profile_epsilon
from tabpriv.audit.recompute import slicing_exact_epsilon
from tabpriv.backends.slicing.mechanism import calibrate_sigma

DELTA = 1e-5
CONFIGS = [  # (sigma, d, m', Delta)
    (2.0, 5, 8, math.sqrt(8)),
    (9.0, 40, 64, 5.0),
    (4.0, 109, 512, 6.0),
    (3.0, 110, 2000, math.sqrt(42)),
]


@pytest.mark.parametrize(("sigma", "d", "m", "sens"), CONFIGS)
def test_exact_profile_is_below_the_rdp_route(sigma: float, d: int, m: int, sens: float) -> None:
    exact = slicing_profile_epsilon(sigma, d, m, sens, DELTA)
    rdp, _ = slicing_epsilon(sigma, d, m, sens, DELTA)
    assert 0 < exact < rdp


@pytest.mark.parametrize(("sigma", "d", "m", "sens"), CONFIGS)
def test_quadrature_bounds_bracket_tightly(sigma: float, d: int, m: int, sens: float) -> None:
    eps = slicing_profile_epsilon(sigma, d, m, sens, DELTA)
    upper, lower = slicing_profile_delta(eps, sigma, d, m, sens)
    assert lower <= upper <= DELTA
    assert upper - lower <= 0.01 * DELTA  # measured <= 0.2%


@pytest.mark.parametrize(("sigma", "d", "m", "sens"), CONFIGS[:3])
def test_exact_profile_against_monte_carlo_of_the_privacy_loss(
    sigma: float, d: int, m: int, sens: float
) -> None:
    """delta(eps) = E[(1 - e^(eps - L))_+], L ~ N(mu^2/2, mu^2), mu^2 = (Delta^2/(d sigma^2)) chi^2_m'."""
    rng = np.random.default_rng(0)
    n = 2_000_000
    mu = np.sqrt(sens**2 / (d * sigma**2) * rng.chisquare(m, n))
    loss = mu**2 / 2 + mu * rng.standard_normal(n)
    eps = 0.8 * slicing_profile_epsilon(sigma, d, m, sens, DELTA)  # where delta is ~100x larger: tight MC
    vals = np.maximum(0.0, -np.expm1(eps - loss))
    mc, se = float(vals.mean()), float(vals.std() / math.sqrt(n))
    upper, lower = slicing_profile_delta(eps, sigma, d, m, sens)
    assert upper >= mc - 5 * se
    assert lower <= mc + 5 * se


@pytest.mark.parametrize(("sigma", "d", "m", "sens"), CONFIGS[:3])
def test_exact_profile_against_the_independent_recomputation(
    sigma: float, d: int, m: int, sens: float
) -> None:
    mine = slicing_profile_epsilon(sigma, d, m, sens, DELTA)
    theirs = slicing_exact_epsilon(sigma, d, m, sens, DELTA)
    assert mine >= theirs - 2e-6  # theirs is solved to 1e-6 absolute; mine is an upper bound
    assert mine == pytest.approx(theirs, rel=2e-3)


@pytest.mark.parametrize("target", [1.0, 5.1, 10.0])
@pytest.mark.parametrize("subsample", [None, 0.25])
def test_calibration_to_the_exact_profile_lowers_sigma(target: float, subsample: float | None) -> None:
    d, m, sens = 109, 512, 6.0
    exact = calibrate_sigma(target, DELTA, d, m, sens, subsample)
    rdp = calibrate_sigma(target, DELTA, d, m, sens, subsample, method="rdp")
    assert exact.method == "exact" and rdp.method == "rdp"
    assert 0.99 * target <= exact.epsilon <= target
    assert exact.sigma < rdp.sigma
    assert exact.epsilon_rdp is not None and exact.epsilon_rdp > target  # the old route would overspend
    assert exact.evaluations > 0


def test_review_figure_adult_default_release() -> None:
    # Issue 13/14: on Adult's default release (d = 110, Delta^2 = 42, m' = 512, delta = 1e-5) the RDP
    # route's sigma for epsilon 5.1 is in fact epsilon 4.708 by the exact profile.
    sens = math.sqrt(42.0)
    sigma_rdp = calibrate_sigma(5.1, 1e-5, 110, 512, sens, method="rdp").sigma
    assert sigma_rdp == pytest.approx(13.246, abs=1e-3)
    assert slicing_epsilon(sigma_rdp, 110, 512, sens, 1e-5)[0] == pytest.approx(5.1, abs=1e-3)
    assert slicing_profile_epsilon(sigma_rdp, 110, 512, sens, 1e-5) == pytest.approx(4.708, abs=2e-3)
    assert calibrate_sigma(5.1, 1e-5, 110, 512, sens).sigma == pytest.approx(12.370, abs=1e-3)
