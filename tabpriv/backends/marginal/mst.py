"""``mst``: the MST mechanism, written from the paper, under replace-one.

McKenna, Miklau & Sheldon (2021), "Winning the NIST Contest: A scalable and general approach to
differentially private synthetic data" (J. Privacy and Confidentiality 11(3)).

1. Measure every one-way marginal (a third of the zCDP budget, shared equally).
2. Select a maximum spanning tree of two-way marginals privately: Kruskal's algorithm in which each edge
   is chosen by the exponential mechanism among the pairs that join two components, scored by the L1
   error ``||M_ij(D) - M_ij(independent model)||_1`` of the product of the noisy one-way marginals
   (a third of the budget, shared equally over the ``c - 1`` choices; replace-one score sensitivity 2).
3. Measure the chosen pairs (the last third, shared equally), fit mbi's graphical model to all the
   measurements and sample from it.

Replace-one changes the papers' constants: the L2 sensitivity of a count marginal is ``sqrt(2)`` (cost
``1/sigma^2`` instead of ``1/(2 sigma^2)``) and the selection score's is 2 (instead of 1). The paper's
domain compression of rare categories is not applied (the domain stays the schema's).
"""

from __future__ import annotations

import itertools
import math
from typing import Any, ClassVar

import numpy as np

from tabpriv.accounting.marginals import (
    ZCDPFilter,
    calibrate_selection,
    l1_score_sensitivity,
    measurement_sigma,
)
from tabpriv.backends._params import Constraint, Interval
from tabpriv.backends.base import FitContext
from tabpriv.backends.marginal.common import DEFAULT_MAX_CELLS, MarginalBackend, MarginalNoise, target_index
from tabpriv.backends.marginal.domain import DEFAULT_BINS, DEFAULT_MAX_LEVELS, MarginalDomain
from tabpriv.backends.marginal.measure import Clique, private_select
from tabpriv.backends.marginal.model import Measurement, estimate
from tabpriv.transformers.encoded import DEFAULT_CHUNK_BYTES

__all__ = ["MSTBackend", "allowed_pairs", "spanning_rounds"]


def allowed_pairs(domain: MarginalDomain, max_cells: int) -> list[Clique]:
    """The pairs small enough to measure (public: from the domain sizes only)."""
    return [p for p in itertools.combinations(range(len(domain)), 2) if domain.cells(p) <= max_cells]


def _find(parent: list[int], i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


def spanning_rounds(n_columns: int, pairs: list[Clique]) -> int:
    """How many edges a spanning forest of the allowed pairs has (the number of selections; public)."""
    parent = list(range(n_columns))
    rounds = 0
    for a, b in pairs:
        ra, rb = _find(parent, a), _find(parent, b)
        if ra != rb:
            parent[ra] = rb
            rounds += 1
    return rounds


class MSTBackend(MarginalBackend):
    """MST (McKenna et al. 2021): one-way marginals + a private maximum spanning tree of pairs, on mbi 2.0.

    Args:
        max_levels: Integer columns with at most this many values keep one level per value.
        bins: Bins of the other numbers without a schema ``bins`` hint.
        max_cells: Largest pair (cells) that may be selected; a single column above it is refused.
        iters: Mirror-descent iterations of the model fit.
        chunk_bytes: Memory target of one encoded chunk in the data pass.
        sampling: "stratified" (default) or "iid" (see :class:`MarginalBackend`).
        target: Public name of a column (a classifier's target) whose pairs' selection scores are
            multiplied by ``target_weight`` (the score sensitivity grows to ``2 target_weight``), or
            ``None``. Stated in the report.
        target_weight: The weight of pairs that contain ``target``.

    """

    name = "mst"
    summary = (
        "MST (McKenna et al. 2021): noisy 1-way marginals + private spanning tree of 2-way marginals "
        "(discrete Gaussian, OpenDP), graphical model on mbi 2.0."
    )
    quick_params: ClassVar[dict[str, Any]] = {"iters": 100}
    _parameter_constraints: ClassVar[dict[str, list[Constraint | None]]] = {
        **MarginalBackend._shared_constraints,
        "target_weight": [Interval(float, 1, None, closed="left"), Interval(int, 1, None, closed="left")],
    }

    def __init__(
        self,
        *,
        max_levels: int = DEFAULT_MAX_LEVELS,
        bins: int = DEFAULT_BINS,
        max_cells: int = DEFAULT_MAX_CELLS,
        iters: int = 1500,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        sampling: str = "stratified",
        target: str | None = None,
        target_weight: float = 4.0,
    ) -> None:
        self.target = target
        self.target_weight = target_weight
        self.max_levels = max_levels
        self.bins = bins
        self.max_cells = max_cells
        self.iters = iters
        self.chunk_bytes = chunk_bytes
        self.sampling = sampling

    def _mechanism_text(self) -> str:
        tgt = f" (pairs with target {self.target!r} weighted x{self.target_weight:g})" if self.target else ""
        return (
            "MST (McKenna-Miklau-Sheldon 2021): discrete Gaussian on every one-way marginal, exponential-"
            f"mechanism spanning-tree selection of two-way marginals{tgt}, discrete Gaussian on the "
            "selected pairs"
        )

    def _weight(self, domain: MarginalDomain, pair: Clique) -> float:
        t = target_index(domain, self.target)
        return float(self.target_weight) if t is not None and t in pair else 1.0

    def _schedule(self, domain: MarginalDomain, n_rows: int, rho: float) -> dict[str, Any]:
        c = len(domain)
        t = target_index(domain, self.target)
        sens = l1_score_sensitivity(float(self.target_weight) if t is not None and c > 1 else 1.0)
        rounds = spanning_rounds(c, allowed_pairs(domain, self.max_cells))
        if rounds == 0:
            return {"sigma_one_way": measurement_sigma(rho / c), "rounds": 0, "n_columns": c}
        third = rho / 3.0
        sel_rho = third / rounds
        scale, cost = calibrate_selection(sel_rho, sens)
        return {
            "n_columns": c,
            "rounds": rounds,
            "sigma_one_way": measurement_sigma(third / c),
            "sigma_two_way": measurement_sigma(third / rounds),
            "selection_scale": scale,
            "selection_rho": cost,
            "score_sensitivity": sens,
            "target": self.target or "",
            "target_weight": float(self.target_weight) if t is not None else 1.0,
        }

    def _candidates(self, domain: MarginalDomain, schedule: dict[str, Any]) -> list[Clique]:
        ones = [(i,) for i in range(len(domain))]
        return ones + (allowed_pairs(domain, self.max_cells) if schedule["rounds"] else [])

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
        c = len(domain)
        total_steps = c + 2 * int(sch["rounds"]) + 1
        step = 0
        measurements: list[Measurement] = []
        for i in range(c):
            measurements.append(
                self.measure((i,), counts, sch["sigma_one_way"], ledger, context, f"one-way {i}")
            )
            step += 1
            context.report(step, total_steps, f"measured one-way marginal {domain.names[i]}")
        if sch["rounds"]:
            # The independent model of the noisy one-way marginals (post-processing).
            probs = []
            for m in measurements:
                p = np.clip(m.noisy.astype(np.float64), 0.0, None)
                probs.append(p / p.sum() if p.sum() > 0 else np.full(p.size, 1.0 / p.size))
            pairs = allowed_pairs(domain, self.max_cells)
            scores: dict[Clique, float] = {
                (a, b): self._weight(domain, (a, b))
                * float(np.abs(counts[(a, b)] - n_rows * np.outer(probs[a], probs[b]).ravel()).sum())
                for a, b in pairs
            }
            parent = list(range(c))
            for r in range(int(sch["rounds"])):
                cands = [p for p in pairs if _find(parent, p[0]) != _find(parent, p[1])]
                ledger.charge(sch["selection_rho"], f"select pair {r + 1}")
                k = private_select(
                    np.array([scores[p] for p in cands]), sch["selection_scale"], context, f"tree {r}"
                )
                a, b = cands[k]
                parent[_find(parent, a)] = _find(parent, b)
                measurements.append(
                    self.measure((a, b), counts, sch["sigma_two_way"], ledger, context, f"pair {a},{b}")
                )
                step += 2
                context.report(
                    step, total_steps, f"selected and measured {domain.names[a]} x {domain.names[b]}"
                )
        context.report(step, total_steps, f"fitting the graphical model ({self.iters} iterations)")
        model = estimate(domain, measurements, n_rows, iters=self.iters)
        context.report(total_steps, total_steps, "fitted the graphical model")
        if not math.isclose(ledger.spent, noise.rho, rel_tol=1e-6):
            # A spanning forest always has exactly `rounds` edges, so this cannot happen; say so if it does.
            raise RuntimeError(f"MST spent rho={ledger.spent} of the planned {noise.rho}.")
        return measurements, model
