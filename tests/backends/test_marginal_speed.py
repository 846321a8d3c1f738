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
