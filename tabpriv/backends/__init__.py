"""Privacy backends, registered by name in one dict and imported lazily.

The registry maps a name to ``"module:ClassName"``; the module is imported only when the backend is
used, so listing names costs nothing. Every name accepted anywhere (API, CLI, benchmarks) comes from
this registry.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from tabpriv.errors import UnknownBackendError

if TYPE_CHECKING:
    from tabpriv.backends.base import Backend

__all__ = ["available_backends", "get_backend_class", "register_backend"]

_REGISTRY: dict[str, str] = {
    "independent": "tabpriv.backends.independent:IndependentBackend",
    "dp2-vae": "tabpriv.backends.dp2vae:DP2VAEBackend",
    "dpsgd-vae": "tabpriv.backends.dpsgd_vae:DPSGDVAEBackend",
    "slicing": "tabpriv.backends.slicing:SlicingBackend",
    "slicing-wasserstein": "tabpriv.backends.slicing:SlicingWassersteinBackend",
    "lipschitz-vae": "tabpriv.backends.lipschitz_vae:LipschitzVAEBackend",
}


def available_backends() -> list[str]:
    """Registered backend names, sorted."""
    return sorted(_REGISTRY)


def register_backend(name: str, target: str) -> None:
    """Register ``target`` (``"package.module:ClassName"``) under ``name`` (plugins, tests)."""
    if ":" not in target:
        raise ValueError(f"target must look like 'package.module:ClassName'; got {target!r}.")
    _REGISTRY[name] = target


def get_backend_class(name: str) -> type[Backend]:
    """Import and return the backend class registered under ``name``.

    Raises:
        UnknownBackendError: ``name`` is not registered.

    """
    target = _REGISTRY.get(name)
    if target is None:
        raise UnknownBackendError(
            f"Unknown backend {name!r}; available backends are: {', '.join(available_backends())}."
        )
    module_name, _, cls_name = target.partition(":")
    module = importlib.import_module(module_name)
    cls: type[Backend] = getattr(module, cls_name)
    return cls
