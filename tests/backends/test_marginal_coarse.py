"""AIM's coarsened measurements: the public level groups, the count aggregation, mbi's query, the
noise of a released coarse marginal, and persistence.

A coarse measurement merges the levels of every wide ordered column of a marginal into ``k`` groups of
consecutive levels (from the schema only) and releases the merged counts with the discrete Gaussian.
Every exact count compared with here is recomputed from the DataFrame's values.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tabpriv import Synthesizer
from tabpriv.backends.marginal.domain import MarginalDomain
from tabpriv.backends.marginal.model import (
    Measurement,
    _CoarseQuery,
    coarse_cells,
    coarse_groups,
    coarsen,
    estimate,
)
from tabpriv.schema import Column, Schema
from tabpriv.transformers import TableTransformer

N_ROWS = 600


def _schema() -> Schema:
    return Schema(
        (
            Column("age", "integer", lower=0, upper=59),  # 60 values: one level each, grouped by 16
            Column("hours", "integer", lower=1, upper=40, missing=True),  # 40 values + missing
            Column("sex", "categorical", categories=("f", "m")),
            Column("kids", "integer", lower=0, upper=5),  # 6 values: never grouped at k = 16
        )
    )


def _df(n: int = N_ROWS, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    age = rng.integers(0, 60, n)
    hours = np.clip(np.rint(age / 2 + rng.normal(0, 4, n)), 1, 40)
    hours = np.where(rng.random(n) < 0.1, np.nan, hours)
    sex = np.where(rng.random(n) < 0.5, "f", "m").astype(object)
    kids = rng.integers(0, 6, n)
    return pd.DataFrame({"age": age, "hours": hours, "sex": sex, "kids": kids})


def _domain() -> MarginalDomain:
    return MarginalDomain(TableTransformer(_schema()).fit().spans_)


def test_groups_are_consecutive_equal_width_and_keep_missing_and_categories_apart() -> None:
    dom = _domain()
    age = dom.coarse_groups(0, 16)
    assert age is not None and age.size == 60
    assert np.array_equal(age, (np.arange(60) * 16) // 60)  # consecutive, equal width
    assert np.all(np.diff(age) >= 0) and set(age.tolist()) == set(range(16))
    hours = dom.coarse_groups(1, 16)
    assert hours is not None and hours.size == 41
    assert hours[-1] == 16 and np.sum(hours == 16) == 1  # the missing level is a group of its own
    assert dom.coarse_groups(2, 16) is None  # categories are never merged
    assert dom.coarse_groups(3, 16) is None  # 6 values <= 16: kept as they are
    assert coarse_cells(dom, (0, 1), 16) == 16 * 17
    assert coarse_cells(dom, (0, 2), 16) == 16 * 2
    assert coarse_cells(dom, (2, 3), 16) == dom.cells((2, 3))
    assert coarse_groups(dom, (0, 2), None) == [None, None]


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(2, 30), min_size=1, max_size=3),
    st.integers(2, 12),
    st.integers(0, 2**32 - 1),
)
def test_coarsen_sums_cells_exactly_like_a_brute_force_regrouping(sizes, k, seed) -> None:
    cols = tuple(Column(f"x{i}", "integer", lower=0, upper=s - 1) for i, s in enumerate(sizes))
    dom = MarginalDomain(TableTransformer(Schema(cols)).fit().spans_)
    clique = tuple(range(len(sizes)))
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 50, int(np.prod(sizes)))
    out = coarsen(counts, clique, dom, k)
    maps = coarse_groups(dom, clique, k)
    groups = [g if g is not None else np.arange(s) for g, s in zip(maps, sizes, strict=True)]
    gsizes = [int(g.max()) + 1 for g in groups]
    brute = np.zeros(int(np.prod(gsizes)), dtype=np.int64)
    for flat, c in enumerate(counts):
        idx = np.unravel_index(flat, sizes)
        brute[np.ravel_multi_index(tuple(g[i] for g, i in zip(groups, idx, strict=True)), gsizes)] += c
    assert np.array_equal(out, brute)
    assert out.dtype == counts.dtype and int(out.sum()) == int(counts.sum())
    assert out.size == coarse_cells(dom, clique, k)


def test_mbi_query_equals_the_numpy_aggregation() -> None:
    from tabpriv.backends.marginal.model import attr, load_mbi, mbi_domain

    mbi = load_mbi()
    dom = _domain()
    clique = (0, 1)
    rng = np.random.default_rng(3)
    values = rng.random((dom.sizes[0], dom.sizes[1]))
    names = tuple(attr(i) for i in clique)
    factor = mbi.Factor(mbi_domain(dom).project(names), values)
    groups = coarse_groups(dom, clique, 16)
    query = _CoarseQuery(tuple(None if g is None else tuple(int(v) for v in g) for g in groups))
    expected = coarsen(values.ravel(), clique, dom, 16)
    np.testing.assert_allclose(np.asarray(query(factor)), expected, rtol=1e-12)
    # ||Q||^2 = the product of the largest group sizes (4 ages x 3 hours)
    assert query.op_norm_sq() == 4 * 3
    assert hash(query) == hash(_CoarseQuery(query.groups))  # static JIT argument: equal by value


def test_a_model_fitted_to_coarse_counts_answers_them() -> None:
    """Exact (noise-free) coarse and one-way counts: the estimate reproduces the coarse cells."""
    dom = _domain()
    df = _df()
    enc = TableTransformer(_schema()).fit().transform(_schema().validate(df)[0])
    codes = dom.codes(enc.data)
    fine = np.bincount(codes[:, 0] * dom.sizes[1] + codes[:, 1], minlength=dom.cells((0, 1)))
    ones = [Measurement((i,), np.bincount(codes[:, i], minlength=dom.sizes[i]), 1.0) for i in range(len(dom))]
    pair = Measurement((0, 1), coarsen(fine, (0, 1), dom, 16), 1.0, coarse=16)
    model = estimate(dom, [*ones, pair], len(df), iters=1500)
    from tabpriv.backends.marginal.model import model_marginal

    got = coarsen(model_marginal(model, (0, 1)), (0, 1), dom, 16)
    assert 0.5 * np.abs(got - pair.noisy).sum() / len(df) < 0.02


@pytest.fixture(scope="module")
def aim_fit() -> Synthesizer:
    synth = Synthesizer(
        backend="aim", epsilon=3.0, delta=1e-5, schema=_schema(), device="cpu", random_state=0,
        backend_params={"rounds": 8, "round_iters": 30, "iters": 60, "coarse_levels": 4},
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return synth.fit(_df())


def test_released_coarse_counts_minus_exact_coarse_counts_have_sigma(aim_fit: Synthesizer) -> None:
    backend = aim_fit.backend_
    dom = backend.domain_
    df = _df()
    enc = TableTransformer(_schema()).fit().transform(_schema().validate(df)[0])
    codes = dom.codes(enc.data)
    coarse = [m for m in backend.measurements_ if m.coarse is not None]
    assert coarse, "no coarse measurement was chosen at k = 4 (the test needs one)"
    zs = []
    for m in backend.measurements_:
        sizes = [dom.sizes[i] for i in m.clique]
        flat = np.ravel_multi_index(tuple(codes[:, i] for i in m.clique), sizes)
        exact = np.bincount(flat, minlength=int(np.prod(sizes)))
        answer = m.answer(exact, dom)
        assert m.noisy.shape == answer.shape == (coarse_cells(dom, m.clique, m.coarse),)
        zs.append((m.noisy - answer) / m.sigma)
    z = np.concatenate(zs)
    # chi-square(k) within 4 s.d.; the mean within 4 standard errors
    assert abs(float((z**2).sum()) - z.size) < 4 * math.sqrt(2 * z.size)
    assert abs(float(z.mean())) < 4 / math.sqrt(z.size)
    # accounting: each measurement, coarse or not, costs 1 / sigma^2 (L2 sensitivity sqrt(2))
    spent = sum(1.0 / m.sigma**2 for m in backend.measurements_)
    assert spent < backend.rho_spent_ <= backend.rho_ * (1 + 1e-9)
    assert backend.privacy_details().noise["coarse_levels"] == 4


def test_coarse_measurements_survive_save_load_and_refit(aim_fit: Synthesizer, tmp_path) -> None:
    path = tmp_path / "aim.tabpriv"
    aim_fit.save(path)
    loaded = Synthesizer.load(path)
    before = [(m.clique, m.coarse, m.sigma) for m in aim_fit.backend_.measurements_]
    assert [(m.clique, m.coarse, m.sigma) for m in loaded.backend_.measurements_] == before
    for a, b in zip(aim_fit.backend_.measurements_, loaded.backend_.measurements_, strict=True):
        assert np.array_equal(a.noisy, b.noisy)
    np.testing.assert_array_equal(aim_fit.backend_.sample(500, seed=1), loaded.backend_.sample(500, seed=1))
    model = loaded.backend_.refit_model(iters=20)  # the saved coarse counts re-enter mbi with their query
    assert model is not None and loaded.backend_.sample(10, seed=2).shape[0] == 10
