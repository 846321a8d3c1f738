"""Declarative validation of backend hyper-parameters, with one message template.

Modelled on scikit-learn's ``_parameter_constraints``: a backend class declares, for each constructor
argument, the list of constraints any one of which the value must satisfy::

    _parameter_constraints = {
        "bins": [Interval(int, 1, None, closed="left")],
        "reg": [Interval(float, 0, None, closed="neither"), None],
        "head": [Options({"gumbel", "softmax"})],
    }

and :meth:`Backend.plan <tabpriv.backends.base.Backend.plan>` calls :func:`validate_params` first, so a
bad value is refused before anything is computed or spent. Every failure reads the same way::

    <name> must be <allowed>; got <value!r> (backend '<backend>').

``None`` in a list is shorthand for :class:`NoneAllowed`. Pure Python: no numpy, no torch.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

from tabpriv.errors import PrivacyParameterError

__all__ = [
    "Boolean",
    "Constraint",
    "Interval",
    "NoneAllowed",
    "Options",
    "Satisfies",
    "check_value",
    "validate_params",
]

Closed = Literal["both", "left", "right", "neither"]


class Constraint(ABC):
    """One admissible set of values, with its description in words."""

    @abstractmethod
    def is_satisfied_by(self, value: Any) -> bool:
        """Whether ``value`` belongs to the set."""

    @abstractmethod
    def __str__(self) -> str:
        """The set in words (used in the one message template)."""


class Interval(Constraint):
    """Integers or real numbers in an interval.

    Args:
        kind: ``int`` (integers only, booleans refused) or ``float`` (any finite int or float).
        lo: Lower end, ``None`` for unbounded.
        hi: Upper end, ``None`` for unbounded.
        closed: Which ends belong to the interval.

    """

    def __init__(
        self, kind: type[int] | type[float], lo: float | None, hi: float | None, *, closed: Closed = "both"
    ) -> None:
        if kind not in (int, float):
            raise TypeError(f"Interval kind must be int or float; got {kind!r}.")
        self.kind = kind
        self.lo = lo
        self.hi = hi
        self.closed = closed

    def is_satisfied_by(self, value: Any) -> bool:
        """Type and bounds."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if self.kind is int and not isinstance(value, int):
            return False
        if not math.isfinite(float(value)):
            return False
        left = self.closed in ("both", "left")
        right = self.closed in ("both", "right")
        if self.lo is not None and (value < self.lo if left else value <= self.lo):
            return False
        return not (self.hi is not None and (value > self.hi if right else value >= self.hi))

    def __str__(self) -> str:
        what = "an integer" if self.kind is int else "a finite number"
        lo = "-inf" if self.lo is None else f"{self.lo:g}"
        hi = "inf" if self.hi is None else f"{self.hi:g}"
        left = "[" if self.closed in ("both", "left") and self.lo is not None else "("
        right = "]" if self.closed in ("both", "right") and self.hi is not None else ")"
        if self.lo is None and self.hi is None:
            return what
        return f"{what} in {left}{lo}, {hi}{right}"


class Options(Constraint):
    """One of a fixed set of values (compared with ``==``, booleans never equal to 0/1)."""

    def __init__(self, values: Iterable[Any]) -> None:
        self.values = tuple(values)

    def is_satisfied_by(self, value: Any) -> bool:
        """Membership (a bool matches only a bool)."""
        return any(value == v and isinstance(value, bool) == isinstance(v, bool) for v in self.values)

    def __str__(self) -> str:
        shown = ", ".join(repr(v) for v in sorted(self.values, key=repr))
        return f"one of {{{shown}}}" if len(self.values) > 1 else shown


class Boolean(Constraint):
    """``True`` or ``False`` (not 0/1)."""

    def is_satisfied_by(self, value: Any) -> bool:
        """A real bool."""
        return isinstance(value, bool)

    def __str__(self) -> str:
        return "a boolean (True or False)"


class NoneAllowed(Constraint):
    """``None``."""

    def is_satisfied_by(self, value: Any) -> bool:
        """``value is None``."""
        return value is None

    def __str__(self) -> str:
        return "None"


class Satisfies(Constraint):
    """Any value for which ``predicate(value)`` is true, described by ``description``."""

    def __init__(self, predicate: Callable[[Any], bool], description: str) -> None:
        self.predicate = predicate
        self.description = description

    def is_satisfied_by(self, value: Any) -> bool:
        """``predicate(value)``, a raising predicate counting as false."""
        try:
            return bool(self.predicate(value))
        except (AttributeError, TypeError, ValueError):
            return False

    def __str__(self) -> str:
        return self.description


def _normalise(allowed: Iterable[Constraint | None]) -> list[Constraint]:
    return [NoneAllowed() if c is None else c for c in allowed]


def check_value(name: str, value: Any, allowed: Iterable[Constraint | None], owner: str = "") -> None:
    """Raise :class:`PrivacyParameterError` (the one template) unless ``value`` meets one constraint."""
    constraints = _normalise(allowed)
    if any(c.is_satisfied_by(value) for c in constraints):
        return
    where = f" (backend {owner!r})" if owner else ""
    raise PrivacyParameterError(
        f"{name} must be {' or '.join(str(c) for c in constraints)}; got {value!r}{where}."
    )


def validate_params(
    backend: Any, constraints: Mapping[str, Iterable[Constraint | None]] | None = None
) -> None:
    """Check every declared parameter of ``backend`` against its class's ``_parameter_constraints``.

    Args:
        backend: A backend instance (its parameters are attributes under their constructor names).
        constraints: Overrides the class's declaration (tests).

    Raises:
        PrivacyParameterError: The first parameter (in declaration order) that meets no constraint.

    """
    table = type(backend)._parameter_constraints if constraints is None else constraints
    owner = str(getattr(backend, "name", type(backend).__name__))
    for name, allowed in table.items():
        check_value(name, getattr(backend, name), allowed, owner)
