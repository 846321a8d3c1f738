"""The ``pgd`` backend (PrivPGD): workload, post-processing, particles, accounting, persistence, large
domains and bad input.

Exact counts a test compares with are recomputed here from the DataFrame's values (the helpers of
``test_marginal``), never through :func:`tabpriv.backends.marginal.measure.exact_marginals`.
"""

from __future__ import annotations

import itertools
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tabpriv import Synthesizer
from tabpriv.backends.marginal import particles as particles_mod
from tabpriv.backends.marginal.common import ModelTooLargeError
from tabpriv.backends.marginal.domain import MarginalDomain
from tabpriv.backends.marginal.particles import ParticleConfig, decode_particles, fit_particles, quantize
from tabpriv.backends.marginal.pgd import PGDBackend, project_to_simplex, workload
from tabpriv.budget import PrivacyBudget, PrivacyLedger
from tabpriv.errors import PrivacyParameterError, PrivacyWarning
from tabpriv.schema import Schema
from tabpriv.transformers import EncodedTable, TableTransformer

from ..accounting.test_marginal_accounting import (
    _cks_epsilon,
    _opendp_epsilon,
    _RecordingFilter,
    _rho_of_gaussian,
)
from ..conftest import make_small_df, make_small_schema
from .test_marginal import _ci_table, _counts, _tvd, _value_codes

QUICK = {"n_particles": 1000, "steps": 60}


def _fit(
    schema: Schema,
    df: pd.DataFrame,
    params: dict[str, Any],
    *,
    epsilon: float = 1.0,
    seed: int | None = 0,
    ledger: PrivacyLedger | None = None,
) -> Synthesizer:
    synth = Synthesizer(
        backend="pgd", epsilon=epsilon, delta=1e-5, schema=schema, device="cpu", random_state=seed,
        backend_params=params, ledger=ledger,
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        if epsilon > 10:
            with pytest.warns(PrivacyWarning, match="weak"):
                return synth.fit(df)
        return synth.fit(df)


def _particle_counts(backend: PGDBackend, clique: tuple[int, ...]) -> np.ndarray:
    codes = decode_particles(backend.particles_, backend.domain_.sizes)
    return _counts(codes, backend.domain_.sizes, clique).astype(float)


# -- workload, post-processing, quantisation -------------------------------------------------------
def test_workload_is_every_pair_plus_columns_in_no_pair() -> None:
    spans = TableTransformer(make_small_schema()).fit().spans_
    domain = MarginalDomain(spans, max_levels=32, bins=32)
    assert workload(domain, 10**6) == list(itertools.combinations(range(5), 2))
    # 'age' (32 levels) x 'score' (33 levels) is above 1,000 cells; every column still sits in a pair
    small = workload(domain, 1000)
    assert (2, 3) not in small and len(small) == 9
    # at 40 cells only the pairs of the three small columns remain: age and score are measured alone
    tiny = workload(domain, 40)
    assert [c for c in tiny if len(c) == 1] == [(2,), (3,)]
    assert all(domain.cells(c) <= 40 for c in tiny if len(c) == 2)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-50, 50, allow_nan=False), min_size=1, max_size=40), st.integers(0, 2**31))
def test_simplex_projection_is_the_nearest_probability_vector(y: list[float], seed: int) -> None:
    v = np.asarray(y)
    p = project_to_simplex(v)
    assert p.shape == v.shape and (p >= 0).all() and math.isclose(p.sum(), 1.0, rel_tol=1e-9)
    # nearer to y than any other probability vector (random ones and the vertices)
    rng = np.random.default_rng(seed)
    others = np.vstack([rng.dirichlet(np.ones(v.size), size=20), np.eye(v.size)])
    assert (np.linalg.norm(others - v, axis=1) >= np.linalg.norm(p - v) - 1e-9).all()
    # a probability vector is its own projection
    q = rng.dirichlet(np.ones(v.size))
    np.testing.assert_allclose(project_to_simplex(q), q, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 30), st.integers(1, 5000), st.integers(0, 2**31))
def test_quantisation_puts_n_atoms_within_one_of_n_p(cells: int, n: int, seed: int) -> None:
    p = np.random.default_rng(seed).dirichlet(np.ones(cells))
    q = quantize(p, n)
    assert q.dtype == np.int64 and q.sum() == n and (q >= 0).all()
    assert (np.abs(q - n * p) < 1.0 + 1e-9).all()


# -- particles ---------------------------------------------------------------------------------------
def test_particles_reproduce_the_marginals_of_a_tiny_table_at_huge_epsilon() -> None:
    """397 rows, eps = 5000 (sigma ~ 0.02 counts): the particles' one- and two-way marginals match.

    Tolerance 0.02 TVD on every marginal of the decoded particles (measured at 2,000 particles and
    1,000 steps: <= 0.009 on pairs, <= 0.0007 on single columns over seeds 0-2; a particle fit is a
    local optimisation, so the bound is looser than mst/aim's model check).
    """
    schema, df = _ci_table()
    synth = _fit(schema, df, {"n_particles": 2000, "steps": 1000}, epsilon=5000.0)
    backend = synth.backend_
    real = _value_codes(df, schema)
    sizes = backend.domain_.sizes
    for clique in [(0,), (1,), (2,), *itertools.combinations(range(3), 2)]:
        r = _counts(real, sizes, clique).astype(float)
        assert _tvd(r, _particle_counts(backend, clique)) < 0.02, clique
    # a sample of n = 5 x particles rows takes every particle 5 times: the same marginals
    out = _value_codes(synth.sample(10_000), schema)
    for clique in itertools.combinations(range(3), 2):
        got = _counts(out, sizes, clique).astype(float)
        assert _tvd(got, _particle_counts(backend, clique)) < 1e-9


def test_particle_fit_is_deterministic_and_batched_equals_its_own_rerun() -> None:
    sizes = [4, 3, 5]
    rng = np.random.default_rng(0)
    joint = rng.dirichlet(np.ones(60)).reshape(4, 3, 5)
    cliques = [(0, 1), (0, 2), (1, 2)]
    probs = [joint.sum(2).ravel(), joint.sum(1).ravel(), joint.sum(0).ravel()]
    cfg = ParticleConfig(n_particles=500, steps=40, lr=0.05, lr_decay=0.1, projections=3, batch=2, seed=7)
    a, b = fit_particles(cfg, sizes, cliques, probs), fit_particles(cfg, sizes, cliques, probs)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (500, 3) and a.dtype == np.float32 and a.min() >= 0 and a.max() <= 1
    c = fit_particles(ParticleConfig(**{**cfg.__dict__, "seed": 8}), sizes, cliques, probs)
    assert not np.array_equal(a, c)


# -- accounting ----------------------------------------------------------------------------------------
def test_accounting_equals_an_independent_recomputation(monkeypatch: pytest.MonkeyPatch) -> None:
    schema, df = _ci_table()  # columns a, b, c; target 'b' weights pairs (a,b), (b,c) x 4
    monkeypatch.setattr("tabpriv.backends.marginal.pgd.ZCDPFilter", _RecordingFilter)
    _RecordingFilter.made.clear()
    synth = _fit(schema, df, {**QUICK, "target": "b"}, ledger=PrivacyLedger(PrivacyBudget(1.0, 1e-5)))
    (ledger,) = _RecordingFilter.made
    backend = synth.backend_
    rho = backend.rho_
    weights = {(0, 1): 4.0, (0, 2): 1.0, (1, 2): 4.0}
    assert [m.clique for m in backend.measurements_] == list(weights)
    assert [w.split(" ")[0] for w, _ in ledger.entries] == ["measure"] * 3
    for (_, r), (_, w) in zip(ledger.entries, weights.items(), strict=True):
        assert r == pytest.approx(rho * w / 9.0, rel=1e-12)
    assert [_rho_of_gaussian(m.sigma) for m in backend.measurements_] == pytest.approx(
        [r for _, r in ledger.entries], rel=1e-12
    )
    assert math.fsum(r for _, r in ledger.entries) == pytest.approx(rho, rel=1e-9)
    assert backend.rho_spent_ == pytest.approx(rho, rel=1e-9)
    (spend,) = synth.ledger_.spends
    assert spend.epsilon <= 1.0 * (1 + 1e-12)
    assert max(_cks_epsilon(rho, 1e-5), _opendp_epsilon(rho, 1e-5)) <= spend.epsilon * (1 + 1e-6)
    # the noise kept is the noise charged: noisy - exact has the planned scale per measurement
    codes = _value_codes(df, schema)
    for m in backend.measurements_:
        assert m.noisy.dtype == np.int64
        assert m.sigma == pytest.approx(1.0 / math.sqrt(rho * weights[m.clique] / 9.0), rel=1e-12)
        resid = m.noisy - _counts(codes, backend.domain_.sizes, m.clique)
        assert np.abs(resid).max() < 8 * m.sigma
    details = backend.privacy_details()
    assert "post-processing" in " ".join(details.covered)
    assert "public" in " ".join(details.covered) and "torch generator" in " ".join(details.covered)
    assert details.noise["measured_marginals"] == 3
    assert synth.ledger_.spends[0].parameters["selection"].startswith("none")


# -- determinism, persistence, refit ---------------------------------------------------------------
@pytest.fixture(scope="module")
def small_fit() -> Synthesizer:
    return _fit(make_small_schema(), make_small_df(300), QUICK, epsilon=3.0)


def test_seeded_fit_is_deterministic(small_fit: Synthesizer) -> None:
    again = _fit(make_small_schema(), make_small_df(300), QUICK, epsilon=3.0)
    a, b = small_fit.backend_, again.backend_
    for ma, mb in zip(a.measurements_, b.measurements_, strict=True):
        np.testing.assert_array_equal(ma.noisy, mb.noisy)
    np.testing.assert_array_equal(a.particles_, b.particles_)
    np.testing.assert_array_equal(a.sample(400, seed=2), b.sample(400, seed=2))
    other = _fit(make_small_schema(), make_small_df(300), QUICK, epsilon=3.0, seed=1)
    assert not np.array_equal(a.particles_, other.backend_.particles_)


def test_save_load_round_trip_and_refit_without_the_table(
    small_fit: Synthesizer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "pgd.tabpriv"
    small_fit.save(path)
    loaded = Synthesizer.load(path)
    a, b = small_fit.backend_, loaded.backend_
    np.testing.assert_array_equal(a.particles_, b.particles_)
    for ma, mb in zip(a.measurements_, b.measurements_, strict=True):
        assert ma.clique == mb.clique and ma.sigma == mb.sigma
        np.testing.assert_array_equal(ma.noisy, mb.noisy)
    np.testing.assert_array_equal(a.sample(700, seed=4), b.sample(700, seed=4))
    assert loaded.privacy_report.epsilon == small_fit.privacy_report.epsilon
    make_small_schema().validate(loaded.sample(100))
    # refit from the saved noisy marginals: no row is read, the same seed gives the same particles
    monkeypatch.setattr(EncodedTable, "iter_chunks", _never)
    monkeypatch.setattr(EncodedTable, "take", _never)
    p1 = b.refit_model(seed=3).copy()
    again = Synthesizer.load(path).backend_
    np.testing.assert_array_equal(again.refit_model(seed=3), p1)
    assert not np.array_equal(p1, a.particles_)
    make_small_schema().validate(loaded.sample(100))


def _never(*args: object, **kwargs: object) -> None:
    raise AssertionError("a row was read")


# -- large domains --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def acs_highcard(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, Schema]:
    """The SYNTHETIC ACS fixture (random values; code path only) under the high-cardinality schema."""
    from benchmarks.bench_pgd_highcard import fixture_table

    return fixture_table(tmp_path_factory.mktemp("acs"), n=1500, seed=0)


def test_high_cardinality_schema_runs_under_pgd_with_memory_bounded_by_particles(
    acs_highcard: tuple[pd.DataFrame, Schema], monkeypatch: pytest.MonkeyPatch
) -> None:
    df, schema = acs_highcard
    sizes = {c.name: len(c.categories or ()) for c in schema.columns if c.kind == "categorical"}
    assert sizes["OCCP"] == 993 and sizes["POBP"] == 554
    shapes: list[tuple[int, ...]] = []
    real_targets = particles_mod._targets

    def _record(*args: Any, **kwargs: Any) -> Any:
        out = real_targets(*args, **kwargs)
        shapes.extend(a.shape for a in out)
        return out

    monkeypatch.setattr(particles_mod, "_targets", _record)
    n_particles = 800
    synth = _fit(schema, df, {"n_particles": n_particles, "steps": 30, "target": "PINCP"}, epsilon=2.0)
    backend = synth.backend_
    domain = backend.domain_
    assert domain.cells((schema.names.index("OCCP"), schema.names.index("POBP"))) == 993 * 554
    assert len(backend.measurements_) == math.comb(len(schema), 2)  # every pair fits max_cells
    # the targets' supports are at most n_particles atoms per marginal, whatever the cells (550k here)
    m = len(backend.measurements_)
    assert shapes[1][0] == m and shapes[1][1] <= n_particles
    assert max(math.prod(s) for s in shapes) <= m * n_particles * 2
    assert backend.particles_.shape == (n_particles, len(schema))
    out = synth.sample(500)
    schema.validate(out)
    assert set(out["OCCP"]) <= set(schema.columns[schema.names.index("OCCP")].categories or ())


@pytest.mark.parametrize("name", ["mst", "aim"])
def test_mst_and_aim_refuse_the_high_cardinality_columns_cleanly(
    acs_highcard: tuple[pd.DataFrame, Schema], monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    df, schema = acs_highcard
    monkeypatch.setattr(EncodedTable, "iter_chunks", _never)
    ledger = PrivacyLedger(PrivacyBudget(2.0, 1e-5))
    synth = Synthesizer(
        backend=name, epsilon=2.0, delta=1e-5, schema=schema, device="cpu", random_state=0,
        backend_params={"max_cells": 500}, ledger=ledger,
    )  # fmt: skip
    with pytest.raises(ModelTooLargeError) as info:
        synth.fit(df)
    msg = str(info.value)
    assert "OCCP (993 levels)" in msg and "POBP (554 levels)" in msg and "max_cells=500" in msg
    assert "AGEP" not in msg
    assert ledger.spends == []


# -- bad input ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"target": "income"}, "'income'"),
        ({"n_particles": 1}, "n_particles"),
        ({"lr": 0.0}, "lr"),
        ({"lr_decay": 0.0}, "lr_decay"),
        ({"mask": 1.0}, "mask"),
        ({"projections": 0}, "projections"),
        ({"target_weight": 0.5}, "target_weight"),
    ],
)
def test_bad_input_is_refused_before_any_spend(
    monkeypatch: pytest.MonkeyPatch, params: dict[str, Any], fragment: str
) -> None:
    monkeypatch.setattr(EncodedTable, "iter_chunks", _never)
    monkeypatch.setattr(EncodedTable, "take", _never)
    ledger = PrivacyLedger(PrivacyBudget(1.0, 1e-5))
    synth = Synthesizer(
        backend="pgd", epsilon=1.0, delta=1e-5, schema=make_small_schema(), device="cpu", random_state=0,
        backend_params={**QUICK, **params}, ledger=ledger,
    )  # fmt: skip
    with pytest.raises(PrivacyParameterError, match=fragment):
        synth.fit(make_small_df(300))
    assert ledger.spends == []


def test_pgd_plan_states_the_schedule_and_is_data_independent() -> None:
    spans = TableTransformer(make_small_schema()).fit().spans_
    plan = PGDBackend(**QUICK, target="flag").plan(spans, 300, PrivacyBudget(1.0, 1e-5), seeded=True)
    sch = plan.noise.schedule
    assert sch["two_way_marginals"] == 10 and sch["one_way_marginals"] == 0
    # 4 of the 10 pairs contain 'flag': total weight 4 * 4 + 6 = 22
    assert sch["sigma"] == pytest.approx(1.0 / math.sqrt(plan.noise.rho / 22.0), rel=1e-12)
    assert sch["sigma_target"] == pytest.approx(1.0 / math.sqrt(plan.noise.rho * 4.0 / 22.0), rel=1e-12)
    assert plan == PGDBackend(**QUICK, target="flag").plan(spans, 300, PrivacyBudget(1.0, 1e-5), seeded=True)
