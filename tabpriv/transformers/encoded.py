"""The one object that passes from the transformers to the backends."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from tabpriv.errors import DataValidationError

__all__ = ["Block", "ColumnSpan", "EncodedTable"]

Activation = Literal["softmax", "tanh", "sigmoid"]


@dataclass(frozen=True)
class Block:
    """A contiguous group of encoded coordinates that share an output activation.

    Attributes:
        activation: ``"softmax"`` (one-hot block), ``"tanh"`` (a number in [-1, 1]) or ``"sigmoid"``
            (a 0/1 missing indicator).
        start: First coordinate (absolute, in the encoded matrix).
        width: Number of coordinates.

    """

    activation: Activation
    start: int
    width: int

    @property
    def stop(self) -> int:
        """One past the last coordinate."""
        return self.start + self.width


@dataclass(frozen=True)
class ColumnSpan:
    """Where one original column lives in the encoded matrix.

    Attributes:
        name: Original column name.
        kind: ``"categorical"``, ``"integer"`` or ``"continuous"``.
        start: First coordinate of the column.
        width: Number of coordinates.
        blocks: The activation blocks inside the span (a categorical column is one softmax block; a
            number is a tanh coordinate, followed by a sigmoid missing indicator when missing is
            allowed).
        n_levels: For integer columns, how many distinct values the bounds allow.
        bins: Histogram bins hint from the schema (numbers only), or ``None``.

    """

    name: str
    kind: str
    start: int
    width: int
    blocks: tuple[Block, ...]
    n_levels: int | None = None
    bins: int | None = None

    @property
    def stop(self) -> int:
        """One past the last coordinate."""
        return self.start + self.width

    @property
    def slice(self) -> slice:
        """The span as a Python slice over matrix columns."""
        return slice(self.start, self.stop)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "name": self.name,
            "kind": self.kind,
            "start": self.start,
            "width": self.width,
            "blocks": [[b.activation, b.start, b.width] for b in self.blocks],
            "n_levels": self.n_levels,
            "bins": self.bins,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ColumnSpan:
        """Inverse of :meth:`to_dict`."""
        return cls(
            name=str(d["name"]),
            kind=str(d["kind"]),
            start=int(d["start"]),
            width=int(d["width"]),
            blocks=tuple(Block(a, int(s), int(w)) for a, s, w in d["blocks"]),
            n_levels=None if d.get("n_levels") is None else int(d["n_levels"]),
            bins=None if d.get("bins") is None else int(d["bins"]),
        )


@dataclass(frozen=True, eq=False)
class EncodedTable:
    """A float32 matrix plus the span of every original column. All a backend ever sees.

    Every row satisfies, by construction of the transformers, ``||row||_2^2 <= n_columns``: a one-hot
    block has norm 1, a number lies in [-1, 1] and a missing number is encoded as value 0 with
    indicator 1. Backends that need a sensitivity bound must still enforce it (see
    :meth:`clipped_rows`), never assume it.

    Attributes:
        data: ``(n_rows, width)`` float32 matrix.
        spans: One :class:`ColumnSpan` per original column, in order, covering the matrix exactly.

    """

    data: np.ndarray
    spans: tuple[ColumnSpan, ...]

    def __post_init__(self) -> None:
        if self.data.ndim != 2:
            raise DataValidationError(f"Encoded data must be 2-D; got shape {self.data.shape}.")
        pos = 0
        for s in self.spans:
            if s.start != pos or s.width <= 0:
                raise DataValidationError(f"Spans are not contiguous at column {s.name!r}.")
            bpos = s.start
            for b in s.blocks:
                if b.start != bpos:
                    raise DataValidationError(f"Blocks of column {s.name!r} are not contiguous.")
                bpos = b.stop
            if bpos != s.stop:
                raise DataValidationError(f"Blocks of column {s.name!r} do not cover its span.")
            pos = s.stop
        if pos != self.data.shape[1]:
            raise DataValidationError(
                f"Spans cover {pos} coordinates but the matrix has {self.data.shape[1]} columns."
            )

    @property
    def n_rows(self) -> int:
        """Number of rows."""
        return int(self.data.shape[0])

    @property
    def width(self) -> int:
        """Number of encoded coordinates (d)."""
        return int(self.data.shape[1])

    @property
    def n_columns(self) -> int:
        """Number of original columns."""
        return len(self.spans)

    @property
    def row_norm_bound(self) -> float:
        """Data-independent bound on every row's L2 norm: sqrt(number of columns)."""
        return math.sqrt(self.n_columns)

    def clipped_rows(self, bound: float | None = None) -> np.ndarray:
        """Return a copy of the data with each row's L2 norm clipped to ``bound``.

        Args:
            bound: Clipping norm; defaults to :attr:`row_norm_bound`.

        """
        c = self.row_norm_bound if bound is None else float(bound)
        norms = np.linalg.norm(self.data, axis=1, keepdims=True)
        scale = np.minimum(1.0, c / np.maximum(norms, 1e-12))
        return (self.data * scale).astype(np.float32, copy=False)

    def iter_chunks(self, chunk_rows: int = 65_536) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(start_row, block)`` pairs covering the rows in order, ``chunk_rows`` at a time.

        Streaming backends read the table through this method only, so that memory stays
        ``O(chunk_rows × width)`` whatever the number of rows.
        """
        if chunk_rows <= 0:
            raise ValueError(f"chunk_rows must be positive; got {chunk_rows}.")
        for start in range(0, self.n_rows, chunk_rows):
            yield start, self.data[start : start + chunk_rows]

    def with_data(self, data: np.ndarray) -> EncodedTable:
        """Same spans, other rows (e.g. a subsample or generated rows)."""
        return EncodedTable(np.asarray(data, dtype=np.float32), self.spans)

    def spans_to_json(self) -> list[dict[str, Any]]:
        """JSON-ready list of spans."""
        return [s.to_dict() for s in self.spans]
