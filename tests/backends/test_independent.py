"""Statistical tests of the ``independent`` backend's privacy machinery (fixed seeds)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tabpriv.backends.base import FitContext
from tabpriv.backends.independent import IndependentBackend, _bin_codes, histogram_layout
from tabpriv.budget import PrivacyBudget, PrivacyLedger
from tabpriv.errors import BudgetExceededError, PrivacyParameterError
from tabpriv.transformers import EncodedTable, TableTransformer

from ..conftest import make_small_df, make_small_schema


def _encoded(n: int = 300) -> EncodedTable:
    return TableTransformer(make_small_schema()).fit().transform(make_small_df(n))


def _true_counts(backend: IndependentBackend, table: EncodedTable) -> list[np.ndarray]:
    out = []
    for span in table.spans:
        nb, miss = histogram_layout(span, backend.bins)
        codes = _bin_codes(table.data[:, span.slice], span, nb, miss)
        out.append(np.bincount(codes, minlength=nb + int(miss)).astype(float))
    return out


def test_noise_std_matches_calibrated_sigma() -> None:
    table = _encoded()
    residuals, sigmas = [], set()
    for seed in range(200):
        b = IndependentBackend(bins=8)
        b.fit(table, PrivacyLedger(PrivacyBudget(2.0, 1e-5)), FitContext("cpu", seed, True))
        true = _true_counts(b, table)
        residuals.append(np.concatenate([c - t for c, t in zip(b.noisy_counts_, true, strict=True)]))
        sigmas.add(round(b.sigma_, 12))
    r = np.concatenate(residuals)
    (sigma,) = sigmas
    # sample std of N normals has relative standard error 1/sqrt(2N) (~0.9% here); allow 4 s.e.
    rel_se = 1 / math.sqrt(2 * r.size)
    assert abs(r.std() / sigma - 1) < 4 * rel_se
    assert abs(r.mean()) < 4 * sigma / math.sqrt(r.size)


def test_replace_one_sensitivity_bound_is_tight() -> None:
    table = _encoded(50)
    b = IndependentBackend(bins=8)
    base = np.concatenate(_true_counts(b, table))
    bound = math.sqrt(2 * table.n_columns)
    rng = np.random.default_rng(0)
    worst = 0.0
    for _ in range(200):
        i, j = rng.integers(0, table.n_rows, size=2)
        data = table.data.copy()
        data[i] = table.data[j]
        moved = np.concatenate(_true_counts(b, table.with_data(data)))
        worst = max(worst, float(np.linalg.norm(moved - base)))
    assert worst <= bound + 1e-9
    assert worst == pytest.approx(bound)  # some pair differs in every column's bin


class _Tripwire(np.ndarray):
    """An array that fails the test as soon as its values are read through numpy."""

    def __getitem__(self, item):  # type: ignore[no-untyped-def]
        raise AssertionError("the backend read the data before paying")

    def __array_function__(self, func, types, args, kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("the backend read the data before paying")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("the backend read the data before paying")


def test_overspend_raises_before_data_is_touched() -> None:
    table = _encoded(40)
    trip = EncodedTable(table.data.view(_Tripwire), table.spans)
    led = PrivacyLedger(PrivacyBudget(1.0, 1e-5))
    led.spend("earlier release", 1.0, 1e-5, "test")
    with pytest.raises(BudgetExceededError):
        IndependentBackend().fit(trip, led, FitContext("cpu", 0, True))
    assert len(led.spends) == 1


# -- streaming fit -----------------------------------------------------------------------------------
def _eager_reference_fit(table: EncodedTable, bins: int, sigma: float, seed: int) -> list[np.ndarray]:
    """The whole-matrix algorithm the backend used before it streamed (one column at a time)."""
    rng = np.random.default_rng(seed)
    out = []
    for span in table.spans:
        n_bins, has_missing = histogram_layout(span, bins)
        size = n_bins + int(has_missing)
        codes = _bin_codes(table.data[:, span.slice], span, n_bins, has_missing)
        counts = np.bincount(codes, minlength=size).astype(np.float64)
        out.append(counts + rng.normal(0.0, sigma, size=size))
    return out


class _NoData(EncodedTable):
    """A lazily encoded table whose full matrix must never be asked for."""

    @property
    def data(self) -> np.ndarray:
        raise AssertionError("a streaming fit read table.data")

    def clipped_rows(self, bound: float | None = None) -> np.ndarray:
        raise AssertionError("a streaming fit read table.clipped_rows()")


def _lazy(n: int, cls: type[EncodedTable] = EncodedTable) -> EncodedTable:
    schema = make_small_schema()
    tt = TableTransformer(schema).fit()
    clean = schema.conform(make_small_df(n))
    eager = tt.transform_lazy(clean)
    return cls.lazy(eager.spans, eager.n_rows, eager._encoder)  # type: ignore[arg-type]


@pytest.mark.parametrize("chunk_bytes", [1, 4 * 13 * 7, 10**9])  # 1 row, 7 rows, everything at once
def test_streaming_fit_equals_the_eager_algorithm_bit_for_bit(chunk_bytes: int) -> None:
    table = _encoded(301)
    lazy = _lazy(301, _NoData)
    assert table.width == lazy.width == 13
    for seed in (0, 7):
        b = IndependentBackend(bins=8, chunk_bytes=chunk_bytes)
        b.fit(lazy, PrivacyLedger(PrivacyBudget(2.0, 1e-5)), FitContext("cpu", seed, True))
        ref = _eager_reference_fit(table, 8, b.sigma_, seed)
        assert len(ref) == len(b.noisy_counts_)
        for got, want in zip(b.noisy_counts_, ref, strict=True):
            assert got.dtype == np.float64
            np.testing.assert_array_equal(got, want)  # bit-identical, not approximately equal


def test_streaming_fit_reads_only_iter_chunks() -> None:
    assert IndependentBackend.streaming is True
    lazy = _lazy(120, _NoData)
    b = IndependentBackend(chunk_bytes=4 * 13 * 50)  # 50 rows per chunk
    b.fit(lazy, PrivacyLedger(PrivacyBudget(1.0, 1e-5)), FitContext("cpu", 1, True))
    assert sum(c.sum() for c in b.noisy_counts_) == pytest.approx(120 * lazy.n_columns, abs=60 * b.sigma_)


def test_chunk_bytes_must_be_a_positive_integer() -> None:
    for bad in (0, -3, 2.5, True):
        with pytest.raises(PrivacyParameterError, match="chunk_bytes"):
            IndependentBackend(chunk_bytes=bad).fit(  # type: ignore[arg-type]
                _encoded(20), PrivacyLedger(PrivacyBudget(1.0, 1e-5)), FitContext("cpu", 0, True)
            )
