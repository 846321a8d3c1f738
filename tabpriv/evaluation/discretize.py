"""Schema-derived discretisation and feature encoding shared by every evaluation metric.

Each column becomes integer codes that depend on the schema only, never on the data:

* categorical: one code per declared category, in the schema's order;
* integer / continuous: ``bins`` equal-width bins over ``[lower, upper]`` (an integer column whose
  range has at most ``bins`` values gets one code per value); the column's own ``bins`` wins;
* a *missing* level for missing values;
* an *out of schema* level for values the schema does not allow (unknown category, number outside
  the bounds, text in a numeric column, fraction in an integer column, missing where not allowed).

Out-of-schema values are counted (see :class:`Codes`) and kept in their own level: they are never
silently dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from tabpriv.schema import Column, Schema, _category_key

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Codes", "ColumnLevels", "discretize", "encode_features", "level_labels", "row_hashes"]


@dataclass(frozen=True)
class ColumnLevels:
    """How one column is cut into levels.

    Attributes:
        name: Column name.
        kind: Schema kind.
        n_values: Number of in-schema levels (categories or bins).
        edges: Bin edges for binned numeric columns (``None`` otherwise).
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


def _levels(col: Column, bins: int) -> ColumnLevels:
    if col.kind == "categorical":
        n = len(col.categories or ())
        return ColumnLevels(col.name, col.kind, n, None, n, n + 1)
    assert col.lower is not None and col.upper is not None
    b = col.bins if col.bins is not None else bins
    if col.kind == "integer" and col.n_levels is not None and col.n_levels <= b:
        n = col.n_levels
        return ColumnLevels(col.name, col.kind, n, None, n, n + 1)
    edges = np.linspace(float(col.lower), float(col.upper), b + 1)
    return ColumnLevels(col.name, col.kind, b, edges, b, b + 1)


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
            c = np.floor((safe - lo) / (hi - lo) * lv.n_values).astype(np.int64)
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
        bins: Default number of equal-width bins for numeric columns.

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


def level_labels(col: Column, lv: ColumnLevels) -> list[str]:
    """Human-readable labels of a column's levels (for plots and JSON)."""
    if col.kind == "categorical":
        labels = [str(c) for c in col.categories or ()]
    elif lv.edges is None:
        assert col.lower is not None
        labels = [str(int(col.lower) + i) for i in range(lv.n_values)]
    else:
        e = lv.edges
        labels = [
            f"[{e[i]:.4g}, {e[i + 1]:.4g}{']' if i == lv.n_values - 1 else ')'}" for i in range(lv.n_values)
        ]
    return [*labels, "(missing)", "(out of schema)"]


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
