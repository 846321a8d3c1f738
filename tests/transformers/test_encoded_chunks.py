"""The lazily encoded table equals the eager encoding, chunk by chunk, row by row, value for value."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tabpriv.errors import DataValidationError
from tabpriv.transformers import EncodedTable, TableTransformer

from ..conftest import make_small_df, make_small_schema

N = 157  # not a multiple of the chunk sizes tried


@pytest.fixture(scope="module")
def transformer() -> TableTransformer:
    return TableTransformer(make_small_schema()).fit()


@pytest.fixture(scope="module")
def clean():  # type: ignore[no-untyped-def]
    return make_small_schema().conform(make_small_df(N, seed=3))


@pytest.fixture(scope="module")
def eager(transformer: TableTransformer, clean) -> EncodedTable:  # type: ignore[no-untyped-def]
    return transformer.transform_validated(clean)


def test_lazy_shape_without_encoding(transformer: TableTransformer, clean) -> None:  # type: ignore[no-untyped-def]
    calls: list[object] = []
    lazy = transformer.transform_lazy(clean)
    inner = lazy._encoder
    assert inner is not None
    lazy2 = EncodedTable.lazy(lazy.spans, lazy.n_rows, lambda rows: calls.append(rows) or inner(rows))
    assert lazy2.is_lazy
    assert (lazy2.n_rows, lazy2.width, lazy2.n_columns) == (N, transformer.width_, 5)
    assert lazy2.nbytes == N * transformer.width_ * 4
    assert lazy2.row_norm_bound == pytest.approx(np.sqrt(5))
    assert calls == []  # nothing encoded for the shape
    assert "lazy" in repr(lazy2)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(chunk=st.integers(1, N + 5))
def test_iter_chunks_equals_eager(
    transformer: TableTransformer, clean, eager: EncodedTable, chunk: int
) -> None:  # type: ignore[no-untyped-def]
    lazy = transformer.transform_lazy(clean)
    got_lazy = list(lazy.iter_chunks(chunk))
    got_eager = list(eager.iter_chunks(chunk))
    assert [s for s, _ in got_lazy] == list(range(0, N, chunk)) == [s for s, _ in got_eager]
    for (_, a), (_, b) in zip(got_lazy, got_eager, strict=True):
        assert a.dtype == np.float32 and a.shape[1] == eager.width
        np.testing.assert_array_equal(a, b)
    assert lazy.is_lazy  # iterating never caches the full matrix


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(idx=st.lists(st.integers(0, N - 1), min_size=0, max_size=40))
def test_take_equals_eager_rows(
    transformer: TableTransformer, clean, eager: EncodedTable, idx: list[int]
) -> None:  # type: ignore[no-untyped-def]
    lazy = transformer.transform_lazy(clean)
    a = lazy.take(np.asarray(idx, dtype=np.int64))
    assert a.shape == (len(idx), eager.width) and a.dtype == np.float32
    np.testing.assert_array_equal(a, eager.data[np.asarray(idx, dtype=np.int64)])
    np.testing.assert_array_equal(eager.take(idx), a)
    assert lazy.is_lazy


def test_data_materialises_once_and_logs_its_size(
    transformer: TableTransformer,
    clean,
    eager: EncodedTable,
    caplog: pytest.LogCaptureFixture,  # type: ignore[no-untyped-def]
) -> None:
    lazy = transformer.transform_lazy(clean)
    with caplog.at_level(logging.INFO, logger="tabpriv.transformers.encoded"):
        d1 = lazy.data
        d2 = lazy.data
    assert d1 is d2  # cached
    assert not lazy.is_lazy
    msgs = [r.getMessage() for r in caplog.records if "materialising" in r.getMessage()]
    assert len(msgs) == 1 and f"{N} rows x {eager.width} columns" in msgs[0]
    np.testing.assert_array_equal(d1, eager.data)
    # after caching, chunks are views of the cached matrix and still equal
    for start, block in lazy.iter_chunks(40):
        np.testing.assert_array_equal(block, eager.data[start : start + 40])


def test_clipped_rows_and_with_data(transformer: TableTransformer, clean, eager: EncodedTable) -> None:  # type: ignore[no-untyped-def]
    lazy = transformer.transform_lazy(clean)
    for bound in (None, 1.0):
        np.testing.assert_array_equal(lazy.clipped_rows(bound), eager.clipped_rows(bound))
    assert lazy.is_lazy  # clipping streams into its output without caching data
    assert np.linalg.norm(lazy.clipped_rows(1.0), axis=1).max() <= 1.0 + 1e-6
    sub = lazy.with_data(eager.data[:10])
    assert not sub.is_lazy and sub.n_rows == 10 and sub.spans == lazy.spans


def test_bad_requests_are_refused(transformer: TableTransformer, clean) -> None:  # type: ignore[no-untyped-def]
    lazy = transformer.transform_lazy(clean)
    with pytest.raises(ValueError, match="chunk_rows"):
        next(lazy.iter_chunks(0))
    with pytest.raises(IndexError, match=r"\[0, 157\)"):
        lazy.take([0, N])
    with pytest.raises(IndexError, match=r"\[0, 157\)"):
        lazy.take([-1])
    with pytest.raises(IndexError, match="integer"):
        lazy.take(np.array([0.5]))
    with pytest.raises(AttributeError, match="immutable"):
        lazy.spans = ()  # type: ignore[misc]
    broken = EncodedTable.lazy(lazy.spans, 3, lambda rows: np.zeros((1, 2), dtype=np.float32))
    with pytest.raises(DataValidationError, match="row encoder returned shape"):
        next(broken.iter_chunks(2))


def test_eager_constructor_still_checks_spans(eager: EncodedTable) -> None:
    with pytest.raises(DataValidationError, match="2-D"):
        EncodedTable(np.zeros(3, dtype=np.float32), eager.spans)
    with pytest.raises(DataValidationError, match="Spans cover"):
        EncodedTable(np.zeros((2, eager.width + 1), dtype=np.float32), eager.spans)
