"""DP-SGD under replace-one adjacency: the Poisson-subsampled Gaussian through dp-accounting's PLD."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

from tabpriv.accounting.calibrate import calibrate
from tabpriv.accounting.gaussian import DP_ACCOUNTING_VERSION, calibrate_gaussian
from tabpriv.accounting.interface import Adjacency, PoissonGaussianDPSGD, check_adjacency
from tabpriv.budget import check_delta, check_epsilon
from tabpriv.errors import PrivacyParameterError

__all__ = [
    "DPSGD_ADJACENCIES",
    "DPSGD_CALIBRATION_RTOL",
    "OPACUS_ALPHAS",
    "DPSGDCalibration",
    "calibrate_dpsgd",
    "dpsgd_accountant_text",
    "dpsgd_epsilon",
    "dpsgd_pld_interval",
    "opacus_epsilon",
    "opacus_version",
    "replace_one_from_add_remove",
]

#: Relative tolerance of :func:`calibrate_dpsgd` on the noise multiplier (the returned ``z`` is at most
#: this much above the smallest ``z`` the accountant accepts; its epsilon is never above the target).
DPSGD_CALIBRATION_RTOL = 1e-3

#: Adjacency names accepted by :func:`dpsgd_epsilon`.
DPSGD_ADJACENCIES = ("replace-one", "add/remove-one")


def dpsgd_pld_interval(target_epsilon: float) -> float:
    """The PLD grid (``value_discretization_interval``) used to account DP-SGD at ``target_epsilon``.

    ``target_epsilon / 2000``, clipped to ``[1e-4, 1e-2]``. dp-accounting's PLD rounds every privacy
    loss *up* to the grid (``pessimistic_estimate=True``) and moves truncated tail mass to the worst
    case, so any interval gives an upper bound on epsilon; a coarser one is looser and faster. With
    this rule the figure is within about 0.5% of a 1e-5 grid on the configurations measured
    (``docs/privacy.md``) and one evaluation takes about 0.01-0.3 s.
    """
    return float(min(1e-2, max(1e-4, target_epsilon / 2000.0)))


def _check_dpsgd_args(noise_multiplier: float, sampling_probability: float, steps: int) -> None:
    if not (
        isinstance(noise_multiplier, int | float) and math.isfinite(noise_multiplier) and noise_multiplier > 0
    ):
        raise PrivacyParameterError(f"noise_multiplier must be finite and > 0; got {noise_multiplier!r}.")
    if not (isinstance(sampling_probability, int | float) and 0 < sampling_probability <= 1):
        raise PrivacyParameterError(f"sampling_probability must lie in (0, 1]; got {sampling_probability!r}.")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise PrivacyParameterError(f"steps must be an integer >= 1; got {steps!r}.")


def dpsgd_epsilon(
    noise_multiplier: float,
    sampling_probability: float,
    steps: int,
    delta: float,
    *,
    value_discretization_interval: float = 1e-4,
    adjacency: str = "replace-one",
) -> float:
    """Epsilon at ``delta`` of ``steps`` Poisson-subsampled Gaussian DP-SGD steps (dp-accounting PLD).

    Each step includes every record independently with probability ``sampling_probability``, sums the
    per-record gradients clipped to L2 norm ``C`` and adds ``N(0, (noise_multiplier * C)^2 I)``.
    Under replace-one adjacency (the default; the row count is public) the per-step pair of
    dp-accounting's ``PoissonSampledDpEvent(q, GaussianDpEvent(z))`` with
    ``NeighboringRelation.REPLACE_ONE`` is ``(1-q) N(0, z^2) + q N(-1, z^2)`` against
    ``(1-q) N(0, z^2) + q N(+1, z^2)`` (in units of ``C``): a replaced record moves the sum by up to
    ``2C``, and only when it is sampled. ``adjacency="add/remove-one"`` gives the figure for adding or
    removing one record (reported as an extra only).

    Raises:
        PrivacyParameterError: A parameter is out of range or ``adjacency`` unknown.

    """
    import dp_accounting
    from dp_accounting.pld import PLDAccountant

    _check_dpsgd_args(noise_multiplier, sampling_probability, steps)
    delta = check_delta(delta)
    relations = {
        "replace-one": dp_accounting.NeighboringRelation.REPLACE_ONE,
        "add/remove-one": dp_accounting.NeighboringRelation.ADD_OR_REMOVE_ONE,
    }
    if adjacency not in relations:
        raise PrivacyParameterError(f"adjacency must be one of {DPSGD_ADJACENCIES}; got {adjacency!r}.")
    acc = PLDAccountant(
        neighboring_relation=relations[adjacency], value_discretization_interval=value_discretization_interval
    )
    step = dp_accounting.PoissonSampledDpEvent(
        float(sampling_probability), dp_accounting.GaussianDpEvent(float(noise_multiplier))
    )
    acc.compose(dp_accounting.SelfComposedDpEvent(step, int(steps)))
    return float(acc.get_epsilon(delta))


@dataclass(frozen=True)
class DPSGDCalibration:
    """Result of calibrating DP-SGD's noise multiplier under replace-one adjacency.

    Attributes:
        noise_multiplier: ``z``; the noise std is ``z * C`` for clipping norm ``C``.
        epsilon: Replace-one epsilon at ``delta`` of the accounted mechanism (<= the target).
        delta: Delta.
        sampling_probability: Poisson sampling rate ``q`` of every step.
        steps: Number of steps ``T``.
        value_discretization_interval: PLD grid used for ``epsilon``.
        target_epsilon: The target.
        accountant: Description of the accountant.
        adjacency: ``"replace-one"``.
        evaluations: Accountant evaluations the calibration took.

    """

    noise_multiplier: float
    epsilon: float
    delta: float
    sampling_probability: float
    steps: int
    value_discretization_interval: float
    target_epsilon: float
    accountant: str
    adjacency: str = "replace-one"
    evaluations: int = 0

    @property
    def mechanism(self) -> PoissonGaussianDPSGD:
        """The calibrated mechanism as a typed value (``mechanism.accountant`` is an ``AccountantInfo``)."""
        return PoissonGaussianDPSGD(
            self.noise_multiplier, self.sampling_probability, self.steps, self.value_discretization_interval
        )


def dpsgd_accountant_text(value_discretization_interval: float) -> str:
    """The accountant of DP-SGD, in words (stated in ledgers and reports)."""
    return (
        f"dp-accounting {DP_ACCOUNTING_VERSION} PLD accountant: Poisson-subsampled Gaussian "
        "(PoissonSampledDpEvent of GaussianDpEvent), self-composed over the steps, "
        f"NeighboringRelation.REPLACE_ONE, pessimistic discretisation {value_discretization_interval:g}"
    )


def calibrate_dpsgd(
    epsilon: float,
    delta: float,
    sampling_probability: float,
    steps: int,
    *,
    rtol: float = DPSGD_CALIBRATION_RTOL,
    adjacency: Adjacency = "replace-one",
) -> DPSGDCalibration:
    """Smallest noise multiplier (within ``rtol``) whose replace-one epsilon at ``delta`` is <= ``epsilon``.

    Geometric bisection (:func:`~tabpriv.accounting.calibrate`) on ``z`` with :func:`dpsgd_epsilon`
    (replace-one, grid
    :func:`dpsgd_pld_interval` of the target), which decreases in ``z``. The upper end starts at the
    full-batch figure (``q = 1``: one Gaussian of sensitivity ``2 sqrt(T)``, an upper bound on the
    subsampled one) and the search keeps ``epsilon(hi) <= target < epsilon(lo)``; it stops when
    ``hi / lo <= 1 + rtol`` and returns ``hi``, so the result never exceeds the target.

    Raises:
        PrivacyParameterError: No noise multiplier up to 1e6 fits, or a parameter is out of range.

    """
    check_adjacency(adjacency)
    epsilon = check_epsilon(epsilon)
    delta = check_delta(delta)
    _check_dpsgd_args(1.0, sampling_probability, steps)
    if not 0 < rtol < 1:
        raise PrivacyParameterError(f"rtol must lie in (0, 1); got {rtol!r}.")
    vdi = dpsgd_pld_interval(epsilon)

    def eps_of(z: float) -> float:
        return dpsgd_epsilon(z, sampling_probability, steps, delta, value_discretization_interval=vdi)

    def unreachable(_: float) -> Exception:
        return PrivacyParameterError(
            f"No noise multiplier up to 1e6 gives epsilon <= {epsilon:g} at delta={delta:g} for "
            f"{steps} steps at sampling rate {sampling_probability:g}; raise epsilon or lower steps."
        )

    # Upper end: the full-batch figure (q = 1), raised by 5% steps while the PLD grid's pessimism puts
    # it just above; then halve down to a bracket (stopping at z = 1e-3: the target is huge).
    cal = calibrate(
        eps_of, epsilon, hi=2.0 * math.sqrt(steps) * calibrate_gaussian(epsilon, delta, 1.0).noise_multiplier,
        rtol=rtol, grow=1.05, hi_max=1e6, shrink=2.0, lo_floor=1e-3, midpoint="geometric", stop="ratio",
        on_unreachable=unreachable,
    )  # fmt: skip
    hi, e_hi, evaluations = cal.noise, cal.epsilon, cal.evaluations
    return DPSGDCalibration(
        noise_multiplier=hi,
        epsilon=e_hi,
        delta=delta,
        sampling_probability=float(sampling_probability),
        steps=int(steps),
        value_discretization_interval=vdi,
        target_epsilon=epsilon,
        accountant=dpsgd_accountant_text(vdi),
        evaluations=evaluations,
    )


# -- cross-check: opacus RDP (add/remove-one) and group privacy ------------------------------------------
def opacus_version() -> str:
    """The installed opacus version (``"unknown"`` without its metadata)."""
    try:
        from importlib.metadata import version

        return version("opacus")
    except Exception:  # pragma: no cover
        return "unknown"


#: RDP orders given to opacus (wider than its default, so large epsilons are not loosened).
OPACUS_ALPHAS: list[float] = (
    [1 + x / 10.0 for x in range(1, 100)]
    + list(range(11, 64))
    + [
        80,
        128,
        256,
        512,
        1024,
        4096,
    ]
)


def opacus_epsilon(noise_multiplier: float, sample_rate: float, steps: int, delta: float) -> float:
    """Add/remove-one epsilon of Poisson-subsampled DP-SGD from opacus' RDP accountant.

    Not used for calibration any more: a cross-check (through :func:`replace_one_from_add_remove` it is
    an upper bound on the replace-one figure).
    """
    from opacus.accountants import RDPAccountant

    acc = RDPAccountant()
    acc.history = [(noise_multiplier, sample_rate, steps)]
    with warnings.catch_warnings():
        # "optimal order is the largest alpha": the bound is then merely looser (safe side)
        warnings.simplefilter("ignore", UserWarning)
        return float(acc.get_epsilon(delta, alphas=OPACUS_ALPHAS))


def replace_one_from_add_remove(eps_ar: float, delta_ar: float) -> tuple[float, float]:
    """Group privacy of size 2: add/remove (e, d) -> replace-one (2e, (1 + e^e) d)."""
    return 2.0 * eps_ar, (1.0 + math.exp(eps_ar)) * delta_ar
