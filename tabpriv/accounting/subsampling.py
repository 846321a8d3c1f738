"""Privacy amplification by subsampling (replace-one adjacency).

* Sampling **without replacement** of exactly ``n_s`` of ``n`` rows (:func:`amplify_wor`): Balle,
  Barthe & Gaboardi (NeurIPS 2018), Theorem 9, applied pointwise to a whole privacy profile.
* **Poisson** sampling is accounted inside dp-accounting's PLD (``PoissonSampledDpEvent``,
  :func:`tabpriv.accounting.dpsgd_epsilon`), which composes it exactly.
"""

from __future__ import annotations

import math

from tabpriv.errors import PrivacyParameterError

__all__ = ["WOR_THEOREM", "amplify_wor", "deamplify_wor"]

WOR_THEOREM = (
    "Balle, Barthe & Gaboardi (NeurIPS 2018), 'Privacy amplification by subsampling: tight analyses via "
    "couplings and divergences', Theorem 9 (sampling without replacement, substitution relation): if M "
    "is (eps, delta)-DP on n_s rows, M o WOR(n -> n_s) is (log(1 + (n_s/n)(e^eps - 1)), (n_s/n) delta)-DP"
)


def amplify_wor(epsilon: float, delta: float, gamma: float) -> tuple[float, float]:
    """Privacy of ``M o WOR`` at sampling fraction ``gamma = m/n`` from that of ``M`` (replace-one).

    Balle, Barthe & Gaboardi 2018, Theorem 9: ``(log(1 + gamma (e^eps - 1)), gamma delta)``.
    """
    if not 0.0 < gamma <= 1.0:
        raise PrivacyParameterError(f"The sampling fraction must be in (0, 1]; got {gamma!r}.")
    if math.isinf(epsilon):
        return math.inf, gamma * delta
    # log(1 + gamma (e^eps - 1)) = eps + log(gamma + (1 - gamma) e^-eps): no overflow for large eps
    if epsilon > 1.0:
        return epsilon + math.log(gamma + (1.0 - gamma) * math.exp(-epsilon)), gamma * delta
    return math.log1p(gamma * math.expm1(epsilon)), gamma * delta


def deamplify_wor(epsilon: float, delta: float, gamma: float) -> tuple[float, float]:
    """Inverse of :func:`amplify_wor`: the base ``(eps, delta)`` that amplifies to the given pair."""
    if not 0.0 < gamma <= 1.0:
        raise PrivacyParameterError(f"The sampling fraction must be in (0, 1]; got {gamma!r}.")
    if epsilon > 1.0:
        return epsilon + math.log(math.exp(-epsilon) + -math.expm1(-epsilon) / gamma), delta / gamma
    return math.log1p(math.expm1(epsilon) / gamma), delta / gamma
