"""Accounting of DP²-VAE's decoder updates: 1-of-K subset sampling, Gaussian steps, RDP (dp-accounting).

A replaced row lives in one of K disjoint subsets; each step uses that subset with probability 1/K (a
sample of 1 of K units without replacement, replace-one at the unit level) and is then a Gaussian
mechanism of L2 sensitivity ``sensitivity * C`` with noise ``sigma * C``. The T steps (and, optionally,
one Gaussian release of a condition histogram) are accounted with dp-accounting's RDP accountant under
``NeighboringRelation.REPLACE_ONE``:
``SelfComposed(SampledWithoutReplacement(K, 1, Gaussian(sigma / sensitivity)), T)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from tabpriv.accounting.calibrate import calibrate
from tabpriv.accounting.gaussian import DP_ACCOUNTING_VERSION, calibrate_gaussian
from tabpriv.accounting.interface import Adjacency, check_adjacency
from tabpriv.errors import BudgetExceededError, PrivacyParameterError

__all__ = [
    "DP2VAE_RDP_ORDERS",
    "DP2VAECalibration",
    "calibrate_dp2vae_noise",
    "dp2vae_accountant_text",
    "dp2vae_epsilon",
    "dp2vae_epsilon_curve",
    "dp2vae_event",
]

#: RDP orders (integer orders keep the sampled-without-replacement bound cheap and exact).
DP2VAE_RDP_ORDERS: tuple[float, ...] = (1.5, 1.75, *range(2, 33), 40, 48, 56, 64, 80, 96)

#: Replace-one L2 sensitivity of one decoder update in units of the clipping norm (two updates of norm
#: <= C each).
STEP_SENSITIVITY = 2.0


def dp2vae_event(
    noise: float,
    n_subsets: int,
    steps: int,
    hist_multiplier: float | None,
    *,
    sensitivity: float = STEP_SENSITIVITY,
) -> Any:
    """The dp-accounting event of ``steps`` updates (plus the condition histogram, if any)."""
    import dp_accounting

    step = dp_accounting.SampledWithoutReplacementDpEvent(
        source_dataset_size=n_subsets,
        sample_size=1,
        # Sensitivity 2C, noise std sigma*C: noise multiplier sigma/2 at unit sensitivity.
        event=dp_accounting.GaussianDpEvent(noise / sensitivity),
    )
    event = dp_accounting.SelfComposedDpEvent(step, steps)
    if hist_multiplier is not None:
        event = dp_accounting.ComposedDpEvent([event, dp_accounting.GaussianDpEvent(hist_multiplier)])
    return event


def _rdp_accountant() -> Any:
    import dp_accounting

    return dp_accounting.rdp.RdpAccountant(
        orders=list(DP2VAE_RDP_ORDERS),
        neighboring_relation=dp_accounting.NeighboringRelation.REPLACE_ONE,
    )


def dp2vae_epsilon(
    noise: float,
    n_subsets: int,
    steps: int,
    delta: float,
    hist_multiplier: float | None = None,
    *,
    sensitivity: float = STEP_SENSITIVITY,
) -> float:
    """Epsilon (at ``delta``, replace-one) of ``steps`` DP²-VAE decoder updates.

    Args:
        noise: sigma (noise std in units of the clipping norm C).
        n_subsets: K; each step uses the subset holding a given row with probability 1/K.
        steps: T.
        delta: Target delta.
        hist_multiplier: Noise multiplier (std / L2 sensitivity) of the released condition histogram,
            if any; composed with the decoder updates.
        sensitivity: Per-step L2 sensitivity in units of C (2).

    """
    if not noise > 0:
        raise PrivacyParameterError(f"noise must be > 0; got {noise!r}.")
    acc = _rdp_accountant()
    acc.compose(dp2vae_event(noise, n_subsets, steps, hist_multiplier, sensitivity=sensitivity))
    return float(acc.get_epsilon(delta))


def dp2vae_epsilon_curve(
    noise: float,
    n_subsets: int,
    steps: list[int],
    delta: float,
    hist_multiplier: float | None = None,
    *,
    sensitivity: float = STEP_SENSITIVITY,
) -> list[float]:
    """Epsilon after each number of steps in ``steps`` (same accountant; one RDP evaluation)."""
    import numpy as np
    from dp_accounting.rdp import compute_epsilon

    acc = _rdp_accountant()
    acc.compose(dp2vae_event(noise, n_subsets, 1, None, sensitivity=sensitivity))
    per_step = np.asarray(acc.rdp, dtype=np.float64)
    base = np.zeros_like(per_step)
    if hist_multiplier is not None:
        hacc = _rdp_accountant()
        hacc.compose(dp2vae_event(noise, n_subsets, 0, hist_multiplier, sensitivity=sensitivity))
        base = np.asarray(hacc.rdp, dtype=np.float64)
    orders = np.asarray(acc.orders, dtype=np.float64)
    return [float(compute_epsilon(orders, base + t * per_step, delta)[0]) for t in steps]


@dataclass(frozen=True)
class DP2VAECalibration:
    """Noise calibrated for a DP²-VAE fit."""

    noise: float
    epsilon: float
    delta: float
    hist_multiplier: float | None
    accountant: str


def dp2vae_accountant_text(with_histogram: bool) -> str:
    """The accountant of DP²-VAE, in words (stated in ledgers and reports)."""
    return (
        f"dp-accounting {DP_ACCOUNTING_VERSION} RDP accountant, REPLACE_ONE: "
        "SelfComposed(SampledWithoutReplacement(K, 1, Gaussian(sigma/2)), T)"
        + (" + Gaussian(condition histogram)" if with_histogram else "")
    )


def calibrate_dp2vae_noise(
    epsilon: float,
    delta: float,
    n_subsets: int,
    steps: int,
    condition_fraction: float | None = None,
    *,
    sensitivity: float = STEP_SENSITIVITY,
    adjacency: Adjacency = "replace-one",
) -> DP2VAECalibration:
    """Smallest sigma such that the DP²-VAE run (plus the condition histogram) is (epsilon, delta)-DP.

    ``condition_fraction``: when conditioning, the histogram of the condition column (replace-one L2
    sensitivity sqrt(2)) gets the noise that would alone cost that fraction of epsilon; sigma is then
    calibrated on the composition. The starting point is dp-accounting's own calibration
    (``calibrate_dp_mechanism``, Brent's method to 1e-3); :func:`~tabpriv.accounting.calibrate` then
    nudges it up by factors ``1 + 1e-6`` until the figure it achieves is ``<= epsilon``.
    """
    import dp_accounting

    check_adjacency(adjacency)
    hist: float | None = None
    if condition_fraction is not None:
        cal = calibrate_gaussian(condition_fraction * epsilon, delta, math.sqrt(2.0))
        hist = cal.sigma / math.sqrt(2.0)

    def make_event(s: float) -> Any:
        return dp2vae_event(s, n_subsets, steps, hist, sensitivity=sensitivity)

    try:
        guess = float(
            dp_accounting.calibrate_dp_mechanism(
                _rdp_accountant,
                make_event,
                epsilon,
                delta,
                dp_accounting.LowerEndpointAndGuess(1e-3, 1.0),
                tol=1e-3,
            )
        )
    except Exception as exc:  # dp-accounting raises plain errors when no bracket fits
        raise BudgetExceededError(
            f"Could not calibrate DP²-VAE noise for epsilon={epsilon:g}, delta={delta:g}, "
            f"K={n_subsets}, T={steps}: {exc}. Nothing was run on the data. Raise epsilon or "
            "lower condition_fraction."
        ) from exc
    res = calibrate(
        lambda s: dp2vae_epsilon(s, n_subsets, steps, delta, hist, sensitivity=sensitivity),
        epsilon, hi=guess, grow=1.0 + 1e-6, bisect=False,
    )  # fmt: skip
    return DP2VAECalibration(
        noise=res.noise,
        epsilon=res.epsilon,
        delta=delta,
        hist_multiplier=hist,
        accountant=dp2vae_accountant_text(hist is not None),
    )
