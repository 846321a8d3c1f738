"""Statistics of a privacy audit: Clopper-Pearson intervals and the epsilon lower bound.

An audit runs a mechanism ``n`` times on a dataset ``D`` and ``n`` times on a neighbour ``D'``, applies a
distinguisher (a score and a threshold: "say D' when score > threshold") and counts its true and false
positives. Any (epsilon, delta)-DP mechanism satisfies ``TPR <= e^eps FPR + delta`` and
``1 - FPR <= e^eps (1 - TPR) + delta`` (Kairouz et al. 2015), so with Clopper-Pearson bounds on the
rates (Jagielski et al. 2020; Nasr et al. 2021)::

    eps_lb = max(ln((TPR_lo - delta) / FPR_hi), ln((1 - FPR_hi - delta) / (1 - TPR_lo)))

Every rate enters at the end of its 95% interval that makes the bound *smaller* (the conservative side):
the second term uses ``1 - FPR_hi`` over ``1 - TPR_lo``. (Writing it with ``FPR_lo`` and ``TPR_hi`` would
make the bound larger than the data support — a false alarm, not a lower bound.) Each interval is a
two-sided 95% Clopper-Pearson interval, as in those papers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["AuditCounts", "best_threshold", "clopper_pearson", "epsilon_lower_bound", "evaluate_threshold"]


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact two-sided Clopper-Pearson interval of a binomial proportion ``k / n``."""
    from scipy.stats import beta

    if n <= 0 or not 0 <= k <= n:
        raise ValueError(f"Need 0 <= k <= n and n > 0; got k={k}, n={n}.")
    a = 1.0 - confidence
    lo = 0.0 if k == 0 else float(beta.ppf(a / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - a / 2, k + 1, n - k))
    return lo, hi


def _safe_log_ratio(num: float, den: float) -> float:
    if num <= 0:
        return 0.0
    if den <= 0:
        return math.inf
    return max(0.0, math.log(num / den))


def epsilon_lower_bound(
    tp: int, n_pos: int, fp: int, n_neg: int, delta: float, confidence: float = 0.95
) -> float:
    """Epsilon lower bound from the distinguisher's counts (0 when the counts show nothing)."""
    tpr_lo = clopper_pearson(tp, n_pos, confidence)[0]
    fpr_hi = clopper_pearson(fp, n_neg, confidence)[1]
    return max(
        _safe_log_ratio(tpr_lo - delta, fpr_hi),
        _safe_log_ratio(1.0 - fpr_hi - delta, 1.0 - tpr_lo),
    )


@dataclass(frozen=True)
class AuditCounts:
    """Counts of a distinguisher on held-out trials and the bound they give."""

    threshold: float
    tp: int
    n_pos: int
    fp: int
    n_neg: int
    epsilon_lb: float

    @property
    def tpr(self) -> float:
        """True-positive rate."""
        return self.tp / self.n_pos

    @property
    def fpr(self) -> float:
        """False-positive rate."""
        return self.fp / self.n_neg


def evaluate_threshold(
    scores_d: np.ndarray, scores_dprime: np.ndarray, threshold: float, delta: float
) -> AuditCounts:
    """Counts and bound of "say D' when score > threshold"."""
    tp = int(np.sum(scores_dprime > threshold))
    fp = int(np.sum(scores_d > threshold))
    n_pos, n_neg = len(scores_dprime), len(scores_d)
    return AuditCounts(threshold, tp, n_pos, fp, n_neg, epsilon_lower_bound(tp, n_pos, fp, n_neg, delta))


def _bounds_vectorised(tp: np.ndarray, n_pos: int, fp: np.ndarray, n_neg: int, delta: float) -> np.ndarray:
    """:func:`epsilon_lower_bound` for arrays of counts (same 95% Clopper-Pearson ends)."""
    from scipy.stats import beta

    a = 0.05
    with np.errstate(divide="ignore", invalid="ignore"):
        tpr_lo = np.where(tp == 0, 0.0, beta.ppf(a / 2, np.maximum(tp, 1), n_pos - tp + 1))
        fpr_hi = np.where(fp == n_neg, 1.0, beta.ppf(1 - a / 2, fp + 1, np.maximum(n_neg - fp, 1)))

        def log_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
            r = np.where(den <= 0, np.inf, np.log(np.maximum(num, 1e-300) / np.where(den <= 0, 1.0, den)))
            return np.where(num <= 0, 0.0, np.maximum(0.0, r))

        return np.maximum(log_ratio(tpr_lo - delta, fpr_hi), log_ratio(1.0 - fpr_hi - delta, 1.0 - tpr_lo))


def best_threshold(scores_d: np.ndarray, scores_dprime: np.ndarray, delta: float, n_grid: int = 400) -> float:
    """Threshold maximising the bound on these (selection) trials; use it on *separate* trials.

    Ties (e.g. every candidate giving 0 on few trials) are broken by the smoothed empirical
    ``max(ln(TPR/FPR), ln((1-FPR)/(1-TPR)))``. Vectorised over the candidate grid (the bound of each
    candidate equals :func:`evaluate_threshold`'s).
    """
    both = np.concatenate([scores_d, scores_dprime])
    grid = np.unique(np.quantile(both, np.linspace(0.0, 1.0, n_grid)))
    n_p, n_n = len(scores_dprime), len(scores_d)
    sd, sp = np.sort(scores_d), np.sort(scores_dprime)
    fp = n_n - np.searchsorted(sd, grid, side="right")
    tp = n_p - np.searchsorted(sp, grid, side="right")
    bound = _bounds_vectorised(tp, n_p, fp, n_n, delta)
    tpr, fpr = (tp + 0.5) / (n_p + 1), (fp + 0.5) / (n_n + 1)
    emp = np.maximum(np.log(tpr / fpr), np.log((1 - fpr) / (1 - tpr)))
    order = np.lexsort((-np.arange(len(grid)), emp, bound))  # last = largest bound, then emp, then first
    return float(grid[order[-1]])
