"""The public discretisation of the marginal backends: every column's levels, from the schema only.

A column's levels depend only on its :class:`~tabpriv.transformers.encoded.ColumnSpan` (kind, declared
categories, declared bounds, the schema's ``bins`` hint) and two public parameters, never on the data:

* **categorical**: one level per declared category, in the schema's order (a column that allows
  missing values has the missing category among its one-hot coordinates, hence one level of its own);
* **integer** with at most ``max_levels`` whole numbers between its bounds: **one level per value**, so
  that spikes survive (Adult's ``hours-per-week`` = 40 for 46.7% of rows);
* any other number: ``bins`` equal-width bins over the declared bounds (the schema's ``bins`` hint,
  else the backend's default; capped at the integer's number of values);
* a number that allows missing values gets one more level, last, for "missing".

Decoding puts a per-value integer exactly on its value, a binned integer uniformly on one of the whole
numbers of its bin, and a continuous value uniformly within its bin (public randomness: this is
post-processing of the released model).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tabpriv.errors import PrivacyParameterError
from tabpriv.transformers.encoded import ColumnSpan

__all__ = ["DEFAULT_BINS", "DEFAULT_MAX_LEVELS", "ColumnLevels", "MarginalDomain"]

#: Integer columns with at most this many whole numbers between their bounds keep one level per value.
DEFAULT_MAX_LEVELS = 100
#: Equal-width bins of a number without a schema ``bins`` hint (and not kept per value).
DEFAULT_BINS = 32


@dataclass(frozen=True)
class ColumnLevels:
    """How one column is discretised.

    Attributes:
        name: Column name.
        kind: ``"categorical"``, ``"integer"`` or ``"continuous"``.
        mode: ``"category"`` (one level per category), ``"value"`` (one level per integer value) or
            ``"bin"`` (equal-width bins over the declared bounds).
        n_values: Levels before the missing level (categories, integer values or bins).
        has_missing: Whether a trailing "missing" level exists (numbers that allow missing only).
        int_levels: For integers, how many whole numbers the bounds allow (``None`` otherwise).

    """

    name: str
    kind: str
    mode: str
    n_values: int
    has_missing: bool
    int_levels: int | None = None

    @property
    def size(self) -> int:
        """Number of levels, the missing level included."""
        return self.n_values + int(self.has_missing)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (saved with the model; public)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "mode": self.mode,
            "n_values": self.n_values,
            "has_missing": self.has_missing,
            "int_levels": self.int_levels,
        }


def _levels(span: ColumnSpan, max_levels: int, bins: int) -> ColumnLevels:
    if span.kind == "categorical":
        return ColumnLevels(span.name, span.kind, "category", span.width, False)
    has_missing = span.width == 2
    if span.kind == "integer" and span.n_levels is not None:
        if span.n_levels <= max_levels:
            return ColumnLevels(span.name, span.kind, "value", span.n_levels, has_missing, span.n_levels)
        n_bins = min(span.bins or bins, span.n_levels)
        return ColumnLevels(span.name, span.kind, "bin", n_bins, has_missing, span.n_levels)
    return ColumnLevels(span.name, span.kind, "bin", span.bins or bins, has_missing)


class MarginalDomain:
    """The levels of every column of a table, and the maps between encoded rows and level codes.

    Args:
        spans: The encoded table's spans (public).
        max_levels: Integer columns with at most this many values keep one level per value.
        bins: Bins of the other numbers when the schema gives no ``bins`` hint.

    """

    def __init__(
        self, spans: tuple[ColumnSpan, ...], max_levels: int = DEFAULT_MAX_LEVELS, bins: int = DEFAULT_BINS
    ) -> None:
        if not spans:
            raise PrivacyParameterError("A marginal backend needs at least one column; got none.")
        self.spans = tuple(spans)
        self.columns = tuple(_levels(s, max_levels, bins) for s in self.spans)
        self.names = tuple(c.name for c in self.columns)
        self.sizes = tuple(c.size for c in self.columns)
        self.width = self.spans[-1].stop

    def __len__(self) -> int:
        return len(self.columns)

    def config(self) -> dict[str, int]:
        """``{column: number of levels}`` (mbi's ``Domain.fromdict`` input)."""
        return dict(zip(self.names, self.sizes, strict=True))

    def cells(self, clique: tuple[int, ...]) -> int:
        """Number of cells of the marginal on the columns ``clique`` (indices)."""
        return int(np.prod([self.sizes[i] for i in clique], dtype=np.float64))

    def coarse_groups(self, j: int, k: int) -> np.ndarray | None:
        """Public map from column ``j``'s levels to ``k`` groups of consecutive levels, or ``None``.

        Only ordered columns (integer values or bins) with more than ``k`` levels are grouped: level
        ``l`` of ``n`` goes to group ``floor(l k / n)`` (equal-width groups of the ordered values); the
        missing level, where there is one, is a group of its own (the last). Categories are never
        merged (their order means nothing).
        """
        col = self.columns[j]
        if col.mode == "category" or col.n_values <= k:
            return None
        groups = (np.arange(col.n_values, dtype=np.int64) * k) // col.n_values
        if col.has_missing:
            groups = np.append(groups, k)
        return groups

    # -- encoded rows -> codes ---------------------------------------------------------------------
    def codes(self, block: np.ndarray) -> np.ndarray:
        """Level code of every column of every encoded row: an ``(m, columns)`` int64 array.

        Values outside ``[-1, 1]`` (which the encoders never produce) are clipped into the end levels,
        so a code is always inside its column's levels.
        """
        out = np.empty((block.shape[0], len(self.columns)), dtype=np.int64)
        for j, (span, col) in enumerate(zip(self.spans, self.columns, strict=True)):
            b = block[:, span.slice]
            if col.mode == "category":
                out[:, j] = b.argmax(axis=1)
                continue
            v = np.clip(b[:, 0].astype(np.float64), -1.0, 1.0)
            if col.int_levels is not None:
                k = np.rint((v + 1.0) * 0.5 * (col.int_levels - 1)).astype(np.int64)
                if col.mode == "value":
                    code = k
                else:
                    code = np.minimum(k * col.n_values // max(col.int_levels - 1, 1), col.n_values - 1)
            else:
                code = np.minimum(np.floor((v + 1.0) * 0.5 * col.n_values), col.n_values - 1).astype(np.int64)
            if col.has_missing:
                code = np.where(b[:, 1] > 0.5, col.n_values, code)
            out[:, j] = code
        return out

    # -- codes -> encoded rows ---------------------------------------------------------------------
    def decode(self, codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Encoded float32 rows for level codes (``rng``: public randomness for within-bin positions)."""
        m = codes.shape[0]
        out = np.zeros((m, self.width), dtype=np.float32)
        rows = np.arange(m)
        for j, (span, col) in enumerate(zip(self.spans, self.columns, strict=True)):
            c = codes[:, j].astype(np.int64)
            if col.mode == "category":
                out[rows, span.start + c] = 1.0
                continue
            missing = c >= col.n_values if col.has_missing else np.zeros(m, dtype=bool)
            c = np.minimum(c, col.n_values - 1)
            if col.int_levels is not None:
                top = max(col.int_levels - 1, 1)
                if col.mode == "value":
                    k = c
                else:
                    # the whole numbers k with k * n_bins // top == c: [ceil(c top / B), ceil((c+1) top / B))
                    lo = -((-c * top) // col.n_values)
                    hi = np.where(c == col.n_values - 1, top + 1, -((-(c + 1) * top) // col.n_values))
                    k = lo + np.floor(rng.random(m) * np.maximum(hi - lo, 1)).astype(np.int64)
                    k = np.minimum(k, np.maximum(hi - 1, lo))
                v = -1.0 + 2.0 * k / top
            else:
                v = -1.0 + 2.0 * (c + rng.random(m)) / col.n_values
            out[:, span.start] = np.where(missing, 0.0, np.clip(v, -1.0, 1.0))
            if col.has_missing:
                out[:, span.start + 1] = missing
        return out

    def to_list(self) -> list[dict[str, object]]:
        """JSON-ready description of every column's levels (public)."""
        return [c.to_dict() for c in self.columns]
