"""What ``mst`` and ``aim`` share: planning in zCDP, the data pass, generation, sampling and saving.

A subclass implements :meth:`MarginalBackend._schedule` (the public noise plan: pure, from the spans,
the row count and the budget) and :meth:`MarginalBackend._select_measure` (the private rounds, charged
to a :class:`~tabpriv.accounting.marginals.ZCDPFilter` that holds exactly the paid total).
"""

from __future__ import annotations

import logging
import math
import time
from abc import abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from tabpriv.accounting.marginals import MarginalBudget, ZCDPFilter, measurement_rho
from tabpriv.backends._params import Constraint, Interval, Options, Satisfies
from tabpriv.backends.base import Backend, FitContext, PlannedSpend, PrivacyDetails, PrivacyPlan
from tabpriv.backends.marginal.domain import MarginalDomain
from tabpriv.backends.marginal.measure import (
    Clique,
    exact_marginals,
    noisy_counts,
    sampler_text,
    selection_text,
)
from tabpriv.backends.marginal.model import ChainSampler, Measurement, estimate
from tabpriv.budget import PrivacyBudget
from tabpriv.errors import DataValidationError, PrivacyParameterError
from tabpriv.transformers.encoded import ColumnSpan, EncodedTable

__all__ = ["MarginalBackend", "MarginalNoise", "ModelTooLargeError", "target_index"]

logger = logging.getLogger(__name__)

#: Default largest marginal (cells) a marginal backend measures or a column may have.
DEFAULT_MAX_CELLS = 1_000_000


def target_index(domain: MarginalDomain, target: str | None) -> int | None:
    """The column index of a public ``target`` name (``None`` for none); refuses a non-column."""
    if target is None:
        return None
    if target not in domain.names:
        raise PrivacyParameterError(
            f"target={target!r} is not a column of the table; the columns are {', '.join(domain.names)}. "
            "Pass one of them, or target=None."
        )
    return domain.names.index(target)


class ModelTooLargeError(DataValidationError):
    """The schema's domain does not fit the marginal backend's model-size limit."""


@dataclass(frozen=True)
class MarginalNoise:
    """The public plan of a marginal backend (what ``fit`` consumes).

    Attributes:
        rho: Total zCDP budget (paid).
        epsilon: Its epsilon at ``delta``.
        delta: Delta of the spend.
        accountant: The accountant, in words.
        schedule: The backend's public schedule (noise scales, rounds, shares), JSON-ready.
        sampler: The noise sampler, in words.
        selection: The selection sampler, in words.

    """

    rho: float
    epsilon: float
    delta: float
    accountant: str
    schedule: dict[str, Any] = field(default_factory=dict)
    sampler: str = ""
    selection: str = ""


class MarginalBackend(Backend):
    """Base of the select-measure-generate backends (noise once on counts; mbi 2.0 generation).

    Args (shared):
        max_levels: Integer columns with at most this many values keep one level per value.
        bins: Bins of the other numbers without a schema ``bins`` hint.
        max_cells: Largest marginal (cells) the backend measures; a single column above it is refused.
        iters: Mirror-descent iterations of the final model fit.
        chunk_bytes: Memory target of one encoded chunk in the data pass.
        sampling: ``"stratified"`` (default: systematic sampling within each parent group, so a
            sampled table's marginals are within one row per cell of the model's) or ``"iid"``.

    """

    guarantee = "dp"
    devices = ("cpu", "cuda")
    framework = "jax"  # mbi's estimation; pgd's particles are torch (it says so)
    streaming = True
    #: Whether the backend selects marginals privately (``pgd`` measures a fixed workload).
    selects: ClassVar[bool] = True
    # Constructor arguments every subclass stores (declared for the type checker).
    max_levels: int
    bins: int
    max_cells: int
    iters: int
    chunk_bytes: int
    sampling: str
    _shared_constraints: ClassVar[dict[str, list[Constraint | None]]] = {
        "max_levels": [Interval(int, 1, None, closed="left")],
        "bins": [Interval(int, 1, None, closed="left")],
        "max_cells": [Interval(int, 2, None, closed="left")],
        "iters": [Interval(int, 1, None, closed="left")],
        "chunk_bytes": [Interval(int, 1, None, closed="left")],
        "sampling": [Options(("stratified", "iid"))],
        "target": [None, Satisfies(lambda v: isinstance(v, str) and bool(v), "a column name (str)")],
    }

    # -- planning ---------------------------------------------------------------------------------
    def domain_for(self, spans: tuple[ColumnSpan, ...]) -> MarginalDomain:
        """The public discretisation; refuses a column larger than ``max_cells`` (naming it)."""
        domain = MarginalDomain(spans, max_levels=self.max_levels, bins=self.bins)
        too_big = [f"{c.name} ({c.size} levels)" for c in domain.columns if c.size > self.max_cells]
        if too_big:
            raise ModelTooLargeError(
                f"The {self.name!r} backend cannot model column(s) {', '.join(too_big)}: each exceeds its "
                f"model-size limit max_cells={self.max_cells}. Declare fewer categories or 'bins' for these "
                "columns in the schema, raise max_cells, or drop the columns."
            )
        return domain

    @abstractmethod
    def _schedule(self, domain: MarginalDomain, n_rows: int, rho: float) -> dict[str, Any]:
        """The public schedule (noise scales, rounds, shares) for ``rho``; pure."""

    @abstractmethod
    def _mechanism_text(self) -> str:
        """The mechanism, in words."""

    def plan(
        self, spans: tuple[ColumnSpan, ...], n_rows: int, budget: PrivacyBudget, *, seeded: bool = False
    ) -> PrivacyPlan:
        """Calibrate the total zCDP budget to ``budget`` and fix the public schedule (no data read)."""
        self.validate_params()
        domain = self.domain_for(spans)
        total = MarginalBudget.for_target(budget.epsilon, budget.delta)
        schedule = self._schedule(domain, n_rows, total.rho)
        noise = MarginalNoise(
            rho=total.rho,
            epsilon=total.epsilon,
            delta=total.delta,
            accountant=total.accountant,
            schedule=schedule,
            sampler=sampler_text(seeded),
            selection=selection_text(seeded) if self.selects else "none (a fixed public workload)",
        )
        spend = PlannedSpend(
            mechanism=self._mechanism_text(),
            epsilon=total.epsilon,
            delta=total.delta,
            accountant=total.accountant,
            parameters={
                "rho": total.rho,
                "adjacency": "replace-one",
                "marginal_l2_sensitivity": math.sqrt(2.0),
                "sampler": noise.sampler,
                "selection": noise.selection,
                **{k: v for k, v in schedule.items() if isinstance(v, int | float | str | bool)},
            },
        )
        return PrivacyPlan.build(self.name, (spend,), noise, spans=spans, n_rows=n_rows)

    # -- fitting ----------------------------------------------------------------------------------
    @abstractmethod
    def _candidates(self, domain: MarginalDomain, schedule: dict[str, Any]) -> list[Clique]:
        """Every marginal the private rounds may read (counted in the one data pass)."""

    @abstractmethod
    def _select_measure(
        self,
        domain: MarginalDomain,
        counts: dict[Clique, np.ndarray],
        n_rows: int,
        noise: MarginalNoise,
        ledger: ZCDPFilter,
        context: FitContext,
    ) -> tuple[list[Measurement], Any]:
        """Run the private rounds; return the measurements and the fitted mbi model."""

    def measure(
        self,
        clique: Clique,
        counts: dict[Clique, np.ndarray],
        sigma: float,
        ledger: ZCDPFilter,
        context: FitContext,
        label: str,
    ) -> Measurement:
        """Charge and release one noisy marginal (the only way a count leaves ``fit``)."""
        ledger.charge(measurement_rho(sigma), f"measure {clique} (sigma={sigma:.4g})")
        return Measurement(clique, noisy_counts(counts[clique], sigma, context, label), float(sigma))

    def fit(self, table: EncodedTable, plan: PrivacyPlan, context: FitContext) -> Backend:
        """One data pass for the candidate marginals, the private rounds, then the model (post-processing)."""
        self.check_plan(plan, table)
        noise: MarginalNoise = plan.noise
        domain = self.domain_for(table.spans)
        t0 = time.perf_counter()
        candidates = self._candidates(domain, noise.schedule)
        context.report(0, None, f"counting {len(candidates)} candidate marginals")
        counts = exact_marginals(table, domain, candidates, chunk_bytes=self.chunk_bytes)
        t1 = time.perf_counter()
        ledger = ZCDPFilter(noise.rho)
        measurements, model = self._select_measure(domain, counts, table.n_rows, noise, ledger, context)
        del counts
        context.report(0, None, "building the sampler")
        self.sampler_ = ChainSampler.from_model(model, domain)
        #: Wall seconds of the data pass and of everything after it (public: n is public).
        self.timings_ = {"data_pass_s": t1 - t0, "select_measure_generate_s": time.perf_counter() - t1}
        self.measurements_ = measurements
        self.domain_ = domain
        self.rho_ = noise.rho
        self.rho_spent_ = ledger.spent
        self.epsilon_ = noise.epsilon
        self.delta_ = noise.delta
        self.accountant_ = noise.accountant
        self.sampler_text_ = noise.sampler
        self.selection_text_ = noise.selection
        self.schedule_ = dict(noise.schedule)
        self.hardened_ = not context.seeded
        self.n_rows_ = table.n_rows
        self.fit_seconds_ = time.perf_counter() - t0
        self.spans_ = table.spans
        return self

    def refit_model(self, iters: int | None = None) -> Any:
        """Re-estimate the model from the saved noisy measurements alone (post-processing; no table)."""
        self.check_fitted()
        model = estimate(self.domain_, self.measurements_, self.n_rows_, iters=iters or self.iters)
        self.sampler_ = ChainSampler.from_model(model, self.domain_)
        return model

    # -- sampling ---------------------------------------------------------------------------------
    def sample(self, n: int, seed: int) -> np.ndarray:
        """``n`` encoded rows drawn from the fitted model (public randomness; ``sampling`` method)."""
        self.check_fitted()
        rng = np.random.default_rng(seed)
        codes = self.sampler_.sample_codes(n, rng, self.domain_.sizes, method=self.sampling)
        return self.domain_.decode(codes, rng)

    # -- reporting --------------------------------------------------------------------------------
    def selected_marginals(self) -> list[list[str]]:
        """The measured marginals by column name, in the order they were measured (public)."""
        self.check_fitted()
        return [[self.domain_.names[i] for i in m.clique] for m in self.measurements_]

    def privacy_details(self) -> PrivacyDetails:
        """State the mechanism, accountant, noise, samplers and coverage."""
        self.check_fitted()
        not_covered = ["the number of rows n, treated as public (replace-one adjacency)"]
        covered = [
            "every noisy marginal and every selection made on private data, and every table sampled "
            "from the model fitted to them (post-processing)",
            "the discretisation (from the public schema only; it costs nothing)",
        ]
        if self.hardened_:
            covered.append(
                "floating-point attacks on the noise samplers (Mironov 2012): counts get OpenDP's exact "
                "discrete Gaussian, selections OpenDP's noisy max (hardened)"
            )
            not_covered.append(
                "timing side channels of the samplers (OpenDP's samplers are not constant-time)"
            )
        else:
            not_covered.append("side channels: seeded research run, float64 samplers on the seeded stream")
        return PrivacyDetails(
            mechanism=self._mechanism_text(),
            adjacency="replace-one",
            accountant=self.accountant_,
            noise={
                "rho": self.rho_,
                "rho_spent": self.rho_spent_,
                "sampler": self.sampler_text_,
                "selection": self.selection_text_,
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

    # -- persistence ------------------------------------------------------------------------------
    def release_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The noisy measurements (arrays) and the privacy figures (metadata) every marginal backend saves."""
        arrays = {f"measurement_{k}": m.noisy for k, m in enumerate(self.measurements_)}
        meta: dict[str, Any] = {
            "measurements": [
                {"clique": list(m.clique), "sigma": m.sigma, **({"coarse": m.coarse} if m.coarse else {})}
                for m in self.measurements_
            ],
            "rho": self.rho_,
            "rho_spent": self.rho_spent_,
            "epsilon": self.epsilon_,
            "delta": self.delta_,
            "accountant": self.accountant_,
            "sampler_text": self.sampler_text_,
            **({"selection_text": self.selection_text_} if self.selects else {}),
            "schedule": self.schedule_,
            "hardened": self.hardened_,
            "n_rows": self.n_rows_,
        }
        return arrays, meta

    def restore_release(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        """Restore what :meth:`release_state` saved (the spans are set by the loader first)."""
        self.domain_ = MarginalDomain(self.spans_, max_levels=self.max_levels, bins=self.bins)
        self.measurements_ = [
            Measurement(
                tuple(int(i) for i in m["clique"]),
                np.asarray(arrays[f"measurement_{k}"]),
                float(m["sigma"]),
                coarse=None if m.get("coarse") is None else int(m["coarse"]),
            )
            for k, m in enumerate(meta["measurements"])
        ]
        self.rho_ = float(meta["rho"])
        self.rho_spent_ = float(meta["rho_spent"])
        self.epsilon_ = float(meta["epsilon"])
        self.delta_ = float(meta["delta"])
        self.accountant_ = str(meta["accountant"])
        self.sampler_text_ = str(meta["sampler_text"])
        if self.selects:
            self.selection_text_ = str(meta["selection_text"])
        self.schedule_ = dict(meta["schedule"])
        self.hardened_ = bool(meta["hardened"])
        self.n_rows_ = int(meta["n_rows"])

    def get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Noisy measurements and the sampler's tables (arrays); figures and cliques (metadata)."""
        self.check_fitted()
        arrays, meta = self.release_state()
        s_arrays, s_meta = self.sampler_.state()
        arrays.update({f"sampler_{k}": v for k, v in s_arrays.items()})
        # the saved order of earlier versions: measurements, sampler, then the figures
        return arrays, {"measurements": meta.pop("measurements"), "sampler": s_meta, **meta}

    def set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        """Restore from :meth:`get_state` output (the spans are set by the loader first)."""
        self.restore_release(arrays, meta)
        prefix = "sampler_"
        self.sampler_ = ChainSampler.from_state(
            {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}, meta["sampler"]
        )
