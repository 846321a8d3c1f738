"""Every backend's epsilon recomputed by a second, independent accountant; calibration within 2%.

Tolerances (conservative side up): the figure a backend spends may exceed the second accountant's by at
most the stated relative slack, and must never be below a figure that is itself an upper bound by more
than floating-point error.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import brentq
from scipy.stats import norm

from tabpriv import Synthesizer

from ..conftest import make_small_df, make_small_schema

TARGETS = [0.5, 1.0, 5.1, 10.0]
DELTA = 1e-5


def _gaussian_delta(eps: float, mu: float) -> float:
    """Closed-form privacy profile of one Gaussian release with mu = sensitivity / sigma."""
    return float(norm.cdf(-eps / mu + mu / 2) - math.exp(eps) * norm.cdf(-eps / mu - mu / 2))


def _gaussian_epsilon(mu: float, delta: float) -> float:
    return float(brentq(lambda e: _gaussian_delta(e, mu) - delta, 0.0, 200.0, xtol=1e-12))


@pytest.mark.parametrize("target", TARGETS)
def test_independent_backend_epsilon_recomputed_and_calibrated(target: float) -> None:
    synth = Synthesizer(epsilon=target, delta=DELTA, schema=make_small_schema()).fit(make_small_df())
    (spend,) = synth.ledger_.spends
    sigma, sens = spend.parameters["sigma"], spend.parameters["l2_sensitivity"]
    assert sens == pytest.approx(math.sqrt(2 * 5))  # replace-one: sqrt(2 c), c = 5 columns
    # discrete Gaussian: rho = sens^2 / (2 sigma^2)-zCDP; second accountant: OpenDP's zCDP -> approx-DP
    import opendp.prelude as dp

    dp.enable_features("contrib")
    meas = dp.m.make_gaussian(dp.vector_domain(dp.atom_domain(T="i64")), dp.l2_distance(T="f64"), sigma)
    eps_closed_form = float(dp.c.make_zCDP_to_approxDP(meas).map(sens).epsilon(DELTA))
    # conservative side up: spent >= exact (up to 1e-9 relative), and within 0.1% of it
    assert eps_closed_form * (1 - 1e-9) <= spend.epsilon <= eps_closed_form * 1.001
    # calibration: spent <= target and within 2%
    assert 0.98 * target <= synth.privacy_report.epsilon <= target
    # third accountant (opacus RDP) is an upper bound: never below the spent figure
    from opacus.accountants.analysis.rdp import compute_rdp, get_privacy_spent

    orders = np.concatenate([np.linspace(1.01, 10.9, 200), np.arange(11, 512)])
    rdp = compute_rdp(q=1.0, noise_multiplier=sigma / sens, steps=1, orders=orders)
    eps_rdp, _ = get_privacy_spent(orders=orders, rdp=rdp, delta=DELTA)
    assert spend.epsilon <= eps_rdp * (1 + 1e-9)


@pytest.mark.parametrize("target", TARGETS)
def test_slicing_calibration_and_gaussian_limit(target: float) -> None:
    """Slicing: spent <= target within 2%; and its exact RDP curve is never below the Gaussian RDP.

    Second accountant: the slicing curve at order a is >= a m' Delta^2 / (2 d sigma^2) (the RDP of a
    Gaussian with the *expected* projected sensitivity; -ln(1-t) >= t), so feeding that Gaussian RDP to
    dp-accounting's RDP accountant must give an epsilon no larger than the slicing figure.
    """
    import dp_accounting

    from tabpriv.backends._slicing_mechanism import calibrate_sigma, slicing_epsilon

    d, m_prime, sens = 40, 64, math.sqrt(2 * 10 + 4 * 3)
    cal = calibrate_sigma(target, DELTA, d, m_prime, sens)
    assert 0.98 * target <= cal.epsilon <= target
    eps_again, _ = slicing_epsilon(cal.sigma, d, m_prime, sens, DELTA)
    assert eps_again == pytest.approx(cal.epsilon, rel=1e-6)
    # Gaussian with squared sensitivity m' Delta^2 / d: noise multiplier sigma / sqrt(m' Delta^2 / d)
    z = cal.sigma / math.sqrt(m_prime * sens**2 / d)
    acc = dp_accounting.rdp.RdpAccountant(
        orders=list(np.linspace(1.01, 20, 400)) + list(range(21, 512)),
        neighboring_relation=dp_accounting.NeighboringRelation.REPLACE_ONE,
    )
    acc.compose(dp_accounting.GaussianDpEvent(z))
    assert acc.get_epsilon(DELTA) <= cal.epsilon * (1 + 1e-3)


@pytest.mark.parametrize("target", TARGETS)
def test_dp2vae_rdp_vs_pld(target: float) -> None:
    """DP²-VAE (K = 1 so the PLD accountant supports the event): RDP figure >= PLD figure, within 40%."""
    import dp_accounting

    from tabpriv.backends.dp2vae import calibrate_dp2vae, dp2vae_epsilon

    steps = 50
    cal = calibrate_dp2vae(target, DELTA, 1, steps)
    assert 0.98 * target <= cal.epsilon <= target
    assert dp2vae_epsilon(cal.noise, 1, steps, DELTA) == pytest.approx(cal.epsilon, rel=1e-9)
    pld = dp_accounting.pld.PLDAccountant(
        neighboring_relation=dp_accounting.NeighboringRelation.REPLACE_ONE, value_discretization_interval=1e-4
    )
    # dp-accounting's PLD REPLACE_ONE reads a GaussianDpEvent's multiplier per record magnitude (the
    # shift is twice it), while its RDP accountant reads it per total shift: so the PLD event for a
    # shift of 2C with noise std sigma*C is GaussianDpEvent(sigma), not sigma / 2.
    pld.compose(dp_accounting.GaussianDpEvent(cal.noise), steps)
    eps_pld = pld.get_epsilon(DELTA)
    assert eps_pld <= cal.epsilon * (1 + 1e-3)
    assert cal.epsilon <= 1.4 * eps_pld


@pytest.mark.parametrize(("z", "q", "steps"), [(1.0, 0.01, 1000), (2.0, 0.1, 100), (0.8, 1.0, 1)])
def test_dpsgd_opacus_rdp_vs_dp_accounting_pld(z: float, q: float, steps: int) -> None:
    """DP-SGD: opacus RDP (what the backend reports, add/remove) >= dp-accounting PLD, within 40%."""
    import dp_accounting

    from tabpriv.backends.dpsgd_vae import opacus_epsilon

    eps_opacus = opacus_epsilon(z, q, steps, DELTA)
    pld = dp_accounting.pld.PLDAccountant(value_discretization_interval=1e-4)
    pld.compose(dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(z)), steps)
    eps_pld = pld.get_epsilon(DELTA)
    assert eps_pld <= eps_opacus * (1 + 1e-3)
    assert eps_opacus <= 1.4 * eps_pld
