"""The one generic calibration, :func:`tabpriv.accounting.calibrate`, on monotone fake accountants.

Also: each call site that used to run its own loop gets exactly the float that loop gave (the loops are
transcribed here as references, from the code they replaced).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tabpriv.accounting import (
    calibrate,
    calibrate_gaussian,
    calibrate_gdp_noise,
    gaussian_epsilon,
    gdp_epsilon,
    gdp_mu,
)
from tabpriv.errors import PrivacyParameterError


class Counting:
    """A fake accountant ``epsilon(x) = c / x`` (strictly decreasing), counting its calls."""

    def __init__(self, c: float) -> None:
        self.c = c
        self.calls = 0

    def __call__(self, x: float) -> float:
        self.calls += 1
        return self.c / x


@settings(max_examples=60, deadline=None)
@given(
    c=st.floats(0.01, 1e3),
    target=st.floats(0.01, 50.0),
    rtol=st.sampled_from([1e-2, 1e-4, 1e-7]),
    geometric=st.booleans(),
)
def test_result_never_above_target_and_within_tolerance(
    c: float, target: float, rtol: float, geometric: bool
) -> None:
    f = Counting(c)
    res = calibrate(
        f, target, hi=1.0, lo=1e-9, rtol=rtol,
        midpoint="geometric" if geometric else "arithmetic", stop="ratio" if geometric else "width",
    )  # fmt: skip
    x_star = c / target  # smallest noise that fits
    assert res.epsilon <= target
    assert res.epsilon == f.c / res.noise  # the figure returned is the evaluated one
    assert res.noise >= x_star * (1 - 1e-12)
    if geometric:
        assert res.noise / x_star <= 1 + rtol + 1e-12
    else:
        assert res.noise - x_star <= rtol * res.noise + 1e-12 * res.noise
    assert res.lower is not None and f.c / res.lower > target
    assert res.evaluations == f.calls


def test_step_function_never_overspends() -> None:
    """A discontinuous accountant: the result sits on the admissible side of the jump."""

    def f(x: float) -> float:
        return 2.0 if x < 3.0 else 1.0

    res = calibrate(f, 1.5, hi=1.0, lo=1e-6, rtol=1e-9)
    assert res.epsilon == 1.0 and 3.0 <= res.noise <= 3.0 * (1 + 1e-9)


def test_guess_mode_is_the_nudge_loop() -> None:
    """``bisect=False``: the first of ``hi, hi*grow, ...`` that fits (the analytic-guess rule)."""
    f = Counting(10.0)
    res = calibrate(f, 1.0, hi=9.99, grow=1 + 1e-4, bisect=False)
    x = 9.99
    n = 1
    while 10.0 / x > 1.0:
        x *= 1 + 1e-4
        n += 1
    assert res.noise == x and res.evaluations == n == f.calls and res.stop == "guess"


def test_unreachable_target_raises() -> None:
    with pytest.raises(PrivacyParameterError, match="No noise"):
        calibrate(lambda x: 5.0, 1.0, hi=1.0, hi_max=1e3)
    with pytest.raises(ValueError, match="custom"):
        calibrate(lambda x: 5.0, 1.0, hi=1.0, hi_max=1e3, on_unreachable=lambda h: ValueError(f"custom {h}"))


@pytest.mark.parametrize(
    "bad", [{"target": 0.0}, {"target": math.inf}, {"hi": -1.0}, {"rtol": 0.0}, {"grow": 1.0}]
)
def test_invalid_arguments_raise(bad: dict[str, float]) -> None:
    kwargs: dict[str, float] = {"target": 1.0, "hi": 1.0, "rtol": 1e-6, "grow": 2.0}
    kwargs.update(bad)
    with pytest.raises(PrivacyParameterError):
        calibrate(lambda x: 1.0 / x, **kwargs)  # type: ignore[arg-type]


# -- the replaced loops, transcribed, give the same floats --------------------------------------------
def _old_slicing_loop(eps_of: Callable[[float], float], epsilon: float) -> float:
    lo, hi = 1e-6, 1.0
    while eps_of(hi) > epsilon:
        lo, hi = hi, hi * 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if eps_of(mid) > epsilon:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-7 * hi:
            break
    return hi


def _old_dpsgd_loop(
    eps_of: Callable[[float], float], epsilon: float, hi: float, rtol: float
) -> tuple[float, int]:
    n = 0

    def f(z: float) -> float:
        nonlocal n
        n += 1
        return eps_of(z)

    e_hi = f(hi)
    while e_hi > epsilon:
        hi *= 1.05
        e_hi = f(hi)
    lo = hi / 2.0
    while f(lo) <= epsilon:
        hi, lo = lo, lo / 2.0
        if lo < 1e-3:
            break
    while hi / lo > 1.0 + rtol:
        mid = math.sqrt(lo * hi)
        if f(mid) <= epsilon:
            hi = mid
        else:
            lo = mid
    return hi, n


@pytest.mark.parametrize("c", [0.37, 3.0, 41.0, 777.0])
@pytest.mark.parametrize("target", [0.5, 5.1, 10.0])
def test_slicing_rule_reproduces_the_old_loop(c: float, target: float) -> None:
    def f(s: float) -> float:
        return c / s**1.3

    res = calibrate(f, target, hi=1.0, lo=1e-6, rtol=1e-7, grow=2.0)
    assert res.noise == _old_slicing_loop(f, target)


@pytest.mark.parametrize("c", [0.3, 3.0, 40.0])
@pytest.mark.parametrize("start", [0.2, 1.0, 30.0])
def test_dpsgd_rule_reproduces_the_old_loop(c: float, start: float) -> None:
    def f(z: float) -> float:
        return c / z + 0.01 / z**2

    old, n_old = _old_dpsgd_loop(f, 1.0, start, 1e-3)
    res = calibrate(
        f, 1.0, hi=start, rtol=1e-3, grow=1.05, hi_max=1e6, shrink=2.0, lo_floor=1e-3,
        midpoint="geometric", stop="ratio",
    )  # fmt: skip
    assert res.noise == old
    assert res.evaluations == n_old  # the old code then evaluated hi once more; the new one does not


@pytest.mark.parametrize("epsilon", [0.1, 1.0, 5.1, 30.0])
def test_calibrate_gaussian_equals_the_old_nudge_loop(epsilon: float) -> None:
    import dp_accounting

    z = float(dp_accounting.get_sigma_gaussian(epsilon, 1e-5))
    eps = gaussian_epsilon(z, 1e-5)
    while eps > epsilon:
        z *= 1 + 1e-9
        eps = gaussian_epsilon(z, 1e-5)
    cal = calibrate_gaussian(epsilon, 1e-5, 2.0)
    assert cal.noise_multiplier == z and cal.epsilon == eps and cal.sigma == z * 2.0


@pytest.mark.parametrize("epsilon", [0.3, 1.0, 5.1])
def test_calibrate_gdp_noise_equals_the_old_lipschitz_loop(epsilon: float) -> None:
    sens = math.sqrt(3) * 1.5 * 7.2
    s = sens / gdp_mu(epsilon, 5e-6)
    mu = sens / s
    e = gdp_epsilon(mu, 5e-6)
    while e > epsilon:
        s *= 1 + 1e-9
        mu = sens / s
        e = gdp_epsilon(mu, 5e-6)
    assert calibrate_gdp_noise(epsilon, 5e-6, sens) == (s, mu, e)
