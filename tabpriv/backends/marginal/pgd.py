"""``pgd``: PrivPGD, noisy one- and two-way marginals fitted by particle gradient descent.

Donhauser, Lokna, Sanyal, Boedihardjo, Hönig & Yang (ICML 2024), "Privacy-preserving data release
leveraging optimal transport and particle gradient descent" (arXiv 2401.17823), written for tabpriv
under **replace-one** adjacency. See ``docs/pgd.md`` for the algorithm, the choices and their figures.

1. **Measure** (the shared code of ``mst``/``aim``): one streaming pass
   (:func:`~tabpriv.backends.marginal.measure.exact_marginals`) counts every two-way marginal of at
   most ``max_cells`` cells (the paper's workload) and the one-way marginal of any column left in no
   pair (see :func:`workload`); each gets OpenDP's discrete Gaussian
   (:func:`~tabpriv.backends.marginal.measure.noisy_counts`). The zCDP budget is split in proportion
   to public weights: 1 per marginal, ``target_weight`` for a marginal that contains the public
   ``target`` column (its noise scale is then ``1/sqrt(target_weight)`` times the others'). There is
   no selection step: the workload is fixed by the schema.
2. **Post-process** the noisy marginals (no privacy cost; :func:`consistent_targets`): consistent
   one-way margins from all of them, each marginal projected onto the probability simplex and raked
   to those margins (``n`` is public).
3. **Generate** (no privacy cost): ``n_particles`` points of ``[0, 1]^d`` are fitted by Adam so that
   their projections match every post-processed marginal in sliced 2-Wasserstein distance
   (:mod:`~tabpriv.backends.marginal.particles`, torch, ``cuda`` when the fit context says so). A
   particle decodes to one level code per column; the shared discretisation decodes those to the
   schema's values.

Memory: the particles (``n_particles x columns``), the noisy counts, and the targets' supports (at
most ``min(cells, n_particles)`` atoms per marginal): never a tensor of the size of a domain product.
"""

from __future__ import annotations

import itertools
import math
import time
from typing import Any, ClassVar

import numpy as np

from tabpriv._random import derive_seed
from tabpriv.accounting.marginals import ZCDPFilter, measurement_sigma
from tabpriv.backends._params import Constraint, Interval, Options
from tabpriv.backends.base import FitContext, PrivacyDetails
from tabpriv.backends.marginal.common import DEFAULT_MAX_CELLS, MarginalBackend, MarginalNoise, target_index
from tabpriv.backends.marginal.domain import DEFAULT_BINS, DEFAULT_MAX_LEVELS, MarginalDomain
from tabpriv.backends.marginal.measure import Clique, exact_marginals
from tabpriv.backends.marginal.model import Measurement
from tabpriv.transformers.encoded import DEFAULT_CHUNK_BYTES, EncodedTable

__all__ = ["PGDBackend", "consistent_targets", "project_to_simplex", "workload"]

#: pgd's levels: one per value up to 100 values, as mst/aim (the paper bins numbers into 32; measured
#: on Adult: 32 spreads hours-per-week = 40 over a 3-value bin, 1-way TVD of that column 0.07).
PGD_MAX_LEVELS = DEFAULT_MAX_LEVELS
PGD_BINS = DEFAULT_BINS


def workload(domain: MarginalDomain, max_cells: int) -> list[Clique]:
    """Every pair of at most ``max_cells`` cells, then the one-way marginal of each column in none (public).

    The paper's workload is all two-way marginals. A column whose pairs are all above ``max_cells``
    (or the only column) is measured alone. One-way marginals of columns already in a pair are left
    out on purpose: with them in the loss, the particles' one-dimensional positions lock early and
    the pairs stop improving (measured: 3 columns, exact marginals, 2,000 particles: two-way TVD
    0.17-0.35 with them, 0.004-0.018 without).
    """
    pairs = [p for p in itertools.combinations(range(len(domain)), 2) if domain.cells(p) <= max_cells]
    covered = {i for p in pairs for i in p}
    return pairs + [(i,) for i in range(len(domain)) if i not in covered]


def project_to_simplex(y: np.ndarray) -> np.ndarray:
    """The Euclidean projection of ``y`` onto ``{p >= 0, sum p = 1}`` (Held-Wolfe-Crowder / Duchi 2008)."""
    v = np.asarray(y, dtype=np.float64).ravel()
    u = np.sort(v)[::-1]
    css = np.cumsum(u) - 1.0
    ind = np.arange(1, v.size + 1)
    k = int(np.nonzero(u - css / ind > 0)[0][-1])
    tau = css[k] / (k + 1)
    return np.maximum(v - tau, 0.0)


def consistent_targets(
    sizes: tuple[int, ...], measurements: list[Measurement], n_rows: int, rounds: int = 10
) -> list[np.ndarray]:
    """Probability targets from the noisy counts: consistent one-way margins, then simplex projections.

    Post-processing only (tabpriv's; the paper projects each marginal alone):

    1. every column's one-way margin is the inverse-variance weighted mean of the margins that the raw
       noisy counts of its marginals imply (unbiased: a margin summing ``k`` cells has noise variance
       ``k sigma^2`` per level), projected onto the simplex;
    2. every marginal is ``noisy / n`` projected onto the simplex, then raked (``rounds`` of iterative
       proportional fitting) to those margins, so that all targets agree on every column.
    """
    n = max(int(n_rows), 1)
    acc: dict[int, list[tuple[np.ndarray, float]]] = {j: [] for j in range(len(sizes))}
    for m in measurements:
        grid = m.noisy.astype(np.float64).reshape([sizes[i] for i in m.clique])
        for k, j in enumerate(m.clique):
            other = [a for a in range(len(m.clique)) if a != k]
            cells = int(np.prod([sizes[m.clique[a]] for a in other], dtype=np.int64))
            acc[j].append((grid.sum(axis=tuple(other)) / n, 1.0 / (m.sigma**2 * max(cells, 1))))
    margin: dict[int, np.ndarray] = {}
    for j, items in acc.items():
        if items:
            w = np.array([v for _, v in items])
            margin[j] = project_to_simplex(sum(e * v for e, v in items) / w.sum())
    out = []
    for m in measurements:
        p = project_to_simplex(m.noisy.astype(np.float64) / n)
        if len(m.clique) == 2:
            a, b = m.clique
            g = p.reshape(sizes[a], sizes[b])
            for _ in range(rounds):
                rows = g.sum(1, keepdims=True)
                g = np.where(rows > 0, g * (margin[a][:, None] / np.maximum(rows, 1e-300)), g)
                cols = g.sum(0, keepdims=True)
                g = np.where(cols > 0, g * (margin[b][None, :] / np.maximum(cols, 1e-300)), g)
            p = g.ravel() / max(g.sum(), 1e-300)
        else:
            p = margin[m.clique[0]]
        out.append(p)
    return out


class PGDBackend(MarginalBackend):
    """PrivPGD (Donhauser et al. 2024): all noisy 2-way marginals, particle gradient descent.

    Args:
        n_particles: Number of particles fitted (sampling ``n`` rows takes each particle
            ``n // n_particles`` times and a random subset of the rest).
        steps: Adam steps of the particle fit.
        lr: Initial learning rate (coordinates in ``[0, 1]``).
        lr_decay: Final learning rate over initial (geometric decay).
        projections: Random directions per two-way marginal per step.
        batch: Marginals per step (``0``: all of them every step).
        mask: Share of gradient coordinates zeroed at random each step (the paper's ``p_mask``).
        init: Particle initialisation: ``"tree"`` (drawn from the maximum-mutual-information spanning
            tree of the post-processed pairs), ``"marginals"`` (each column from its one-way margin) or
            ``"uniform"`` (the paper's default).
        target: Public name of a column (a classifier's target) whose marginals get ``target_weight``
            times the others' share of the budget, or ``None``. Stated in the report.
        target_weight: The budget weight of marginals that contain ``target``.
        max_levels: Integer columns with at most this many values keep one level per value.
        bins: Bins of the other numbers without a schema ``bins`` hint.
        max_cells: Largest marginal (cells) measured: larger pairs are left out (public); a single
            column above it is refused.
        chunk_bytes: Memory target of one encoded chunk in the data pass.

    """

    framework = "torch"  # the particles run in torch
    name = "pgd"
    summary = (
        "PrivPGD (Donhauser et al. 2024): all noisy 2-way marginals (discrete Gaussian, OpenDP), "
        "particles fitted by sliced-Wasserstein gradient descent in torch (GPU when present)."
    )
    selects = False
    quick_params: ClassVar[dict[str, Any]] = {"n_particles": 1000, "steps": 60}
    _parameter_constraints: ClassVar[dict[str, list[Constraint | None]]] = {
        "n_particles": [Interval(int, 2, None, closed="left")],
        "steps": [Interval(int, 1, None, closed="left")],
        "lr": [Interval(float, 0, None, closed="neither")],
        "lr_decay": [Interval(float, 0, 1, closed="right")],
        "projections": [Interval(int, 1, None, closed="left")],
        "batch": [Interval(int, 0, None, closed="left")],
        "mask": [Interval(float, 0, 1, closed="left"), Options((0,))],
        "init": [Options(("tree", "marginals", "uniform"))],
        "target": MarginalBackend._shared_constraints["target"],
        "target_weight": [Interval(float, 1, None, closed="left"), Interval(int, 1, None, closed="left")],
        "max_levels": MarginalBackend._shared_constraints["max_levels"],
        "bins": MarginalBackend._shared_constraints["bins"],
        "max_cells": MarginalBackend._shared_constraints["max_cells"],
        "chunk_bytes": MarginalBackend._shared_constraints["chunk_bytes"],
    }

    def __init__(
        self,
        *,
        n_particles: int = 10_000,
        steps: int = 600,
        lr: float = 0.01,
        lr_decay: float = 0.1,
        projections: int = 4,
        batch: int = 0,
        mask: float = 0.0,
        init: str = "tree",
        target: str | None = None,
        target_weight: float = 4.0,
        max_levels: int = PGD_MAX_LEVELS,
        bins: int = PGD_BINS,
        max_cells: int = DEFAULT_MAX_CELLS,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    ) -> None:
        self.n_particles = n_particles
        self.steps = steps
        self.lr = lr
        self.lr_decay = lr_decay
        self.projections = projections
        self.batch = batch
        self.mask = mask
        self.init = init
        self.target = target
        self.target_weight = target_weight
        self.max_levels = max_levels
        self.bins = bins
        self.max_cells = max_cells
        self.chunk_bytes = chunk_bytes

    # -- the public plan ----------------------------------------------------------------------------
    def _mechanism_text(self) -> str:
        tgt = (
            f" (marginals with target {self.target!r} weighted x{self.target_weight:g})"
            if self.target
            else ""
        )
        return (
            "PrivPGD (Donhauser et al. 2024): discrete Gaussian on every two-way marginal (one-way for a "
            f"column in no pair){tgt}; particles fitted to them by sliced-Wasserstein gradient descent "
            "(post-processing)"
        )

    def _weights(self, domain: MarginalDomain, cliques: list[Clique]) -> list[float]:
        t = target_index(domain, self.target)
        return [float(self.target_weight) if t is not None and t in cl else 1.0 for cl in cliques]

    def _schedule(self, domain: MarginalDomain, n_rows: int, rho: float) -> dict[str, Any]:
        cliques = workload(domain, self.max_cells)
        weights = self._weights(domain, cliques)
        total = math.fsum(weights)
        t = target_index(domain, self.target)
        return {
            "n_columns": len(domain),
            "one_way_marginals": sum(len(cl) == 1 for cl in cliques),
            "two_way_marginals": sum(len(cl) == 2 for cl in cliques),
            "sigma": measurement_sigma(rho / total),
            "sigma_target": measurement_sigma(rho * float(self.target_weight) / total)
            if t is not None
            else 0.0,
            "target": self.target or "",
            "target_weight": float(self.target_weight) if t is not None else 1.0,
            "n_particles": int(self.n_particles),
            "steps": int(self.steps),
        }

    def _candidates(self, domain: MarginalDomain, schedule: dict[str, Any]) -> list[Clique]:
        return workload(domain, self.max_cells)

    def _select_measure(
        self,
        domain: MarginalDomain,
        counts: dict[Clique, np.ndarray],
        n_rows: int,
        noise: MarginalNoise,
        ledger: ZCDPFilter,
        context: FitContext,
    ) -> tuple[list[Measurement], Any]:
        """Measure the whole workload (no selection); the 'model' is fitted afterwards (particles)."""
        cliques = self._candidates(domain, noise.schedule)
        weights = self._weights(domain, cliques)
        total = math.fsum(weights)
        out = []
        for k, (cl, w) in enumerate(zip(cliques, weights, strict=True)):
            sigma = measurement_sigma(noise.rho * w / total)
            out.append(self.measure(cl, counts, sigma, ledger, context, f"pgd {cl}"))
            context.report(k + 1, len(cliques), f"measured {' x '.join(domain.names[i] for i in cl)}")
        if not math.isclose(ledger.spent, noise.rho, rel_tol=1e-6):
            # every marginal of the workload is charged once: this cannot happen; say so if it does
            raise RuntimeError(f"pgd spent rho={ledger.spent} of the planned {noise.rho}.")
        return out, None

    # -- fitting ------------------------------------------------------------------------------------
    def fit(self, table: EncodedTable, plan: Any, context: FitContext) -> PGDBackend:
        """One data pass, the noisy workload, then the particles (post-processing of the noisy counts)."""
        self.check_plan(plan, table)
        noise: MarginalNoise = plan.noise
        domain = self.domain_for(table.spans)
        t0 = time.perf_counter()
        candidates = self._candidates(domain, noise.schedule)
        context.report(0, None, f"reading the table for {len(candidates)} marginals")
        counts = exact_marginals(table, domain, candidates, chunk_bytes=self.chunk_bytes)
        t1 = time.perf_counter()
        ledger = ZCDPFilter(noise.rho)
        measurements, _ = self._select_measure(domain, counts, table.n_rows, noise, ledger, context)
        del counts
        t2 = time.perf_counter()
        self.measurements_ = measurements
        self.domain_ = domain
        self.n_rows_ = table.n_rows
        self.device_ = context.device
        self.particles_ = self._fit_particles(derive_seed(context.seed, "pgd-particles"), context)
        t3 = time.perf_counter()
        #: Wall seconds of each phase (public: n and the parameters are public).
        self.timings_ = {"data_pass_s": t1 - t0, "measure_s": t2 - t1, "particles_s": t3 - t2}
        self.rho_ = noise.rho
        self.rho_spent_ = ledger.spent
        self.epsilon_ = noise.epsilon
        self.delta_ = noise.delta
        self.accountant_ = noise.accountant
        self.sampler_text_ = noise.sampler
        self.schedule_ = dict(noise.schedule)
        self.hardened_ = not context.seeded
        self.fit_seconds_ = t3 - t0
        self.spans_ = table.spans
        return self

    def targets(self) -> list[np.ndarray]:
        """The post-processed marginals (see :func:`consistent_targets`): functions of released values."""
        return consistent_targets(self.domain_.sizes, self.measurements_, int(self.n_rows_))

    def _fit_particles(self, seed: int, context: FitContext | None = None) -> np.ndarray:
        from tabpriv.backends.marginal.particles import ParticleConfig, fit_particles

        config = ParticleConfig(
            n_particles=int(self.n_particles),
            steps=int(self.steps),
            lr=float(self.lr),
            lr_decay=float(self.lr_decay),
            projections=int(self.projections),
            batch=int(self.batch),
            mask=float(self.mask),
            init=str(self.init),
            seed=seed,
            device=getattr(self, "device_", "cpu"),
        )
        progress = None
        if context is not None:
            progress = context.report
        return fit_particles(
            config,
            self.domain_.sizes,
            [m.clique for m in self.measurements_],
            self.targets(),
            progress=progress,
        )

    def refit_model(self, iters: int | None = None, seed: int = 0, device: str = "cpu") -> np.ndarray:
        """Fit the particles again from the saved noisy marginals alone (post-processing; no table).

        Args:
            iters: Adam steps (``None``: the ``steps`` parameter). Change other hyper-parameters with
                ``set_params``-style attribute assignment before calling.
            seed: Seed of the public randomness of the new fit.
            device: Torch device of the new fit.

        Returns:
            The new particles (also kept as ``particles_``).

        """
        self.check_fitted()
        if iters is not None:
            self.steps = int(iters)
        self.validate_params()
        self.device_ = device
        self.particles_ = self._fit_particles(derive_seed(int(seed), "pgd-particles"))
        return self.particles_

    # -- sampling -----------------------------------------------------------------------------------
    def sample(self, n: int, seed: int) -> np.ndarray:
        """``n`` encoded rows: every particle ``n // n_particles`` times plus a random subset of the rest."""
        from tabpriv.backends.marginal.particles import decode_particles

        self.check_fitted()
        rng = np.random.default_rng(seed)
        m = self.particles_.shape[0]
        reps, rest = divmod(int(n), m)
        idx = np.concatenate([np.tile(np.arange(m), reps), rng.choice(m, rest, replace=False)])
        idx = idx[rng.permutation(idx.size)]
        codes = decode_particles(self.particles_[idx], self.domain_.sizes)
        return self.domain_.decode(codes, rng)

    # -- reporting ----------------------------------------------------------------------------------
    def privacy_details(self) -> PrivacyDetails:
        """State the mechanism, accountant, noise and coverage (no selection: the workload is fixed)."""
        self.check_fitted()
        not_covered = ["the number of rows n, treated as public (replace-one adjacency)"]
        covered = [
            "every noisy marginal, and the particles fitted to them and every table sampled from the "
            "particles (post-processing of the noisy marginals: no further privacy cost)",
            "the discretisation and the workload (from the public schema only; they cost nothing)",
            "the particle fit's randomness (initialisation, projection directions, batches) is public, "
            "from a seeded torch generator; it reads no row and spends nothing",
        ]
        if self.hardened_:
            covered.append(
                "floating-point attacks on the noise sampler (Mironov 2012): counts get OpenDP's exact "
                "discrete Gaussian (hardened)"
            )
            not_covered.append(
                "timing side channels of the sampler (OpenDP's samplers are not constant-time)"
            )
        else:
            not_covered.append("side channels: seeded research run, float64 sampler on the seeded stream")
        return PrivacyDetails(
            mechanism=self._mechanism_text(),
            adjacency="replace-one",
            accountant=self.accountant_,
            noise={
                "rho": self.rho_,
                "rho_spent": self.rho_spent_,
                "sampler": self.sampler_text_,
                "measured_marginals": len(self.measurements_),
                "sigmas": sorted({round(m.sigma, 6) for m in self.measurements_}),
                **{k: v for k, v in self.schedule_.items() if isinstance(v, int | float | str | bool)},
            },
            covered=covered,
            not_covered=not_covered,
            extra={
                "hardened_against_floating_point_attacks": self.hardened_,
                "selected_marginals": self.selected_marginals(),
                "discretisation": self.domain_.to_list(),
            },
        )

    # -- persistence --------------------------------------------------------------------------------
    def get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Noisy measurements and particles (arrays); figures and cliques (metadata)."""
        self.check_fitted()
        arrays, meta = self.release_state()
        arrays["particles"] = np.ascontiguousarray(self.particles_, dtype=np.float32)
        return arrays, meta

    def set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        """Restore from :meth:`get_state` output (the spans are set by the loader first)."""
        self.restore_release(arrays, meta)
        self.particles_ = np.asarray(arrays["particles"], dtype=np.float32)
        self.device_ = "cpu"
