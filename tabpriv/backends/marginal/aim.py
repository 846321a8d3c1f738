"""``aim``: the AIM mechanism, written from the paper, under replace-one.

McKenna, Mullins, Sheldon & Miklau (2022), "AIM: An Adaptive and Iterative Mechanism for
Differentially Private Synthetic Data" (PVLDB 15(11), arXiv 2201.12677).

Workload ``W``: every ``degree``-way marginal (default all pairs), each with weight 1; with a public
``target`` column, every marginal that contains the target gets weight ``target_weight`` and the 3-way
marginals ``(target, i, j)`` join the workload (when ``degree`` is 2 and they fit ``max_cells``), so
that the release keeps what a classifier of the target needs. Candidates are the workload's downward
closure; candidate ``r`` has weight ``w_r = sum_{s in W} c_s |r ∩ s|``.

Rounds (the paper's Algorithm 1, replace-one constants): all one-way marginals are measured first;
then, while budget is left, a candidate is chosen by the exponential mechanism on
``w_r (||M_r(D) - M_r(model)||_1 - sqrt(2/pi) sigma n_r)`` (sensitivity ``2 max w``) among those
whose junction tree fits ``max_model_cells * rho_used / rho``, measured with the discrete Gaussian,
and the model is re-estimated (warm start). When the model's answer on the measured marginal moved
less than the expected noise, ``sigma`` halves and the selection epsilon doubles (budget annealing);
the last round spends exactly what is left. ``rounds`` caps the initial schedule at ``16 c`` as in
the paper (``T``), with ``alpha = 0.9`` of each round's cost on measurement.

Every round's cost is charged to a :class:`~tabpriv.accounting.marginals.ZCDPFilter` holding the paid
total; the schedule adapts to earlier noisy outputs only (fully adaptive zCDP composition).
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
import time
from typing import Any, ClassVar

import numpy as np

from tabpriv.accounting.marginals import (
    ZCDPFilter,
    calibrate_selection,
    l1_score_sensitivity,
    measurement_rho,
    measurement_sigma,
)
from tabpriv.backends._params import Constraint, Interval, Options
from tabpriv.backends.base import FitContext
from tabpriv.backends.marginal.common import (
    DEFAULT_MAX_CELLS,
    MarginalBackend,
    MarginalNoise,
    ModelTooLargeError,
    target_index,
)
from tabpriv.backends.marginal.domain import DEFAULT_BINS, DEFAULT_MAX_LEVELS, MarginalDomain
from tabpriv.backends.marginal.measure import Clique, private_select
from tabpriv.backends.marginal.model import (
    ChainSampler,
    Measurement,
    coarse_cells,
    coarse_groups,
    coarsen,
    estimate,
    junction_tree_cells,
)
from tabpriv.errors import PrivacyParameterError
from tabpriv.transformers.encoded import DEFAULT_CHUNK_BYTES

__all__ = ["AIMBackend", "workload"]

logger = logging.getLogger(__name__)

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def workload(
    domain: MarginalDomain, degree: int, target: int | None, target_weight: float, max_cells: int
) -> dict[Clique, float]:
    """The weighted workload (public): every ``degree``-way marginal, plus the target's triples."""
    c = len(domain)
    w: dict[Clique, float] = {}
    for cl in itertools.combinations(range(c), min(degree, c)):
        if domain.cells(cl) <= max_cells:
            w[cl] = target_weight if target is not None and target in cl else 1.0
    if target is not None and degree == 2 and c >= 3:
        others = [i for i in range(c) if i != target]
        for i, j in itertools.combinations(others, 2):
            cl = tuple(sorted((target, i, j)))
            if domain.cells(cl) <= max_cells:
                w[cl] = target_weight
    return w


def _closure(work: dict[Clique, float]) -> dict[Clique, float]:
    """Downward closure with AIM's weights ``w_r = sum_s c_s |r ∩ s|`` (public)."""
    cands: set[Clique] = set()
    for s in work:
        for k in range(1, len(s) + 1):
            cands.update(itertools.combinations(s, k))
    return {r: float(sum(cs * len(set(r) & set(s)) for s, cs in work.items())) for r in sorted(cands)}


class AIMBackend(MarginalBackend):
    """AIM (McKenna et al. 2022): adaptive, workload-aware select-measure rounds, on mbi 2.0.

    Args:
        degree: Workload marginals' size (2 or 3).
        target: Public name of a column whose marginals are weighted up (a classifier's target), or
            ``None``. Stated in the report.
        target_weight: Weight of workload marginals that contain the target.
        rounds: The initial number of rounds ``T`` of the schedule (``None``: ``16 c``, the paper's).
        alpha: Share of each round's cost spent on measurement (the rest on selection).
        max_model_cells: Largest junction tree (cells; 8 bytes each) the final model may have.
        round_iters: Mirror-descent iterations of each round's warm-started re-estimate.
        iters: Mirror-descent iterations of the final model fit.
        fast_compile: Compile the model fits with XLA's cheaper CPU options (no LLVM optimisation;
            ``model.FAST_COMPILE_OPTIONS``): same mechanism and privacy, results equal to the
            default build's up to floating-point rounding; ``TABPRIV_FAST_COMPILE=0`` turns it off.
            Off by default: it saves CPU on small models but the whole Adult fit ran slower with it
            (824.9 against 721.6 CPU-s; docs/marginal.md, "Speed on CPU").
        max_levels, bins, max_cells, chunk_bytes, sampling: As for every marginal backend.

    """

    name = "aim"
    summary = (
        "AIM (McKenna et al. 2022): adaptive workload-aware selection of noisy marginals (discrete "
        "Gaussian, OpenDP), graphical model on mbi 2.0. The default release."
    )
    quick_params: ClassVar[dict[str, Any]] = {"iters": 100, "round_iters": 25, "rounds": 6}
    _parameter_constraints: ClassVar[dict[str, list[Constraint | None]]] = {
        **MarginalBackend._shared_constraints,
        "degree": [Options((2, 3))],
        "target_weight": [Interval(float, 0, None, closed="neither"), Interval(int, 1, None, closed="left")],
        "rounds": [None, Interval(int, 1, None, closed="left")],
        "alpha": [Interval(float, 0, 1, closed="neither")],
        "max_model_cells": [Interval(int, 2, None, closed="left")],
        "round_iters": [Interval(int, 1, None, closed="left")],
        "coarse_levels": [None, Interval(int, 2, None, closed="left")],
        "fast_compile": [Options((True, False))],
    }

    def __init__(
        self,
        *,
        degree: int = 2,
        target: str | None = None,
        target_weight: float = 4.0,
        rounds: int | None = None,
        alpha: float = 0.9,
        max_model_cells: int = 2_500_000,
        round_iters: int = 300,
        iters: int = 1500,
        coarse_levels: int | None = 16,
        fast_compile: bool = False,
        max_levels: int = DEFAULT_MAX_LEVELS,
        bins: int = DEFAULT_BINS,
        max_cells: int = DEFAULT_MAX_CELLS,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        sampling: str = "stratified",
    ) -> None:
        self.degree = degree
        self.target = target
        self.target_weight = target_weight
        self.rounds = rounds
        self.alpha = alpha
        self.max_model_cells = max_model_cells
        self.round_iters = round_iters
        self.iters = iters
        self.coarse_levels = coarse_levels
        self.fast_compile = fast_compile
        self.max_levels = max_levels
        self.bins = bins
        self.max_cells = max_cells
        self.chunk_bytes = chunk_bytes
        self.sampling = sampling

    def _mechanism_text(self) -> str:
        tgt = f", target {self.target!r} weighted x{self.target_weight:g}" if self.target else ""
        return (
            "AIM (McKenna-Mullins-Sheldon-Miklau 2022): discrete Gaussian on every one-way marginal, then "
            f"adaptive rounds of exponential-mechanism selection + discrete Gaussian measurement "
            f"(workload: all {self.degree}-way marginals{tgt})"
        )

    def _schedule(self, domain: MarginalDomain, n_rows: int, rho: float) -> dict[str, Any]:
        c = len(domain)
        target = target_index(domain, self.target)
        rounds = self.rounds if self.rounds is not None else 16 * c
        sigma0 = measurement_sigma(self.alpha * rho / rounds)
        sel_rho0 = (1.0 - self.alpha) * rho / rounds
        work = workload(domain, self.degree, target, float(self.target_weight), self.max_cells)
        if not work:
            raise PrivacyParameterError(
                f"No {self.degree}-way marginal of this table fits max_cells={self.max_cells}; raise "
                "max_cells or use the 'mst' backend."
            )
        one_way = sum(domain.sizes)
        if one_way > self.max_model_cells:
            raise ModelTooLargeError(
                f"The one-way marginals alone have {one_way} cells, more than aim's model-size limit "
                f"max_model_cells={self.max_model_cells}; raise max_model_cells, declare fewer categories "
                "or 'bins' in the schema, or use the 'mst' backend."
            )
        if c * measurement_rho(sigma0) >= rho * (1.0 - 1e-9):
            # c alpha / T >= 1: the one-way marginals would leave nothing for the first round
            raise PrivacyParameterError(
                f"rounds={rounds} is too few for {c} one-way marginals at alpha={self.alpha}; pass "
                f"rounds >= {c}."
            )
        return {
            "n_columns": c,
            "rounds": rounds,
            "alpha": self.alpha,
            "sigma_initial": sigma0,
            "selection_rho_initial": sel_rho0,
            "workload_marginals": len(work),
            "degree": self.degree,
            "target": self.target or "",
            "target_weight": float(self.target_weight),
            "max_model_cells": self.max_model_cells,
            "coarse_levels": self.coarse_levels or 0,
            "score_sensitivity": l1_score_sensitivity(max(_closure(work).values())),
        }

    def _workload(self, domain: MarginalDomain) -> dict[Clique, float]:
        return workload(
            domain, self.degree, target_index(domain, self.target), float(self.target_weight), self.max_cells
        )

    def _candidates(self, domain: MarginalDomain, schedule: dict[str, Any]) -> list[Clique]:
        return list(_closure(self._workload(domain)))

    def _select_measure(
        self,
        domain: MarginalDomain,
        counts: dict[Clique, np.ndarray],
        n_rows: int,
        noise: MarginalNoise,
        ledger: ZCDPFilter,
        context: FitContext,
    ) -> tuple[list[Measurement], Any]:
        sch = noise.schedule
        rho = noise.rho
        c = len(domain)
        weights = _closure(self._workload(domain))
        sens = float(sch["score_sensitivity"])
        sigma = float(sch["sigma_initial"])
        sel_rho = float(sch["selection_rho_initial"])
        measurements = [self.measure((i,), counts, sigma, ledger, context, f"one-way {i}") for i in range(c)]
        model = estimate(domain, measurements, n_rows, iters=self.round_iters, fast_compile=self.fast_compile)
        chain = ChainSampler.from_model(model, domain)
        cliques: list[Clique] = [(i,) for i in range(c)]
        known: dict[Clique, np.ndarray] = {}  # model answers already computed on the current model
        t = 0
        final = False
        t0 = time.perf_counter()
        while not final:
            t += 1
            left = ledger.remaining
            if left <= 2.0 * (measurement_rho(sigma) + sel_rho):
                # Last round: spend exactly what is left (alpha on the measurement).
                sigma = measurement_sigma(self.alpha * left)
                sel_rho = (1.0 - self.alpha) * left
                final = True
            scale, sel_cost = calibrate_selection(sel_rho, sens)
            limit = self.max_model_cells * (rho - left + measurement_rho(sigma) + sel_cost) / rho
            cands = self._options(domain, self._affordable(domain, cliques, weights, limit))
            scores = np.empty(len(cands))
            # every candidate's model answer in one walk (bit for bit the per-clique elimination); the
            # clique measured last round was answered on this model already (``after`` below)
            estimates = _model_counts_all(chain, model, [r for r, _ in cands], domain, n_rows, known)
            for k, (r, coarse) in enumerate(cands):
                err = float(np.abs(coarsen(counts[r] - estimates[r], r, domain, coarse)).sum())
                scores[k] = weights[r] * (err - _SQRT_2_OVER_PI * sigma * coarse_cells(domain, r, coarse))
            ledger.charge(sel_cost, f"select round {t}")
            r, coarse = cands[private_select(scores, scale, context, f"round {t}")]
            answer = coarsen(counts[r], r, domain, coarse)
            label = f"round {t} {r}" + (f" coarse={coarse}" if coarse else "")
            m = self.measure(r, {r: answer}, sigma, ledger, context, label)
            measurements.append(dataclasses.replace(m, coarse=coarse))
            before = coarsen(estimates[r], r, domain, coarse)  # the model's answer before re-estimation
            if r not in cliques:
                cliques.append(r)
            model = estimate(
                domain,
                measurements,
                n_rows,
                iters=self.round_iters,
                warm_start=model,
                release_compiled=t % 5 == 0,
                fast_compile=self.fast_compile,
            )
            chain = ChainSampler.from_model(model, domain)
            known = {r: _model_counts(chain, model, r, domain, n_rows)}  # the next round's model, too
            after = coarsen(known[r], r, domain, coarse)
            moved = float(np.abs(after - before).sum())
            if not final and moved <= _SQRT_2_OVER_PI * sigma * coarse_cells(domain, r, coarse):
                sigma /= 2.0
                sel_rho *= 4.0
            used = rho - ledger.remaining
            context.report(
                int(1000 * used / rho), 1000,
                f"AIM round {t}: measured {' x '.join(domain.names[i] for i in r)} ({used / rho:.0%} of rho)",
            )  # fmt: skip
        logger.debug("AIM: %d rounds in %.1f s", t, time.perf_counter() - t0)
        self.rounds_run_ = t
        context.report(1000, 1000, f"fitting the final model ({self.iters} iterations)")
        # Same measurements as the last round: the same compiled program, run for more iterations.
        model = estimate(
            domain, measurements, n_rows, iters=self.iters, warm_start=model, fast_compile=self.fast_compile
        )
        return measurements, model

    def _options(self, domain: MarginalDomain, cands: list[Clique]) -> list[tuple[Clique, int | None]]:
        """Each candidate as itself and, where it has a wide ordered column, coarsened (public)."""
        out: list[tuple[Clique, int | None]] = []
        for r in cands:
            out.append((r, None))
            k = self.coarse_levels
            if k is not None and any(g is not None for g in coarse_groups(domain, r, k)):
                out.append((r, k))
        return out

    def _affordable(
        self, domain: MarginalDomain, cliques: list[Clique], weights: dict[Clique, float], limit: float
    ) -> list[Clique]:
        """Candidates whose addition keeps the junction tree within ``limit`` cells (public)."""
        out = []
        covered = [set(cl) for cl in cliques]
        for r in weights:
            if any(set(r) <= cl for cl in covered):
                out.append(r)  # already inside a measured clique: the model does not grow
                continue
            if junction_tree_cells(domain, [*cliques, r]) <= limit:
                out.append(r)
        if not out:  # the smallest candidates still fit the final limit of the paper's rule
            out = [min(weights, key=lambda r: domain.cells(r))]
        return out


def _model_counts(
    chain: ChainSampler, model: Any, clique: Clique, domain: MarginalDomain, n_rows: int
) -> np.ndarray:
    """The model's counts on ``clique`` (exact: variable elimination on the chain; mbi as a fallback)."""
    p = chain.marginal(clique, domain.sizes)
    if p is None:
        from tabpriv.backends.marginal.model import model_marginal

        q = model_marginal(model, clique)
        return q * (n_rows / max(q.sum(), 1e-300))
    return p * n_rows


def _model_counts_all(
    chain: ChainSampler,
    model: Any,
    cliques: list[Clique],
    domain: MarginalDomain,
    n_rows: int,
    known: dict[Clique, np.ndarray] | None = None,
) -> dict[Clique, np.ndarray]:
    """:func:`_model_counts` of every clique, bit for bit: one shared walk (``ChainSampler.marginals``).

    ``known`` holds answers already computed on this same ``chain`` (reused, not recomputed).
    """
    out = dict(known or {})
    todo = [r for r in dict.fromkeys(cliques) if r not in out]
    probs = chain.marginals(todo, domain.sizes)
    for r in todo:
        p = probs[r]
        if p is None:
            from tabpriv.backends.marginal.model import model_marginal

            q = model_marginal(model, r)
            out[r] = q * (n_rows / max(q.sum(), 1e-300))
        else:
            out[r] = p * n_rows
    return out
