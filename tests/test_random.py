"""The seeded discrete Gaussian sampler (tabpriv._random.sample_discrete_gaussian) against its exact pmf."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tabpriv._random import sample_discrete_gaussian, secret_generator
from tabpriv.errors import PrivacyParameterError


def _pmf(sigma: float) -> tuple[np.ndarray, np.ndarray]:
    k = np.arange(-int(30 * sigma) - 10, int(30 * sigma) + 11)
    w = np.exp(-(k.astype(np.float64) ** 2) / (2 * sigma * sigma))
    return k, w / w.sum()


@pytest.mark.parametrize("sigma", [0.3, 1.0, 2.5, 12.7])
def test_sampler_matches_the_exact_pmf(sigma: float) -> None:
    """200,000 fixed-seed draws; every cell's frequency within 5 binomial standard errors of its pmf."""
    n = 200_000
    y = sample_discrete_gaussian(secret_generator(7, f"dg-{sigma}"), sigma, n)
    assert y.dtype == np.int64 and y.shape == (n,)
    k, p = _pmf(sigma)
    assert y.min() >= k[0] and y.max() <= k[-1]
    freq = np.bincount(y - k[0], minlength=k.size) / n
    se = np.sqrt(p * (1 - p) / n) + 1e-12
    assert np.all(np.abs(freq - p) <= 5 * se + 1.0 / n)
    var = float((p * k * k).sum())
    se_var = math.sqrt((float((p * k**4).sum()) - var * var) / n)  # s.e. of the mean of y^2
    assert abs(y.var() - var) < 5 * se_var
    assert abs(y.mean()) < 5 * math.sqrt(var / n)


def test_sampler_is_reproducible_and_key_dependent() -> None:
    a = sample_discrete_gaussian(secret_generator(1, "x"), 4.0, 1000)
    b = sample_discrete_gaussian(secret_generator(1, "x"), 4.0, 1000)
    c = sample_discrete_gaussian(secret_generator(2, "x"), 4.0, 1000)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert sample_discrete_gaussian(secret_generator(1, "x"), 4.0, 0).shape == (0,)


def test_sampler_refuses_bad_arguments() -> None:
    for bad in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(PrivacyParameterError, match="sigma"):
            sample_discrete_gaussian(secret_generator(1, "x"), bad, 3)
    with pytest.raises(PrivacyParameterError, match="size"):
        sample_discrete_gaussian(secret_generator(1, "x"), 1.0, -1)
