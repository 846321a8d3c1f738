"""The marginal backends' chain sampler: stratified (default) and i.i.d. draws of the fitted model."""

from __future__ import annotations

import numpy as np
import pytest

from tabpriv.backends.marginal.model import ChainSampler

P_A = np.array([0.2, 0.5, 0.3])
P_B_GIVEN_A = np.array([[0.1, 0.2, 0.3, 0.4], [0.25, 0.25, 0.25, 0.25], [0.7, 0.1, 0.1, 0.1]])


def _chain() -> ChainSampler:
    return ChainSampler([0, 1], [(), (0,)], [np.cumsum(P_A)[None, :], np.cumsum(P_B_GIVEN_A, axis=1)])


def test_stratified_counts_are_within_one_row_of_the_expected_counts_in_every_group() -> None:
    n = 1000
    codes = _chain().sample_codes(n, np.random.default_rng(0), [3, 4])
    a_counts = np.bincount(codes[:, 0], minlength=3)
    assert np.all(np.abs(a_counts - n * P_A) <= 1)
    for a in range(3):
        b_counts = np.bincount(codes[codes[:, 0] == a, 1], minlength=4)
        assert np.all(np.abs(b_counts - a_counts[a] * P_B_GIVEN_A[a]) <= 1)


def test_stratified_rows_are_exchangeable_and_iid_has_multinomial_noise() -> None:
    n, trials = 1000, 200
    true = (P_A[:, None] * P_B_GIVEN_A).ravel()
    tvd = {}
    for method in ("stratified", "iid"):
        errs = []
        first = np.zeros(12)
        for s in range(trials):
            c = _chain().sample_codes(n, np.random.default_rng(s), [3, 4], method=method)
            errs.append(0.5 * np.abs(np.bincount(c[:, 0] * 4 + c[:, 1], minlength=12) / n - true).sum())
            first[c[0, 0] * 4 + c[0, 1]] += 1
        tvd[method] = float(np.mean(errs))
        # the first row is a draw from the model (exchangeable rows): chi-square over 200 trials, 11 dof
        expected = trials * true
        assert float(((first - expected) ** 2 / expected).sum()) < 35.0  # p ~ 2.4e-4 under the null
    assert tvd["stratified"] < 0.005 < 0.02 < tvd["iid"]  # iid: ~0.039 at n = 1000 (measured)


def test_unknown_method_is_refused() -> None:
    with pytest.raises(ValueError, match="stratified"):
        _chain().sample_codes(10, np.random.default_rng(0), [3, 4], method="round")
