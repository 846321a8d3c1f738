"""Generation: a graphical model estimated from the noisy marginals with mbi 2.0, and its sampler.

Everything here is post-processing of released noisy marginals (no privacy cost). JAX and mbi are
imported lazily (:func:`load_mbi`), with float64 enabled (mbi warns that float32 stalls above 100k
rows) and JAX's persistent compilation cache off (mbi's own advice; it writes many small programs).
Both are process-wide JAX settings, stated in ``docs/marginal.md``. JAX runs on its default device
(a GPU where jaxlib has one, the CPU otherwise).

Sampling does not use mbi's ``synthetic_data`` (which draws from numpy's global generator): the fitted
model is turned once into a chain of conditional tables along the junction tree's elimination order
(:class:`ChainSampler`), saved as plain arrays and sampled i.i.d. with the caller's public generator,
chunk by chunk. A loaded model samples without JAX.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tabpriv.backends.marginal.domain import MarginalDomain
from tabpriv.backends.marginal.measure import Clique

__all__ = [
    "ChainSampler",
    "Measurement",
    "attr",
    "coarse_cells",
    "coarsen",
    "estimate",
    "junction_tree_cells",
    "load_mbi",
    "model_marginal",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Measurement:
    """One released noisy marginal (public).

    Attributes:
        clique: Column indices of the marginal, increasing.
        noisy: The noisy integer counts, flattened in C order.
        sigma: The discrete Gaussian scale it was released with.
        coarse: ``None`` for the marginal itself; ``k`` for its coarsened version, in which every
            ordered column of the clique with more than ``k`` levels has its levels merged into ``k``
            groups of consecutive levels (:meth:`MarginalDomain.coarse_groups`, public). Merging cells
            is a contraction, so the counts keep L2 sensitivity sqrt(2) and the cost is unchanged.

    """

    clique: Clique
    noisy: np.ndarray
    sigma: float
    coarse: int | None = None

    def answer(self, counts: np.ndarray, domain: MarginalDomain) -> np.ndarray:
        """The measurement's query applied to the marginal's flat counts (exact or model)."""
        return coarsen(counts, self.clique, domain, self.coarse)


def coarse_groups(domain: MarginalDomain, clique: Clique, coarse: int | None) -> list[np.ndarray | None]:
    """Per column of ``clique``, its public level-to-group map (``None``: the column is kept as is)."""
    if coarse is None:
        return [None] * len(clique)
    return [domain.coarse_groups(i, coarse) for i in clique]


def coarse_cells(domain: MarginalDomain, clique: Clique, coarse: int | None) -> int:
    """Cells of the (possibly coarsened) marginal."""
    groups = coarse_groups(domain, clique, coarse)
    return int(
        np.prod(
            [domain.sizes[i] if g is None else int(g.max()) + 1 for i, g in zip(clique, groups, strict=True)],
            dtype=np.float64,
        )
    )


def coarsen(counts: np.ndarray, clique: Clique, domain: MarginalDomain, coarse: int | None) -> np.ndarray:
    """Merge the cells of a flat marginal (C order over ``clique``) into its coarsened cells (flat)."""
    groups = coarse_groups(domain, clique, coarse)
    if all(g is None for g in groups):
        return counts
    arr = np.asarray(counts).reshape([domain.sizes[i] for i in clique])
    for axis, g in enumerate(groups):
        if g is not None:
            onehot = np.zeros((int(g.max()) + 1, g.size), dtype=arr.dtype)
            onehot[g, np.arange(g.size)] = 1
            arr = np.moveaxis(np.tensordot(onehot, arr, axes=([1], [axis])), 0, axis)
    return np.ascontiguousarray(arr).ravel()


@dataclass(frozen=True)
class _CoarseQuery:
    """mbi query of a coarsened marginal: the factor's cells summed within each level group.

    Hashable (group maps as tuples), as mbi treats queries as static JIT arguments.
    """

    groups: tuple[tuple[int, ...] | None, ...]

    def __call__(self, f: Any) -> Any:
        import jax.numpy as jnp

        x = f.datavector(flatten=False)
        for axis, g in enumerate(self.groups):
            if g is not None:
                onehot = np.zeros((max(g) + 1, len(g)))
                onehot[list(g), np.arange(len(g))] = 1.0
                x = jnp.moveaxis(jnp.tensordot(jnp.asarray(onehot), x, axes=([1], [axis])), 0, axis)
        return x.flatten()

    def op_norm_sq(self) -> float:
        """``||Q||_2^2``: the product over columns of the largest group size."""
        return float(np.prod([1 if g is None else max(np.bincount(g)) for g in self.groups]))


def attr(i: int) -> str:
    """Mbi's name of column ``i`` (never the user's column name: mbi splits strings into letters)."""
    return f"c{i}"


def load_mbi() -> Any:
    """Import mbi with float64 on and JAX's persistent compilation cache off (process-wide)."""
    import jax

    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_enable_compilation_cache", False)
    import mbi

    return mbi


def mbi_domain(domain: MarginalDomain) -> Any:
    """The mbi ``Domain`` of a discretisation."""
    mbi = load_mbi()
    return mbi.Domain.fromdict({attr(i): s for i, s in enumerate(domain.sizes)})


def junction_tree_cells(domain: MarginalDomain, cliques: Sequence[Clique]) -> int:
    """Cells of the junction tree a model on ``cliques`` would have (its memory is 8 bytes a cell).

    Computed by mbi's own junction-tree construction, so it is the size mbi would allocate.
    """
    load_mbi()
    from mbi import junction_tree

    dom = mbi_domain(domain)
    tree, _ = junction_tree.make_junction_tree(dom, [tuple(attr(i) for i in cl) for cl in cliques])
    return int(sum(dom.size(cl) for cl in tree.nodes))


def estimate(
    domain: MarginalDomain,
    measurements: Sequence[Measurement],
    n_rows: int,
    *,
    iters: int,
    warm_start: Any = None,
    release_compiled: bool = False,
    fast_compile: bool = False,
) -> Any:
    """Fit mbi's graphical model to the measurements by mirror descent (``iters`` iterations).

    ``n_rows`` (public under replace-one) is given as the known total. ``release_compiled`` clears
    JAX's caches afterwards (AIM's rounds: each compiles programs for a clique set never seen again).
    ``fast_compile``: compile with XLA's cheaper CPU options (:data:`FAST_COMPILE_OPTIONS`); the
    estimate then differs from the default build's in the last bits (see ``docs/marginal.md``).
    One compiled program per model structure (:func:`_run_estimate`).
    """
    mbi = load_mbi()
    dom = mbi_domain(domain)
    lms = []
    for m in measurements:
        groups = coarse_groups(domain, m.clique, m.coarse)
        extra = {}
        if any(g is not None for g in groups):
            extra["query"] = _CoarseQuery(tuple(None if g is None else tuple(map(int, g)) for g in groups))
        lms.append(
            mbi.LinearMeasurement(
                np.asarray(m.noisy, dtype=np.float64).ravel(),
                tuple(attr(i) for i in m.clique),
                stddev=float(m.sigma),
                **extra,
            )
        )
    t0 = time.perf_counter()
    model = _run_estimate(dom, lms, float(n_rows), int(iters), warm_start, fast_compile)
    if release_compiled:
        # Every new clique set compiles new programs that are never reused; JAX keeps them all.
        import jax

        jax.clear_caches()
    _trim_heap()
    logger.debug(
        "mbi estimate: %d measurements, %d iterations, %.1f s", len(lms), iters, time.perf_counter() - t0
    )
    return model


def model_marginal(model: Any, clique: Clique) -> np.ndarray:
    """The model's marginal on ``clique`` as a flat float64 count vector (C order, columns increasing)."""
    factor = model.project(tuple(attr(i) for i in clique))
    return np.asarray(factor.datavector(flatten=True), dtype=np.float64)


class ChainSampler:
    """The fitted model as conditional tables along the junction tree's elimination order.

    Column ``order[t]`` is drawn from ``P(col | parents)`` where the parents are columns drawn before it
    that share a junction-tree clique with it (mbi's own construction in ``synthetic_data``). Sampling
    is i.i.d. and needs only numpy.

    Attributes:
        order: Column indices in sampling order.
        parents: For each column in ``order``, its parent column indices.
        cdfs: For each column in ``order``, a ``(prod(parent sizes), size)`` float64 cumulative table.

    """

    def __init__(self, order: Sequence[int], parents: Sequence[tuple[int, ...]], cdfs: Sequence[np.ndarray]):
        self.order = tuple(int(i) for i in order)
        self.parents = tuple(tuple(int(p) for p in ps) for ps in parents)
        self.cdfs = [np.asarray(c, dtype=np.float64) for c in cdfs]
        later: set[int] = set()
        needed: list[frozenset[int]] = []
        for ps in reversed(self.parents):
            needed.append(frozenset(later))
            later |= set(ps)
        #: for position t, the columns that are parents of some column after t
        self._needed_later = needed[::-1]
        self._conds: list[np.ndarray] | None = None

    def marginal(
        self, clique: Clique, sizes: Sequence[int], *, max_cells: int = 50_000_000
    ) -> np.ndarray | None:
        """The model's exact probability table on ``clique`` (flat, C order), by variable elimination.

        Columns are added along the sampling order and summed out as soon as neither the query nor a
        later column needs them; a column nothing needs is skipped (its conditional sums to one).
        Returns ``None`` when an intermediate table would exceed ``max_cells`` (the caller falls back).
        """
        query = set(clique)
        factor = np.ones((), dtype=np.float64)
        axes: list[int] = []
        for t, col in enumerate(self.order):
            keep = query | self._needed_later[t]
            if col in keep:
                factor, axes = self._multiply(factor, axes, t, sizes, max_cells)
                if factor is None:
                    return None
            drop = [k for k, a in enumerate(axes) if a not in keep]
            if drop:
                factor = factor.sum(axis=tuple(drop))
                axes = [a for k, a in enumerate(axes) if k not in drop]
        order = sorted(range(len(axes)), key=lambda k: axes[k])
        return np.ascontiguousarray(np.transpose(factor, order)).ravel()

    def marginals(
        self,
        cliques: Sequence[Clique],
        sizes: Sequence[int],
        *,
        max_cells: int = 50_000_000,
        hold_cells: int = 4_000_000,
    ) -> dict[Clique, np.ndarray | None]:
        """:meth:`marginal` of every clique, bit for bit, with the work their eliminations share done once.

        The elimination of a clique ``q`` walks ``order``; its state after step ``t`` (the factor and
        its axes) depends on ``q`` only through ``q ∩ order[: t + 1]`` (whether ``order[t]`` is
        multiplied in, and which axes are summed out, are decided by the columns already reached).
        So the cliques are walked depth-first as a trie: cliques that agree on the columns reached so
        far share one state, and the walk splits where they part. Every state is computed by the same
        numpy operations on the same inputs as in :meth:`marginal`, so every answer has the same bits.

        A state is kept for a second branch only if it has at most ``hold_cells`` cells (so at most a
        few such states are alive besides the one being extended); a larger one is recomputed from
        the start for the branch that needs it, as :meth:`marginal` would. Cliques with the same
        columns share one returned array; ``None`` marks a clique whose elimination would exceed
        ``max_cells`` (as :meth:`marginal`).
        """
        groups: dict[frozenset[int], list[Clique]] = {}
        for cl in cliques:
            groups.setdefault(frozenset(int(i) for i in cl), []).append(tuple(cl))
        out: dict[Clique, np.ndarray | None] = {}
        pending = [list(groups.items())]
        while pending:
            deferred: list[list[tuple[frozenset[int], list[Clique]]]] = []
            for batch in pending:
                self._descend(batch, sizes, max_cells, hold_cells, out, deferred)
            pending = deferred
        return out

    def _descend(
        self,
        queries: list[tuple[frozenset[int], list[Clique]]],
        sizes: Sequence[int],
        max_cells: int,
        hold_cells: int,
        out: dict[Clique, np.ndarray | None],
        deferred: list[list[tuple[frozenset[int], list[Clique]]]],
        t: int = 0,
        factor: Any = None,
        axes: list[int] | None = None,
    ) -> None:
        """One branch of :meth:`marginals`' walk: ``queries`` share ``factor`` before step ``t``."""
        if factor is None:
            factor, axes = np.ones((), dtype=np.float64), []
        assert axes is not None
        while t < len(self.order):
            col = self.order[t]
            inside = [q for q in queries if col in q[0]]
            if inside and len(inside) < len(queries):
                if factor.size <= hold_cells:
                    self._descend(inside, sizes, max_cells, hold_cells, out, deferred, t, factor, axes)
                else:
                    deferred.append(inside)  # recomputed from step 0 (same operations, same bits)
                queries = [q for q in queries if col not in q[0]]
            keep = queries[0][0] | self._needed_later[t]
            if col in keep:
                factor, axes = self._multiply(factor, axes, t, sizes, max_cells)
                if factor is None:
                    for _, cls in queries:
                        out.update(dict.fromkeys(cls))
                    return
            drop = [k for k, a in enumerate(axes) if a not in keep]
            if drop:
                factor = factor.sum(axis=tuple(drop))
                axes = [a for k, a in enumerate(axes) if k not in drop]
            t += 1
        order = sorted(range(len(axes)), key=lambda k: axes[k])
        flat = np.ascontiguousarray(np.transpose(factor, order)).ravel()
        for _, cls in queries:  # one column set left: every clique reached all of its columns
            out.update(dict.fromkeys(cls, flat))

    def _multiply(
        self, factor: np.ndarray, axes: list[int], t: int, sizes: Sequence[int], max_cells: int
    ) -> tuple[Any, list[int]]:
        """``factor(axes) * P(order[t] | parents)`` over ``axes + [order[t]]`` (``None`` if too large)."""
        col, ps = self.order[t], self.parents[t]
        out_axes = [*axes, col]
        if int(np.prod([sizes[a] for a in out_axes], dtype=np.float64)) > max_cells:
            return None, axes
        if self._conds is None:
            self._conds = [np.diff(c, axis=1, prepend=0.0) for c in self.cdfs]
        cond = self._conds[t].reshape(*[sizes[p] for p in ps], sizes[col])
        labels = {a: k for k, a in enumerate(out_axes)}
        factor = np.einsum(
            factor, [labels[a] for a in axes], cond, [labels[p] for p in ps] + [labels[col]],
            [labels[a] for a in out_axes],
        )  # fmt: skip
        return factor, out_axes

    @classmethod
    def from_model(cls, model: Any, domain: MarginalDomain) -> ChainSampler:
        """Build the tables from an mbi model (message passing on its junction tree)."""
        load_mbi()
        from mbi import junction_tree

        tree, elimination = junction_tree.make_junction_tree(
            model.domain, [tuple(cl) for cl in model.cliques]
        )
        nodes = tuple(tuple(cl) for cl in tree.nodes)
        # One compiled program for expand + message passing (eager JAX dispatched and compiled every
        # primitive of them separately: 16 s a call on CPS 1988, 80% of an AIM fit); the tables are
        # then read in numpy.
        if set(model.marginals.cliques) == set(nodes):  # tabpriv's estimate computed them already
            marginals = model.marginals
        else:
            marginals = _tree_marginals()(model.potentials, nodes, float(model.total))
        tables = {cl: np.asarray(marginals[cl].values, dtype=np.float64) for cl in nodes}
        node_sets = [set(cl) for cl in nodes]
        order_names = list(elimination)[::-1]
        used: set[str] = set()
        order: list[int] = []
        parents: list[tuple[int, ...]] = []
        cdfs: list[np.ndarray] = []
        for name in order_names:
            relevant = set().union(*[cl for cl in node_sets if name in cl]) & used
            proj = tuple(sorted(relevant, key=lambda a: int(a[1:])))
            marg = _project_table(nodes, tables, (*proj, name))
            marg = np.clip(marg, 0.0, None).reshape(-1, domain.sizes[int(name[1:])])
            totals = marg.sum(axis=1, keepdims=True)
            size = marg.shape[1]
            cond = np.where(totals > 0, marg / np.where(totals > 0, totals, 1.0), 1.0 / size)
            cdf = np.cumsum(cond, axis=1)
            cdf[:, -1] = 1.0
            order.append(int(name[1:]))
            parents.append(tuple(int(a[1:]) for a in proj))
            cdfs.append(cdf)
            used.add(name)
        return cls(order, parents, cdfs)

    def sample_codes(
        self, n: int, rng: np.random.Generator, sizes: Sequence[int], *, method: str = "stratified"
    ) -> np.ndarray:
        """``n`` rows of level codes, ``(n, columns)`` int64, drawn along the chain.

        ``method="stratified"`` (the default): within each group of rows that share the parents'
        values, the rows are put in a random order and the ``r``-th of ``m`` gets the uniform
        ``(r + U) / m`` (systematic sampling of the conditional), so each value's count in the group is
        within one of its expected count; rows stay exchangeable. It removes most of the multinomial
        noise of drawing a finite table (mbi 2.0's ``"round"`` method draws the same way).
        ``method="iid"``: independent rows (each an exact draw from the model).
        """
        if method not in ("stratified", "iid"):
            raise ValueError(f"method must be 'stratified' or 'iid'; got {method!r}.")
        codes = np.zeros((n, len(sizes)), dtype=np.int64)
        for col, ps, cdf in zip(self.order, self.parents, self.cdfs, strict=True):
            if ps:
                idx = np.ravel_multi_index(tuple(codes[:, p] for p in ps), tuple(sizes[p] for p in ps))
            else:
                idx = np.zeros(n, dtype=np.int64)
            if method == "iid":
                u = rng.random(n)
            else:
                order = np.lexsort((rng.random(n), idx))  # by group, random within the group
                groups, starts, counts = np.unique(idx[order], return_index=True, return_counts=True)
                group_of = np.repeat(np.arange(groups.size), counts)
                rank = np.arange(n) - starts[group_of]
                u = np.empty(n)
                u[order] = (rank + rng.random(n)) / counts[group_of]
            rows = cdf[idx]
            codes[:, col] = np.minimum((rows <= u[:, None]).sum(axis=1), sizes[col] - 1)
        return codes

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Arrays and metadata for saving (public: post-processing of noisy marginals)."""
        arrays = {f"cdf_{t}": c for t, c in enumerate(self.cdfs)}
        meta = {"order": list(self.order), "parents": [list(p) for p in self.parents]}
        return arrays, meta

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> ChainSampler:
        """Inverse of :meth:`state`."""
        order = [int(i) for i in meta["order"]]
        return cls(
            order, [tuple(p) for p in meta["parents"]], [arrays[f"cdf_{t}"] for t in range(len(order))]
        )


def _trim_heap() -> None:
    """Return freed heap pages to the OS (glibc ``malloc_trim``; a no-op elsewhere).

    XLA's temporaries of every AIM round are freed but stay in glibc's arenas; trimming after each
    estimate lowered aim's peak RSS on Adult from 2,602 to 2,107 MB (same release, +4% CPU-s).
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if name is None:
        return
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return
    trim(0)


_TREE_MARGINALS: Any = None


def _tree_marginals() -> Any:
    """``jit((potentials, nodes, total) -> marginals on the junction tree's nodes)``, built once."""
    global _TREE_MARGINALS
    if _TREE_MARGINALS is None:
        import jax

        load_mbi()
        from mbi import marginal_oracles

        def run(potentials: Any, nodes: tuple[tuple[str, ...], ...], total: Any) -> Any:
            return marginal_oracles.message_passing_stable(potentials.expand(nodes), total)

        _TREE_MARGINALS = jax.jit(run, static_argnums=(1,))
    return _TREE_MARGINALS


def _project_table(
    nodes: Sequence[tuple[str, ...]], tables: dict[tuple[str, ...], np.ndarray], attrs: tuple[str, ...]
) -> np.ndarray:
    """The marginal on ``attrs`` (in that axis order) of the first tree node that contains them."""
    node = next(cl for cl in nodes if set(attrs) <= set(cl))
    table = tables[node]
    drop = tuple(k for k, a in enumerate(node) if a not in attrs)
    kept = [a for a in node if a in attrs]
    out = table.sum(axis=drop) if drop else table
    return np.transpose(out, [kept.index(a) for a in attrs]) if attrs else out


_ESTIMATE_PROGRAMS: dict[str, Any] = {}

#: XLA options of the estimation program under ``fast_compile`` (CPU backend only): LLVM without
#: its optimisation passes. On Adult's AIM rounds it cuts compile CPU time by about a third; the
#: program's arithmetic order differs, so estimates differ from the default build's in the last bits.
FAST_COMPILE_OPTIONS: dict[str, Any] = {"xla_backend_optimization_level": 0}
#: Environment variable that turns ``fast_compile`` off process-wide when set to ``0``.
FAST_COMPILE_ENV = "TABPRIV_FAST_COMPILE"


def _estimate_programs(compiler_options: dict[str, Any] | None) -> Any:
    """The jitted :func:`_estimate_program` for XLA ``compiler_options`` (one per options, built once)."""
    import json

    import jax

    key = json.dumps(compiler_options, sort_keys=True)
    if key not in _ESTIMATE_PROGRAMS:
        _ESTIMATE_PROGRAMS[key] = jax.jit(
            _estimate_program, static_argnames=("dom", "nodes"), compiler_options=compiler_options
        )
    return _ESTIMATE_PROGRAMS[key]


def _run_estimate(
    dom: Any, lms: list[Any], total: float, iters: int, warm_start: Any, fast_compile: bool = False
) -> Any:
    """Mbi 2.0's ``MirrorDescent().estimate`` as one compiled program, plus the junction tree's marginals.

    The same computation as mbi's ``Estimator.estimate`` (its ``_init``, ``ceil(iters / 50)`` blocks of
    50 ``_step`` s in a ``scan``, on the same inputs), but compiled as a single XLA program whose number
    of blocks is a runtime argument: mbi compiles its ``_multi_step`` plus the oracle of ``_init`` and
    ``_finalize`` and runs ~40 small eager operations (each compiled for its new shapes) for every new
    clique set, and :meth:`ChainSampler.from_model` compiled one more program for the junction tree's
    marginals. Here one program per model structure does it all, and the final fit of AIM (same
    measurements as its last round, more iterations) reuses its last round's program.

    The returned model's ``marginals`` are the marginals on the nodes of the junction tree of its
    cliques (a superset of mbi's, which are on the cliques; ``project`` works on either), so that
    :meth:`ChainSampler.from_model` needs no further compilation.

    ``fast_compile`` compiles with :data:`FAST_COMPILE_OPTIONS` on the CPU backend (unless the
    environment sets ``TABPRIV_FAST_COMPILE=0``): options of this program only, never ``XLA_FLAGS``.
    """
    import jax

    mbi = load_mbi()
    from mbi import junction_tree, marginal_loss

    cheap = fast_compile and jax.default_backend() == "cpu" and os.environ.get(FAST_COMPILE_ENV, "1") != "0"
    program = _estimate_programs(FAST_COMPILE_OPTIONS if cheap else None)
    loss_fn = marginal_loss.from_linear_measurements(lms, dom)
    tree, _ = junction_tree.make_junction_tree(dom, list(loss_fn.cliques))
    nodes = tuple(tuple(cl) for cl in tree.nodes)
    start = _expand_potentials(None if warm_start is None else warm_start.potentials, dom, loss_fn.cliques)
    blocks = math.ceil(iters / _BLOCK)
    potentials, marginals = program(start, loss_fn, total, blocks, dom=dom, nodes=nodes)
    return mbi.MarkovRandomField(potentials=potentials, marginals=marginals, total=total)


def _expand_potentials(potentials: Any, dom: Any, cliques: Sequence[tuple[str, ...]]) -> Any:
    """``potentials.expand(cliques)`` (zeros when ``None``) computed in numpy, bit for bit as mbi does it.

    mbi's ``CliqueVector.expand`` gives each new clique ``0 + f_1 + f_2 + ...`` over the old cliques it
    contains (``reverse_clique_mapping`` order), broadcast; IEEE additions in the same order give the same
    bits here. Expanding on the host keeps the compiled program's input structure that of the model being
    fitted, not of the warm start, so that a refit of the same structure reuses its program.
    """
    mbi = load_mbi()
    import jax.numpy as jnp
    from mbi.clique_utils import reverse_clique_mapping

    mapping = reverse_clique_mapping(cliques, [] if potentials is None else potentials.cliques, domain=dom)
    tables = {}
    for cl in cliques:
        target = dom.project(cl)
        out = np.zeros(target.shape, dtype=np.float64)
        for old in mapping[cl]:
            factor = potentials[old]
            attrs = list(factor.domain.attributes)
            perm = sorted(range(len(attrs)), key=lambda k: target.attributes.index(attrs[k]))
            values = np.transpose(np.asarray(factor.values, dtype=np.float64), perm)
            shape = [n if a in attrs else 1 for a, n in zip(target.attributes, target.shape, strict=True)]
            out = out + values.reshape(shape)
        tables[cl] = mbi.Factor(target, jnp.asarray(out))
    return mbi.CliqueVector(dom, cliques, tables)


#: mbi's ``CALLBACK_EVERY``: steps fused in one ``scan`` block of ``Estimator._multi_step``.
_BLOCK = 50


def _estimate_program(start: Any, loss_fn: Any, total: Any, blocks: Any, *, dom: Any, nodes: Any) -> Any:
    """Traced body of :func:`_run_estimate` (mbi's ``MirrorDescent`` without a fixed step size)."""
    import jax
    import jax.numpy as jnp
    from mbi import estimation, marginal_oracles

    est = estimation.MirrorDescent()
    state = est._init(dom, loss_fn, total, warm_start=start)
    # _step recomputes mu and the loss from the potentials; zeros here let XLA drop _init's oracle call.
    state = state._replace(mu=jax.tree.map(jnp.zeros_like, state.mu), loss=jnp.zeros_like(state.loss))

    def block(_: Any, s: Any) -> Any:
        def step(x: Any, _: Any) -> Any:
            return est._step(x, loss_fn, total, ()), None

        return jax.lax.scan(step, s, None, length=_BLOCK)[0]

    state = jax.lax.fori_loop(0, blocks, block, state)
    potentials = state.potentials
    return potentials, marginal_oracles.message_passing_stable(potentials.expand(nodes), total)
