"""The backend protocol: what every privacy backend implements.

A backend receives an :class:`~tabpriv.transformers.EncodedTable` and a
:class:`~tabpriv.budget.PrivacyLedger`, spends the budget through the ledger (one spend for its whole
mechanism, recorded **before** the mechanism touches the data), and returns a fitted model that samples
encoded rows. It never sees the original DataFrame, the schema's values or the file.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from tabpriv._random import block_seed, derive_key, fresh_secret_key, secret_generator
from tabpriv.budget import GuaranteeType, PrivacyLedger
from tabpriv.errors import NotFittedError
from tabpriv.transformers.encoded import ColumnSpan, EncodedTable

__all__ = ["Backend", "FitContext", "PrivacyDetails", "ProgressCallback"]

#: ``progress(step, total, message)``; ``total`` may be ``None`` when unknown.
ProgressCallback = Callable[[int, int | None, str], None]


@dataclass(frozen=True)
class FitContext:
    """Everything a backend's ``fit`` needs besides the data and the ledger.

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


class Backend(ABC):
    """Base class of privacy backends (scikit-learn conventions).

    Subclasses:
      * set the class attributes :attr:`name`, :attr:`guarantee`, :attr:`devices`, :attr:`summary`;
      * take their hyper-parameters as keyword arguments in ``__init__`` and only store them, under
        the same names (so :meth:`get_params` works);
      * set :attr:`streaming` when ``fit`` reads rows only through ``iter_chunks``/``take``;
      * import torch lazily (inside methods or a private submodule), so ``tabpriv backends`` stays fast.
    """

    #: Registry name.
    name: ClassVar[str] = ""
    #: ``"dp"`` or ``"conditional"``.
    guarantee: ClassVar[GuaranteeType] = "dp"
    #: Devices it runs on, e.g. ``("cpu",)`` or ``("cpu", "cuda")``.
    devices: ClassVar[tuple[str, ...]] = ("cpu",)
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

    # -- parameters -------------------------------------------------------------------------------
    def get_params(self) -> dict[str, Any]:
        """Constructor arguments (JSON-ready) — saved with the model."""
        import inspect

        sig = inspect.signature(type(self).__init__)
        kinds = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        return {p: getattr(self, p) for p, prm in sig.parameters.items() if p != "self" and prm.kind in kinds}

    # -- training and sampling ---------------------------------------------------------------------
    @abstractmethod
    def fit(self, table: EncodedTable, ledger: PrivacyLedger, context: FitContext) -> Backend:
        """Spend the budget (via ``ledger.spend`` before reading any row of ``table``) and fit.

        Sets ``spans_`` (the table's spans) and whatever learned state ends in ``_``. Returns ``self``.
        """

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
