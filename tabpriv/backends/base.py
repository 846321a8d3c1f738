"""The backend protocol: what every privacy backend implements.

A backend never touches the ledger. It works in two steps:

1. :meth:`Backend.plan` ``(spans, n_rows, budget)`` — pure: from public quantities only (the table's
   spans, its row count, the budget left, the backend's parameters) it validates every parameter,
   calibrates its noise and returns a frozen :class:`PrivacyPlan`: the spends the ledger will record
   (:class:`~tabpriv.budget.PlannedSpend`), the typed noise parameters ``fit`` consumes
   (``plan.noise``, a frozen dataclass of the backend's own) and the report details.
2. :meth:`Backend.fit` ``(table, plan, context)`` — reads the rows and runs exactly the planned
   mechanism. It never sees the ledger.

Between the two the caller pays: :func:`spend_and_fit` (used by the :class:`~tabpriv.Synthesizer`)
does ``ledger.available()`` → ``backend.plan`` → ``ledger.spend_all(plan.spends)`` → ``backend.fit``,
so the budget is paid, all or nothing, before any row is read. The backend never sees the original
DataFrame, the schema's values or the file.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, is_dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from tabpriv._random import block_seed, derive_key, fresh_secret_key, secret_generator
from tabpriv.budget import GuaranteeType, PlannedSpend, PrivacyBudget, PrivacyLedger
from tabpriv.errors import NotFittedError, PrivacyParameterError
from tabpriv.transformers.encoded import ColumnSpan, EncodedTable

if TYPE_CHECKING:
    from tabpriv.backends._params import Constraint

__all__ = [
    "Backend",
    "FitContext",
    "PlannedSpend",
    "PrivacyDetails",
    "PrivacyPlan",
    "ProgressCallback",
    "spend_and_fit",
]

#: ``progress(step, total, message)``; ``total`` may be ``None`` when unknown.
ProgressCallback = Callable[[int, int | None, str], None]


@dataclass(frozen=True)
class FitContext:
    """Everything a backend's ``fit`` needs besides the data and its plan (never the ledger).

    Attributes:
        device: Concrete device (``"cpu"``, ``"cuda"``, ``"cuda:0"``), already resolved.
        seed: Root seed of **public** randomness for this fit (initialisation, released projections,
            post-processing): never store or log it. Derive streams with
            :func:`tabpriv._random.derive_seed`. Never draw privacy noise from it.
        seeded: Whether the seed came from the user (reported).
        progress: Optional progress callback.
        secret_key: Root key of **secret** randomness (privacy noise, secret subsampling); use
            :meth:`secret_rng`. When not given it is derived from ``seed`` for a seeded context (a
            reproducible research run) and drawn from OS entropy otherwise.

    """

    device: str
    seed: int
    seeded: bool
    progress: ProgressCallback | None = None
    secret_key: int = field(default=-1, repr=False)

    def __post_init__(self) -> None:
        if self.secret_key < 0:
            key = derive_key(self.seed, "fit-secret") if self.seeded else fresh_secret_key()
            object.__setattr__(self, "secret_key", key)

    def secret_rng(self, purpose: str) -> np.random.Generator:
        """A cryptographically secure numpy generator (ChaCha20) for one secret purpose.

        Every noise draw a guarantee rests on comes from here; each purpose gets its own key.
        """
        return secret_generator(self.secret_key, purpose)

    def report(self, step: int, total: int | None, message: str) -> None:
        """Forward progress to the callback, if any."""
        if self.progress is not None:
            self.progress(step, total, message)


@dataclass
class PrivacyDetails:
    """What a fitted backend states about its release (merged into the privacy report).

    Attributes:
        mechanism: The mechanism(s) run on private data, in words.
        adjacency: Neighbouring relation (``"replace-one"`` or ``"add/remove-one"``).
        accountant: Accountant(s) used.
        noise: Noise parameters (sigma, noise multiplier, clipping norm, sampling rate, steps, ...).
        covered: What the guarantee covers.
        not_covered: What it does not cover.
        warnings: Caveats that make the release not end-to-end DP (empty for a clean DP release).
        extra: Any other figures (e.g. the epsilon with and without amplification).

    """

    mechanism: str
    adjacency: str
    accountant: str
    noise: dict[str, Any] = field(default_factory=dict)
    covered: list[str] = field(default_factory=list)
    not_covered: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PrivacyPlan:
    """What a backend will run and what it costs, computed from public quantities only.

    Built by :meth:`Backend.plan` before anything reads the data; the caller records :attr:`spends`
    with :meth:`PrivacyLedger.spend_all <tabpriv.budget.PrivacyLedger.spend_all>` and then hands the
    plan to :meth:`Backend.fit`, which consumes :attr:`noise`.

    Attributes:
        backend: Name of the backend that made it.
        spends: The spends to record, in order (e.g. lipschitz-vae: training, then reconstruction).
        noise: The backend's typed, frozen noise parameters (sigma, noise multiplier, schedule, ...).
        details: The report's statement of the plan (mechanism, accountant, noise), public only.
        spans: The spans the plan was made for (``fit`` refuses a table with other spans).
        n_rows: The row count the plan was made for (``fit`` refuses a table with another count).

    """

    backend: str
    spends: tuple[PlannedSpend, ...]
    noise: Any
    details: PrivacyDetails
    spans: tuple[ColumnSpan, ...] | None = None
    n_rows: int | None = None

    @property
    def epsilon(self) -> float:
        """Total epsilon of the plan (basic composition of its spends)."""
        return math.fsum(s.epsilon for s in self.spends)

    @property
    def delta(self) -> float:
        """Total delta of the plan."""
        return math.fsum(s.delta for s in self.spends)

    @classmethod
    def build(
        cls,
        backend: str,
        spends: tuple[PlannedSpend, ...] | list[PlannedSpend],
        noise: Any,
        *,
        spans: tuple[ColumnSpan, ...] | None = None,
        n_rows: int | None = None,
        adjacency: str = "replace-one",
    ) -> PrivacyPlan:
        """A plan whose details are read off its spends and its noise parameters (all public)."""
        if not is_dataclass(noise) or isinstance(noise, type):
            raise TypeError(f"plan.noise must be a dataclass instance; got {type(noise).__name__}.")
        spends = tuple(spends)
        details = PrivacyDetails(
            mechanism=" + ".join(s.mechanism for s in spends),
            adjacency=adjacency,
            accountant="; ".join(dict.fromkeys(s.accountant for s in spends)),
            noise=asdict(noise),
        )
        return cls(backend=backend, spends=spends, noise=noise, details=details, spans=spans, n_rows=n_rows)


def spend_and_fit(
    backend: Backend, table: EncodedTable, ledger: PrivacyLedger, context: FitContext
) -> PrivacyPlan:
    """The one way a backend is run on private rows: plan, pay (all or nothing), then fit.

    ``ledger.available()`` (raises when nothing is left) → ``backend.plan(table.spans,
    table.n_rows, budget_left)`` (pure; a bad parameter raises here and nothing is spent) →
    ``ledger.spend_all(plan.spends)`` (raises, recording nothing, when the total does not fit) →
    ``backend.fit(table, plan, context)``. A ``fit`` that raises leaves the spends recorded: the
    mechanism may already have touched the data, so the cost is never refunded.

    Returns:
        The plan that was paid for.

    """
    eps_left, delta_left = ledger.available()
    plan = backend.plan(table.spans, table.n_rows, PrivacyBudget(eps_left, delta_left), seeded=context.seeded)
    if not isinstance(plan, PrivacyPlan):
        raise TypeError(
            f"{type(backend).__name__}.plan must return a PrivacyPlan; got {type(plan).__name__}."
        )
    ledger.spend_all(plan.spends)
    backend.fit(table, plan, context)
    return plan


class Backend(ABC):
    """Base class of privacy backends (scikit-learn conventions).

    Subclasses:
      * set the class attributes :attr:`name`, :attr:`guarantee`, :attr:`devices`, :attr:`summary`;
      * take their hyper-parameters as keyword arguments in ``__init__`` and only store them, under
        the same names (so :meth:`get_params` works);
      * set :attr:`streaming` when ``fit`` reads rows only through ``iter_chunks``/``take``;
      * import torch lazily (inside methods or a private submodule), so ``tabpriv backends`` stays fast;
      * declare :attr:`_parameter_constraints` (see :mod:`tabpriv.backends._params`) and call
        :meth:`validate_params` first thing in :meth:`plan`.
    """

    #: Registry name.
    name: ClassVar[str] = ""
    #: ``"dp"`` or ``"conditional"``.
    guarantee: ClassVar[GuaranteeType] = "dp"
    #: Devices it runs on, e.g. ``("cpu",)`` or ``("cpu", "cuda")``.
    devices: ClassVar[tuple[str, ...]] = ("cpu",)
    #: The library that computes on the device (``"torch"`` or ``"jax"``): the one asked for a GPU.
    framework: ClassVar[str] = "torch"
    #: One-line description shown by ``tabpriv backends``.
    summary: ClassVar[str] = ""
    #: Small hyper-parameters that fit a tiny table in seconds (conformance tests, smoke runs).
    quick_params: ClassVar[dict[str, Any]] = {}
    #: ``True`` if :meth:`fit` reads the table only through :meth:`EncodedTable.iter_chunks` and
    #: :meth:`EncodedTable.take`, never through ``table.data`` or ``table.clipped_rows()``: its memory
    #: then stays ``O(chunk × width)`` plus its own state, whatever the number of rows, because the
    #: :class:`~tabpriv.Synthesizer` passes a lazily encoded table. ``False`` (the default): the backend
    #: materialises the full ``n_rows × width`` float32 matrix (4 bytes per cell).
    streaming: ClassVar[bool] = False
    #: Constructor argument -> admissible values (any one constraint; ``None`` allows ``None``).
    _parameter_constraints: ClassVar[dict[str, list[Constraint | None]]] = {}

    # -- parameters -------------------------------------------------------------------------------
    def get_params(self) -> dict[str, Any]:
        """Constructor arguments (JSON-ready) — saved with the model."""
        import inspect

        sig = inspect.signature(type(self).__init__)
        kinds = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        return {p: getattr(self, p) for p, prm in sig.parameters.items() if p != "self" and prm.kind in kinds}

    def validate_params(self) -> None:
        """Check every parameter against :attr:`_parameter_constraints` (the one message template).

        Raises:
            PrivacyParameterError: A parameter meets none of its constraints.

        """
        from tabpriv.backends._params import validate_params

        validate_params(self)

    # -- planning, training and sampling -----------------------------------------------------------
    @abstractmethod
    def plan(
        self, spans: tuple[ColumnSpan, ...], n_rows: int, budget: PrivacyBudget, *, seeded: bool = False
    ) -> PrivacyPlan:
        """Validate every parameter and calibrate the noise to ``budget``; read no data.

        Pure: the same arguments give an equal plan; no ledger, no randomness, no table. ``spans``
        and ``n_rows`` are public (replace-one adjacency); ``seeded`` (public) only names the sampler.
        The plan's spends must sum to at most ``budget``.

        Raises:
            PrivacyParameterError: A parameter is invalid (nothing has run).
            BudgetExceededError: No noise level fits ``budget``.

        """

    @abstractmethod
    def fit(self, table: EncodedTable, plan: PrivacyPlan, context: FitContext) -> Backend:
        """Run exactly the planned mechanism on ``table`` (the plan is already paid for) and fit.

        Sets ``spans_`` (the table's spans) and whatever learned state ends in ``_``. Returns ``self``.
        Never sees the ledger.
        """

    def check_plan(self, plan: PrivacyPlan, table: EncodedTable) -> None:
        """Raise unless ``plan`` was made by this backend for this table (a programming error).

        The noise was calibrated for the plan's spans and row count; run on another table, the
        accounting would not describe what ran.
        """
        if not isinstance(plan, PrivacyPlan) or plan.backend != self.name:
            raise PrivacyParameterError(
                f"The {self.name!r} backend was given a plan made by "
                f"{getattr(plan, 'backend', type(plan).__name__)!r}; call plan() on this backend first "
                "(or use tabpriv.backends.base.spend_and_fit)."
            )
        if (plan.spans is not None and tuple(plan.spans) != tuple(table.spans)) or (
            plan.n_rows is not None and plan.n_rows != table.n_rows
        ):
            raise PrivacyParameterError(
                f"The plan was made for {plan.n_rows} rows and {len(plan.spans or ())} columns but the "
                f"table has {table.n_rows} rows and {len(table.spans)} columns; its noise is calibrated "
                "for the planned table only. Plan again for this table."
            )

    @abstractmethod
    def sample(self, n: int, seed: int) -> np.ndarray:
        """Return ``(n, width)`` encoded rows (float32). Pure post-processing: spends nothing."""

    def sample_chunks(self, n: int, seed: int, chunk_rows: int) -> Iterator[np.ndarray]:
        """Yield ``n`` encoded rows as consecutive ``(m, width)`` blocks of at most ``chunk_rows`` rows.

        This is how :meth:`Synthesizer.sample <tabpriv.Synthesizer.sample>` draws, so that its memory
        is ``O(chunk_rows × width)`` plus the output. The default calls :meth:`sample` once per block:
        block 0 with ``seed`` itself (so ``n <= chunk_rows`` gives exactly ``sample(n, seed)``), block
        ``i >= 1`` with :func:`tabpriv._random.block_seed`. The same ``(n, seed, chunk_rows)`` always
        gives the same rows. Override it when rows of different blocks must be drawn jointly (e.g.
        without replacement from a finite released set).
        """
        if chunk_rows <= 0:
            raise ValueError(f"chunk_rows must be positive; got {chunk_rows}.")
        for i, start in enumerate(range(0, n, chunk_rows)):
            m = min(chunk_rows, n - start)
            yield self.sample(m, block_seed(seed, i))

    @abstractmethod
    def privacy_details(self) -> PrivacyDetails:
        """State the mechanism, accountant, noise and coverage of the fitted release."""

    # -- persistence (no pickle) -------------------------------------------------------------------
    @abstractmethod
    def get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Learned state as (arrays, JSON-ready metadata). Arrays are saved with safetensors."""

    @abstractmethod
    def set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        """Restore learned state saved by :meth:`get_state` (on a fresh instance built from params)."""

    # -- helpers ------------------------------------------------------------------------------------
    @property
    def is_fitted(self) -> bool:
        """Whether :meth:`fit` (or a load) has run."""
        return hasattr(self, "spans_")

    def check_fitted(self) -> None:
        """Raise :class:`NotFittedError` unless fitted."""
        if not self.is_fitted:
            raise NotFittedError(f"The {self.name!r} backend is not fitted yet; call fit() before sample().")

    def set_spans(self, spans: tuple[ColumnSpan, ...]) -> None:
        """Record the spans of the table the backend was fitted on (used by loaders)."""
        self.spans_ = spans

    @property
    def width_(self) -> int:
        """Encoded width of the fitted table."""
        self.check_fitted()
        return self.spans_[-1].stop if self.spans_ else 0
