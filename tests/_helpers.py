"""Helpers shared by test modules (not fixtures): a quick ``Synthesizer`` of any registered backend."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .conftest import make_small_schema

if TYPE_CHECKING:
    from tabpriv import Synthesizer
    from tabpriv.schema import Schema


def quick_synthesizer(
    backend: str = "independent",
    *,
    epsilon: float = 3.0,
    seed: int | None = 0,
    device: str = "cpu",
    schema: Schema | None = None,
    **params: Any,
) -> Synthesizer:
    """An unfitted ``Synthesizer`` of ``backend`` with the backend's ``quick_params`` (fits in seconds).

    Args:
        backend: Registered backend name.
        epsilon: Privacy budget (delta is the default 1e-5).
        seed: ``random_state`` (``None``: unseeded, OS entropy).
        device: ``Synthesizer(device=...)``.
        schema: Declared schema (default: :func:`tests.conftest.make_small_schema`).
        **params: Backend parameters; they win over ``quick_params``.

    """
    from tabpriv import Synthesizer
    from tabpriv.backends import get_backend_class

    return Synthesizer(
        backend=backend,
        epsilon=epsilon,
        schema=make_small_schema() if schema is None else schema,
        device=device,
        random_state=seed,
        backend_params={**get_backend_class(backend).quick_params, **params},
    )
