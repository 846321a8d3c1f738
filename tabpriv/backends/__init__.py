"""Privacy backends, registered by name in one dict and imported lazily.

The registry maps a name to ``"module:ClassName"``; the module is imported only when the backend is
used, so listing names costs nothing. Every name accepted anywhere (API, CLI, benchmarks) comes from
this registry.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from tabpriv.errors import TabprivError, UnknownBackendError

if TYPE_CHECKING:
    from tabpriv.backends.base import Backend

__all__ = [
    "BackendRegistryError",
    "available_backends",
    "get_backend_class",
    "register_backend",
    "unregister_backend",
]


class BackendRegistryError(TabprivError, ValueError):
    """A registration was refused: a malformed target or a name already taken."""


_REGISTRY: dict[str, str] = {
    "independent": "tabpriv.backends.independent:IndependentBackend",
    "dp2-vae": "tabpriv.backends.vae.dp2:DP2VAEBackend",
    "dpsgd-vae": "tabpriv.backends.vae.dpsgd:DPSGDVAEBackend",
    "slicing": "tabpriv.backends.slicing.backend:SlicingBackend",
    "slicing-wasserstein": "tabpriv.backends.slicing.backend:SlicingWassersteinBackend",
    "lipschitz-vae": "tabpriv.backends.vae.lipschitz:LipschitzVAEBackend",
    "mst": "tabpriv.backends.marginal.mst:MSTBackend",
    "aim": "tabpriv.backends.marginal.aim:AIMBackend",
    "pgd": "tabpriv.backends.marginal.pgd:PGDBackend",
}


def available_backends() -> list[str]:
    """Registered backend names, sorted."""
    return sorted(_REGISTRY)


def register_backend(name: str, target: str, *, replace: bool = False) -> None:
    """Register ``target`` (``"package.module:ClassName"``) under ``name`` (plugins, tests).

    Args:
        name: Registry name (what ``Synthesizer(backend=...)`` and the CLI accept).
        target: ``"package.module:ClassName"``; imported only when the backend is used.
        replace: Allow replacing a name already registered (tests, a plugin overriding a backend on
            purpose). Without it a duplicate name is refused.

    Raises:
        BackendRegistryError: ``target`` is malformed, or ``name`` is taken and ``replace`` is false
            (re-registering the same target is a no-op).

    """
    if ":" not in target:
        raise BackendRegistryError(f"target must look like 'package.module:ClassName'; got {target!r}.")
    if not isinstance(name, str) or not name:
        raise BackendRegistryError(f"name must be a non-empty string; got {name!r}.")
    current = _REGISTRY.get(name)
    if current is not None and current != target and not replace:
        raise BackendRegistryError(
            f"A backend named {name!r} is already registered ({current}); got {target!r}. Choose "
            "another name, or pass replace=True to override it on purpose."
        )
    _REGISTRY[name] = target


def unregister_backend(name: str) -> None:
    """Remove ``name`` from the registry (tests, plugins); unknown names raise.

    Raises:
        UnknownBackendError: ``name`` is not registered.

    """
    if _REGISTRY.pop(name, None) is None:
        raise UnknownBackendError(
            f"Unknown backend {name!r}; available backends are: {', '.join(available_backends())}."
        )


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
