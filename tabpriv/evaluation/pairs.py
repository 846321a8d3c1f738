"""Joint tables of the worst 2-way marginals, real vs synthetic, ready to plot and to store as JSON.

The report lists the column pairs with the largest 2-way TVD; :func:`worst_pair_tables` gives, for the
first few of them, the real and synthetic joint shares over the schema's levels (the same codes as the
TVD). So that a table stays readable, an axis with many levels is shown coarser:

* a categorical axis with more than :data:`MAX_CATEGORIES` categories keeps its most frequent ones
  (real and synthetic rows together), in the schema's order, and merges the rest into ``other (k)``;
* an ordered axis (integer values or bins) with more than :data:`MAX_ORDERED` levels merges
  consecutive levels into about that many groups (integer values into round ranges such as
  ``20–24``, bins into runs of whole bins), except that a level holding at least 5% of the real or
  the synthetic rows (such as 40 hours a week) stays a group of its own, so merging never hides a
  spike;
* the missing and out-of-schema levels are kept only where some row has them.

The TVD given is that of the full table (the report's figure); ``tvd_shown`` is the TVD of the table
as shown (never larger).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tabpriv.evaluation.discretize import Codes, ColumnLevels, bin_edges, level_labels, range_labels
from tabpriv.schema import Column, Schema

__all__ = ["MAX_CATEGORIES", "MAX_ORDERED", "SPIKE_SHARE", "worst_pair_tables"]

#: A categorical axis with more categories than this shows its most frequent ones plus "other".
MAX_CATEGORIES = 16
#: An ordered axis with more levels than this is shown in about this many groups.
MAX_ORDERED = 20
#: When an ordered axis is merged, a level holding at least this share of the real or the synthetic
#: rows stays a group of its own (at most :data:`MAX_SPIKES` of them).
SPIKE_SHARE = 0.05
MAX_SPIKES = 6


def _axis_groups(
    col: Column, lv: ColumnLevels, share: np.ndarray, peak: np.ndarray
) -> tuple[np.ndarray, list[str], str | None]:
    """Map every code of a column to a display group: ``(group of each code or -1, labels, note)``.

    ``share`` is the column's share of rows per code (real and synthetic together), used to pick the
    categories shown and to drop empty missing / out-of-schema levels; ``peak`` the larger of the
    real and the synthetic share, whose spikes (at least :data:`SPIKE_SHARE`) an ordered axis keeps
    as levels of their own so that merging never hides them.
    """
    labels = level_labels(col, lv)
    n = lv.n_values
    group = np.full(lv.n_levels, -1, dtype=np.int64)
    out_labels: list[str] = []
    note: str | None = None
    if col.kind == "categorical" and n > MAX_CATEGORIES:
        keep = np.sort(np.argsort(-share[:n], kind="stable")[: MAX_CATEGORIES - 1])
        for g, k in enumerate(keep):
            group[k] = g
            out_labels.append(labels[k])
        rest = np.setdiff1d(np.arange(n), keep)
        group[rest] = len(keep)
        out_labels.append(f"other ({len(rest)})")
        note = f"{col.name}: the {len(keep)} most frequent of {n} categories, the rest as 'other'"
    elif col.kind != "categorical" and n > MAX_ORDERED:
        order = np.argsort(-peak[:n], kind="stable")[:MAX_SPIKES]
        spikes = [int(k) for k in order if peak[k] >= SPIKE_SHARE]
        if lv.edges is None:  # one level per integer value: round ranges of values
            assert col.lower is not None and col.upper is not None
            lo = int(col.lower)
            cuts = {int(e) - lo for e in bin_edges(col.lower, col.upper, MAX_ORDERED, integer=True)}
        else:  # bins: runs of whole bins
            cuts = set(range(0, n, -(-n // MAX_ORDERED))) | {n}
        cuts |= {k for sp in spikes for k in (sp, sp + 1)}
        starts = np.array(sorted(cuts), dtype=np.int64)  # level index where each group starts, then n
        group[:n] = np.searchsorted(starts, np.arange(n), side="right") - 1
        if lv.edges is None:
            edges = (starts + int(col.lower or 0)).astype(float)
        else:
            edges = lv.edges[starts]
        out_labels = range_labels(edges, integer=col.kind == "integer")
        note = f"{col.name}: {n} levels shown in {len(out_labels)} groups"
        if spikes:
            note += f" ({', '.join(labels[k] for k in sorted(spikes))} kept apart)"
    else:
        group[:n] = np.arange(n)
        out_labels = labels[:n]
    for k in (lv.missing_code, lv.out_code):
        if share[k] > 0:
            group[k] = len(out_labels)
            out_labels.append(labels[k])
    return group, out_labels, note


def _joint(codes: np.ndarray, i: int, j: int, sizes: tuple[int, int]) -> np.ndarray:
    key = codes[:, i] * sizes[1] + codes[:, j]
    counts = np.bincount(key, minlength=sizes[0] * sizes[1]).astype(float)
    return (counts / max(counts.sum(), 1.0)).reshape(sizes)


def _regroup(table: np.ndarray, ga: np.ndarray, gb: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    out = np.zeros(shape)
    ia, ib = np.nonzero(table)
    keep = (ga[ia] >= 0) & (gb[ib] >= 0)
    np.add.at(out, (ga[ia[keep]], gb[ib[keep]]), table[ia[keep], ib[keep]])
    return out


def worst_pair_tables(
    schema: Schema,
    real_codes: Codes,
    syn_codes: Codes,
    worst_pairs: Sequence[dict[str, Any]],
    max_pairs: int = 4,
) -> list[dict[str, Any]]:
    """Real and synthetic joint shares of the first ``max_pairs`` worst column pairs (JSON-ready).

    Args:
        schema: The schema both tables were discretised with.
        real_codes: Codes of the real training table.
        syn_codes: Codes of the synthetic table.
        worst_pairs: ``results["marginals"]["two_way"]["worst"]``: dicts with ``columns`` (two names)
            and ``tvd``, worst first.
        max_pairs: How many pairs to tabulate.

    Returns:
        One dict per pair: ``columns`` ([row column, column column]), ``tvd`` (of the full table),
        ``tvd_shown`` (of the table as shown), ``labels`` (two lists: the shown levels of each axis),
        ``real`` and ``synthetic`` (nested lists: share of rows per shown cell, rows = first column),
        ``notes`` (how an axis was made coarser, if it was).

    """
    names = list(schema.names)
    out: list[dict[str, Any]] = []
    for w in list(worst_pairs)[:max_pairs]:
        a, b = w["columns"]
        i, j = names.index(a), names.index(b)
        la, lb = real_codes.levels[i], real_codes.levels[j]
        sizes = (la.n_levels, lb.n_levels)
        real = _joint(real_codes.codes, i, j, sizes)
        syn = _joint(syn_codes.codes, i, j, sizes)
        both = 0.5 * (real + syn)
        peak_a = np.maximum(real.sum(axis=1), syn.sum(axis=1))
        peak_b = np.maximum(real.sum(axis=0), syn.sum(axis=0))
        ga, labels_a, note_a = _axis_groups(schema.columns[i], la, both.sum(axis=1), peak_a)
        gb, labels_b, note_b = _axis_groups(schema.columns[j], lb, both.sum(axis=0), peak_b)
        shape = (len(labels_a), len(labels_b))
        r, s = _regroup(real, ga, gb, shape), _regroup(syn, ga, gb, shape)
        out.append(
            {
                "columns": [a, b],
                "tvd": float(w["tvd"]),
                "tvd_shown": float(0.5 * np.abs(r - s).sum()),
                "labels": [labels_a, labels_b],
                "real": r.tolist(),
                "synthetic": s.tolist(),
                "notes": [n for n in (note_a, note_b) if n],
            }
        )
    return out
