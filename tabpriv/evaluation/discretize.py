"""Schema-derived discretisation and feature encoding shared by every evaluation metric.

Each column becomes integer codes that depend on the schema only, never on the data:

* categorical: one code per declared category, in the schema's order;
* integer with at most :data:`~tabpriv.transformers.levels.DEFAULT_MAX_LEVELS` (100) values between
  its bounds (or at most ``bins``, if larger): one code per value, the rule of
  :func:`tabpriv.transformers.levels.keeps_values` that the marginal and VAE backends use;
* any other number: at most ``bins`` bins over ``[lower, upper]`` (the column's own ``bins`` wins)
  whose inner edges are round numbers (multiples of a step 1, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 times a
  power of ten, see :func:`bin_edges`); an integer column's edges are whole numbers, so each bin is a
  range of integers;
* a *missing* level for missing values;
* an *out of schema* level for values the schema does not allow (unknown category, number outside
  the bounds, text in a numeric column, fraction in an integer column, missing where not allowed).

Out-of-schema values are counted (see :class:`Codes`) and kept in their own level: they are never
silently dropped.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from tabpriv.schema import Column, Schema, _category_key
from tabpriv.transformers.encoded import ColumnSpan
from tabpriv.transformers.levels import DEFAULT_MAX_LEVELS, keeps_values

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "Codes",
    "ColumnLevels",
    "bin_edges",
    "discretize",
    "encode_features",
    "format_number",
    "level_labels",
    "range_labels",
    "row_hashes",
]

#: Mantissas (times ten) of the round bin widths: 1, 1.5, 2, 2.5, 3, 4, 5, 6, 8 times a power of ten.
_NICE_MANTISSAS = (10, 15, 20, 25, 30, 40, 50, 60, 80)
#: Labels of the two extra levels of every column.
MISSING_LABEL = "(missing)"
OUT_OF_SCHEMA_LABEL = "(out of schema)"


@dataclass(frozen=True)
class ColumnLevels:
    """How one column is cut into levels.

    Attributes:
        name: Column name.
        kind: Schema kind.
        n_values: Number of in-schema levels (categories, integer values or bins).
        edges: Bin edges for binned numeric columns (``None`` otherwise): ``n_values + 1`` increasing
            numbers, bin ``i`` is ``[edges[i], edges[i + 1])`` (a continuous column's last bin also
            holds ``upper``); an integer column's edges are whole numbers ending at ``upper + 1``.
        missing_code: Code of the missing level.
        out_code: Code of the out-of-schema level.

    """

    name: str
    kind: str
    n_values: int
    edges: np.ndarray | None
    missing_code: int
    out_code: int

    @property
    def n_levels(self) -> int:
        """Total number of codes (values + missing + out of schema)."""
        return self.n_values + 2


@dataclass
class Codes:
    """Integer codes of a table, one column per schema column.

    Attributes:
        codes: ``(n, p)`` int64 array.
        levels: Per-column level description.
        out_of_schema: Count of out-of-schema values per column (only columns with any).

    """

    codes: np.ndarray
    levels: list[ColumnLevels]
    out_of_schema: dict[str, int] = field(default_factory=dict)


def _steps(raw: float, integer: bool) -> Iterator[tuple[int, int]]:
    """Round bin widths ``m * 10**e`` (``m`` in :data:`_NICE_MANTISSAS` / 10) from the first >= ``raw``.

    Yields ``(mantissa, exponent)`` with width ``mantissa * 10**exponent``; for integers only whole
    widths.
    """
    e = math.floor(math.log10(raw)) - 2 if raw > 0 else 0
    while True:
        for m in _NICE_MANTISSAS:
            if integer and e < 0 and not (e == -1 and m % 10 == 0):  # not a whole width
                continue
            w = m * 10.0**e if e >= 0 else m / 10.0**-e
            if w >= raw:
                yield m, e
        e += 1


def bin_edges(lower: float, upper: float, bins: int, integer: bool) -> np.ndarray:
    """Edges of at most ``bins`` bins over ``[lower, upper]`` with round inner edges (schema only).

    The bin width is the smallest round number ``w`` (1, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 times a power of
    ten; whole for integers) of at least ``(upper - lower) / bins`` such that there are at most
    ``bins`` bins: the inner edges are the multiples of ``w`` strictly inside the range, the outer
    edges are the bounds (an integer column's last edge is ``upper + 1``), and an end bin narrower
    than ``w / 2`` is merged into its neighbour.

    Args:
        lower: Declared lower bound.
        upper: Declared upper bound (``> lower``).
        bins: Largest number of bins (``>= 1``).
        integer: Whole-number edges (bin ``i`` holds the integers ``edges[i] .. edges[i + 1] - 1``).

    Returns:
        The increasing edges, ``len <= bins + 1``.

    """
    lo, hi = float(lower), float(upper)
    top = hi + 1.0 if integer else hi
    raw = (hi - lo) / bins
    for m, e in _steps(raw, integer):
        w = m * 10.0**e if e >= 0 else m / 10.0**-e
        first, last = math.floor(lo / w), math.ceil(top / w)
        if last - first > 4 * bins + 4:
            continue
        ks = range(first, last + 1)
        inner = [k * m * 10.0**e if e >= 0 else k * m / 10.0**-e for k in ks]
        edges = [lo, *(v for v in inner if lo < v < top), top]
        if len(edges) > 2 and edges[1] - edges[0] < w / 2:
            del edges[1]
        if len(edges) > 2 and edges[-1] - edges[-2] < w / 2:
            del edges[-2]
        if len(edges) - 1 <= bins:
            return np.array(edges, dtype=float)
    raise AssertionError("unreachable: a wide enough step always fits")  # pragma: no cover


def _levels(col: Column, bins: int) -> ColumnLevels:
    if col.kind == "categorical":
        n = len(col.categories or ())
        return ColumnLevels(col.name, col.kind, n, None, n, n + 1)
    assert col.lower is not None and col.upper is not None
    b = col.bins if col.bins is not None else bins
    span = ColumnSpan(col.name, col.kind, 0, 1, (), col.n_levels, col.bins)
    if keeps_values(span, max(DEFAULT_MAX_LEVELS, b)):
        assert col.n_levels is not None
        n = col.n_levels
        return ColumnLevels(col.name, col.kind, n, None, n, n + 1)
    edges = bin_edges(col.lower, col.upper, b, col.kind == "integer")
    n = len(edges) - 1
    return ColumnLevels(col.name, col.kind, n, edges, n, n + 1)


def _numeric_values(s: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Return float values and a mask of non-missing entries that are not numbers."""
    import pandas as pd

    isna = s.isna().to_numpy()
    if pd.api.types.is_bool_dtype(s):
        return np.full(len(s), np.nan), ~isna
    num = pd.to_numeric(s, errors="coerce")
    arr = num.to_numpy(dtype=float, na_value=np.nan)
    bad = (~isna) & np.isnan(arr)
    return arr, bad


def _column_codes(col: Column, lv: ColumnLevels, s: pd.Series) -> tuple[np.ndarray, int]:
    import pandas as pd

    n = len(s)
    codes = np.empty(n, dtype=np.int64)
    isna = s.isna().to_numpy()
    if col.kind == "categorical":
        lookup = {_category_key(c): i for i, c in enumerate(col.categories or ())}
        values, uniques = pd.factorize(s, use_na_sentinel=True)
        mapped = np.empty(len(uniques) + 1, dtype=np.int64)
        for j, u in enumerate(uniques):
            v = u.item() if hasattr(u, "item") else u
            hit = lookup.get(_category_key(v))
            if hit is None and isinstance(v, str):
                try:
                    hit = lookup.get(_category_key(float(v)))
                except ValueError:
                    hit = None
            mapped[j] = lv.out_code if hit is None else hit
        mapped[-1] = lv.missing_code
        codes = mapped[values]  # -1 (missing) indexes the last entry
        out = codes == lv.out_code
    else:
        arr, bad = _numeric_values(s)
        assert col.lower is not None and col.upper is not None
        lo, hi = float(col.lower), float(col.upper)
        present = ~np.isnan(arr)
        safe = np.where(present, arr, lo)
        out = bad | (present & ((safe < lo) | (safe > hi)))
        if col.kind == "integer":
            out |= present & (safe != np.floor(safe))
        if lv.edges is None:
            c = np.rint(safe - lo).astype(np.int64)
        else:
            c = np.searchsorted(lv.edges, safe, side="right").astype(np.int64) - 1
        c = np.clip(c, 0, lv.n_values - 1)
        codes = np.where(present, c, lv.missing_code)
        codes = np.where(out, lv.out_code, codes)
    if not col.missing:
        out = out | isna
        codes = np.where(isna, lv.out_code, codes)
    return codes.astype(np.int64, copy=False), int(out.sum())


def discretize(df: pd.DataFrame, schema: Schema, bins: int = 20) -> Codes:
    """Turn a table into schema-derived integer codes.

    Args:
        df: The table; it must hold every schema column (extra columns are ignored).
        schema: The schema the levels come from.
        bins: Largest number of bins of a binned numeric column (a column's own ``bins`` wins); integer
            columns with at most ``max(100, bins)`` values keep one level per value.

    Returns:
        The codes, the level descriptions and the out-of-schema counts.

    """
    levels = [_levels(c, bins) for c in schema.columns]
    out = np.empty((len(df), len(levels)), dtype=np.int64)
    counts: dict[str, int] = {}
    for j, (col, lv) in enumerate(zip(schema.columns, levels, strict=True)):
        out[:, j], n_out = _column_codes(col, lv, df[col.name])
        if n_out:
            counts[col.name] = n_out
    return Codes(out, levels, counts)


def _positional(v: float) -> str:
    """Shortest decimal form of ``v`` that reads back as ``v`` (never scientific notation)."""
    text: str = np.format_float_positional(v, trim="-")
    return "0" if text in ("-0", "0") else text


def _decimals(text: str) -> int:
    return len(text.split(".")[1]) if "." in text else 0


def _grouped(text: str) -> str:
    """``text`` (a positional number) with thousands separators in its whole part."""
    sign = "-" if text.startswith("-") else ""
    whole, _, frac = text.lstrip("-").partition(".")
    return sign + f"{int(whole):,}" + (f".{frac}" if frac else "")


def format_number(v: float, separators: bool = True) -> str:
    """A readable, exact form of ``v``: ``40``, ``0.25``, ``75k``, ``1.5M``, ``12,285``.

    Never scientific notation. From 10,000 up, a value that is a whole number of thousands with at
    most one decimal (millions: two) gets a ``k`` (``M``) suffix, any other gets thousands separators
    (``separators=False``: none, for integer columns whose values stay below 10,000, such as years).
    """
    a = abs(v)
    if a >= 1e6:
        t = _positional(v / 1e6)
        if _decimals(t) <= 2:
            return t + "M"
    if 1e4 <= a < 1e6:
        t = _positional(v / 1e3)
        if _decimals(t) <= 1:
            return t + "k"
    text = _positional(v)
    return _grouped(text) if separators and a >= 1e4 else text


def _join(a: str, b: str) -> str:
    return f"{a} to {b}" if a.startswith("-") or b.startswith("-") else f"{a}–{b}"


def range_labels(edges: np.ndarray, integer: bool) -> list[str]:
    """Labels of the bins ``[edges[i], edges[i + 1])``: integer ranges or readable number ranges.

    Integer bins (whole-number edges) are inclusive ranges of whole numbers, ``30–34`` (``40`` for a
    bin of one value, ``-5 to -1`` when negative), with thousands separators when the column reaches
    10,000. Continuous bins are ``lower–upper`` of the bin (lower edge included) in
    :func:`format_number`'s form.
    """
    e = [float(x) for x in edges]
    if integer:
        sep = max(abs(e[0]), abs(e[-1] - 1)) >= 1e4

        def num(x: float) -> str:
            return f"{int(x):,}" if sep else str(int(x))

        return [num(a) if b - a == 1 else _join(num(a), num(b - 1)) for a, b in itertools.pairwise(e)]
    return [_join(format_number(a), format_number(b)) for a, b in itertools.pairwise(e)]


def _category_labels(cats: tuple[Any, ...]) -> list[str]:
    labels = [str(c) for c in cats]
    taken = [*labels, MISSING_LABEL, OUT_OF_SCHEMA_LABEL]
    for i, lab in enumerate(labels):
        if taken.count(lab) > 1:  # e.g. categories 1 and "1", or a category named "(missing)"
            labels[i] = f"{cats[i]!r} ({type(cats[i]).__name__})"
    return labels


def level_labels(col: Column, lv: ColumnLevels) -> list[str]:
    """Labels of a column's levels, one per code, unique (for plots and JSON).

    Categories as declared (a name that would clash with another label gets its repr and type);
    per-value integers as their value (``40``); bins as :func:`range_labels`; then ``(missing)`` and
    ``(out of schema)``.
    """
    if col.kind == "categorical":
        labels = _category_labels(tuple(col.categories or ()))
    elif lv.edges is None:
        assert col.lower is not None
        lo = int(col.lower)
        ints = np.arange(lo, lo + lv.n_values + 1, dtype=float)
        labels = range_labels(ints, integer=True)
    else:
        labels = range_labels(lv.edges, integer=col.kind == "integer")
    return [*labels, MISSING_LABEL, OUT_OF_SCHEMA_LABEL]


def encode_features(df: pd.DataFrame, schema: Schema, codes: Codes) -> np.ndarray:
    """Numeric features for distances and attack models (float32).

    Categorical columns are one-hot over their codes (missing and out-of-schema get their own
    indicator); numeric columns are scaled by the declared bounds to ``[0, 1]`` (out-of-bounds values
    keep their scaled value) with missing values at 0 plus a missing indicator when the schema allows
    missing values.
    """
    parts: list[np.ndarray] = []
    n = len(df)
    for j, (col, lv) in enumerate(zip(schema.columns, codes.levels, strict=True)):
        if col.kind == "categorical":
            oh = np.zeros((n, lv.n_levels), dtype=np.float32)
            oh[np.arange(n), codes.codes[:, j]] = 1.0
            # Scale one-hot blocks by 1/sqrt(2) so a category change costs distance 1, as a full
            # swing of a numeric column does.
            parts.append(oh * np.float32(np.sqrt(0.5)))
        else:
            arr, _ = _numeric_values(df[col.name])
            assert col.lower is not None and col.upper is not None
            scaled = (arr - float(col.lower)) / (float(col.upper) - float(col.lower))
            miss = np.isnan(scaled)
            parts.append(np.where(miss, 0.0, scaled).astype(np.float32)[:, None])
            if col.missing:
                parts.append(miss.astype(np.float32)[:, None])
    return np.hstack(parts)


def row_hashes(df: pd.DataFrame, schema: Schema, codes: Codes) -> np.ndarray:
    """A 64-bit hash per row of its exact values (categories by code, numbers by value)."""
    import pandas as pd

    cols: dict[str, Any] = {}
    for j, col in enumerate(schema.columns):
        if col.kind == "categorical":
            cols[col.name] = codes.codes[:, j]
        else:
            arr, bad = _numeric_values(df[col.name])
            # Text in numeric columns is out of schema: hash it by its code so it never matches.
            cols[col.name] = np.where(bad, np.inf, arr)
    frame = pd.DataFrame(cols)
    return pd.util.hash_pandas_object(frame, index=False).to_numpy()
