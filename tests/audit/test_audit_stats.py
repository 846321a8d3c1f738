"""The audit's statistics: Clopper-Pearson intervals and the epsilon lower bound."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tabpriv.audit import clopper_pearson, epsilon_lower_bound
from tabpriv.audit._stats import best_threshold, evaluate_threshold


def test_clopper_pearson_closed_forms() -> None:
    # k = 0 and k = n have closed forms: hi = 1 - (a/2)^(1/n), lo = (a/2)^(1/n)
    lo, hi = clopper_pearson(0, 10)
    assert lo == 0.0 and hi == pytest.approx(1 - 0.025 ** (1 / 10), rel=1e-9)
    lo, hi = clopper_pearson(10, 10)
    assert hi == 1.0 and lo == pytest.approx(0.025 ** (1 / 10), rel=1e-9)
    lo, hi = clopper_pearson(50, 100)
    assert lo == pytest.approx(0.3983, abs=1e-4) and hi == pytest.approx(0.6017, abs=1e-4)
    with pytest.raises(ValueError):
        clopper_pearson(3, 2)


def test_lower_bound_uses_conservative_ends() -> None:
    n = 1000
    # perfect separation on n trials: bound = ln(TPR_lo / FPR_hi)
    tpr_lo = clopper_pearson(n, n)[0]
    fpr_hi = clopper_pearson(0, n)[1]
    assert epsilon_lower_bound(n, n, 0, n, 0.0) == pytest.approx(math.log(tpr_lo / fpr_hi), rel=1e-12)
    # no separation: nothing can be concluded
    assert epsilon_lower_bound(500, n, 500, n, 1e-5) == 0.0
    # when the negatives are the rare side, the second term (1 - FPR_hi) / (1 - TPR_lo) dominates
    b = epsilon_lower_bound(999, n, 500, n, 0.0)
    tpr_lo, fpr_hi = clopper_pearson(999, n)[0], clopper_pearson(500, n)[1]
    assert b == pytest.approx(math.log((1 - fpr_hi) / (1 - tpr_lo)), rel=1e-12)
    assert b > math.log(tpr_lo / fpr_hi)
    # delta is subtracted: a huge delta kills the bound
    assert epsilon_lower_bound(n, n, 0, n, 0.999) == 0.0


def test_threshold_selection_and_evaluation() -> None:
    rng = np.random.default_rng(0)
    d = rng.normal(0.0, 1.0, 4000)
    dp = rng.normal(3.0, 1.0, 4000)
    t = best_threshold(d[:2000], dp[:2000], 1e-5)
    c = evaluate_threshold(d[2000:], dp[2000:], t, 1e-5)
    # mu = 3 Gaussian: the lower bound must be clearly positive yet below its true epsilon at 1e-5 (~ 8.3)
    assert 1.5 < c.epsilon_lb < 8.3


def test_vectorised_threshold_search_equals_the_loop() -> None:
    """best_threshold (vectorised) picks the threshold the former per-candidate loop picked."""
    rng = np.random.default_rng(3)
    for _ in range(4):
        d = rng.normal(0.0, 1.0, 300)
        p = rng.normal(rng.uniform(0.0, 3.0), 1.0, 300)
        both = np.concatenate([d, p])
        grid = np.unique(np.quantile(both, np.linspace(0.0, 1.0, 400)))
        best_t, best_key = float(np.median(both)), (-1.0, -math.inf)
        for t in grid:
            c = evaluate_threshold(d, p, float(t), 1e-5)
            tpr, fpr = (c.tp + 0.5) / 301, (c.fp + 0.5) / 301
            key = (c.epsilon_lb, max(math.log(tpr / fpr), math.log((1 - fpr) / (1 - tpr))))
            if key > best_key:
                best_t, best_key = float(t), key
        assert best_threshold(d, p, 1e-5) == best_t
