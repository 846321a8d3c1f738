"""Membership-inference attacks against a synthetic table, and exact-match rates.

Members are training records, non-members hold-out records (equal numbers, seeded subsample). The
remaining hold-out rows are the *reference* sample the density-ratio and classifier attacks use as
"other real data". Every attack gives a score per record (higher = more likely a member); we report
ROC AUC and the TPR at FPR 1% and 0.1% (Carlini et al. 2022).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tabpriv.errors import DataValidationError

__all__ = ["MIN_ATTACK_ROWS", "attack_sizes", "exact_match_rates", "roc_summary", "run_attacks"]

#: Smallest number of non-member rows and of reference rows the attacks accept.
MIN_ATTACK_ROWS = 100
#: Default cap on the number of members (and of non-members) attacked.
DEFAULT_N_ATTACK = 2000
#: Cap on the rows of synthetic / reference data the density and classifier attacks fit on.
MAX_FIT_ROWS = 5_000
#: Number of points kept per ROC curve in the JSON (the figures are computed on the full curve).
ROC_POINTS = 200


def attack_sizes(n_train: int, n_holdout: int, n_attack: int | None) -> tuple[int, int]:
    """Return (records attacked per side, reference rows) or raise if the hold-out is too small.

    Raises:
        DataValidationError: The hold-out (or training table) is too small, or ``n_attack`` asks for
            more rows than are available.

    """
    need = 2 * MIN_ATTACK_ROWS
    if n_holdout < need:
        raise DataValidationError(
            f"The hold-out table has {n_holdout} rows; the membership-inference attacks need at "
            f"least {need} ({MIN_ATTACK_ROWS} non-members to attack and {MIN_ATTACK_ROWS} reference "
            "rows). Pass a larger hold-out."
        )
    if n_train < MIN_ATTACK_ROWS:
        raise DataValidationError(
            f"The training table has {n_train} rows; the attacks need at least {MIN_ATTACK_ROWS}."
        )
    if n_attack is None:
        n = min(DEFAULT_N_ATTACK, n_train, n_holdout // 2)
    else:
        most = min(n_train, n_holdout - MIN_ATTACK_ROWS)
        if n_attack < MIN_ATTACK_ROWS or n_attack > most:
            raise DataValidationError(
                f"n_attack={n_attack} is out of range; with {n_train} training and {n_holdout} "
                f"hold-out rows it must lie in [{MIN_ATTACK_ROWS}, {most}] (the hold-out needs "
                f"n_attack + {MIN_ATTACK_ROWS} rows)."
            )
        n = n_attack
    return n, n_holdout - n


def roc_summary(scores: np.ndarray, is_member: np.ndarray) -> dict[str, Any]:
    """ROC AUC, TPR at FPR 1% and 0.1%, and a thinned ROC curve."""
    from sklearn.metrics import roc_auc_score, roc_curve

    fpr, tpr, _ = roc_curve(is_member, scores)

    def tpr_at(target: float) -> float:
        ok = fpr <= target
        return float(tpr[ok].max()) if ok.any() else 0.0

    n_neg = int((~is_member).sum())
    idx = np.unique(np.linspace(0, len(fpr) - 1, min(ROC_POINTS, len(fpr))).astype(int))
    return {
        "auc": float(roc_auc_score(is_member, scores)),
        "tpr_at_fpr_1pct": tpr_at(0.01),
        "tpr_at_fpr_0.1pct": tpr_at(0.001),
        "fpr_resolution": 1.0 / n_neg,
        "roc": {"fpr": fpr[idx].tolist(), "tpr": tpr[idx].tolist()},
    }


def _nearest_distance(fit: np.ndarray, query: np.ndarray, block: int = 8192) -> np.ndarray:
    """Euclidean distance from each query row to its nearest ``fit`` row (exact, blocked float64 BLAS)."""
    fit64 = np.ascontiguousarray(fit, dtype=np.float64)
    q64 = np.ascontiguousarray(query, dtype=np.float64)
    q_sq = (q64 * q64).sum(axis=1)
    best = np.full(len(q64), np.inf)
    for s in range(0, len(fit64), block):
        x = fit64[s : s + block]
        d = q_sq[:, None] + (x * x).sum(axis=1)[None, :] - 2.0 * (q64 @ x.T)
        np.minimum(best, d.min(axis=1), out=best)
    # Rounding can leave tiny non-zero (or negative) values for identical rows.
    best[best < 1e-10] = 0.0
    return np.sqrt(best)


def _sq_dists(q: np.ndarray, x: np.ndarray, x_sq: np.ndarray) -> np.ndarray:
    d = (q * q).sum(axis=1)[:, None] + x_sq[None, :] - 2.0 * (q @ x.T)
    return np.maximum(d, 0.0)


def _log_kde(fit: np.ndarray, query: np.ndarray, h: float, chunk: int = 512) -> np.ndarray:
    """Log of a Gaussian kernel density (up to a constant shared by equal-dimension estimates)."""
    fit32 = fit.astype(np.float32)
    x_sq = (fit32 * fit32).sum(axis=1)
    out = np.empty(len(query))
    for s in range(0, len(query), chunk):
        q = query[s : s + chunk].astype(np.float32)
        z = _sq_dists(q, fit32, x_sq) * np.float32(-0.5 / (h * h))
        zmax = z.max(axis=1, keepdims=True)
        out[s : s + chunk] = np.log(np.exp(z - zmax).sum(axis=1, dtype=np.float64)) + zmax[:, 0].astype(
            np.float64
        )
    return out - math.log(len(fit))


def _bandwidth(ref: np.ndarray, rng: np.random.Generator) -> float:
    """Kernel bandwidth: median distance of a reference row to its nearest other reference row.

    A local bandwidth (half the scale of nearest-neighbour gaps in real data) lets the density ratio see
    synthetic rows piled up on a training record, which is what the attack looks for. Zero gaps
    (duplicate rows) are ignored; 0.02 is the floor.
    """
    from sklearn.neighbors import NearestNeighbors

    probe = _subsample(ref, 2000, rng)
    d, _ = NearestNeighbors(n_neighbors=2).fit(ref).kneighbors(probe)
    gaps = d[:, 1][d[:, 1] > 1e-9]
    return max(0.5 * float(np.median(gaps)) if len(gaps) else 0.05, 0.02)


def _subsample(x: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    if len(x) <= n:
        return x
    return x[np.sort(rng.choice(len(x), size=n, replace=False))]


def run_attacks(
    members: np.ndarray,
    non_members: np.ndarray,
    reference: np.ndarray,
    synthetic: np.ndarray,
    *,
    random_state: int = 0,
) -> dict[str, Any]:
    """Run the DCR, density-ratio and classifier attacks on encoded features.

    Args:
        members: Features of the attacked training records.
        non_members: Features of the attacked hold-out records (same number).
        reference: Features of other hold-out records (never attacked).
        synthetic: Features of the synthetic table.
        random_state: Seed of the subsamples and of the classifier.

    Returns:
        Per attack: AUC, TPR at low FPR, ROC curve, plus the parameters used.

    """
    from sklearn.ensemble import HistGradientBoostingClassifier

    rng = np.random.default_rng(random_state)
    query = np.vstack([members, non_members])
    is_member = np.r_[np.ones(len(members), bool), np.zeros(len(non_members), bool)]
    out: dict[str, Any] = {}

    # (a) distance to the closest synthetic record: closer = member.
    dcr = _nearest_distance(synthetic, query)
    out["dcr"] = {
        **roc_summary(-dcr, is_member),
        "median_dcr_members": float(np.median(dcr[is_member])),
        "median_dcr_non_members": float(np.median(dcr[~is_member])),
    }

    # (b) DOMIAS-style density ratio p_synthetic(x) / p_reference(x) with Gaussian KDEs.
    syn_fit = _subsample(synthetic, MAX_FIT_ROWS, rng)
    ref_fit = _subsample(reference, MAX_FIT_ROWS, rng)
    h = _bandwidth(ref_fit, rng)
    ratio = _log_kde(syn_fit, query, h) - _log_kde(ref_fit, query, h)
    out["density_ratio"] = {
        **roc_summary(ratio, is_member),
        "bandwidth": h,
        "n_synthetic_fit": len(syn_fit),
        "n_reference_fit": len(ref_fit),
    }

    # (c) classifier telling synthetic from reference rows; members look "more synthetic".
    n_fit = min(len(syn_fit), len(ref_fit))
    Xc = np.vstack([_subsample(syn_fit, n_fit, rng), _subsample(ref_fit, n_fit, rng)])
    yc = np.r_[np.ones(n_fit), np.zeros(n_fit)]
    from threadpoolctl import threadpool_limits

    # One OpenMP thread: on a busy machine HistGradientBoosting's spinning threads are far slower.
    with threadpool_limits(limits=1, user_api="openmp"):
        clf = HistGradientBoostingClassifier(max_iter=100, random_state=random_state).fit(Xc, yc)
    prob = clf.predict_proba(query)[:, 1]
    out["classifier"] = {
        **roc_summary(prob, is_member),
        "n_fit_per_class": n_fit,
        "model": "HistGradientBoostingClassifier(max_iter=100)",
    }
    return out


def exact_match_rates(
    train_h: np.ndarray,
    holdout_h: np.ndarray | None,
    synth_h: np.ndarray,
    members_h: np.ndarray | None = None,
    non_members_h: np.ndarray | None = None,
) -> dict[str, Any]:
    """Exact-match rates from row hashes.

    Returns:
        ``synthetic_in_train``: share of synthetic rows identical to some training row;
        ``synthetic_in_holdout``: the same against the hold-out (the base rate for a table whose rows
        repeat naturally); ``members_copied`` / ``non_members_copied``: share of attacked members /
        non-members that appear verbatim in the synthetic table.

    """
    out: dict[str, Any] = {
        "synthetic_in_train": float(np.isin(synth_h, train_h).mean()),
        "synthetic_in_holdout": (
            float(np.isin(synth_h, holdout_h).mean()) if holdout_h is not None else None
        ),
    }
    if members_h is not None and non_members_h is not None:
        out["members_copied"] = float(np.isin(members_h, synth_h).mean())
        out["non_members_copied"] = float(np.isin(non_members_h, synth_h).mean())
    return out
