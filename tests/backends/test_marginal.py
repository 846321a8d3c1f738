"""The marginal backends (``mst``, ``aim``): noise statistics, huge-epsilon fidelity, the schema-only
discretisation, bad input, and the numpy sampler against mbi.

mbi estimates cost seconds of JIT compilation each, so the fits are few, tiny and module-scoped. Every
exact count a test compares with is recomputed here from the DataFrame's values (never through
:func:`tabpriv.backends.marginal.measure.exact_marginals`).
"""

from __future__ import annotations

import itertools
import math
import traceback
import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tabpriv import Synthesizer
from tabpriv.backends.base import FitContext
from tabpriv.backends.marginal import measure
from tabpriv.backends.marginal.aim import AIMBackend
from tabpriv.backends.marginal.common import ModelTooLargeError
from tabpriv.backends.marginal.domain import DEFAULT_BINS, DEFAULT_MAX_LEVELS, MarginalDomain
from tabpriv.backends.marginal.model import ChainSampler, estimate, model_marginal
from tabpriv.backends.marginal.mst import MSTBackend
from tabpriv.budget import PrivacyBudget, PrivacyLedger
from tabpriv.errors import DataValidationError, PrivacyParameterError, PrivacyWarning, TabprivError
from tabpriv.schema import Column, Schema
from tabpriv.transformers import EncodedTable, TableTransformer

from ..conftest import make_small_df, make_small_schema

N_ROWS = 400


# -- helpers: exact codes and counts from the values, independently of the backend ---------------------
def _value_codes(df: pd.DataFrame, schema: Schema) -> np.ndarray:
    """Level codes of every row from the raw values (the documented discretisation, recomputed)."""
    out = np.empty((len(df), len(schema)), dtype=np.int64)
    for j, col in enumerate(schema):
        s = df[col.name]
        na = s.isna().to_numpy()
        if col.kind == "categorical":
            cats = list(col.categories or ())
            idx = {c: k for k, c in enumerate(cats)}
            out[:, j] = [len(cats) if m else idx[v] for v, m in zip(s, na, strict=True)]
            continue
        x = s.to_numpy(dtype=np.float64, na_value=np.nan)
        lo, hi = float(col.lower), float(col.upper)  # type: ignore[arg-type]
        n_int = col.n_levels
        if n_int is not None and n_int <= DEFAULT_MAX_LEVELS:
            n_values, code = n_int, np.where(na, 0, x - lo)
        else:
            n_values = min(col.bins or DEFAULT_BINS, n_int) if n_int else (col.bins or DEFAULT_BINS)
            code = np.minimum(np.floor((np.where(na, lo, x) - lo) / (hi - lo) * n_values), n_values - 1)
        out[:, j] = np.where(na, n_values, code).astype(np.int64)
    return out


def _counts(codes: np.ndarray, sizes: tuple[int, ...], clique: tuple[int, ...]) -> np.ndarray:
    flat = np.ravel_multi_index(tuple(codes[:, i] for i in clique), tuple(sizes[i] for i in clique))
    return np.bincount(flat, minlength=int(np.prod([sizes[i] for i in clique])))


def _tvd(p: np.ndarray, q: np.ndarray) -> float:
    return 0.5 * float(np.abs(p / p.sum() - q / q.sum()).sum())


def _fit(
    name: str,
    schema: Schema,
    df: pd.DataFrame,
    params: dict,
    *,
    epsilon: float = 1.0,
    seed: int | None = 0,
    ledger: PrivacyLedger | None = None,
) -> Synthesizer:
    synth = Synthesizer(
        backend=name, epsilon=epsilon, delta=1e-5, schema=schema, device="cpu", random_state=seed,
        backend_params=params, ledger=ledger,
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        if epsilon > 10:
            with pytest.warns(PrivacyWarning, match="weak"):
                return synth.fit(df)
        return synth.fit(df)


MST_PARAMS = {"iters": 60}


@pytest.fixture(scope="module")
def mst_fit_and_model() -> tuple[Synthesizer, Any]:
    """``mst`` on the small 5-column table at epsilon = 1 (sigma ~ 20 counts), seeded; and the mbi model
    its fit estimated (captured on its way to the sampler, so that no second estimate is compiled)."""
    from tabpriv.backends.marginal import mst

    models: list[Any] = []

    def _estimate(*args: Any, **kwargs: Any) -> Any:
        models.append(estimate(*args, **kwargs))
        return models[-1]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(mst, "estimate", _estimate)
        synth = _fit("mst", make_small_schema(), make_small_df(N_ROWS), MST_PARAMS)
    (model,) = models
    return synth, model


@pytest.fixture(scope="module")
def mst_fit(mst_fit_and_model) -> Synthesizer:
    return mst_fit_and_model[0]


# -- noise: the discrete Gaussian of measure.noisy_counts ----------------------------------------------
def _discrete_gaussian_variance(sigma: float) -> float:
    k = np.arange(-int(40 * sigma) - 1, int(40 * sigma) + 2, dtype=np.float64)
    w = np.exp(-(k**2) / (2 * sigma**2))
    return float((k**2 * w).sum() / w.sum())


@pytest.mark.parametrize("seeded", [True, False], ids=["seeded-chacha", "opendp"])
def test_noisy_counts_are_discrete_gaussian_with_sigma(seeded: bool) -> None:
    sigma, n = 3.7, 40_000
    var = _discrete_gaussian_variance(sigma)
    assert var == pytest.approx(sigma**2, rel=1e-12)  # for sigma >= 1 the two agree to exp(-2 pi^2 sigma^2)
    counts = (np.arange(n) % 97).astype(np.int64)
    out = measure.noisy_counts(counts, sigma, FitContext("cpu", 0, seeded), "test")
    assert out.dtype == np.int64 and out.shape == counts.shape
    noise = (out - counts).astype(np.float64)
    # mean: 5 standard errors (the OpenDP path draws from OS entropy, so the bound holds w.p. 1 - 6e-7)
    assert abs(noise.mean()) < 5 * math.sqrt(var / n)
    # variance: the sample variance has relative standard error sqrt((kurtosis - 1) / n) ~ sqrt(2 / n)
    # (0.71% at n = 40,000); tolerance 5 of them (3.5%)
    assert abs(noise.var() / var - 1) < 5 * math.sqrt(2 / n)
    # the pmf: chi-square over the values -12..12 (tails pooled), 24 degrees of freedom
    from scipy import stats

    k = np.arange(-12, 13)
    pmf = np.exp(-(k**2) / (2 * sigma**2))
    pmf /= np.exp(-(np.arange(-200, 201) ** 2) / (2 * sigma**2)).sum()
    tail = (1.0 - pmf.sum()) / 2  # P(X <= -13) = P(X >= 13)
    expected = np.concatenate([[tail], pmf, [tail]]) * n
    observed = np.bincount(np.clip(noise, -13, 13).astype(np.int64) + 13, minlength=27)
    chi2 = float(((observed - expected) ** 2 / expected).sum())
    assert stats.chi2.sf(chi2, df=26) > 1e-6, chi2


def test_seeded_noise_streams_are_per_label_and_reproducible() -> None:
    n, sigma = 20_000, 3.7
    zeros = np.zeros(n, dtype=np.int64)
    ctx = FitContext("cpu", 0, True)
    a = measure.noisy_counts(zeros, sigma, ctx, "one-way 0").astype(np.float64)
    b = measure.noisy_counts(zeros, sigma, ctx, "one-way 1").astype(np.float64)
    again = measure.noisy_counts(zeros, sigma, FitContext("cpu", 0, True), "one-way 0")
    np.testing.assert_array_equal(a, again)  # same seed, same label: the same noise
    # distinct labels: independent streams (correlation within 5 standard errors of 0, not identical)
    assert abs(np.corrcoef(a, b)[0, 1]) < 5 / math.sqrt(n)
    assert abs(np.corrcoef(a[1:], a[:-1])[0, 1]) < 5 / math.sqrt(n)  # no serial correlation either
    other_key = measure.noisy_counts(zeros, sigma, FitContext("cpu", 0, True, secret_key=12345), "one-way 0")
    assert not np.array_equal(a, other_key)
    # the noise follows the secret key, never the public seed
    key = ctx.secret_key
    other_seed = measure.noisy_counts(zeros, sigma, FitContext("cpu", 99, True, secret_key=key), "one-way 0")
    np.testing.assert_array_equal(other_seed, a)
    # the unseeded (OpenDP) path never repeats
    fresh = FitContext("cpu", 0, False)
    assert not np.array_equal(
        measure.noisy_counts(zeros, sigma, fresh, "x"), measure.noisy_counts(zeros, sigma, fresh, "x")
    )


def test_exact_marginals_one_pass_whatever_the_chunking() -> None:
    schema, df = make_small_schema(), make_small_df(N_ROWS)
    table = TableTransformer(schema).fit().transform_lazy(schema.validate(df)[0])
    dom = MarginalDomain(table.spans)
    codes = _value_codes(df, schema)
    cliques = [(0,), (3,), (0, 2), (1, 3), (2, 3, 4)]
    done: list[tuple[int, int]] = []
    for chunk_bytes in (1, 4_000, 10**9):  # one row a chunk, a few chunks, one chunk
        done.clear()
        counts = measure.exact_marginals(
            table, dom, cliques, chunk_bytes=chunk_bytes, progress=lambda k, n: done.append((k, n))
        )
        for cl in cliques:
            assert counts[cl].dtype == np.int64
            np.testing.assert_array_equal(counts[cl], _counts(codes, dom.sizes, cl), err_msg=str(cl))
        assert done[-1] == (N_ROWS, N_ROWS) and [k for k, _ in done] == sorted({k for k, _ in done})
    assert len(done) == 1


@pytest.mark.parametrize("seeded", [True, False], ids=["seeded-chacha", "opendp"])
def test_private_select_is_the_exponential_mechanism(seeded: bool) -> None:
    """P(select i) = exp(s_i / scale) / sum_j exp(s_j / scale) (Gumbel noisy max) on both paths, so that
    the Gumbel scale means the same to the seeded sampler and to OpenDP's make_noisy_max."""
    scale, n = 2.5, 2_000
    scores = np.array([0.0, 1.0, 2.0, -3.0, 1.5]) * scale
    p = np.exp(scores / scale) / np.exp(scores / scale).sum()
    ctx = FitContext("cpu", 0, seeded)
    picks = np.array([measure.private_select(scores, scale, ctx, f"round {k}") for k in range(n)])
    freq = np.bincount(picks, minlength=scores.size) / n
    # every option within 5 binomial standard errors (the OpenDP path is unseeded: holds w.p. ~ 1 - 3e-6)
    assert (np.abs(freq - p) <= 5 * np.sqrt(p * (1 - p) / n)).all(), (freq, p)
    if seeded:  # the same label replays the same draw; the labels above gave different ones
        again = [
            measure.private_select(scores, scale, FitContext("cpu", 0, True), f"round {k}") for k in range(50)
        ]
        assert again == picks[:50].tolist()


def test_released_counts_minus_exact_counts_have_the_planned_sigma(mst_fit: Synthesizer) -> None:
    backend = mst_fit.backend_
    schema, df = make_small_schema(), make_small_df(N_ROWS)
    codes = _value_codes(df, schema)
    sizes = backend.domain_.sizes
    sch = backend.schedule_
    assert len(backend.measurements_) == len(schema) + sch["rounds"]
    z_one, z_all = [], []
    for m in backend.measurements_:
        planned = sch["sigma_one_way"] if len(m.clique) == 1 else sch["sigma_two_way"]
        assert m.sigma == planned
        assert m.noisy.dtype == np.int64
        z = (m.noisy - _counts(codes, sizes, m.clique)) / m.sigma
        z_all.append(z)
        if len(m.clique) == 1:
            z_one.append(z)
    for zs in (z_one, z_all):
        z = np.concatenate(zs)
        k = z.size
        # sum of squared standardised residuals ~ chi-square(k): within 4 s.d. sqrt(2k) of k
        assert abs(float((z**2).sum()) - k) < 4 * math.sqrt(2 * k), (float((z**2).sum()), k)
        assert abs(float(z.mean())) < 4 / math.sqrt(k)
    assert sch["sigma_one_way"] > 10  # epsilon = 1 on 400 rows: the noise is far from negligible


# -- the sampler: exact marginals, frequencies, persistence, reproducibility --------------------------
def test_chain_marginals_equal_mbi_projections(mst_fit_and_model) -> None:
    synth, model = mst_fit_and_model
    backend = synth.backend_
    sizes = backend.domain_.sizes
    chain = backend.sampler_
    # mbi compiles each projection (~0.6 s): two measured pairs, three pairs the model infers through
    # the tree, and two triples (no triple is a measured clique)
    measured = [m.clique for m in backend.measurements_ if len(m.clique) == 2]
    inferred = [p for p in itertools.combinations(range(len(sizes)), 2) if p not in measured]
    cliques = [*measured[:2], *inferred[:3], (0, 1, 3), (1, 2, 4)]
    for clique in cliques:
        ours = chain.marginal(clique, sizes)
        assert ours is not None
        theirs = model_marginal(model, clique)
        np.testing.assert_allclose(ours, theirs / theirs.sum(), rtol=0, atol=1e-9, err_msg=str(clique))
        assert ours.sum() == pytest.approx(1.0, abs=1e-12)
    # the released sampler is exactly the chain of that model (deterministic post-processing)
    for ours, theirs in zip(
        backend.sampler_.cdfs, ChainSampler.from_model(model, backend.domain_).cdfs, strict=True
    ):
        np.testing.assert_array_equal(ours, theirs)


def test_sampled_frequencies_match_the_model(mst_fit: Synthesizer) -> None:
    b = mst_fit.backend_
    sizes = b.domain_.sizes
    n = 200_000
    codes = b.sampler_.sample_codes(n, np.random.default_rng(2024), sizes)
    assert codes.dtype == np.int64 and (codes >= 0).all() and (codes < np.array(sizes)).all()
    worst = 0.0
    for clique in [*((i,) for i in range(len(sizes))), *itertools.combinations(range(len(sizes)), 2)]:
        p = b.sampler_.marginal(clique, sizes)
        f = _counts(codes, sizes, clique) / n
        se = np.sqrt(p * (1 - p) / n)
        # every cell within 5 binomial standard errors (+ 5 / n for the cells of probability ~ 0)
        assert (np.abs(f - p) <= 5 * se + 5 / n).all(), clique
        worst = max(worst, float((np.abs(f - p) / (se + 1 / n)).max()))
    assert worst > 1.0  # the draws are random, not the model's table


def test_save_load_round_trip_samples_the_same(mst_fit: Synthesizer, tmp_path) -> None:
    path = tmp_path / "mst.tabpriv"
    mst_fit.save(path)
    loaded = Synthesizer.load(path)
    a, b = mst_fit.backend_, loaded.backend_
    np.testing.assert_array_equal(a.sample(2_000, seed=9), b.sample(2_000, seed=9))
    assert [m.clique for m in a.measurements_] == [m.clique for m in b.measurements_]
    for ma, mb in zip(a.measurements_, b.measurements_, strict=True):
        np.testing.assert_array_equal(ma.noisy, mb.noisy)
        assert ma.sigma == mb.sigma
    assert a.domain_.to_list() == b.domain_.to_list()
    assert loaded.privacy_report.epsilon == mst_fit.privacy_report.epsilon


def test_seeded_refit_reproduces_the_release_bit_for_bit(mst_fit: Synthesizer) -> None:
    again = _fit("mst", make_small_schema(), make_small_df(N_ROWS), MST_PARAMS)
    a, b = mst_fit.backend_, again.backend_
    assert [m.clique for m in a.measurements_] == [m.clique for m in b.measurements_]
    for ma, mb in zip(a.measurements_, b.measurements_, strict=True):
        np.testing.assert_array_equal(ma.noisy, mb.noisy)
    for ca, cb in zip(a.sampler_.cdfs, b.sampler_.cdfs, strict=True):
        np.testing.assert_array_equal(ca, cb)
    np.testing.assert_array_equal(a.sample(500, seed=1), b.sample(500, seed=1))


# -- huge epsilon: the marginals of a tiny table are reproduced --------------------------------------
def _ci_table() -> tuple[Schema, pd.DataFrame]:
    """397 rows with strong a-b and b-c dependence and a independent of c given b, exactly (the rows
    are the products u_b(a) v_b(c)), so a tree a - b - c reproduces every two-way marginal."""
    u = {0: [10, 3, 1, 0], 1: [1, 10, 4, 2], 2: [0, 2, 3, 10]}
    v = {0: [6, 2, 1, 0, 0], 1: [0, 1, 5, 2, 0], 2: [0, 0, 1, 3, 5]}
    rows = [
        (a, b, c)
        for b in range(3)
        for a, ua in enumerate(u[b])
        for c, vc in enumerate(v[b])
        for _ in range(ua * vc)
    ]
    arr = np.array(rows)
    df = pd.DataFrame(
        {
            "a": np.array(["w", "x", "y", "z"], dtype=object)[arr[:, 0]],
            "b": np.array(["lo", "mid", "hi"], dtype=object)[arr[:, 1]],
            "c": arr[:, 2],
        }
    )
    schema = Schema(
        (
            Column("a", "categorical", categories=("w", "x", "y", "z")),
            Column("b", "categorical", categories=("lo", "mid", "hi")),
            Column("c", "integer", lower=0, upper=4),
        )
    )
    return schema, df


@pytest.fixture(scope="module")
def huge_eps() -> dict[str, Synthesizer]:
    schema, df = _ci_table()
    return {
        "mst": _fit("mst", schema, df, {"iters": 3000}, epsilon=5000.0),
        "aim": _fit("aim", schema, df, {"iters": 3000, "round_iters": 100, "rounds": 6}, epsilon=5000.0),
    }


@pytest.mark.parametrize("name", ["mst", "aim"])
def test_huge_epsilon_reproduces_one_and_two_way_marginals(huge_eps, name: str) -> None:
    synth = huge_eps[name]
    schema, df = _ci_table()
    real = _value_codes(df, schema)
    sizes = synth.backend_.domain_.sizes
    out = synth.sample(100_000)
    fake = _value_codes(out, schema)
    for clique in [(0,), (1,), (2,), *itertools.combinations(range(3), 2)]:
        r = _counts(real, sizes, clique).astype(float)
        model = synth.backend_.sampler_.marginal(clique, sizes)
        # the model itself (no sampling error): TVD < 0.003 (measured <= 0.0006 at 3,000 iterations;
        # 300 iterations leave ~0.007: mirror descent, not the noise, is the error at this epsilon)
        assert _tvd(r, model) < 0.003, (name, clique, _tvd(r, model))
        # a sample of 100,000 rows adds ~ 0.4 sqrt(cells / n) <= 0.006 (measured <= 0.008); tolerance 0.015
        assert _tvd(r, _counts(fake, sizes, clique).astype(float)) < 0.015


def test_unseeded_aim_fit_uses_opendp_and_says_so() -> None:
    """An unseeded release: OpenDP's discrete Gaussian and noisy max inside a real fit (hardened)."""
    schema, df = _ci_table()
    synth = _fit("aim", schema, df, {"iters": 50, "round_iters": 10, "rounds": 6}, epsilon=2.0, seed=None)
    backend = synth.backend_
    details = backend.privacy_details()
    assert details.extra["hardened_against_floating_point_attacks"] is True
    assert "OpenDP" in details.noise["sampler"] and "make_noisy_max" in details.noise["selection"]
    assert synth.privacy_report.seeded is False
    assert backend.rho_spent_ == pytest.approx(backend.rho_, rel=1e-9)
    codes = _value_codes(df, schema)
    for m in backend.measurements_:
        assert m.noisy.dtype == np.int64
        assert not np.array_equal(m.noisy, _counts(codes, backend.domain_.sizes, m.clique))
    schema.validate(synth.sample(200))


def test_huge_epsilon_mst_selects_the_maximum_spanning_tree(huge_eps) -> None:
    schema, df = _ci_table()
    codes = _value_codes(df, schema)
    sizes = huge_eps["mst"].backend_.domain_.sizes
    n = len(df)
    scores = {}
    for a, b in itertools.combinations(range(3), 2):
        pa, pb = _counts(codes, sizes, (a,)) / n, _counts(codes, sizes, (b,)) / n
        scores[(a, b)] = float(np.abs(_counts(codes, sizes, (a, b)) - n * np.outer(pa, pb).ravel()).sum())
    tree = sorted(scores, key=scores.__getitem__)[1:]  # three columns: drop the lightest edge
    names = ("a", "b", "c")
    chosen = [tuple(p) for p in huge_eps["mst"].backend_.selected_marginals() if len(p) == 2]
    assert sorted(chosen) == sorted((names[i], names[j]) for i, j in tree) == [("a", "b"), ("b", "c")]


# -- the discretisation comes from the schema only ----------------------------------------------------
def test_domain_depends_on_the_schema_not_the_data(mst_fit: Synthesizer) -> None:
    schema = make_small_schema()
    full = make_small_df(N_ROWS)
    narrow = full.copy()
    narrow["age"] = 40 + np.arange(N_ROWS) % 6  # ages 40..45 only
    narrow["score"] = 0.25  # one value
    narrow["color"] = "red"
    narrow["code"] = np.nan
    tables = [TableTransformer(schema).fit().transform(d) for d in (full, narrow, make_small_df(N_ROWS, 9))]
    domains = [MarginalDomain(t.spans) for t in tables]
    schema_only = MarginalDomain(TableTransformer(schema).fit().spans_)
    for d in domains:
        assert d.to_list() == schema_only.to_list()
        assert d.sizes == (3, 5, 100, 33, 2)
    # the plan (noise scales, rounds) is the same whatever the rows, and so is the fitted domain
    budget = PrivacyBudget(1.0, 1e-5)
    plans = [MSTBackend(**MST_PARAMS).plan(t.spans, t.n_rows, budget, seeded=True) for t in tables]
    assert plans[0] == plans[1] == plans[2]
    assert mst_fit.backend_.domain_.to_list() == schema_only.to_list()
    assert mst_fit.backend_.privacy_details().extra["discretisation"] == schema_only.to_list()


def test_level_rules() -> None:
    schema = Schema(
        (
            Column("per_value", "integer", lower=0, upper=99),  # 100 values <= max_levels: one level each
            Column("wide", "integer", lower=0, upper=100),  # 101 values: the default bins
            Column("wide_hint", "integer", lower=0, upper=1000, bins=7),  # the schema's bins
            Column("narrow_hint", "integer", lower=0, upper=4, bins=20),  # per value despite the hint
            Column("int_missing", "integer", lower=1, upper=3, missing=True),
            Column("cont", "continuous", lower=-1.0, upper=1.0),
            Column("cont_hint", "continuous", lower=0.0, upper=10.0, bins=10, missing=True),
            Column("cat_missing", "categorical", categories=("p", "q"), missing=True),
        )
    )
    spans = TableTransformer(schema).fit().spans_
    dom = MarginalDomain(spans)
    modes = [(c.mode, c.n_values, c.has_missing) for c in dom.columns]
    assert modes == [
        ("value", 100, False),
        ("bin", DEFAULT_BINS, False),
        ("bin", 7, False),
        ("value", 5, False),
        ("value", 3, True),
        ("bin", DEFAULT_BINS, False),
        ("bin", 10, True),
        ("category", 3, False),  # the missing category is one of the one-hot coordinates
    ]
    assert dom.sizes == (100, 32, 7, 5, 4, 32, 11, 3)
    # a smaller max_levels bins the narrow integer too (capped at its number of values)
    small = MarginalDomain(spans, max_levels=4, bins=3)
    assert [(c.mode, c.n_values) for c in small.columns][:4] == [
        ("bin", 3),
        ("bin", 3),
        ("bin", 7),
        ("bin", 5),
    ]
    # concrete values land on the documented codes
    df = pd.DataFrame(
        {
            "per_value": [0, 37, 99, 5],
            "wide": [0, 50, 100, 99],
            "wide_hint": [0, 142, 143, 1000],
            "narrow_hint": [0, 1, 4, 2],
            "int_missing": [1.0, np.nan, 3.0, 2.0],
            "cont": [-1.0, 0.0, 1.0, -0.99],
            "cont_hint": [0.0, np.nan, 9.99, 5.0],
            "cat_missing": ["p", None, "q", "p"],
        }
    ).astype({"cat_missing": object})
    codes = dom.codes(TableTransformer(schema).fit().transform(df).data)
    assert codes.tolist() == [
        [0, 0, 0, 0, 0, 0, 0, 0],
        [37, 16, 0, 1, 3, 16, 10, 2],
        [99, 31, 1, 4, 2, 31, 9, 1],
        [5, 31, 6, 2, 1, 0, 5, 0],
    ]
    np.testing.assert_array_equal(codes, _value_codes(df, schema))


@st.composite
def _column(draw: st.DrawFn, i: int) -> Column:
    kind = draw(st.sampled_from(["categorical", "integer", "continuous"]))
    missing = draw(st.booleans())
    bins = draw(st.none() | st.integers(1, 64))
    if kind == "categorical":
        k = draw(st.integers(1, 12))
        return Column(f"c{i}", kind, categories=tuple(f"v{j}" for j in range(k)), missing=missing)
    if kind == "integer":
        lower = draw(st.integers(-(10**6), 10**6))
        width = draw(st.integers(1, 150) | st.integers(151, 10**5))
        return Column(f"c{i}", kind, lower=lower, upper=lower + width, missing=missing, bins=bins)
    lower = draw(st.floats(-1e6, 1e6, allow_nan=False))
    width = draw(st.floats(1e-3, 1e6, allow_nan=False))
    return Column(f"c{i}", kind, lower=lower, upper=lower + width, missing=missing, bins=bins)


@st.composite
def _schemas(draw: st.DrawFn) -> Schema:
    n = draw(st.integers(1, 5))
    return Schema(tuple(draw(_column(i)) for i in range(n)))


@settings(max_examples=150, deadline=None)
@given(schema=_schemas(), max_levels=st.integers(1, 160), bins=st.integers(1, 40), seed=st.integers(0, 2**32))
def test_codes_decode_codes_round_trip(schema: Schema, max_levels: int, bins: int, seed: int) -> None:
    transformer = TableTransformer(schema).fit()
    dom = MarginalDomain(transformer.spans_, max_levels=max_levels, bins=bins)
    rng = np.random.default_rng(seed)
    codes = np.stack([rng.integers(0, s, size=200) for s in dom.sizes], axis=1)
    codes[:2] = np.array(dom.sizes) - 1  # the last level of every column
    codes[2:4] = 0
    encoded = dom.decode(codes, np.random.default_rng(seed + 1))
    assert encoded.dtype == np.float32 and encoded.shape == (200, dom.width)
    np.testing.assert_array_equal(dom.codes(encoded), codes)
    # through the user's values and back: decode to a DataFrame, validate, re-encode
    df = transformer.inverse_transform(encoded)
    schema.validate(df)
    back = dom.codes(transformer.transform(df).data)
    for j, col in enumerate(schema):
        if col.kind == "continuous":
            # rounding to the column's decimals (at most 1/10,000 of the range by default) may carry a
            # value drawn next to a bin edge into the neighbouring bin, never further
            assert np.abs(back[:, j] - codes[:, j]).max() <= 1
        else:
            np.testing.assert_array_equal(back[:, j], codes[:, j])


# -- bad input: refused before any budget is spent, never inside JAX ---------------------------------
def _never(*args: object, **kwargs: object) -> None:
    raise AssertionError("a row was read before the input was refused")


def _refused(
    monkeypatch: pytest.MonkeyPatch, name: str, schema: Schema, df: pd.DataFrame, params: dict, error: type
) -> pytest.ExceptionInfo:
    monkeypatch.setattr(EncodedTable, "iter_chunks", _never)
    monkeypatch.setattr(EncodedTable, "take", _never)
    ledger = PrivacyLedger(PrivacyBudget(1.0, 1e-5))
    synth = Synthesizer(
        backend=name,
        epsilon=1.0,
        schema=schema,
        device="cpu",
        random_state=0,
        backend_params=params,
        ledger=ledger,
    )
    with pytest.raises(error) as info:
        synth.fit(df)
    assert ledger.spends == []
    frames = traceback.extract_tb(info.value.__traceback__)
    assert not any("/jax" in f.filename or "/mbi/" in f.filename for f in frames)
    assert info.value.__cause__ is None and info.value.__context__ is None
    return info


@pytest.mark.parametrize("name", ["mst", "aim"])
def test_a_column_above_max_cells_is_refused_naming_it_and_the_limit(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    schema = Schema(
        (
            Column("zip", "categorical", categories=tuple(range(60))),
            Column("flag", "categorical", categories=("yes", "no")),
        )
    )
    df = pd.DataFrame({"zip": np.arange(300) % 60, "flag": ["yes", "no"] * 150}).astype({"flag": object})
    info = _refused(monkeypatch, name, schema, df, {"max_cells": 50}, ModelTooLargeError)
    err = info.value
    assert (
        isinstance(err, DataValidationError) and isinstance(err, TabprivError) and isinstance(err, ValueError)
    )
    msg = str(err)
    assert "'zip' (60 levels)" in msg or "zip (60 levels)" in msg
    assert "max_cells=50" in msg and "flag" not in msg


def test_pairs_above_max_cells_fall_back_to_a_forest_or_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    schema = Schema(tuple(Column(n, "categorical", categories=tuple(range(40))) for n in ("p", "q")))
    spans = TableTransformer(schema).fit().spans_
    # every column fits 100 cells, their pair (1,600) does not: mst measures the one-way marginals only
    plan = MSTBackend(max_cells=100).plan(spans, 300, PrivacyBudget(1.0, 1e-5))
    assert plan.noise.schedule["rounds"] == 0
    # aim's workload is empty: refused before spending, with the limit named
    df = pd.DataFrame({"p": np.arange(300) % 40, "q": np.arange(300) % 7})
    info = _refused(monkeypatch, "aim", schema, df, {"max_cells": 100}, PrivacyParameterError)
    assert "max_cells=100" in str(info.value)


def test_aim_refuses_a_domain_whose_one_way_model_exceeds_max_model_cells() -> None:
    spans = TableTransformer(make_small_schema()).fit().spans_  # one-way model: 3+5+100+33+2 = 143 cells
    with pytest.raises(ModelTooLargeError, match="max_model_cells=50"):
        AIMBackend(max_model_cells=50).plan(spans, N_ROWS, PrivacyBudget(1.0, 1e-5))


def test_aim_target_must_be_a_column(monkeypatch: pytest.MonkeyPatch) -> None:
    info = _refused(
        monkeypatch,
        "aim",
        make_small_schema(),
        make_small_df(N_ROWS),
        {"target": "income"},
        PrivacyParameterError,
    )
    assert "'income'" in str(info.value) and "color" in str(info.value)


def test_aim_rounds_that_leave_nothing_after_the_one_way_marginals_are_refused_before_spend(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Regression: 4 columns, alpha = 0.5, rounds = 2 put exactly rho on the one-way marginals
    # (c alpha / T = 1). The plan passed, the budget was paid, and the fit then crashed in its first
    # round with "rho must be finite and > 0; got 0.0" (measured at epsilon 0.5, 1, 2, 3, 7.3; at 5 the
    # rounding went the other way and the plan refused). It is now refused in the plan, nothing spent.
    cols = ["color", "code", "flag", "age"]
    schema = make_small_schema().select(cols)
    info = _refused(
        monkeypatch,
        "aim",
        schema,
        make_small_df(N_ROWS)[cols],
        {"rounds": 2, "alpha": 0.5},
        PrivacyParameterError,
    )
    assert "rounds=2" in str(info.value)


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"degree": 4}, "degree"),
        ({"alpha": 1.5}, "alpha"),
        ({"alpha": 0.0}, "alpha"),
        ({"rounds": 0}, "rounds"),
    ],
)
def test_aim_invalid_parameters_are_refused(
    monkeypatch: pytest.MonkeyPatch, params: dict, fragment: str
) -> None:
    info = _refused(
        monkeypatch, "aim", make_small_schema(), make_small_df(N_ROWS), params, PrivacyParameterError
    )
    assert fragment in str(info.value)
    with pytest.raises(PrivacyParameterError, match=fragment):
        AIMBackend(**params).validate_params()
