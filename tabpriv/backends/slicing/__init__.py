"""The slicing family: the slicing mechanism and the generators trained on its release.

Greenewald et al., *Privacy without Noisy Gradients: Slicing Mechanism for Generative Model Training*
(NeurIPS 2024, arXiv 2410.19941). Privacy is spent once, on noisy random projections of the encoded
table; everything after is post-processing.

Modules:

* :mod:`~tabpriv.backends.slicing.backend` -- the ``slicing`` and ``slicing-wasserstein`` backends
  (``plan``/``fit``/``sample``, :func:`retrain_from_release`).
* :mod:`~tabpriv.backends.slicing.mechanism` -- sensitivity, calibration and the noisy release
  (numpy; the accounting itself lives in :mod:`tabpriv.accounting.slicing`).
* :mod:`~tabpriv.backends.slicing.training` -- the torch generator and its estimators (post-processing).

The public names below are resolved on first access (PEP 562), so importing this package imports
neither torch nor the backend module; the registry targets name the modules directly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tabpriv.backends._lazy import lazy_exports

if TYPE_CHECKING:
    from tabpriv.backends.slicing.backend import (
        SlicingBackend,
        SlicingNoise,
        SlicingWassersteinBackend,
        retrain_from_release,
    )
    from tabpriv.backends.slicing.mechanism import SlicingRelease

__all__ = [
    "SlicingBackend",
    "SlicingNoise",
    "SlicingRelease",
    "SlicingWassersteinBackend",
    "retrain_from_release",
]

_EXPORTS = {
    "SlicingBackend": "backend",
    "SlicingNoise": "backend",
    "SlicingWassersteinBackend": "backend",
    "retrain_from_release": "backend",
    "SlicingRelease": "mechanism",
}


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
