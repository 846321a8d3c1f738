"""The engine seam: every pass over the encoded private rows, as "map over the chunks (and sum)".

Two operations cover every data pass of the count backends and the slicing projection:

* :func:`map_sum` applies ``func`` to every encoded chunk and returns the element-wise sum of the
  results (an array, or a list/tuple/dict of arrays): the exact marginal counts of ``independent``,
  ``mst`` and ``aim``. Integer counts are exact, so the sum does not depend on how the rows are split.
* :func:`map_chunks` applies ``func`` to every chunk and yields ``(start_row, result)`` in row order:
  the projection pass of ``slicing`` (``X U`` before the noise).

Which engine runs them is a property of the table:

* the **default engine** is a plain loop over :meth:`EncodedTable.iter_chunks
  <tabpriv.transformers.encoded.EncodedTable.iter_chunks>` in this process (the streaming
  pandas/numpy path: memory one chunk plus the results);
* a table built by the **Dask engine** (:mod:`tabpriv.engine.dask_engine`, ``engine="dask"``) carries
  its partitions: ``func`` runs on the workers, each of which reads, validates and encodes its own
  partition with the public transformer, and the partial sums are reduced on the cluster. Only the
  reduced exact result comes back to the caller, which adds the noise once, centrally.

The noise is never added here: the engines return exact figures to the backend's ``fit``, which alone
releases noisy versions. This module imports no backend and no Dask (Dask is imported lazily by
:mod:`tabpriv.engine.dask_engine`, an optional extra).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Protocol, runtime_checkable

import numpy as np

from tabpriv.errors import EngineError
from tabpriv.transformers.encoded import EncodedTable

__all__ = ["ENGINES", "PartitionedSource", "add_results", "check_engine", "map_chunks", "map_sum"]

#: Engine names accepted by :class:`tabpriv.Synthesizer` (``engine=``) and the CLI (``--engine``).
ENGINES = ("default", "dask")


def check_engine(engine: str) -> str:
    """Return ``engine`` if it names an engine, else raise :class:`EngineError`."""
    if engine not in ENGINES:
        raise EngineError(f"Unknown engine {engine!r}; use one of {', '.join(map(repr, ENGINES))}.")
    return engine


@runtime_checkable
class PartitionedSource(Protocol):
    """What a distributed engine attaches to a table (``table.engine_source``)."""

    def map_sum(self, func: Callable[[np.ndarray], Any], chunk_rows: int) -> Any:
        """Sum of ``func(chunk)`` over every chunk, reduced where the data lives."""
        ...

    def map_chunks(self, func: Callable[[np.ndarray], Any], chunk_rows: int) -> Iterator[tuple[int, Any]]:
        """``(start_row, func(chunk))`` for every chunk, in row order."""
        ...


def _source(table: EncodedTable) -> PartitionedSource | None:
    src = getattr(table, "engine_source", None)
    return src if isinstance(src, PartitionedSource) else None


def add_results(a: Any, b: Any) -> Any:
    """Element-wise sum of two results of the same structure (arrays, lists, tuples, dicts of them)."""
    if isinstance(a, dict):
        return {k: add_results(a[k], b[k]) for k in a}
    if isinstance(a, list | tuple):
        return type(a)(add_results(x, y) for x, y in zip(a, b, strict=True))
    return a + b


def map_sum(
    table: EncodedTable,
    func: Callable[[np.ndarray], Any],
    *,
    chunk_rows: int,
    progress: Callable[[int, int], None] | None = None,
) -> Any:
    """``sum(func(block) for block in the chunks of table)``, on the table's engine.

    Args:
        table: The encoded private table.
        func: Maps one ``(rows, width)`` float32 block to an array (or list/tuple/dict of arrays) of a
            shape that does not depend on the block. It must be a pure function of the block (a
            distributed engine runs it on other machines, on blocks split differently).
        chunk_rows: Rows per block (memory; the default engine's split).
        progress: Optional ``progress(rows_done, n_rows)`` (the Dask engine calls it once, at the end).

    """
    source = _source(table)
    if source is not None:
        out = source.map_sum(func, chunk_rows)
        if progress is not None:
            progress(table.n_rows, table.n_rows)
        return out
    total: Any = None
    done = 0
    for _, block in table.iter_chunks(chunk_rows):
        part = func(block)
        total = part if total is None else add_results(total, part)
        done += block.shape[0]
        if progress is not None:
            progress(done, table.n_rows)
    if total is None:  # no rows: the sum of nothing has the shape of func's result on no rows
        total = func(np.zeros((0, table.width), dtype=np.float32))
    return total


def map_chunks(
    table: EncodedTable, func: Callable[[np.ndarray], Any], *, chunk_rows: int
) -> Iterator[tuple[int, Any]]:
    """``(start_row, func(block))`` for consecutive blocks covering the rows, in row order.

    The default engine's blocks are those of ``iter_chunks(chunk_rows)``. A distributed engine never
    splits one of those blocks differently except where it straddles two partitions (there it yields
    two pieces), so a ``func`` that acts row by row gives the same rows on every engine.
    """
    source = _source(table)
    if source is not None:
        yield from source.map_chunks(func, chunk_rows)
        return
    for start, block in table.iter_chunks(chunk_rows):
        yield start, func(block)
