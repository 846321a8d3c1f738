"""The one noise calibration: bisection on a monotone epsilon(noise), never above the target.

Every backend calibrates its noise with :func:`calibrate`. It needs only that ``epsilon_of`` does not
increase with the noise parameter (true of every accountant here: more noise, less privacy loss).

The search has three phases, each optional, so that a call site whose old hand-written loop is a
special case reproduces that loop's floats exactly:

1. **Bracket upwards** from ``hi``: while ``epsilon_of(hi) > target``, set ``lo = hi`` and multiply
   ``hi`` by ``grow``. With ``grow = 1 + 1e-9`` and no ``lo`` this is the "start from an analytic guess
   and nudge it up until it fits" rule of the analytic Gaussian, the discrete Gaussian and GDP.
2. **Bracket downwards** (``shrink`` given): ``lo = hi / shrink``; while ``epsilon_of(lo) <= target``,
   ``hi = lo`` and ``lo /= shrink`` (stopping below ``lo_floor``).
3. **Bisect** ``[lo, hi]`` (when a ``lo`` is known), keeping ``epsilon_of(hi) <= target < epsilon_of(lo)``,
   at the arithmetic or the geometric midpoint, until ``hi - lo <= rtol * hi`` (``"width"``) or
   ``hi / lo <= 1 + rtol`` (``"ratio"``), or ``max_bisections`` steps.

The result is ``hi``: its epsilon (evaluated, never extrapolated) is ``<= target``, and the smallest
admissible noise lies in ``(lo, hi]``, so ``hi`` overshoots it by at most the stated tolerance.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from tabpriv.errors import PrivacyParameterError

__all__ = ["Calibration", "calibrate"]


@dataclass(frozen=True)
class Calibration:
    """Result of :func:`calibrate`.

    Attributes:
        noise: The calibrated noise parameter (``hi``); ``epsilon_of(noise) <= target``.
        epsilon: ``epsilon_of(noise)`` (the evaluated figure).
        target: The target epsilon.
        lower: Largest noise seen whose epsilon exceeds the target (``None`` if none was evaluated):
            the smallest admissible noise lies in ``(lower, noise]``.
        evaluations: Number of calls of ``epsilon_of``.
        rtol: The stopping tolerance of the bisection.
        stop: The stopping rule (``"width"``, ``"ratio"`` or ``"guess"`` when no bisection ran).

    """

    noise: float
    epsilon: float
    target: float
    lower: float | None
    evaluations: int
    rtol: float
    stop: str


def calibrate(
    epsilon_of: Callable[[float], float],
    target: float,
    *,
    hi: float,
    lo: float | None = None,
    rtol: float = 1e-7,
    grow: float = 2.0,
    hi_max: float = 1e12,
    shrink: float | None = None,
    lo_floor: float = 0.0,
    midpoint: Literal["arithmetic", "geometric"] = "arithmetic",
    stop: Literal["width", "ratio"] = "width",
    max_bisections: int = 200,
    bisect: bool = True,
    on_unreachable: Callable[[float], Exception] | None = None,
) -> Calibration:
    """Smallest noise (within ``rtol``) whose ``epsilon_of`` is ``<= target``; see the module docstring.

    Args:
        epsilon_of: Non-increasing map from the noise parameter to epsilon.
        target: Target epsilon (> 0).
        hi: Starting upper end (or the analytic guess).
        lo: Known lower end with ``epsilon_of(lo) > target`` (``None``: none; then no bisection runs
            unless phase 1 or 2 finds one).
        rtol: Relative tolerance of the bisection.
        grow: Factor of the upward bracketing (> 1).
        hi_max: Raise once ``hi`` passes this (no finite noise reaches the target).
        shrink: Factor of the downward bracketing (``None``: skip that phase).
        lo_floor: Stop the downward bracketing once ``lo`` falls below this.
        midpoint: ``"arithmetic"`` or ``"geometric"`` bisection.
        stop: ``"width"`` (``hi - lo <= rtol * hi``) or ``"ratio"`` (``hi / lo <= 1 + rtol``).
        max_bisections: Cap on bisection steps.
        bisect: ``False``: stop after the bracketing (the "nudge an analytic guess up" rule: the
            result is the first point of ``hi, hi * grow, hi * grow^2, ...`` that fits).
        on_unreachable: Builds the exception raised when ``hi`` passes ``hi_max`` (given ``hi``).

    Raises:
        PrivacyParameterError: Invalid arguments, or no noise up to ``hi_max`` reaches the target.

    """
    if not (math.isfinite(target) and target > 0):
        raise PrivacyParameterError(f"The target epsilon must be finite and > 0; got {target!r}.")
    if not (math.isfinite(hi) and hi > 0) or not grow > 1.0 or not 0 < rtol < 1:
        raise PrivacyParameterError(
            f"calibrate needs hi > 0, grow > 1 and 0 < rtol < 1; got hi={hi!r}, grow={grow!r}, rtol={rtol!r}."
        )
    if shrink is not None and not shrink > 1.0:
        raise PrivacyParameterError(f"shrink must be > 1 (or None); got {shrink!r}.")
    evaluations = 0

    def f(x: float) -> float:
        nonlocal evaluations
        evaluations += 1
        return float(epsilon_of(x))

    # 1. upwards
    e_hi = f(hi)
    while e_hi > target:
        lo, hi = hi, hi * grow
        if hi > hi_max:
            if on_unreachable is not None:
                raise on_unreachable(hi)
            raise PrivacyParameterError(
                f"No noise up to {hi_max:g} reaches epsilon <= {target:g}; raise epsilon."
            )
        e_hi = f(hi)
    # 2. downwards
    if shrink is not None:
        lo = hi / shrink
        while True:
            e_lo = f(lo)
            if e_lo > target:
                break
            hi, e_hi, lo = lo, e_lo, lo / shrink
            if lo < lo_floor:
                break
    # 3. bisection
    if lo is None or not bisect:
        return Calibration(hi, e_hi, float(target), lo, evaluations, float(rtol), "guess")
    for _ in range(max_bisections):
        if (hi - lo <= rtol * hi) if stop == "width" else (hi / lo <= 1.0 + rtol):
            break
        mid = math.sqrt(lo * hi) if midpoint == "geometric" else 0.5 * (lo + hi)
        e_mid = f(mid)
        if e_mid > target:
            lo = mid
        else:
            hi, e_hi = mid, e_mid
    if not e_hi <= target:  # pragma: no cover - hi is only ever set to a point that fits
        raise PrivacyParameterError("Calibration failed to keep epsilon within the target.")
    return Calibration(hi, e_hi, float(target), lo, evaluations, float(rtol), stop)
