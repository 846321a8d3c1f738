"""zCDP accounting of the discrete Gaussian (tabpriv.accounting), checked against OpenDP and dp-accounting."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tabpriv.accounting import (
    MAX_DISCRETE_GAUSSIAN_EPSILON,
    calibrate_discrete_gaussian,
    discrete_gaussian_rho,
    opendp_discrete_gaussian_epsilon,
    zcdp_epsilon,
    zcdp_rho_for,
)
from tabpriv.errors import PrivacyParameterError

RHOS = [1e-6, 1e-3, 0.03, 0.5, 1.0, 7.0, 100.0, 1e4]
DELTAS = [1e-3, 1e-5, 1e-9]


def _opendp_epsilon(rho: float, delta: float) -> float:
    """Second method: OpenDP's own zCDP -> approx-DP conversion of a measurement that is rho-zCDP."""
    import opendp.prelude as dp

    dp.enable_features("contrib")
    meas = dp.m.make_gaussian(
        dp.vector_domain(dp.atom_domain(T="i64")), dp.l2_distance(T="i64"), 1.0 / math.sqrt(2 * rho)
    )
    return float(dp.c.make_zCDP_to_approxDP(meas).map(1).epsilon(delta))


@pytest.mark.parametrize("delta", DELTAS)
@pytest.mark.parametrize("rho", RHOS)
def test_zcdp_epsilon_matches_opendp_conversion(rho: float, delta: float) -> None:
    assert zcdp_epsilon(rho, delta) == pytest.approx(_opendp_epsilon(rho, delta), rel=1e-9)


@pytest.mark.parametrize("rho", [1e-3, 0.03, 1.0, 7.0])
def test_zcdp_epsilon_is_below_dp_accounting_rdp_on_a_grid_of_orders(rho: float) -> None:
    """Third method: dp-accounting's RDP accountant on the Gaussian with RDP alpha*rho (same curve),
    optimised over a finite grid of orders, so an upper bound that is within 1% of the exact optimum."""
    import dp_accounting

    acc = dp_accounting.rdp.RdpAccountant(orders=list(np.linspace(1.01, 64, 4000)) + list(range(65, 4096)))
    acc.compose(dp_accounting.GaussianDpEvent(1.0 / math.sqrt(2 * rho)))
    ours, theirs = zcdp_epsilon(rho, 1e-5), float(acc.get_epsilon(1e-5))
    assert ours <= theirs * (1 + 1e-9)
    assert theirs <= ours * 1.01


def test_zcdp_epsilon_satisfies_the_delta_form_of_the_bound() -> None:
    """CKS 2020 Cor. 13 in its delta form: delta = inf_a exp((a-1)(a rho - eps)) / (a-1) (1-1/a)^a."""
    from scipy.optimize import minimize_scalar

    for rho in (0.01, 0.3, 4.0):
        eps = zcdp_epsilon(rho, 1e-6)

        def log_delta(a: float, eps: float = eps, rho: float = rho) -> float:
            return (a - 1) * (a * rho - eps) - math.log(a - 1) + a * math.log1p(-1 / a)

        res = minimize_scalar(log_delta, bounds=(1 + 1e-9, 1e5), method="bounded", options={"xatol": 1e-10})
        assert math.exp(float(res.fun)) == pytest.approx(1e-6, rel=1e-4)


def test_zcdp_epsilon_is_monotone() -> None:
    rhos = np.geomspace(1e-6, 1e4, 300)
    eps = [zcdp_epsilon(float(r), 1e-5) for r in rhos]
    assert all(b > a for a, b in itertools.pairwise(eps))  # increasing in rho
    by_delta = [zcdp_epsilon(0.5, d) for d in (1e-2, 1e-4, 1e-6, 1e-8)]
    assert all(b > a for a, b in itertools.pairwise(by_delta))  # decreasing in delta
    assert zcdp_epsilon(0.0, 1e-5) == 0.0


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    st.floats(min_value=1e-4, max_value=1e3, allow_nan=False, allow_infinity=False),
    st.sampled_from([1e-4, 1e-5, 1e-7]),
)
def test_rho_for_inverts_zcdp_epsilon(eps: float, delta: float) -> None:
    rho = zcdp_rho_for(eps, delta)
    assert zcdp_epsilon(rho, delta) <= eps
    assert zcdp_epsilon(rho * (1 + 1e-9), delta) >= eps * (1 - 1e-8)


@pytest.mark.parametrize("target", [0.5, 1.0, 5.1, 10.0])
def test_calibrated_discrete_gaussian_spends_at_most_the_target(target: float) -> None:
    sens = math.sqrt(2 * 15)  # Adult's 15 one-way histograms under replace-one
    cal = calibrate_discrete_gaussian(target, 1e-5, sens)
    assert cal.epsilon <= target
    assert cal.epsilon == pytest.approx(target, rel=1e-8)
    assert cal.rho == pytest.approx(sens**2 / (2 * cal.sigma**2), rel=1e-12)
    rho_o, eps_o = opendp_discrete_gaussian_epsilon(cal.sigma, sens, 1e-5)
    assert rho_o <= cal.rho and eps_o <= cal.epsilon  # the spent figure is the larger of the two
    assert rho_o == pytest.approx(cal.rho, rel=1e-12)
    assert cal.accountant.startswith(f"zCDP (rho={cal.rho:.6g}) -> (epsilon, delta)")


@pytest.mark.parametrize("d_in", [1, 2, 3, 7])
def test_discrete_gaussian_rho_matches_opendp_map(d_in: int) -> None:
    import opendp.prelude as dp

    dp.enable_features("contrib")
    meas = dp.m.make_gaussian(dp.vector_domain(dp.atom_domain(T="i64")), dp.l2_distance(T="i64"), 3.7)
    assert discrete_gaussian_rho(3.7, d_in) == pytest.approx(float(meas.map(d_in)), rel=1e-12)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(PrivacyParameterError, match="rho"):
        zcdp_epsilon(-1.0, 1e-5)
    with pytest.raises(PrivacyParameterError, match="delta"):
        zcdp_epsilon(1.0, 0.0)
    with pytest.raises(PrivacyParameterError, match="sigma"):
        discrete_gaussian_rho(0.0, 1.0)
    with pytest.raises(PrivacyParameterError, match="l2_sensitivity"):
        calibrate_discrete_gaussian(1.0, 1e-5, float("nan"))


@pytest.mark.parametrize("target", [1e5, 1e6, 1e12])
def test_huge_epsilon_is_calibrated_at_the_cap_not_an_overflow(target: float) -> None:
    # OpenDP's zCDP -> approx-DP conversion overflowed at epsilon >= 1e5 ("inf_exp() is not finite").
    cal = calibrate_discrete_gaussian(target, 1e-5, math.sqrt(30.0))
    assert cal.epsilon <= MAX_DISCRETE_GAUSSIAN_EPSILON
    assert cal.epsilon > 0.99 * MAX_DISCRETE_GAUSSIAN_EPSILON
    assert 0 < cal.sigma < 0.1


def test_huge_epsilon_fit_spends_what_it_ran_on_the_cli_example() -> None:
    import warnings

    import tabpriv
    from tabpriv.datasets import adult_schema, load_adult

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the weak-epsilon warning is expected here
        synth = tabpriv.Synthesizer(epsilon=1e6, schema=adult_schema(), random_state=1).fit(
            load_adult().head(500)
        )
    assert synth.privacy_report.epsilon <= MAX_DISCRETE_GAUSSIAN_EPSILON
    assert "WEAK" in synth.privacy_report.headline
