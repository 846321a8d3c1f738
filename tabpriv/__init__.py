"""tabpriv: differentially private synthetic tables.

``import tabpriv`` is cheap: torch, pandas and the backends are imported on first use. It registers the
``df.tabpriv`` DataFrame accessor (at once if pandas is imported, else when pandas is; see
:mod:`tabpriv.accessor`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tabpriv import accessor as _accessor

__version__ = "0.1.0"

__all__ = [
    "PrivacyBudget",
    "PrivacyReport",
    "Schema",
    "Synthesizer",
    "__version__",
    "available_backends",
    "evaluate",
    "load_adult",
    "synthesize",
]

_LAZY = {
    "Schema": "tabpriv.schema",
    "PrivacyBudget": "tabpriv.budget",
    "PrivacyReport": "tabpriv.budget",
    "Synthesizer": "tabpriv.synthesizer",
    "synthesize": "tabpriv.synthesizer",
    "available_backends": "tabpriv.backends",
    "load_adult": "tabpriv.datasets",
    "evaluate": "tabpriv.evaluation",
}

if TYPE_CHECKING:
    from tabpriv.backends import available_backends
    from tabpriv.budget import PrivacyBudget, PrivacyReport
    from tabpriv.datasets import load_adult
    from tabpriv.evaluation import evaluate
    from tabpriv.schema import Schema
    from tabpriv.synthesizer import Synthesizer, synthesize

_accessor.install()


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tabpriv' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
