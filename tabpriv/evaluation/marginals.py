"""Total variation distance of 1-, 2- and 3-way marginals on schema-derived codes."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from tabpriv.evaluation.discretize import Codes

__all__ = ["marginal_tvds", "tvd"]

#: Above this many joint cells, joint codes are compacted with ``np.unique`` instead of bincount.
_DENSE_CELLS = 2_000_000
#: How many of the worst columns / pairs / triples are named in the report.
N_WORST = 5


def tvd(p: np.ndarray, q: np.ndarray) -> float:
    """Total variation distance ``0.5 * sum |p - q|`` of two count or probability vectors."""
    ps = p / max(float(p.sum()), 1e-300)
    qs = q / max(float(q.sum()), 1e-300)
    return float(0.5 * np.abs(ps - qs).sum())


def _joint_tvd(a: np.ndarray, b: np.ndarray, sizes: list[int]) -> float:
    """TVD of the joint distribution of the columns of ``a`` and ``b`` (same column set)."""
    cells = int(np.prod(sizes, dtype=np.float64))
    ka = np.zeros(len(a), dtype=np.int64)
    kb = np.zeros(len(b), dtype=np.int64)
    for j, s in enumerate(sizes):
        ka = ka * s + a[:, j]
        kb = kb * s + b[:, j]
    if cells > _DENSE_CELLS:
        _, inv = np.unique(np.concatenate([ka, kb]), return_inverse=True)
        ka, kb = inv[: len(ka)], inv[len(ka) :]
        cells = int(inv.max()) + 1
    return tvd(np.bincount(ka, minlength=cells), np.bincount(kb, minlength=cells))


def marginal_tvds(
    real: Codes, synth: Codes, *, max_triples: int = 500, random_state: int = 0
) -> dict[str, Any]:
    """Compute TVDs of every 1-way and 2-way marginal and of (a sample of) 3-way marginals.

    Args:
        real: Codes of the real table.
        synth: Codes of the synthetic table (same schema).
        max_triples: Largest number of 3-way marginals; a seeded random sample when there are more.
        random_state: Seed of the triple sample.

    Returns:
        A JSON-ready dict with per-order mean, worst, the worst few by name and the full lists.

    """
    names = [lv.name for lv in real.levels]
    sizes = [lv.n_levels for lv in real.levels]
    p = len(names)
    a, b = real.codes, synth.codes
    one = [_joint_tvd(a[:, [j]], b[:, [j]], [sizes[j]]) for j in range(p)]
    pair_matrix = np.zeros((p, p))
    pairs: list[tuple[tuple[int, ...], float]] = []
    for i, j in itertools.combinations(range(p), 2):
        v = _joint_tvd(a[:, [i, j]], b[:, [i, j]], [sizes[i], sizes[j]])
        pair_matrix[i, j] = pair_matrix[j, i] = v
        pairs.append(((i, j), v))
    all_triples = list(itertools.combinations(range(p), 3))
    sampled = len(all_triples) > max_triples
    if sampled:
        rng = np.random.default_rng(random_state)
        pick = np.sort(rng.choice(len(all_triples), size=max_triples, replace=False))
        triples_idx = [all_triples[k] for k in pick]
    else:
        triples_idx = all_triples
    triples = [(t, _joint_tvd(a[:, list(t)], b[:, list(t)], [sizes[k] for k in t])) for t in triples_idx]

    def summary(items: list[tuple[tuple[int, ...], float]]) -> dict[str, Any]:
        if not items:
            return {"count": 0, "mean": None, "max": None, "worst": []}
        vals = np.array([v for _, v in items])
        order = np.argsort(-vals, kind="stable")[:N_WORST]
        return {
            "count": len(items),
            "mean": float(vals.mean()),
            "max": float(vals.max()),
            "worst": [{"columns": [names[k] for k in items[i][0]], "tvd": float(items[i][1])} for i in order],
        }

    return {
        "one_way": {
            **summary([((j,), v) for j, v in enumerate(one)]),
            "per_column": dict(zip(names, one, strict=True)),
        },
        "two_way": {**summary(pairs), "matrix": pair_matrix.tolist(), "columns": names},
        "three_way": {
            **summary(triples),
            "total_triples": len(all_triples),
            "sampled": sampled,
        },
    }
