"""The accountant interface: frozen mechanism descriptions, ``epsilon(delta)``, typed accountant info."""

from __future__ import annotations

import dataclasses
import math

import pytest

from tabpriv import accounting as acc
from tabpriv.backends.slicing.mechanism import calibrate_sigma
from tabpriv.errors import PrivacyParameterError

DELTA = 1e-5


def test_gaussian_mechanism_matches_the_calibration() -> None:
    cal = acc.calibrate_gaussian(1.0, DELTA, 3.0)
    m = acc.GaussianMechanism(cal.noise_multiplier)
    assert m.epsilon(DELTA) == pytest.approx(cal.epsilon, rel=1e-12, abs=1e-12)
    assert str(m.accountant) == cal.accountant
    assert m.accountant.library == "dp-accounting"


def test_discrete_gaussian_matches_the_calibration() -> None:
    cal = acc.calibrate_discrete_gaussian(1.0, DELTA, math.sqrt(10))
    m = acc.DiscreteGaussian(cal.sigma, math.sqrt(10))
    assert m.epsilon(DELTA) == pytest.approx(cal.epsilon, rel=1e-12)
    assert m.rho == pytest.approx(cal.rho, rel=1e-12)
    assert str(m.accountant) == cal.accountant


def test_dpsgd_mechanism_matches_the_calibration() -> None:
    cal = acc.calibrate_dpsgd(2.0, DELTA, 0.05, 100)
    m = acc.PoissonGaussianDPSGD(cal.noise_multiplier, 0.05, 100, cal.value_discretization_interval)
    assert m.epsilon(DELTA) == pytest.approx(cal.epsilon, rel=1e-12)
    assert str(m.accountant) == cal.accountant


@pytest.mark.parametrize("subsample", [None, 0.25])
@pytest.mark.parametrize("method", ["exact", "rdp"])
def test_slicing_mechanism_matches_the_calibration(subsample: float | None, method: str) -> None:
    cal = calibrate_sigma(2.0, DELTA, 40, 64, 5.0, subsample, method=method)
    m = acc.SlicingMechanism(cal.sigma, 40, 64, 5.0, subsample, method)  # type: ignore[arg-type]
    assert m.epsilon(DELTA) == pytest.approx(cal.epsilon, rel=1e-12)
    assert str(m.accountant) == cal.accountant
    assert ("Theorem 9" in m.accountant.conversion) == (subsample is not None)
    assert cal.mechanism == m


def test_calibrations_carry_their_typed_mechanism() -> None:
    for cal in (
        acc.calibrate_gaussian(1.0, DELTA, 2.0),
        acc.calibrate_discrete_gaussian(1.0, DELTA, 2.0),
        acc.calibrate_dpsgd(1.0, DELTA, 0.1, 20),
    ):
        assert isinstance(cal.mechanism, acc.Mechanism)
        assert cal.mechanism.epsilon(DELTA) == cal.epsilon
        assert str(cal.mechanism.accountant) == cal.accountant


def test_gdp_and_dp2vae_mechanisms() -> None:
    assert acc.GDPMechanism(0.8).epsilon(DELTA) == acc.gdp_epsilon(0.8, DELTA)
    cal = acc.calibrate_dp2vae_noise(2.0, DELTA, 10, 50, 0.1)
    m = acc.DP2VAEMechanism(cal.noise, 10, 50, cal.hist_multiplier)
    assert m.epsilon(DELTA) == pytest.approx(cal.epsilon, rel=1e-12)
    assert str(m.accountant) == cal.accountant


def test_mechanisms_are_frozen_values_with_one_adjacency() -> None:
    m = acc.GaussianMechanism(1.0)
    assert isinstance(m, acc.Mechanism)
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.noise_multiplier = 2.0  # type: ignore[misc]
    assert m == acc.GaussianMechanism(1.0) and hash(m) == hash(acc.GaussianMechanism(1.0))
    with pytest.raises(PrivacyParameterError, match="replace-one"):
        acc.GaussianMechanism(1.0, adjacency="add/remove-one")  # type: ignore[arg-type]
    with pytest.raises(PrivacyParameterError, match="noise_multiplier"):
        acc.GaussianMechanism(-1.0)
    assert acc.check_adjacency("replace-one") == "replace-one"


def test_accountant_info_text() -> None:
    info = acc.AccountantInfo("analytic Gaussian", "dp-accounting", "0.6.0", "direct")
    assert str(info) == "analytic Gaussian, dp-accounting 0.6.0; direct"
    assert str(dataclasses.replace(info, text="custom")) == "custom"


def test_every_calibration_takes_the_adjacency_explicitly() -> None:
    calls = [
        lambda a: acc.calibrate_gaussian(1.0, DELTA, 1.0, adjacency=a),
        lambda a: acc.calibrate_discrete_gaussian(1.0, DELTA, 1.0, adjacency=a),
        lambda a: acc.calibrate_dpsgd(1.0, DELTA, 0.1, 10, adjacency=a),
        lambda a: acc.calibrate_dp2vae_noise(1.0, DELTA, 4, 10, adjacency=a),
        lambda a: acc.calibrate_gdp_noise(1.0, DELTA, 1.0, adjacency=a),
        lambda a: calibrate_sigma(1.0, DELTA, 10, 16, 2.0, adjacency=a),
    ]
    for call in calls:
        result = call("replace-one")
        eps = result[2] if isinstance(result, tuple) else result.epsilon
        assert 0 < eps <= 1.0
        with pytest.raises(PrivacyParameterError, match="replace-one"):
            call("add/remove-one")
