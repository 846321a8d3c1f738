from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.stats import norm

from tabpriv.accounting import calibrate_gaussian, gaussian_epsilon
from tabpriv.budget import PrivacyBudget, PrivacyLedger, check_delta_for_rows
from tabpriv.errors import BudgetExceededError, PrivacyParameterError


@pytest.mark.parametrize("eps", [0, -1, math.nan, math.inf, "5", True])
def test_invalid_epsilon(eps) -> None:
    with pytest.raises(PrivacyParameterError, match="epsilon"):
        PrivacyBudget(eps)


@pytest.mark.parametrize("delta", [0, 1, -1e-5, math.nan, 2.0])
def test_invalid_delta(delta) -> None:
    with pytest.raises(PrivacyParameterError, match="delta"):
        PrivacyBudget(1.0, delta)


def test_delta_below_one_over_n() -> None:
    check_delta_for_rows(1e-5, 99_999)
    with pytest.raises(PrivacyParameterError, match="1/n"):
        check_delta_for_rows(1e-5, 100_000)


def test_ledger_refuses_overspend_and_records_nothing() -> None:
    led = PrivacyLedger(PrivacyBudget(1.0, 1e-6))
    led.spend("a", 0.6, 5e-7, "test")
    with pytest.raises(BudgetExceededError, match="exceed the budget"):
        led.spend("b", 0.5, 1e-7, "test")
    assert len(led.spends) == 1
    led.spend("c", 0.4, 5e-7, "test")
    assert led.epsilon_spent == pytest.approx(1.0)
    with pytest.raises(BudgetExceededError, match="spent"):
        led.available()
    json.dumps(led.to_list())


def _analytic_gaussian_delta(eps: float, mu: float) -> float:
    """Exact delta(eps) of the Gaussian mechanism with mu = sensitivity/sigma (Balle & Wang 2018)."""
    return float(norm.cdf(-eps / mu + mu / 2) - math.exp(eps) * norm.cdf(-eps / mu - mu / 2))


@pytest.mark.parametrize("eps", [0.5, 1.0, 5.1, 10.0])
def test_calibration_within_2_percent_and_cross_checked(eps: float) -> None:
    delta = 1e-5
    cal = calibrate_gaussian(eps, delta, sensitivity=3.0)
    assert cal.epsilon <= eps
    assert cal.epsilon >= 0.98 * eps
    # second, independent computation: the closed-form privacy profile of the Gaussian mechanism
    mu = cal.sensitivity / cal.sigma
    assert _analytic_gaussian_delta(eps, mu) <= delta * (1 + 1e-6)
    assert _analytic_gaussian_delta(eps, mu * 1.01) > delta  # 1% less noise would overspend
    assert gaussian_epsilon(cal.noise_multiplier, delta) == pytest.approx(cal.epsilon)


def test_opacus_rdp_is_looser_than_exact() -> None:
    """Cross-check with opacus' RDP accountant: RDP->DP is an upper bound, so it must not be smaller."""
    from opacus.accountants.analysis.rdp import compute_rdp, get_privacy_spent

    cal = calibrate_gaussian(1.0, 1e-5, 1.0)
    orders = np.concatenate([np.linspace(1.1, 10.9, 99), np.arange(12, 256)])
    rdp = compute_rdp(q=1.0, noise_multiplier=cal.noise_multiplier, steps=1, orders=orders)
    eps_rdp, _ = get_privacy_spent(orders=orders, rdp=rdp, delta=1e-5)
    assert cal.epsilon <= eps_rdp <= 1.6 * cal.epsilon
