"""One small accountant interface: a frozen description per mechanism, ``epsilon(delta)`` and its accountant.

Modelled on opacus' ``IAccountant`` (``get_epsilon(delta)``) and mbi's frozen ``LinearMeasurement``
(a mechanism is a value, not a stateful object): every mechanism below is a frozen dataclass of its
public noise parameters with

* ``epsilon(delta) -> float``: the replace-one epsilon at ``delta`` (an upper bound, from a maintained
  library or a stated rigorous computation), and
* ``accountant -> AccountantInfo``: how that figure is computed (method, library and version,
  conversion); ``str(info)`` is the sentence reports carry.

Adjacency is passed explicitly and has one value, ``"replace-one"`` (the row count is public).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from tabpriv.errors import PrivacyParameterError

__all__ = [
    "ADJACENCIES",
    "AccountantInfo",
    "Adjacency",
    "DP2VAEMechanism",
    "DiscreteGaussian",
    "GDPMechanism",
    "GaussianMechanism",
    "Mechanism",
    "PoissonGaussianDPSGD",
    "SlicingMechanism",
    "check_adjacency",
]

#: The one neighbouring relation of every tabpriv guarantee: replace one row (n public).
Adjacency = Literal["replace-one"]
ADJACENCIES: tuple[str, ...] = ("replace-one",)


def check_adjacency(adjacency: str) -> Adjacency:
    """Return ``adjacency`` if it is ``"replace-one"``, else raise :class:`PrivacyParameterError`."""
    if adjacency != "replace-one":
        raise PrivacyParameterError(
            f"adjacency must be 'replace-one' (the only relation tabpriv accounts); got {adjacency!r}."
        )
    return "replace-one"


@dataclass(frozen=True)
class AccountantInfo:
    """A typed description of an accountant (replaces free-text accountant strings).

    Attributes:
        method: What is computed, e.g. ``"analytic Gaussian mechanism (Balle & Wang 2018)"``.
        library: The maintained library (``"dp-accounting"``, ``"opendp"``, ``"scipy"``, ``"tabpriv"``).
        version: Its version.
        conversion: How the figure becomes ``(epsilon, delta)`` (``""``: direct).
        text: The sentence reports carry (``str(info)``); empty: built from the fields.

    """

    method: str
    library: str
    version: str
    conversion: str = ""
    text: str = ""

    def __str__(self) -> str:
        if self.text:
            return self.text
        out = f"{self.method}, {self.library} {self.version}"
        return f"{out}; {self.conversion}" if self.conversion else out


@runtime_checkable
class Mechanism(Protocol):
    """What every mechanism description offers."""

    @property
    def accountant(self) -> AccountantInfo:
        """How :meth:`epsilon` is computed."""
        ...

    def epsilon(self, delta: float) -> float:
        """Replace-one epsilon at ``delta``."""
        ...


def _positive(name: str, value: float) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not (math.isfinite(value) and value > 0):
        raise PrivacyParameterError(f"{name} must be a finite number > 0; got {value!r}.")


def _scipy_version() -> str:
    try:
        from importlib.metadata import version

        return version("scipy")
    except Exception:  # pragma: no cover - metadata missing
        return "unknown"


@dataclass(frozen=True)
class GaussianMechanism:
    """One Gaussian release with noise ``noise_multiplier`` times its L2 sensitivity."""

    noise_multiplier: float
    adjacency: Adjacency = "replace-one"

    def __post_init__(self) -> None:
        _positive("noise_multiplier", self.noise_multiplier)
        check_adjacency(self.adjacency)

    def epsilon(self, delta: float) -> float:
        """Exact epsilon (analytic Gaussian mechanism)."""
        from tabpriv.accounting.gaussian import gaussian_epsilon

        return gaussian_epsilon(self.noise_multiplier, delta)

    @property
    def accountant(self) -> AccountantInfo:
        """dp-accounting's analytic Gaussian mechanism."""
        from tabpriv.accounting.gaussian import DP_ACCOUNTING_VERSION

        return AccountantInfo(
            "analytic Gaussian mechanism (Balle & Wang 2018)",
            "dp-accounting",
            DP_ACCOUNTING_VERSION,
            text=f"analytic Gaussian mechanism (Balle & Wang 2018), dp-accounting {DP_ACCOUNTING_VERSION}",
        )


@dataclass(frozen=True)
class DiscreteGaussian:
    """The discrete Gaussian ``N_Z(0, sigma^2)`` on integer counts of L2 sensitivity ``sensitivity``."""

    sigma: float
    sensitivity: float
    adjacency: Adjacency = "replace-one"

    def __post_init__(self) -> None:
        _positive("sigma", self.sigma)
        _positive("sensitivity", self.sensitivity)
        check_adjacency(self.adjacency)

    @property
    def rho(self) -> float:
        """The zCDP parameter ``sensitivity^2 / (2 sigma^2)``."""
        from tabpriv.accounting.zcdp import discrete_gaussian_rho

        return discrete_gaussian_rho(self.sigma, self.sensitivity)

    def epsilon(self, delta: float) -> float:
        """CKS conversion of ``rho`` (the larger of tabpriv's and OpenDP's figure)."""
        from tabpriv.accounting.zcdp import opendp_discrete_gaussian_epsilon, zcdp_epsilon

        rho_o, eps_o = opendp_discrete_gaussian_epsilon(self.sigma, self.sensitivity, delta)
        return max(zcdp_epsilon(max(self.rho, rho_o), delta), eps_o)

    @property
    def accountant(self) -> AccountantInfo:
        """The zCDP conversion of Canonne-Kamath-Steinke conversion (and OpenDP's own)."""
        from tabpriv.accounting.zcdp import OPENDP_VERSION, ZCDP_CONVERSION

        return AccountantInfo(
            f"zCDP (rho={self.rho:.6g}) of the discrete Gaussian",
            "opendp",
            OPENDP_VERSION,
            ZCDP_CONVERSION,
            text=f"zCDP (rho={self.rho:.6g}) -> (epsilon, delta), Canonne-Kamath-Steinke 2020 conversion",
        )


@dataclass(frozen=True)
class PoissonGaussianDPSGD:
    """``steps`` Poisson-subsampled (rate ``q``) Gaussian steps with noise multiplier ``z`` (DP-SGD)."""

    z: float
    q: float
    steps: int
    value_discretization_interval: float = 1e-4
    adjacency: Adjacency = "replace-one"

    def __post_init__(self) -> None:
        from tabpriv.accounting.dpsgd import _check_dpsgd_args

        _check_dpsgd_args(self.z, self.q, self.steps)
        check_adjacency(self.adjacency)

    def epsilon(self, delta: float) -> float:
        """Replace-one PLD epsilon (dp-accounting)."""
        from tabpriv.accounting.dpsgd import dpsgd_epsilon

        vdi = self.value_discretization_interval
        return dpsgd_epsilon(self.z, self.q, self.steps, delta, value_discretization_interval=vdi)

    @property
    def accountant(self) -> AccountantInfo:
        """dp-accounting's PLD accountant, replace-one."""
        from tabpriv.accounting.dpsgd import dpsgd_accountant_text
        from tabpriv.accounting.gaussian import DP_ACCOUNTING_VERSION

        return AccountantInfo(
            "PLD of the Poisson-subsampled Gaussian, self-composed, NeighboringRelation.REPLACE_ONE",
            "dp-accounting",
            DP_ACCOUNTING_VERSION,
            f"pessimistic discretisation {self.value_discretization_interval:g}",
            text=dpsgd_accountant_text(self.value_discretization_interval),
        )


@dataclass(frozen=True)
class SlicingMechanism:
    """The slicing release ``(U, XU + V)``: ``m'`` projections, ``d`` dims, noise ``sigma``.

    ``subsample``: fraction of rows sampled without replacement first (``None``: all rows); ``method``:
    ``"exact"`` (privacy profile) or ``"rdp"``.
    """

    sigma: float
    d: int
    n_projections: int
    sensitivity: float
    subsample: float | None = None
    method: Literal["exact", "rdp"] = "exact"
    adjacency: Adjacency = "replace-one"

    def __post_init__(self) -> None:
        _positive("sigma", self.sigma)
        _positive("sensitivity", self.sensitivity)
        if self.d < 1 or self.n_projections < 1:
            raise PrivacyParameterError(f"Need d >= 1 and m' >= 1; got d={self.d}, m'={self.n_projections}.")
        if self.subsample is not None and not 0 < self.subsample <= 1:
            raise PrivacyParameterError(f"subsample must lie in (0, 1] or be None; got {self.subsample!r}.")
        if self.method not in ("exact", "rdp"):
            raise PrivacyParameterError(f"method must be 'exact' or 'rdp'; got {self.method!r}.")
        check_adjacency(self.adjacency)

    def epsilon(self, delta: float) -> float:
        """Epsilon of the release at ``delta`` (amplified by Theorem 9 when subsampling)."""
        from tabpriv.accounting.slicing import slicing_epsilon, slicing_profile_epsilon
        from tabpriv.accounting.subsampling import amplify_wor

        gamma = 1.0 if self.subsample is None else float(self.subsample)
        base_delta = delta / gamma
        if base_delta >= 1:
            raise PrivacyParameterError(f"delta / subsample = {base_delta:g} must be < 1.")
        args = (self.sigma, self.d, self.n_projections, self.sensitivity, base_delta)
        base = slicing_profile_epsilon(*args) if self.method == "exact" else slicing_epsilon(*args)[0]
        return base if self.subsample is None else amplify_wor(base, base_delta, gamma)[0]

    @property
    def accountant(self) -> AccountantInfo:
        """The exact profile (scipy) or the RDP curve, plus the WOR theorem when subsampling."""
        from tabpriv.accounting.slicing import SLICING_EXACT_ACCOUNTANT, SLICING_RDP_ACCOUNTANT
        from tabpriv.accounting.subsampling import WOR_THEOREM

        text = SLICING_EXACT_ACCOUNTANT if self.method == "exact" else SLICING_RDP_ACCOUNTANT
        return AccountantInfo(
            "exact privacy profile" if self.method == "exact" else "exact RDP curve",
            "scipy",
            _scipy_version(),
            WOR_THEOREM if self.subsample is not None else "",
            text=text,
        )


@dataclass(frozen=True)
class GDPMechanism:
    """A ``mu``-GDP mechanism (Dong, Roth & Su)."""

    mu: float
    adjacency: Adjacency = "replace-one"

    def __post_init__(self) -> None:
        _positive("mu", self.mu)
        check_adjacency(self.adjacency)

    def epsilon(self, delta: float) -> float:
        """Exact conversion of mu-GDP."""
        from tabpriv.accounting.gdp import gdp_epsilon

        return gdp_epsilon(self.mu, delta)

    @property
    def accountant(self) -> AccountantInfo:
        """The mu-GDP profile (scipy)."""
        return AccountantInfo(
            "mu-GDP (Dong, Roth & Su 2022)", "scipy", _scipy_version(), "exact mu-GDP privacy profile"
        )


@dataclass(frozen=True)
class DP2VAEMechanism:
    """DP²-VAE's ``steps`` decoder updates (1 of ``n_subsets`` subsets per step, noise ``noise`` C)."""

    noise: float
    n_subsets: int
    steps: int
    hist_multiplier: float | None = None
    adjacency: Adjacency = "replace-one"

    def __post_init__(self) -> None:
        _positive("noise", self.noise)
        if self.n_subsets < 1 or self.steps < 0:
            raise PrivacyParameterError(
                f"Need n_subsets >= 1 and steps >= 0; got {self.n_subsets}, {self.steps}."
            )
        check_adjacency(self.adjacency)

    def epsilon(self, delta: float) -> float:
        """dp-accounting RDP epsilon, replace-one."""
        from tabpriv.accounting.dp2vae import dp2vae_epsilon

        return dp2vae_epsilon(self.noise, self.n_subsets, self.steps, delta, self.hist_multiplier)

    @property
    def accountant(self) -> AccountantInfo:
        """dp-accounting's RDP accountant."""
        from tabpriv.accounting.dp2vae import dp2vae_accountant_text
        from tabpriv.accounting.gaussian import DP_ACCOUNTING_VERSION

        return AccountantInfo(
            "RDP of SelfComposed(SampledWithoutReplacement(K, 1, Gaussian(sigma/2)), T), REPLACE_ONE",
            "dp-accounting",
            DP_ACCOUNTING_VERSION,
            "RDP -> (epsilon, delta), dp-accounting's conversion",
            text=dp2vae_accountant_text(self.hist_multiplier is not None),
        )
