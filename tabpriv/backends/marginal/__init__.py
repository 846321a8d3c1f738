"""The marginal family: select-measure-generate backends that add noise once, to aggregate counts.

``mst`` (McKenna, Miklau & Sheldon 2021) and ``aim`` (McKenna, Mullins, Sheldon & Miklau 2022,
arXiv 2201.12677), written for tabpriv from the papers under **replace-one** adjacency, accounted in
zCDP through :mod:`tabpriv.accounting.marginals`, with OpenDP's discrete Gaussian on integer counts and
OpenDP's noisy max for the selections, and generation by a graphical model estimated with mbi 2.0
(private-pgm's JAX rewrite). Noise on counts costs error ~ 1/n where noise on rows or gradients costs
~ 1/sqrt(n): this is the field's quality reference and tabpriv's default release.

Modules:

* :mod:`~tabpriv.backends.marginal.domain` -- the public discretisation (schema only);
* :mod:`~tabpriv.backends.marginal.measure` -- the one data pass, noisy counts, private selection;
* :mod:`~tabpriv.backends.marginal.model` -- mbi estimation and the numpy sampler (post-processing);
* :mod:`~tabpriv.backends.marginal.common` -- what the backends share (plan, fit, sample, save);
* :mod:`~tabpriv.backends.marginal.mst`, :mod:`~tabpriv.backends.marginal.aim` -- the backends;
* :mod:`~tabpriv.backends.marginal.pgd` -- PrivPGD (Donhauser et al. 2024): the same measurements,
  generation by particles fitted in torch (:mod:`~tabpriv.backends.marginal.particles`).

Names are resolved on first access (PEP 562): importing this package imports neither JAX nor mbi.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tabpriv.backends._lazy import lazy_exports

if TYPE_CHECKING:
    from tabpriv.backends.marginal.aim import AIMBackend
    from tabpriv.backends.marginal.common import MarginalBackend, MarginalNoise, ModelTooLargeError
    from tabpriv.backends.marginal.domain import MarginalDomain
    from tabpriv.backends.marginal.mst import MSTBackend
    from tabpriv.backends.marginal.pgd import PGDBackend

__all__ = [
    "AIMBackend",
    "MSTBackend",
    "MarginalBackend",
    "MarginalDomain",
    "MarginalNoise",
    "ModelTooLargeError",
    "PGDBackend",
]

_EXPORTS = {
    "AIMBackend": "aim",
    "MSTBackend": "mst",
    "MarginalBackend": "common",
    "MarginalNoise": "common",
    "ModelTooLargeError": "common",
    "MarginalDomain": "domain",
    "PGDBackend": "pgd",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
