"""The one object that passes from the transformers to the backends."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from tabpriv.errors import DataValidationError

__all__ = ["DEFAULT_CHUNK_BYTES", "Block", "ColumnSpan", "EncodedTable", "RowEncoder", "clip_rows"]

logger = logging.getLogger(__name__)

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


#: Encodes the given rows of a lazily encoded table: a ``slice`` of row positions or an integer array of
#: row positions (in any order, repeats allowed) -> a ``(rows, width)`` float32 block.
RowEncoder = Callable[[slice | np.ndarray], np.ndarray]

#: Default memory target of one encoded chunk (see :meth:`EncodedTable.chunk_rows_for`).
DEFAULT_CHUNK_BYTES = 64 * 2**20


class EncodedTable:
    """A float32 matrix plus the span of every original column. All a backend ever sees.

    Every row satisfies, by construction of the transformers, ``||row||_2^2 <= n_columns``: a one-hot
    block has norm 1, a number lies in [-1, 1] and a missing number is encoded as value 0 with
    indicator 1. Backends that need a sensitivity bound must still enforce it (see
    :meth:`clipped_rows`), never assume it.

    A table is either **eager** (``EncodedTable(data, spans)``: the matrix is in memory) or **lazy**
    (:meth:`lazy`: rows are encoded on demand from the validated DataFrame, which is what
    :class:`~tabpriv.Synthesizer` passes to backends). Both behave the same; they differ in memory:

    * :meth:`iter_chunks` and :meth:`take` encode only the rows asked for: ``O(chunk_rows × width)``.
      Streaming backends (``Backend.streaming``) read the table through these two methods only.
    * :attr:`data` materialises the whole ``n_rows × width × 4`` bytes once, logs the size at INFO and
      caches it. No registered backend needs it any more; it is kept for callers outside the
      fitting path (benchmarks, tests) and for backends that cannot stream.

    The table is immutable.

    Args:
        data: ``(n_rows, width)`` float32 matrix (build a lazy table with :meth:`lazy` instead).
        spans: One :class:`ColumnSpan` per original column, in order, covering the matrix exactly.

    """

    spans: tuple[ColumnSpan, ...]
    _data: np.ndarray | None
    _encoder: RowEncoder | None
    _n_rows: int

    def __init__(self, data: np.ndarray, spans: tuple[ColumnSpan, ...]) -> None:
        if data.ndim != 2:
            raise DataValidationError(f"Encoded data must be 2-D; got shape {data.shape}.")
        _check_spans(spans, int(data.shape[1]))
        object.__setattr__(self, "spans", tuple(spans))
        object.__setattr__(self, "_data", data)
        object.__setattr__(self, "_encoder", None)
        object.__setattr__(self, "_n_rows", int(data.shape[0]))

    @classmethod
    def lazy(cls, spans: tuple[ColumnSpan, ...], n_rows: int, encoder: RowEncoder) -> EncodedTable:
        """A table whose rows are encoded on demand by ``encoder`` (see :data:`RowEncoder`).

        Args:
            spans: The spans of the encoding.
            n_rows: Number of rows.
            encoder: Encodes a slice or an integer array of row positions into float32 rows.

        Example:
            >>> table = TableTransformer(schema).fit().transform_lazy(clean)  # what fit() passes on

        """
        if n_rows < 0:
            raise DataValidationError(f"A table cannot have {n_rows} rows.")
        self = cls.__new__(cls)
        _check_spans(spans, spans[-1].stop if spans else 0)
        object.__setattr__(self, "spans", tuple(spans))
        object.__setattr__(self, "_data", None)
        object.__setattr__(self, "_encoder", encoder)
        object.__setattr__(self, "_n_rows", int(n_rows))
        return self

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"EncodedTable is immutable; cannot set {name!r}.")

    # -- shape ----------------------------------------------------------------------------------------
    @property
    def is_lazy(self) -> bool:
        """Whether rows are encoded on demand (and the full matrix is not cached yet)."""
        return self._data is None

    @property
    def n_rows(self) -> int:
        """Number of rows."""
        if self._encoder is None:
            return int(self.data.shape[0])  # eager: the matrix's shape (a subclass may wrap ``data``)
        return int(self._n_rows)

    @property
    def width(self) -> int:
        """Number of encoded coordinates (d)."""
        if self._encoder is None:
            return int(self.data.shape[1])
        return self.spans[-1].stop if self.spans else 0

    @property
    def n_columns(self) -> int:
        """Number of original columns."""
        return len(self.spans)

    @property
    def nbytes(self) -> int:
        """Size of the full float32 matrix in bytes (``n_rows × width × 4``), materialised or not."""
        return self.n_rows * self.width * 4

    @property
    def row_norm_bound(self) -> float:
        """Data-independent bound on every row's L2 norm: sqrt(number of columns)."""
        return math.sqrt(self.n_columns)

    def chunk_rows_for(self, target_bytes: int = DEFAULT_CHUNK_BYTES) -> int:
        """Rows per chunk so that one float32 chunk takes about ``target_bytes`` (at least 1 row)."""
        return max(1, int(target_bytes) // max(1, 4 * self.width))

    # -- reading --------------------------------------------------------------------------------------
    @property
    def data(self) -> np.ndarray:
        """The full ``(n_rows, width)`` float32 matrix (materialised and cached if the table is lazy).

        This costs ``n_rows × width × 4`` bytes; streaming code uses :meth:`iter_chunks` or :meth:`take`.
        """
        cached: np.ndarray | None = self._data
        if cached is not None:
            return cached
        n, w = self._n_rows, self.spans[-1].stop if self.spans else 0
        logger.info(
            "materialising the encoded table: %d rows x %d columns float32 = %.2f GiB",
            n, w, n * w * 4 / 2**30,
        )  # fmt: skip
        out = np.empty((n, w), dtype=np.float32)
        for start, block in self._encode_chunks(self.chunk_rows_for()):
            out[start : start + block.shape[0]] = block
        object.__setattr__(self, "_data", out)
        return out

    def _encode(self, rows: slice | np.ndarray, n_expected: int) -> np.ndarray:
        encoder = self._encoder
        assert encoder is not None
        block = np.asarray(encoder(rows), dtype=np.float32)
        w = self.spans[-1].stop if self.spans else 0
        if block.shape != (n_expected, w):
            raise DataValidationError(
                f"The row encoder returned shape {block.shape}; expected ({n_expected}, {w})."
            )
        return block

    def _encode_chunks(self, chunk_rows: int) -> Iterator[tuple[int, np.ndarray]]:
        n = self._n_rows
        for start in range(0, n, chunk_rows):
            stop = min(start + chunk_rows, n)
            yield start, self._encode(slice(start, stop), stop - start)

    def iter_chunks(self, chunk_rows: int = 65_536) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(start_row, block)`` pairs covering the rows in order, ``chunk_rows`` at a time.

        Streaming backends read the table through this method (and :meth:`take`) only, so that memory
        stays ``O(chunk_rows × width)`` whatever the number of rows. A lazy table encodes each chunk
        when it is reached (a fresh array); an eager one yields views of its matrix. Either way the
        blocks are equal, value for value, to the rows of :attr:`data`.
        """
        if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int | np.integer) or chunk_rows <= 0:
            raise ValueError(f"chunk_rows must be a positive integer; got {chunk_rows!r}.")
        chunk_rows = int(chunk_rows)
        if self._data is None:
            yield from self._encode_chunks(chunk_rows)
            return
        for start in range(0, self.n_rows, chunk_rows):
            yield start, self.data[start : start + chunk_rows]

    def take(self, indices: np.ndarray | list[int]) -> np.ndarray:
        """Return the rows at ``indices`` (row positions, any order, repeats allowed) as a new array.

        A lazy table encodes only those rows.

        Raises:
            IndexError: An index is not an integer in ``[0, n_rows)``.

        """
        idx = np.asarray(indices)
        if idx.ndim != 1 or not (idx.size == 0 or np.issubdtype(idx.dtype, np.integer)):
            raise IndexError(
                f"take() needs a 1-D array of integer row positions; got {idx.dtype} {idx.shape}."
            )
        idx = idx.astype(np.int64, copy=False)
        n = self.n_rows
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise IndexError(f"Row positions must lie in [0, {n}); got {idx.min()} .. {idx.max()}.")
        if self._data is None:
            return self._encode(idx, idx.size)
        return np.asarray(self.data[idx], dtype=np.float32)

    def clipped_rows(self, bound: float | None = None) -> np.ndarray:
        """Return a copy of the data with each row's L2 norm clipped to ``bound``.

        A lazy table is clipped chunk by chunk into the output, without caching :attr:`data` (the
        result itself is ``n_rows × width × 4`` bytes).

        Args:
            bound: Clipping norm; defaults to :attr:`row_norm_bound`.

        """
        c = self.row_norm_bound if bound is None else float(bound)
        if self._data is not None:
            return clip_rows(self.data, c)
        out = np.empty((self.n_rows, self.width), dtype=np.float32)
        for start, block in self._encode_chunks(self.chunk_rows_for()):
            out[start : start + block.shape[0]] = clip_rows(block, c)
        return out

    def with_data(self, data: np.ndarray) -> EncodedTable:
        """Same spans, other rows (e.g. a subsample or generated rows): an eager table."""
        return EncodedTable(np.asarray(data, dtype=np.float32), self.spans)

    def spans_to_json(self) -> list[dict[str, Any]]:
        """JSON-ready list of spans."""
        return [s.to_dict() for s in self.spans]

    def __repr__(self) -> str:
        kind = "lazy" if self._data is None else "eager"
        return f"EncodedTable({kind}, n_rows={self.n_rows}, width={self.width}, n_columns={self.n_columns})"


def clip_rows(x: np.ndarray, c: float) -> np.ndarray:
    """Scale each row of ``x`` down to L2 norm at most ``c`` (float32); the clip of ``clipped_rows``."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    scale = np.minimum(1.0, c / np.maximum(norms, 1e-12))
    return (x * scale).astype(np.float32, copy=False)


def _check_spans(spans: tuple[ColumnSpan, ...], width: int) -> None:
    pos = 0
    for s in spans:
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
    if pos != width:
        raise DataValidationError(f"Spans cover {pos} coordinates but the matrix has {width} columns.")
