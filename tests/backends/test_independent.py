"""Statistical tests of the ``independent`` backend's privacy machinery (fixed seeds)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tabpriv.backends.base import FitContext, spend_and_fit
from tabpriv.backends.independent import IndependentBackend, _bin_codes, histogram_layout
from tabpriv.budget import PrivacyBudget, PrivacyLedger
from tabpriv.errors import BudgetExceededError, PrivacyParameterError, SaveFileError
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
    """Seeded path (CKS sampler on the seeded ChaCha20 stream): 200 fixed-seed fits."""
    table = _encoded()
    residuals, sigmas = [], set()
    for seed in range(200):
        b = IndependentBackend(bins=8)
        spend_and_fit(b, table, PrivacyLedger(PrivacyBudget(2.0, 1e-5)), FitContext("cpu", seed, True))
        true = _true_counts(b, table)
        residuals.append(np.concatenate([c - t for c, t in zip(b.noisy_counts_, true, strict=True)]))
        sigmas.add(round(b.sigma_, 12))
    r = np.concatenate(residuals)
    (sigma,) = sigmas
    assert sigma > 3  # the discrete Gaussian's variance equals sigma^2 to within exp(-2 pi^2 sigma^2)
    # sample variance of N draws has relative standard error ~ sqrt(2/N) (~1.3% here); allow 4 s.e.
    rel_se = math.sqrt(2 / r.size)
    assert abs(r.var() / sigma**2 - 1) < 4 * rel_se
    assert abs(r.mean()) < 4 * sigma / math.sqrt(r.size)


def test_released_counts_are_integers_with_discrete_gaussian_noise() -> None:
    # Regression (issue 13 item 7): the old backend added float N(0, sigma^2) noise from a public PCG64
    # stream seeded with context.seed; the counts are now integers, from the secret stream.
    table = _encoded()
    b = IndependentBackend(bins=8)
    spend_and_fit(b, table, PrivacyLedger(PrivacyBudget(2.0, 1e-5)), FitContext("cpu", 5, True))
    true = np.concatenate(_true_counts(b, table))
    noisy = np.concatenate(b.noisy_counts_)
    assert noisy.dtype == np.int64
    assert not np.array_equal(noisy, true)  # noise was added
    old_way = np.random.default_rng(5).normal(0.0, b.sigma_, size=true.size)
    assert not np.allclose(noisy - true, old_way)
    assert np.abs(noisy - true).max() < 8 * b.sigma_


def test_seeded_noise_comes_from_the_secret_key_not_the_public_seed() -> None:
    table = _encoded()
    fits = []
    for key in (11, 12):
        b = IndependentBackend(bins=8)
        spend_and_fit(
            b, table, PrivacyLedger(PrivacyBudget(2.0, 1e-5)), FitContext("cpu", 5, True, secret_key=key)
        )
        fits.append(np.concatenate(b.noisy_counts_))
    assert not np.array_equal(fits[0], fits[1])  # same public seed, other secret key: other noise
    b = IndependentBackend(bins=8)
    spend_and_fit(
        b, table, PrivacyLedger(PrivacyBudget(2.0, 1e-5)), FitContext("cpu", 99, True, secret_key=11)
    )
    np.testing.assert_array_equal(np.concatenate(b.noisy_counts_), fits[0])  # other public seed: same


def test_unseeded_fit_uses_opendp_and_says_it_is_hardened(monkeypatch: pytest.MonkeyPatch) -> None:
    import tabpriv.backends.independent as ind

    def forbidden(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("the unseeded path must not use the numpy sampler")

    monkeypatch.setattr(ind, "sample_discrete_gaussian", forbidden)
    table = _encoded()
    b = IndependentBackend(bins=8)
    led = PrivacyLedger(PrivacyBudget(2.0, 1e-5))
    spend_and_fit(b, table, led, FitContext("cpu", 5, False))
    assert all(c.dtype == np.int64 for c in b.noisy_counts_)
    det = b.privacy_details()
    assert det.mechanism.startswith(f"discrete Gaussian (OpenDP {ind.OPENDP_VERSION}) on one-way counts")
    assert det.accountant.startswith("zCDP (rho=")
    assert det.adjacency == "replace-one"
    assert det.extra["hardened_against_floating_point_attacks"] is True
    assert any("hardened" in c for c in det.covered)
    assert not any("Mironov" in c for c in det.not_covered)
    (spend,) = led.spends
    assert spend.parameters["rho"] == pytest.approx(2 * table.n_columns / (2 * b.sigma_**2), rel=1e-12)
    seeded = IndependentBackend(bins=8)
    monkeypatch.undo()
    spend_and_fit(seeded, table, PrivacyLedger(PrivacyBudget(2.0, 1e-5)), FitContext("cpu", 5, True))
    sd = seeded.privacy_details()
    assert sd.extra["hardened_against_floating_point_attacks"] is False
    assert any("not hardened" in c for c in sd.not_covered)


def test_opendp_noise_variance_matches_sigma() -> None:
    """OpenDP path (random, cannot be seeded): 20,000 draws at sigma = 8.

    The sample variance's relative standard error is sqrt(2/N) = 1.0%; the tolerance is 6% (6 s.e.),
    while a sigma wrong by 10% moves the variance by 19-21% (>= 13 s.e. beyond the tolerance), so a
    wrong sigma fails and a right one passes except with probability ~1e-9.
    """
    from tabpriv.backends.independent import draw_noise

    n, sigma = 20_000, 8.0
    e = draw_noise(n, sigma, FitContext("cpu", 0, False))
    assert e.dtype == np.int64 and e.shape == (n,)
    assert abs(e.var() / sigma**2 - 1) < 6 * math.sqrt(2 / n)
    assert abs(e.mean()) < 6 * sigma / math.sqrt(n)


@pytest.mark.parametrize("seeded", [True, False])
def test_huge_epsilon_reproduces_the_exact_marginals(seeded: bool) -> None:
    table = _encoded()
    b = IndependentBackend(bins=8)
    spend_and_fit(b, table, PrivacyLedger(PrivacyBudget(1e4, 1e-5)), FitContext("cpu", 3, seeded))
    assert b.sigma_ < 0.05  # P(a nonzero draw) < 2 exp(-1 / (2 * 0.05**2)) ~ 1e-87 per count
    for got, want in zip(b.noisy_counts_, _true_counts(b, table), strict=True):
        np.testing.assert_array_equal(got, want.astype(np.int64))


def test_saved_integer_counts_round_trip() -> None:
    table = _encoded()
    b = IndependentBackend(bins=8)
    spend_and_fit(b, table, PrivacyLedger(PrivacyBudget(2.0, 1e-5)), FitContext("cpu", 5, True))
    arrays, meta = b.get_state()
    c = IndependentBackend(bins=8)
    c.set_state(arrays, meta)
    c.set_spans(b.spans_)
    for x, y in zip(b.noisy_counts_, c.noisy_counts_, strict=True):
        assert y.dtype == np.int64
        np.testing.assert_array_equal(x, y)
    assert c.privacy_details() == b.privacy_details()
    np.testing.assert_array_equal(b.sample(50, 1), c.sample(50, 1))


def _age_index(table: EncodedTable) -> int:
    return [s.name for s in table.spans].index("age")


def test_integer_columns_keep_one_bin_per_value_under_the_shared_rule() -> None:
    # Regression: the histogram kept one bin per value only up to its own ``bins`` (32 by default) and
    # spread a spike over a bin's values (Adult hours-per-week, 46.7% at 40: 1-way TVD 0.60). The shared
    # rule (transformers.levels.keeps_values) keeps every integer column of at most 100 values.
    table = _encoded(2000)
    age = table.spans[_age_index(table)]
    assert age.n_levels == 100
    assert histogram_layout(age, 8) == (100, False)
    assert histogram_layout(age, 32) == (100, False)
    wide = age.__class__(age.name, "integer", age.start, age.width, age.blocks, 200, None)
    assert histogram_layout(wide, 32) == (32, False)  # wider than 100 values: binned
    assert histogram_layout(wide, 250) == (200, False)  # a larger bins setting still keeps values
    b = IndependentBackend()
    spend_and_fit(b, table, PrivacyLedger(PrivacyBudget(1e4, 1e-5)), FitContext("cpu", 3, True))
    real = np.rint((table.data[:, age.start] + 1.0) * 0.5 * 99).astype(int)
    np.testing.assert_array_equal(b.noisy_counts_[_age_index(table)], np.bincount(real, minlength=100))
    v = b.sample(20_000, 4)[:, age.start].astype(np.float64)
    decoded = (v + 1.0) * 0.5 * 99
    np.testing.assert_allclose(decoded, np.rint(decoded), atol=1e-3)  # exactly on the lattice
    got = np.bincount(np.rint(decoded).astype(int), minlength=100) / v.size
    want = np.bincount(real, minlength=100) / real.size
    # 20,000 draws: each share's standard error is <= sqrt(0.25 / 20000) = 0.0035; allow 5 s.e.
    assert np.abs(got - want).max() < 5 * math.sqrt(0.25 / v.size)


def test_a_file_saved_before_layouts_were_recorded_samples_with_the_old_layout() -> None:
    table = _encoded()
    b = IndependentBackend(bins=8)
    spend_and_fit(b, table, PrivacyLedger(PrivacyBudget(2.0, 1e-5)), FitContext("cpu", 5, True))
    arrays, meta = b.get_state()
    i = _age_index(table)
    arrays[f"counts_{i}"] = np.array([0, 0, 0, 0, 0, 0, 0, 50], dtype=np.int64)  # old: 8 bins
    del meta["layouts"]
    c = IndependentBackend(bins=8)
    c.set_state(arrays, meta)
    c.set_spans(b.spans_)
    v = c.sample(2000, 1)[:, table.spans[i].start]
    assert v.min() >= -1.0 + 2.0 * 7 / 8 - 1e-6  # every row in the last of 8 bins, spread within it
    assert len(np.unique(v)) > 100
    meta["layouts"] = [[nb, m] for nb, m in b._layouts()]  # the new layout with old counts: corrupt
    d = IndependentBackend(bins=8)
    d.set_state(arrays, meta)
    d.set_spans(b.spans_)
    with pytest.raises(SaveFileError, match="'age' has 8 cells, but its layout has 100"):
        d.sample(10, 1)


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
        spend_and_fit(IndependentBackend(), trip, led, FitContext("cpu", 0, True))
    assert len(led.spends) == 1


# -- streaming fit -----------------------------------------------------------------------------------
def _eager_reference_fit(table: EncodedTable, bins: int, sigma: float, seed: int) -> list[np.ndarray]:
    """The whole-matrix algorithm: exact int64 counts plus one seeded discrete Gaussian draw over all."""
    from tabpriv._random import sample_discrete_gaussian

    counts = []
    for span in table.spans:
        n_bins, has_missing = histogram_layout(span, bins)
        size = n_bins + int(has_missing)
        codes = _bin_codes(table.data[:, span.slice], span, n_bins, has_missing)
        counts.append(np.bincount(codes, minlength=size))
    rng = FitContext("cpu", seed, True).secret_rng("independent-noise")
    noise = sample_discrete_gaussian(rng, sigma, sum(c.size for c in counts))
    return [
        c + e for c, e in zip(counts, np.split(noise, np.cumsum([c.size for c in counts])[:-1]), strict=True)
    ]


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
        spend_and_fit(b, lazy, PrivacyLedger(PrivacyBudget(2.0, 1e-5)), FitContext("cpu", seed, True))
        ref = _eager_reference_fit(table, 8, b.sigma_, seed)
        assert len(ref) == len(b.noisy_counts_)
        for got, want in zip(b.noisy_counts_, ref, strict=True):
            assert got.dtype == np.int64
            np.testing.assert_array_equal(got, want)  # identical, not approximately equal


def test_streaming_fit_reads_only_iter_chunks() -> None:
    assert IndependentBackend.streaming is True
    lazy = _lazy(120, _NoData)
    b = IndependentBackend(chunk_bytes=4 * 13 * 50)  # 50 rows per chunk
    spend_and_fit(b, lazy, PrivacyLedger(PrivacyBudget(1.0, 1e-5)), FitContext("cpu", 1, True))
    assert sum(c.sum() for c in b.noisy_counts_) == pytest.approx(120 * lazy.n_columns, abs=60 * b.sigma_)


def test_chunk_bytes_must_be_a_positive_integer() -> None:
    for bad in (0, -3, 2.5, True):
        with pytest.raises(PrivacyParameterError, match="chunk_bytes"):
            spend_and_fit(
                IndependentBackend(chunk_bytes=bad),  # type: ignore[arg-type]
                _encoded(20),
                PrivacyLedger(PrivacyBudget(1.0, 1e-5)),
                FitContext("cpu", 0, True),
            )
