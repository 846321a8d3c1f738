"""The VAE family: three ways to train one tabular VAE privately.

Modules:

* :mod:`~tabpriv.backends.vae.common` -- the shared torch code: the MLP, the span layout and the
  binned number heads, the reconstruction loss, decoding (imports torch; only the torch modules use it).
* :mod:`~tabpriv.backends.vae.dp2` -- ``dp2-vae``: DP²-VAE (Jiang et al., arXiv 2208.03409), a decoder
  trained with 1-of-K subset-sampled noisy steps; torch code in :mod:`~tabpriv.backends.vae.dp2_torch`.
* :mod:`~tabpriv.backends.vae.dpsgd` -- ``dpsgd-vae``: the same VAE trained end to end with DP-SGD
  (Abadi et al., 2016); torch code in :mod:`~tabpriv.backends.vae.dpsgd_torch`.
* :mod:`~tabpriv.backends.vae.lipschitz` -- ``lipschitz-vae``: the Lipschitz-constrained VAE (Groß &
  Wunder, arXiv 2304.11336), DP-SGD training plus certified-Lipschitz noisy reconstructions; torch code
  in :mod:`~tabpriv.backends.vae.lipschitz_torch`.
* :mod:`~tabpriv.backends.vae.dpsgd_loop` -- the one DP-SGD loop both ``dpsgd-vae`` and
  ``lipschitz-vae`` run (schedule, calibration, secret Poisson sampler, clipping, Gaussian noise).

The backend modules import torch only inside their methods, and the public names below are resolved on
first access (PEP 562), so importing this package imports neither torch nor any backend module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tabpriv.backends._lazy import lazy_exports

if TYPE_CHECKING:
    from tabpriv.backends.vae.dp2 import DP2VAEBackend
    from tabpriv.backends.vae.dpsgd import DPSGDVAEBackend
    from tabpriv.backends.vae.lipschitz import LipschitzVAEBackend

__all__ = ["DP2VAEBackend", "DPSGDVAEBackend", "LipschitzVAEBackend"]

_EXPORTS = {
    "DP2VAEBackend": "dp2",
    "DPSGDVAEBackend": "dpsgd",
    "LipschitzVAEBackend": "lipschitz",
}


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
