"""Privacy budget, the ledger of every spend, and the privacy report saved with every release."""

from __future__ import annotations

import datetime as _dt
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from tabpriv.errors import BudgetExceededError, PrivacyParameterError

__all__ = [
    "DEFAULT_DELTA",
    "GUARANTEE_TEXT",
    "WEAK_EPSILON",
    "GuaranteeType",
    "PlannedSpend",
    "PrivacyBudget",
    "PrivacyLedger",
    "PrivacyReport",
    "Spend",
    "check_delta",
    "check_delta_for_rows",
    "check_epsilon",
    "weak_epsilon_warning",
]

#: Default delta: a fixed public constant, never derived from the private row count.
DEFAULT_DELTA = 1e-5

GuaranteeType = Literal["dp", "conditional"]

#: Above this epsilon a guarantee is called weak (warned about in the API, the CLI and the report):
#: it lets the odds of any inference about one record grow by up to e^10 ≈ 22,000.
#: See docs/privacy.md, "Choosing ε".
WEAK_EPSILON = 10.0
_EPSILON_DOCS = "docs/privacy.md#choosing-epsilon"


def weak_epsilon_warning(epsilon: float) -> str | None:
    """The one-sentence warning for an epsilon above :data:`WEAK_EPSILON`, else ``None``."""
    if not epsilon > WEAK_EPSILON:
        return None
    return (
        f"at epsilon = {epsilon:.4g} the guarantee is weak: above {WEAK_EPSILON:g} it lets the odds of "
        "any inference about one record grow by a factor of up to e^epsilon; see "
        f"{_EPSILON_DOCS}"
    )


#: How each guarantee type is stated to people (API, CLI and reports use this text).
GUARANTEE_TEXT: dict[str, str] = {
    "dp": "(epsilon, delta)-differential privacy of the whole release, training included",
    "conditional": (
        "per-record guarantee conditional on the trained model — not end-to-end differential "
        "privacy (training on the private data is not covered)"
    ),
}

# Relative slack used when comparing spends against the budget (floating-point sums only).
_REL_TOL = 1e-9


def check_epsilon(epsilon: Any, what: str = "epsilon") -> float:
    """Return ``epsilon`` as a float, or raise :class:`PrivacyParameterError` unless finite and > 0."""
    if isinstance(epsilon, bool) or not isinstance(epsilon, int | float):
        raise PrivacyParameterError(f"{what} must be a number; got {epsilon!r}.")
    e = float(epsilon)
    if not math.isfinite(e) or e <= 0:
        raise PrivacyParameterError(
            f"{what} must be a finite number greater than 0; got {epsilon!r}. Typical values lie "
            "between 0.1 and 10."
        )
    return e


def check_delta(delta: Any) -> float:
    """Return ``delta`` as a float, or raise :class:`PrivacyParameterError` unless in (0, 1)."""
    if isinstance(delta, bool) or not isinstance(delta, int | float):
        raise PrivacyParameterError(f"delta must be a number; got {delta!r}.")
    d = float(delta)
    if not math.isfinite(d) or not 0 < d < 1:
        raise PrivacyParameterError(
            f"delta must lie strictly between 0 and 1; got {delta!r}. The default is "
            f"{DEFAULT_DELTA:g}, which must also be below 1/n for n rows."
        )
    return d


def check_delta_for_rows(delta: float, n_rows: int) -> None:
    """Raise unless ``delta < 1/n``: a larger delta allows releasing a whole record outright.

    The row count is treated as public, which is consistent with replace-one adjacency (neighbouring
    tables have the same number of rows).
    """
    if n_rows <= 0:
        raise PrivacyParameterError(f"The table must have at least one row; got {n_rows}.")
    if not delta < 1.0 / n_rows:
        raise PrivacyParameterError(
            f"delta={delta:g} is not below 1/n = {1.0 / n_rows:.3g} for n={n_rows} rows; a delta "
            f"that large permits publishing a record outright. Use delta <= {0.1 / n_rows:.1g}."
        )


@dataclass(frozen=True)
class PrivacyBudget:
    """A frozen (epsilon, delta) budget.

    Args:
        epsilon: Target epsilon, finite and > 0.
        delta: Target delta in (0, 1); defaults to :data:`DEFAULT_DELTA`.

    """

    epsilon: float
    delta: float = DEFAULT_DELTA

    def __post_init__(self) -> None:
        object.__setattr__(self, "epsilon", check_epsilon(self.epsilon))
        object.__setattr__(self, "delta", check_delta(self.delta))


@dataclass(frozen=True)
class PlannedSpend:
    """One spend a backend's plan declares, before anything runs (what the ledger will record).

    Attributes:
        mechanism: Human-readable mechanism name.
        epsilon: Epsilon it costs (at ``delta``), computed by ``accountant``.
        delta: Delta it costs.
        accountant: Accountant that computed it (library, method, version).
        parameters: Mechanism parameters (noise scale, sensitivity, sampling rate, ...), public only.

    """

    mechanism: str
    epsilon: float
    delta: float
    accountant: str
    parameters: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Spend:
    """One entry of the ledger: a mechanism run on the private data and what it cost.

    Attributes:
        mechanism: Human-readable mechanism name (e.g. "Gaussian mechanism on one-way marginals").
        epsilon: Epsilon spent (at ``delta``).
        delta: Delta spent.
        accountant: Accountant that computed it (library, method, version).
        parameters: Mechanism parameters (noise scale, sensitivity, sampling rate, ...).
        timestamp: UTC time of the spend (ISO 8601).

    """

    mechanism: str
    epsilon: float
    delta: float
    accountant: str
    parameters: dict[str, Any] = field(default_factory=dict)
    timestamp: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


class PrivacyLedger:
    """Records every spend against a budget; refuses any spend that would exceed it.

    Spends compose by basic composition (epsilons and deltas add up). Each backend computes the cost of
    its whole mechanism with a tight accountant and records it as **one** spend, *before* the mechanism
    touches the data, so an over-budget request fails with no data processed.

    Args:
        budget: The total budget.

    """

    def __init__(self, budget: PrivacyBudget) -> None:
        self.budget = budget
        self.spends: list[Spend] = []
        self.parent: PrivacyLedger | None = None

    def child(self, cap: PrivacyBudget) -> PrivacyLedger:
        """A ledger for one release drawn from this (shared, per-dataset) ledger.

        The child's budget is ``cap`` limited to what this ledger has left; every spend on the child is
        also recorded here, so the total spent on the data is never hidden.

        Raises:
            BudgetExceededError: This ledger has nothing left.

        """
        eps_left, delta_left = self.available()
        sub = PrivacyLedger(PrivacyBudget(min(cap.epsilon, eps_left), min(cap.delta, delta_left)))
        sub.parent = self
        return sub

    @property
    def root(self) -> PrivacyLedger:
        """The ledger at the top of the chain (the one that holds every spend on the data)."""
        return self if self.parent is None else self.parent.root

    @property
    def epsilon_spent(self) -> float:
        """Total epsilon spent so far."""
        return math.fsum(s.epsilon for s in self.spends)

    @property
    def delta_spent(self) -> float:
        """Total delta spent so far."""
        return math.fsum(s.delta for s in self.spends)

    @property
    def epsilon_left(self) -> float:
        """Epsilon still available."""
        return max(0.0, self.budget.epsilon - self.epsilon_spent)

    @property
    def delta_left(self) -> float:
        """Delta still available."""
        return max(0.0, self.budget.delta - self.delta_spent)

    def available(self) -> tuple[float, float]:
        """The (epsilon, delta) left to spend; raise :class:`BudgetExceededError` if nothing is left.

        Backends calibrate their noise to this, so a second fit on a spent ledger fails before any
        data is read.
        """
        eps, delta = self.epsilon_left, self.delta_left
        if eps <= self.budget.epsilon * _REL_TOL or delta <= self.budget.delta * _REL_TOL:
            raise BudgetExceededError(
                f"The privacy budget is spent (epsilon {self.epsilon_spent:.6g} of "
                f"{self.budget.epsilon:g}, delta {self.delta_spent:.3g} of {self.budget.delta:g}); "
                "nothing was run on the data. Fitting again on the same data needs a new budget, "
                "which adds to the total privacy loss."
            )
        return eps, delta

    def check(self, epsilon: float, delta: float) -> None:
        """Raise :class:`BudgetExceededError` if a spend of (epsilon, delta) would not fit."""
        if not (math.isfinite(epsilon) and epsilon >= 0 and math.isfinite(delta) and delta >= 0):
            raise PrivacyParameterError(
                f"A spend must be finite and non-negative; got epsilon={epsilon!r}, delta={delta!r}."
            )
        eps_total = self.epsilon_spent + epsilon
        delta_total = self.delta_spent + delta
        if eps_total > self.budget.epsilon * (1 + _REL_TOL) or delta_total > self.budget.delta * (
            1 + _REL_TOL
        ):
            raise BudgetExceededError(
                f"Spending epsilon={epsilon:.6g}, delta={delta:.3g} would exceed the budget "
                f"(epsilon={self.budget.epsilon:g}, delta={self.budget.delta:g}); already spent "
                f"epsilon={self.epsilon_spent:.6g}, delta={self.delta_spent:.3g}. Nothing was run on "
                "the data. Raise the budget or lower the mechanism's cost (more noise)."
            )

    def spend(
        self,
        mechanism: str,
        epsilon: float,
        delta: float,
        accountant: str,
        parameters: Mapping[str, Any] | None = None,
    ) -> Spend:
        """Record one spend; raise :class:`BudgetExceededError` (recording nothing) if it does not fit."""
        (entry,) = self.spend_all(
            [PlannedSpend(mechanism, epsilon, delta, accountant, dict(parameters or {}))]
        )
        return entry

    def spend_all(self, spends: Iterable[PlannedSpend]) -> list[Spend]:
        """Record every spend of a plan, or none of them.

        The one budget rule: something must be left (:meth:`available`), and the plan's total
        epsilon and total delta (basic composition) must fit what is left here and in every ancestor
        ledger (:meth:`check`). Only then are all entries recorded, with one timestamp.

        Raises:
            PrivacyParameterError: The plan is empty or a spend is not finite and non-negative.
            BudgetExceededError: The total does not fit; nothing is recorded.

        """
        planned = list(spends)
        if not planned:
            raise PrivacyParameterError(
                "A privacy plan must declare at least one spend; got none. A backend that reads the "
                "data must state what it costs."
            )
        for p in planned:
            if not (math.isfinite(p.epsilon) and p.epsilon >= 0 and math.isfinite(p.delta) and p.delta >= 0):
                raise PrivacyParameterError(
                    f"A spend must be finite and non-negative; got epsilon={p.epsilon!r}, delta={p.delta!r} "
                    f"for {p.mechanism!r}."
                )
        eps_total = math.fsum(p.epsilon for p in planned)
        delta_total = math.fsum(p.delta for p in planned)
        ledger: PrivacyLedger | None = self
        while ledger is not None:
            ledger.available()
            ledger.check(eps_total, delta_total)
            ledger = ledger.parent
        stamp = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
        entries = [
            Spend(
                mechanism=p.mechanism,
                epsilon=float(p.epsilon),
                delta=float(p.delta),
                accountant=p.accountant,
                parameters=dict(p.parameters),
                timestamp=stamp,
            )
            for p in planned
        ]
        ledger = self
        while ledger is not None:
            ledger.spends.extend(entries)
            ledger = ledger.parent
        return entries

    def to_list(self) -> list[dict[str, Any]]:
        """JSON-ready list of spends."""
        return [s.to_dict() for s in self.spends]

    @classmethod
    def from_list(cls, budget: PrivacyBudget, spends: list[Mapping[str, Any]]) -> PrivacyLedger:
        """Rebuild a ledger from its JSON form (used when loading a saved synthesizer)."""
        led = cls(budget)
        led.spends = [Spend(**dict(s)) for s in spends]
        return led


@dataclass
class PrivacyReport:
    """What a release guarantees, stated exactly. Saved as JSON next to every release.

    Attributes:
        backend: Backend name.
        guarantee: ``"dp"`` or ``"conditional"`` (see :data:`GUARANTEE_TEXT`).
        guarantee_text: The human-readable statement of the guarantee.
        epsilon: Total epsilon spent (at ``delta``). For conditional guarantees, the nominal figure.
        delta: Total delta spent.
        budget_epsilon: Epsilon the user asked for.
        budget_delta: Delta the user asked for.
        adjacency: Neighbouring relation the guarantee refers to.
        accountant: Accountant(s) used.
        mechanism: Mechanism(s) run on the private data.
        noise: Noise parameters (from the ledger).
        covered: What the guarantee covers.
        not_covered: What it does not cover.
        end_to_end_dp: False when anything (an inferred schema, conditional guarantee) breaks
            end-to-end DP.
        schema_source: ``"declared"`` or ``"inferred"``.
        rows_in: Rows of the private table.
        rows_out: Rows sampled in the last release.
        seeded: True when the noise came from a user seed rather than OS entropy.
        spends: The ledger.
        warnings: Every caveat, in words.
        library_version: tabpriv version.
        timestamp: UTC time the report was made.
        extra: Backend-specific figures (e.g. amplified vs un-amplified epsilon).

    """

    backend: str
    guarantee: GuaranteeType
    guarantee_text: str
    epsilon: float
    delta: float
    budget_epsilon: float
    budget_delta: float
    adjacency: str
    accountant: str
    mechanism: str
    noise: dict[str, Any]
    covered: list[str]
    not_covered: list[str]
    end_to_end_dp: bool
    schema_source: str
    rows_in: int
    rows_out: int | None
    seeded: bool
    spends: list[dict[str, Any]]
    warnings: list[str]
    library_version: str
    timestamp: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def headline(self) -> str:
        """One line stating the guarantee, suitable for a CLI summary."""
        if self.guarantee == "dp" and self.end_to_end_dp:
            line = (
                f"({self.epsilon:.4g}, {self.delta:.3g})-differentially private "
                f"({self.adjacency} adjacency; {self.accountant})"
            )
            if self.seeded:
                line += " — SEEDED run: keep the seed secret or the release is not private"
            if self.weak:
                line += f" — WEAK guarantee: epsilon above {WEAK_EPSILON:g} (see {_EPSILON_DOCS})"
            return line
        reasons = "; ".join(self.warnings) if self.warnings else self.guarantee_text
        return f"NOT end-to-end DP — nominal epsilon={self.epsilon:.4g}, delta={self.delta:.3g}: {reasons}"

    @property
    def weak(self) -> bool:
        """Whether the epsilon spent is above :data:`WEAK_EPSILON` (a weak guarantee)."""
        return self.epsilon > WEAK_EPSILON

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (with the headline)."""
        d = asdict(self)
        d["headline"] = self.headline
        return d

    def to_json(self, path: str | Path | None = None) -> str:
        """Serialise to JSON; write it atomically to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=2, ensure_ascii=False, default=_json_default) + "\n"
        if path is not None:
            from tabpriv.io import atomic_write_text

            atomic_write_text(Path(path), text)
        return text

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PrivacyReport:
        """Inverse of :meth:`to_dict` (the headline is recomputed)."""
        fields = {k: v for k, v in d.items() if k != "headline"}
        return cls(**fields)


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    raise TypeError(f"Object of type {type(o).__name__} is not JSON serialisable")
