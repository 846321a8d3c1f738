"""Deliberately broken variants of the backends, for measuring the power of the privacy audits.

A :class:`Mutation` is a small declarative object: a name, a target ``"package.module:attribute"`` (a
module-level function or a class attribute, ``"module:Class.method"``) and a ``make`` function that
receives the original object and returns its replacement. :meth:`Mutation.applied` patches the target
with :func:`unittest.mock.patch.object` for the duration of a ``with`` block, so re-targeting a
mutation at a renamed seam is a one-line change and nothing leaks out of the block.

The mutations keep the *claim* unchanged (the ledger still records the epsilon the correct code
would spend) while the mechanism becomes less private: an audit that cannot tell them apart from the
correct code has no power against that bug.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from unittest import mock

__all__ = ["Mutation", "resolve_target"]


def resolve_target(target: str) -> tuple[Any, str]:
    """``"pkg.mod:Cls.attr"`` -> ``(owner object, "attr")``.

    Raises:
        ValueError: The target is not of the form ``module:attribute`` or does not exist.

    """
    if target.count(":") != 1:
        raise ValueError(f"A mutation target must look like 'package.module:attribute'; got {target!r}.")
    mod_name, path = target.split(":")
    owner: Any = importlib.import_module(mod_name)
    *parents, leaf = path.split(".")
    for p in parents:
        owner = getattr(owner, p)
    if not hasattr(owner, leaf):
        raise ValueError(f"Mutation target {target!r} does not exist (no attribute {leaf!r}).")
    return owner, leaf


@dataclass(frozen=True)
class Mutation:
    """One deliberately broken variant of a backend.

    Attributes:
        name: Short name used on the command line (``--mutation NAME``), e.g. ``"noise-x0.5"``.
        description: What the bug is, in words (shown in reports and docs).
        target: ``"package.module:attribute"`` patched while the mutation is applied.
        make: ``make(original) -> replacement``.
        expected: ``"flag"`` when the audit must flag it, ``"undetectable"`` when the end-to-end audit
            cannot see it at any trial count (the description says why), ``"error"`` when the fit (and
            hence the audit) must raise.

    """

    name: str
    description: str
    target: str
    make: Callable[[Any], Any]
    expected: str = "flag"

    @contextlib.contextmanager
    def applied(self) -> Iterator[None]:
        """Patch the target for the duration of the block."""
        owner, leaf = resolve_target(self.target)
        original = owner.__dict__[leaf] if isinstance(owner, type) and leaf in owner.__dict__ else None
        if original is None:
            original = getattr(owner, leaf)
        with mock.patch.object(owner, leaf, self.make(original)):
            yield


def scale_result_attr(attr: str, factor: float) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``make`` for a calibration function returning a dataclass: multiply field ``attr`` by ``factor``."""
    import dataclasses

    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            out = original(*args, **kwargs)
            return dataclasses.replace(out, **{attr: getattr(out, attr) * factor})

        return wrapper

    return make


def scale_return(factor: float) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``make`` for a function returning a number: multiply the result by ``factor``."""

    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return original(*args, **kwargs) * factor

        return wrapper

    return make


def raising(message: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``make`` that replaces the target by a function raising ``RuntimeError(message)``."""

    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError(message)

        return wrapper

    return make


def scale_argument(
    position: int, name: str, factor: float
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``make``: call the original with argument ``name`` (or positional ``position``) times ``factor``."""

    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if name in kwargs:
                kwargs[name] = kwargs[name] * factor
            else:
                args = (*args[:position], args[position] * factor, *args[position + 1 :])
            return original(*args, **kwargs)

        return wrapper

    return make


def first_call_unnoised(key_position: int = 0) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``make`` for a noise function ``f(rng, ...)``: its first call on each generator returns zeros.

    The generator (argument ``key_position``) identifies the fit, so in every trial exactly one step
    (the first) is released without noise. Works for tensors, arrays and lists of tensors.
    """

    def zeros_like(x: Any) -> Any:
        if isinstance(x, list | tuple):
            return type(x)(zeros_like(v) for v in x)
        return x * 0

    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        # generators are not weak-referenceable: keep them alive so that their ids stay unique
        seen: dict[int, Any] = {}

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            out = original(*args, **kwargs)
            key = args[key_position]
            if id(key) in seen:
                return out
            seen[id(key)] = key
            return zeros_like(out)

        return wrapper

    return make


def shuffled_batches() -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``make`` for ``poisson_batch(rng, n_rows, q)``: shuffling instead of Poisson sampling.

    Fixed-size batches of a fresh random permutation per epoch; the accountant still assumes Poisson.
    """
    import numpy as np

    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        pending: dict[int, tuple[Any, list[Any]]] = {}  # id -> (generator kept alive, batches left)

        def wrapper(rng: Any, n_rows: int, q: float) -> Any:
            queue = pending.setdefault(id(rng), (rng, []))[1]
            if not queue:
                b = max(1, round(q * n_rows))
                perm = rng.permutation(n_rows)
                queue.extend(np.sort(perm[i : i + b]).astype(np.int64) for i in range(0, n_rows, b))
            return queue.pop(0)

        return wrapper

    return make
