"""tabpriv's one-program mbi estimate (``model._run_estimate``) against mbi 2.0's own estimator.

The driver exists to compile once per model structure instead of mbi's several programs and eager
operations; it must compute the same thing. Compared bit for bit with ``MirrorDescent().estimate``
(potentials) and with the junction-tree marginals :class:`ChainSampler` used to compile separately, on
a tiny domain (3 columns) with a warm start whose cliques differ from the new model's.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tabpriv.backends.marginal.domain import MarginalDomain
from tabpriv.backends.marginal.model import (
    ChainSampler,
    Measurement,
    _estimate_programs,
    _expand_potentials,
    _tree_marginals,
    attr,
    estimate,
    load_mbi,
    mbi_domain,
)

SIZES = (3, 4, 2)
N = 500


def _domain() -> MarginalDomain:
    from tabpriv.schema import Column, Schema
    from tabpriv.transformers import TableTransformer

    schema = Schema(
        tuple(
            Column(name, "categorical", categories=tuple(str(k) for k in range(s)))
            for name, s in zip("abc", SIZES, strict=True)
        )
    )
    domain = MarginalDomain(TableTransformer(schema).fit().spans_)
    assert tuple(domain.sizes) == SIZES
    return domain


def _measurements(rng: np.random.Generator, cliques: list[tuple[int, ...]]) -> list[Measurement]:
    out = []
    for cl in cliques:
        cells = int(np.prod([SIZES[i] for i in cl]))
        out.append(
            Measurement(cl, rng.multinomial(N, np.full(cells, 1.0 / cells)) + rng.integers(-3, 4, cells), 2.0)
        )
    return out


def _mbi_lms(ms: list[Measurement]) -> list[Any]:
    mbi = load_mbi()
    return [
        mbi.LinearMeasurement(
            np.asarray(m.noisy, dtype=np.float64), tuple(attr(i) for i in m.clique), stddev=m.sigma
        )
        for m in ms
    ]


@pytest.fixture(scope="module")
def fits() -> dict[str, Any]:
    """mbi's estimate and tabpriv's, cold and warm-started (iters not a multiple of mbi's 50-step block)."""
    mbi = load_mbi()
    domain = _domain()
    dom = mbi_domain(domain)
    rng = np.random.default_rng(0)
    first = _measurements(rng, [(0,), (1,), (2,)])
    second = first + _measurements(rng, [(0, 1), (1, 2)])
    md = mbi.estimation.MirrorDescent()
    theirs1 = md.estimate(dom, _mbi_lms(first), known_total=float(N), iters=120)
    theirs2 = md.estimate(dom, _mbi_lms(second), known_total=float(N), iters=120, warm_start=theirs1)
    ours1 = estimate(domain, first, N, iters=120)
    ours2 = estimate(domain, second, N, iters=120, warm_start=ours1)
    return {
        "domain": domain,
        "dom": dom,
        "theirs": (theirs1, theirs2),
        "ours": (ours1, ours2),
        "second": second,
    }


def _same_potentials(a: Any, b: Any) -> None:
    assert set(a.cliques) == set(b.cliques)
    for cl in a.cliques:
        assert np.array_equal(np.asarray(a[cl].values), np.asarray(b[cl].values)), cl


def test_potentials_equal_mbi_estimate_bit_for_bit(fits: dict[str, Any]) -> None:
    for ours, theirs in zip(fits["ours"], fits["theirs"], strict=True):
        _same_potentials(ours.potentials, theirs.potentials)
        assert float(ours.total) == float(theirs.total) == float(N)


def test_tree_marginals_equal_the_separate_program(fits: dict[str, Any]) -> None:
    """The model's marginals are the junction tree's, exactly what from_model computed on its own."""
    from mbi import junction_tree

    ours = fits["ours"][1]
    tree, _ = junction_tree.make_junction_tree(ours.domain, [tuple(cl) for cl in ours.cliques])
    nodes = tuple(tuple(cl) for cl in tree.nodes)
    assert set(ours.marginals.cliques) == set(nodes)
    separate = _tree_marginals()(fits["theirs"][1].potentials, nodes, float(N))
    for cl in nodes:
        assert np.array_equal(np.asarray(ours.marginals[cl].values), np.asarray(separate[cl].values)), cl
    chain_ours = ChainSampler.from_model(ours, fits["domain"])
    chain_theirs = ChainSampler.from_model(fits["theirs"][1], fits["domain"])
    for x, y in zip(chain_ours.cdfs, chain_theirs.cdfs, strict=True):
        assert np.array_equal(x, y)
    # mbi's own projection of a measured clique agrees with the tree's (to rounding)
    pair = tuple(attr(i) for i in (0, 1))
    np.testing.assert_allclose(
        np.asarray(ours.project(pair).values), np.asarray(fits["theirs"][1].project(pair).values), rtol=1e-9
    )


def test_host_expansion_equals_mbi_expand(fits: dict[str, Any]) -> None:
    old = fits["ours"][0].potentials
    rng = np.random.default_rng(1)
    mbi = load_mbi()
    import jax.numpy as jnp

    old = mbi.CliqueVector(
        old.domain,
        old.cliques,
        {
            cl: mbi.Factor(old[cl].domain, jnp.asarray(rng.normal(size=old[cl].values.shape)))
            for cl in old.cliques
        },
    )
    cliques = [(attr(1), attr(0)), (attr(1), attr(2))]  # axis orders differ from the old factors'
    _same_potentials(_expand_potentials(old, fits["dom"], cliques), old.expand(cliques))
    zeros = _expand_potentials(None, fits["dom"], cliques)
    assert all(not np.asarray(zeros[cl].values).any() for cl in cliques)


def test_one_program_per_structure(fits: dict[str, Any]) -> None:
    """A refit of the same measurements (AIM's final fit) with more iterations compiles nothing new."""
    program = _estimate_programs(None)
    before = program._cache_size()
    ours = estimate(fits["domain"], fits["second"], N, iters=300, warm_start=fits["ours"][1])
    assert program._cache_size() == before
    # and 300 iterations from the 120-iteration model move it (the block count is a runtime argument)
    a = np.asarray(ours.potentials[ours.cliques[0]].values)
    b = np.asarray(fits["ours"][1].potentials[ours.cliques[0]].values)
    assert not np.array_equal(a, b)


def test_fast_compile_is_this_programs_option_and_agrees_to_rounding(
    fits: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``fast_compile`` compiles the program with FAST_COMPILE_OPTIONS (CPU), the env var turns it off,
    and its estimate equals the optimised build's up to floating-point rounding."""
    import jax

    from tabpriv.backends.marginal.model import FAST_COMPILE_ENV, FAST_COMPILE_OPTIONS

    assert jax.default_backend() == "cpu"
    fast, default = _estimate_programs(FAST_COMPILE_OPTIONS), _estimate_programs(None)
    n_fast, n_default = fast._cache_size(), default._cache_size()
    ours = estimate(
        fits["domain"], fits["second"], N, iters=120, warm_start=fits["ours"][0], fast_compile=True
    )
    assert fast._cache_size() == n_fast + 1 and default._cache_size() == n_default
    for cl in ours.cliques:
        np.testing.assert_allclose(
            np.asarray(ours.marginals.project(cl).values),
            np.asarray(fits["ours"][1].marginals.project(cl).values),
            rtol=1e-8,
            atol=1e-8,
        )
    monkeypatch.setenv(FAST_COMPILE_ENV, "0")
    again = estimate(
        fits["domain"], fits["second"], N, iters=120, warm_start=fits["ours"][0], fast_compile=True
    )
    assert fast._cache_size() == n_fast + 1  # the optimised program, compiled before: a cache hit
    _same_potentials(again.potentials, fits["ours"][1].potentials)


# --- AIM's candidate scoring: every candidate's model answer in one shared walk --------------------


def _random_chain(rng: np.random.Generator, c: int) -> tuple[ChainSampler, tuple[int, ...]]:
    """A chain on ``c`` columns (sizes 1-4) in a random order, each with up to 3 earlier parents."""
    sizes = tuple(int(s) for s in rng.integers(1, 5, c))
    order = [int(i) for i in rng.permutation(c)]
    parents: list[tuple[int, ...]] = []
    cdfs = []
    for t, col in enumerate(order):
        k = int(rng.integers(0, min(t, 3) + 1))
        ps = tuple(int(p) for p in rng.choice(order[:t], k, replace=False)) if k else ()
        rows = int(np.prod([sizes[p] for p in ps]))
        cdf = np.cumsum(rng.dirichlet(np.ones(sizes[col]), rows), axis=1)
        cdf[:, -1] = 1.0
        parents.append(ps)
        cdfs.append(cdf)
    return ChainSampler(order, parents, cdfs), sizes


def _counting(chain: ChainSampler, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the chain's factor multiplications (the elimination's unit of work)."""
    calls = [0]
    inner = chain._multiply

    def counted(*args: Any) -> Any:
        calls[0] += 1
        return inner(*args)

    monkeypatch.setattr(chain, "_multiply", counted)
    return calls


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("hold_cells", [0, 30, 10**9])
def test_batched_chain_marginals_equal_the_per_clique_elimination_bit_for_bit(
    seed: int, hold_cells: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``ChainSampler.marginals`` (AIM's scoring) gives every clique :meth:`marginal`'s bits, with less work.

    ``hold_cells=0`` recomputes every branch's shared prefix (no state held), 30 holds some states, and
    10**9 all; ``max_cells`` small enough for some cliques gives the same ``None`` as ``marginal``.
    """
    import itertools

    rng = np.random.default_rng(seed)
    c = 7
    chain, sizes = _random_chain(rng, c)
    cliques = [cl for k in (1, 2, 3) for cl in itertools.combinations(range(c), k)]
    cliques = [cliques[i] for i in rng.permutation(len(cliques))] + cliques[:5]  # shuffled, duplicates
    for max_cells in (50_000_000, 40):
        calls = _counting(chain, monkeypatch)
        batched = chain.marginals(cliques, sizes, max_cells=max_cells, hold_cells=hold_cells)
        shared = calls[0]
        calls[0] = 0
        assert set(batched) == set(cliques)
        for cl in cliques:
            single = chain.marginal(cl, sizes, max_cells=max_cells)
            if single is None:
                assert batched[cl] is None, cl
            else:
                got = batched[cl]
                assert got is not None and got.dtype == single.dtype and got.shape == single.shape, cl
                assert np.array_equal(got, single), cl
        per_clique = calls[0]
        calls[0] = 0
        for cl in dict.fromkeys(cliques):
            chain.marginal(cl, sizes, max_cells=max_cells)
        distinct = calls[0]
        monkeypatch.undo()
        assert shared <= distinct < per_clique  # duplicates are answered once
        if max_cells == 50_000_000:  # (with None answers a branch that fails stops for all its cliques)
            if hold_cells == 0:  # every branch recomputed from step 0: exactly the per-clique work
                assert shared == distinct
            elif hold_cells == 10**9:  # common prefixes computed once
                assert shared < distinct
        if max_cells == 50_000_000:
            assert all(batched[cl] is not None for cl in cliques)
            assert all(abs(float(batched[cl].sum()) - 1.0) < 1e-12 for cl in cliques)  # type: ignore[union-attr]


def test_batched_chain_marginals_of_a_fitted_model(fits: dict[str, Any]) -> None:
    """On a fitted model's chain: the same bits as ``marginal`` and mbi's projections to rounding."""
    import itertools

    model = fits["ours"][1]
    chain = ChainSampler.from_model(model, fits["domain"])
    cliques = [cl for k in (1, 2, 3) for cl in itertools.combinations(range(len(SIZES)), k)]
    batched = chain.marginals(cliques, SIZES)
    for cl in cliques:
        got = batched[cl]
        assert got is not None
        assert np.array_equal(got, chain.marginal(cl, SIZES))  # type: ignore[arg-type]
        theirs = np.asarray(model.project(tuple(attr(i) for i in cl)).datavector(flatten=True)) / N
        np.testing.assert_allclose(got, theirs, rtol=1e-9, atol=1e-12)


def _aim_fit(monkeypatch: pytest.MonkeyPatch, reference: bool) -> tuple[Any, list[np.ndarray]]:
    """A seeded aim fit (5 columns, target weighted) and the score vector of every selection round.

    ``reference=True`` scores every candidate by its own elimination (``aim._model_counts``, the code
    before the shared walk), ignoring the answers carried over from the previous round.
    """
    import warnings

    import pandas as pd

    from tabpriv import Synthesizer
    from tabpriv.backends.marginal import aim
    from tabpriv.schema import Column, Schema

    scores: list[np.ndarray] = []
    select = aim.private_select

    def recording(s: np.ndarray, *args: Any, **kwargs: Any) -> int:
        scores.append(np.array(s, copy=True))
        return int(select(s, *args, **kwargs))

    monkeypatch.setattr(aim, "private_select", recording)
    if reference:

        def one_by_one(
            chain: Any,
            model: Any,
            cliques: list[tuple[int, ...]],
            domain: Any,
            n_rows: int,
            known: Any = None,
        ) -> dict[tuple[int, ...], np.ndarray]:
            return {r: aim._model_counts(chain, model, r, domain, n_rows) for r in dict.fromkeys(cliques)}

        monkeypatch.setattr(aim, "_model_counts_all", one_by_one)
    rng = np.random.default_rng(3)
    n = 800
    age = rng.integers(0, 40, n)
    hours = np.clip(np.rint(age / 2 + rng.normal(0, 3, n)), 1, 30)
    sex = np.where(rng.random(n) < 0.4 + 0.01 * age, "f", "m").astype(object)
    kids = np.clip(rng.poisson(1 + age / 20), 0, 5)
    job = np.where(hours > 12, "a", np.where(rng.random(n) < 0.5, "b", "c")).astype(object)
    df = pd.DataFrame({"age": age, "hours": hours, "sex": sex, "kids": kids, "job": job})
    schema = Schema(
        (
            Column("age", "integer", lower=0, upper=39),
            Column("hours", "integer", lower=1, upper=30),
            Column("sex", "categorical", categories=("f", "m")),
            Column("kids", "integer", lower=0, upper=5),
            Column("job", "categorical", categories=("a", "b", "c")),
        )
    )
    synth = Synthesizer(
        backend="aim", epsilon=4.0, delta=1e-5, schema=schema, device="cpu", random_state=0,
        backend_params={"rounds": 40, "round_iters": 20, "iters": 40, "target": "sex", "coarse_levels": 8},
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        synth.fit(df)
    monkeypatch.undo()
    return synth, scores


@pytest.mark.slow  # two aim fits: ~50 s on the shared 2-core box
def test_seeded_aim_release_is_unchanged_by_the_shared_scoring(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same seeded aim fit scored both ways: every round's scores and the release arrays, same bits."""
    ours, ours_scores = _aim_fit(monkeypatch, reference=False)
    ref, ref_scores = _aim_fit(monkeypatch, reference=True)
    assert len(ours_scores) == len(ref_scores) == ours.backend_.rounds_run_ >= 3
    for a, b in zip(ours_scores, ref_scores, strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    arrays, _ = ours.backend_.get_state()
    ref_arrays, _ = ref.backend_.get_state()
    assert sorted(arrays) == sorted(ref_arrays)
    for key in arrays:
        assert np.asarray(arrays[key]).tobytes() == np.asarray(ref_arrays[key]).tobytes(), key
    assert [(m.clique, m.coarse) for m in ours.backend_.measurements_] == [
        (m.clique, m.coarse) for m in ref.backend_.measurements_
    ]
