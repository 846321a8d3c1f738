"""Accounting of select-measure-generate marginal mechanisms (MST, AIM) under replace-one, in zCDP.

Every figure here is for **replace-one** neighbours (tables of the same public size ``n`` that differ
in one row), the relation of every tabpriv guarantee.

* **Measurement.** A count marginal ``M_r(D)`` (one integer count per cell of the clique ``r``) moves
  by one count down in one cell and one count up in another when a row is replaced: L2 sensitivity
  ``sqrt(2)``, L1 sensitivity ``2`` (add/remove-one, the papers' relation, has 1 and 1). The discrete
  Gaussian ``N_Z(0, sigma^2)`` on every cell is therefore ``rho = 2 / (2 sigma^2) = 1 / sigma^2``-zCDP
  (Canonne, Kamath & Steinke 2020, Theorem 4): :func:`measurement_rho`.
* **Selection.** MST and AIM choose the next marginal with the exponential mechanism on a score whose
  replace-one sensitivity is ``Delta``; MST's score ``||M_r(D) - M_r(model)||_1`` has ``Delta = 2``,
  AIM's ``w_r (||M_r(D) - M_r(model)||_1 - sqrt(2/pi) sigma n_r)`` has ``Delta = 2 max_r w_r``
  (:func:`l1_score_sensitivity`; the model is post-processing of earlier noisy releases, so only the
  data term moves). The mechanism is run as OpenDP's ``make_noisy_max`` (Gumbel noise, hardened) on a
  non-monotonic ``linf_distance`` with the scale :func:`selection_scale` gives, and its zCDP cost is
  read off OpenDP's own privacy map: ``epsilon^2 / 8`` for ``epsilon = 2 Delta / scale`` (the bounded-
  range bound of Cesar & Rogers 2021, which OpenDP implements).
* **Composition.** The costs add up in zCDP; AIM chooses each round's noise adaptively (budget
  annealing), which is covered by fully adaptive composition of zCDP with a fixed total (a privacy
  filter: Whitehouse, Ramdas, Rogers & Wu 2023). :class:`ZCDPFilter` enforces the total: a round that
  would overspend raises before it runs.
* **Conversion.** The total ``rho`` is calibrated to the user's ``(epsilon, delta)`` with
  :func:`~tabpriv.accounting.zcdp.zcdp_rho_for` (the Canonne-Kamath-Steinke conversion) and the
  figure is cross-checked with OpenDP's own conversion (:func:`marginal_total_rho`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from tabpriv.accounting.zcdp import (
    MAX_DISCRETE_GAUSSIAN_EPSILON,
    OPENDP_VERSION,
    ZCDP_CONVERSION,
    opendp_discrete_gaussian_epsilon,
    zcdp_epsilon,
    zcdp_rho_for,
)
from tabpriv.budget import check_delta, check_epsilon
from tabpriv.errors import BudgetExceededError, PrivacyParameterError

__all__ = [
    "COUNT_L1_SENSITIVITY",
    "COUNT_L2_SENSITIVITY",
    "MARGINAL_ACCOUNTANT",
    "MarginalBudget",
    "ZCDPFilter",
    "calibrate_selection",
    "l1_score_sensitivity",
    "marginal_total_rho",
    "measurement_rho",
    "measurement_sigma",
    "selection_epsilon",
    "selection_rho",
    "selection_scale",
]

#: Replace-one L2 sensitivity of one count marginal.
COUNT_L2_SENSITIVITY = math.sqrt(2.0)
#: Replace-one L1 sensitivity of one count marginal.
COUNT_L1_SENSITIVITY = 2.0

#: The accountant, in words (stated in reports).
MARGINAL_ACCOUNTANT = (
    "zCDP: discrete Gaussian measurements rho = Delta_2^2 / (2 sigma^2) (Canonne-Kamath-Steinke 2020) + "
    "exponential-mechanism selections rho = epsilon^2 / 8 (Cesar-Rogers 2021, OpenDP's noisy-max map), "
    "fully adaptive composition to a fixed total (privacy filter); " + ZCDP_CONVERSION
)


def measurement_rho(sigma: float) -> float:
    """The zCDP cost of one count marginal with the discrete Gaussian ``N_Z(0, sigma^2)``: ``1/sigma^2``."""
    if not (math.isfinite(sigma) and sigma > 0):
        raise PrivacyParameterError(f"sigma must be finite and > 0; got {sigma!r}.")
    return COUNT_L2_SENSITIVITY**2 / (2.0 * sigma * sigma)


def measurement_sigma(rho: float) -> float:
    """The discrete Gaussian scale whose measurement costs exactly ``rho``: ``1 / sqrt(rho)``."""
    if not (math.isfinite(rho) and rho > 0):
        raise PrivacyParameterError(f"rho must be finite and > 0; got {rho!r}.")
    return COUNT_L2_SENSITIVITY / math.sqrt(2.0 * rho)


def l1_score_sensitivity(max_weight: float = 1.0) -> float:
    """Replace-one sensitivity of a weighted L1 error score ``w ||M_r(D) - m||_1``: ``2 w``."""
    if not (math.isfinite(max_weight) and max_weight > 0):
        raise PrivacyParameterError(f"max_weight must be finite and > 0; got {max_weight!r}.")
    return COUNT_L1_SENSITIVITY * max_weight


def selection_epsilon(rho: float) -> float:
    """The exponential mechanism's epsilon whose zCDP cost is ``rho``: ``sqrt(8 rho)``."""
    if not (math.isfinite(rho) and rho > 0):
        raise PrivacyParameterError(f"rho must be finite and > 0; got {rho!r}.")
    return math.sqrt(8.0 * rho)


def selection_scale(rho: float, sensitivity: float) -> float:
    """Gumbel scale of a noisy-max selection of cost ``rho`` on scores of ``sensitivity``: ``2 D / eps``."""
    return 2.0 * sensitivity / selection_epsilon(rho)


def selection_rho(scale: float, sensitivity: float) -> float:
    """ZCDP cost of a noisy-max selection, by OpenDP's privacy map (non-monotonic scores).

    Equal to ``(2 sensitivity / scale)^2 / 8`` (tests check the two agree); OpenDP's map is the
    figure used, so that the accounting is the maintained library's.
    """
    import opendp.prelude as dp

    dp.enable_features("contrib")
    meas = dp.m.make_noisy_max(
        dp.vector_domain(dp.atom_domain(T="f64", nan=False)),
        dp.linf_distance(T="f64", monotonic=False),
        dp.zero_concentrated_divergence(),
        scale=float(scale),
    )
    return float(meas.map(float(sensitivity)))


def calibrate_selection(rho: float, sensitivity: float) -> tuple[float, float]:
    """The smallest noisy-max scale whose cost by OpenDP's map is at most ``rho``, and that cost."""
    scale = selection_scale(rho, sensitivity)
    cost = selection_rho(scale, sensitivity)
    while cost > rho:
        scale *= 1.0 + 1e-12
        cost = selection_rho(scale, sensitivity)
    return scale, cost


def marginal_total_rho(epsilon: float, delta: float) -> tuple[float, float]:
    """The total zCDP budget for ``(epsilon, delta)``, and the epsilon it converts back to.

    ``rho`` is the largest with the Canonne-Kamath-Steinke conversion ``<= epsilon``; the figure
    returned is the larger of that conversion and OpenDP's for the same ``rho`` (read off a discrete
    Gaussian of sensitivity ``sqrt(2)`` and ``sigma = 1/sqrt(rho)``), so a release never states less
    than either library. A target above :data:`MAX_DISCRETE_GAUSSIAN_EPSILON` is calibrated to that.
    """
    epsilon = min(check_epsilon(epsilon), MAX_DISCRETE_GAUSSIAN_EPSILON)
    delta = check_delta(delta)
    rho = zcdp_rho_for(epsilon, delta)
    for _ in range(60):
        _, eps_opendp = opendp_discrete_gaussian_epsilon(measurement_sigma(rho), COUNT_L2_SENSITIVITY, delta)
        stated = max(zcdp_epsilon(rho, delta), eps_opendp)
        if stated <= epsilon:
            return rho, stated
        rho *= 1.0 - 1e-9 * 2.0**_
    raise PrivacyParameterError(  # pragma: no cover - the two conversions agree to ~1e-9
        f"Could not calibrate a zCDP budget to epsilon={epsilon}, delta={delta} (OpenDP {OPENDP_VERSION})."
    )


@dataclass
class ZCDPFilter:
    """A running zCDP total that refuses to go over its budget (fully adaptive composition).

    Attributes:
        rho: The total budget (paid in the ledger before any data is read).
        spent: What has been charged so far.
        entries: ``(what, rho)`` for every charge, in order (public: the noise scales are public).

    """

    rho: float
    spent: float = 0.0
    entries: list[tuple[str, float]] = field(default_factory=list)

    #: Relative slack for floating-point sums (a charge that overspends by more raises).
    RTOL = 1e-9

    @property
    def remaining(self) -> float:
        """Budget not yet charged (never negative)."""
        return max(0.0, self.rho - self.spent)

    def charge(self, rho: float, what: str) -> None:
        """Record a charge of ``rho``; raise (recording nothing) if it would exceed the total.

        Raises:
            BudgetExceededError: ``spent + rho`` exceeds the total by more than :attr:`RTOL`.

        """
        if not (math.isfinite(rho) and rho >= 0):
            raise PrivacyParameterError(f"A zCDP charge must be finite and >= 0; got {rho!r} for {what}.")
        if self.spent + rho > self.rho * (1.0 + self.RTOL):
            raise BudgetExceededError(
                f"{what} would cost rho={rho:.6g} but only {self.remaining:.6g} of rho={self.rho:.6g} is "
                "left; the mechanism stops before running it (a programming error: report it)."
            )
        self.spent += rho
        self.entries.append((what, float(rho)))


@dataclass(frozen=True)
class MarginalBudget:
    """A marginal mechanism's total budget, as stated in the plan and the report.

    Attributes:
        rho: Total zCDP budget.
        epsilon: The epsilon it converts to at ``delta`` (the spend).
        delta: Delta of the spend.
        accountant: The accountant, in words.

    """

    rho: float
    epsilon: float
    delta: float
    accountant: str = MARGINAL_ACCOUNTANT

    @classmethod
    def for_target(cls, epsilon: float, delta: float) -> MarginalBudget:
        """The budget calibrated to ``(epsilon, delta)`` (see :func:`marginal_total_rho`)."""
        rho, eps = marginal_total_rho(epsilon, delta)
        return cls(rho=rho, epsilon=eps, delta=check_delta(delta))
