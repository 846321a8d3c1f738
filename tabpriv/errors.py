"""Exceptions and warnings raised by tabpriv.

Every exception derives from :class:`TabprivError` *and* from the matching built-in exception, so
``except ValueError`` keeps working for callers who do not know tabpriv. Messages say what was wrong,
what was given and how to fix it.
"""

from __future__ import annotations

__all__ = [
    "AuditError",
    "BudgetExceededError",
    "DataValidationError",
    "DataWarning",
    "DeviceError",
    "EngineError",
    "InputFileError",
    "NotFittedError",
    "PrivacyParameterError",
    "PrivacyWarning",
    "ResourceLimitError",
    "SaveFileError",
    "SchemaError",
    "TabprivError",
    "UnknownBackendError",
]


class TabprivError(Exception):
    """Base class of every error raised by tabpriv."""


class SchemaError(TabprivError, ValueError):
    """A schema is malformed, or does not match the table it is used with."""


class DataValidationError(TabprivError, ValueError):
    """The data violates the declared schema (unknown column, value out of domain, NaN, ...)."""


class PrivacyParameterError(TabprivError, ValueError):
    """An invalid privacy parameter (epsilon, delta, noise) was given."""


class BudgetExceededError(TabprivError, RuntimeError):
    """A mechanism would spend more privacy budget than is left. Raised before data is touched."""


class NotFittedError(TabprivError, AttributeError):
    """A method that needs a fitted estimator was called before ``fit``."""


class UnknownBackendError(TabprivError, ValueError):
    """The requested backend name is not in the registry."""


class InputFileError(TabprivError, OSError):
    """An input file cannot be read, or an output file cannot be written."""


class SaveFileError(TabprivError, ValueError):
    """A saved synthesizer or release file is corrupt, tampered with, foreign or from another version."""


class ResourceLimitError(TabprivError, MemoryError):
    """A request would need more memory than the machine has (e.g. sampling too many rows at once)."""


class DeviceError(TabprivError, RuntimeError):
    """The requested compute device is not available."""


class EngineError(TabprivError, RuntimeError):
    """The data engine cannot run (unknown engine, Dask not installed, scheduler unreachable, ...).

    Also raised when a backend reads rows in a way the engine does not support (random access).
    """


class AuditError(TabprivError, RuntimeError):
    """A privacy audit could not audit what it claims to (e.g. the real training loop did not run)."""


class PrivacyWarning(UserWarning):
    """A release is not end-to-end differentially private (e.g. an inferred schema), or its ε is weak.

    "Weak" means epsilon above :data:`tabpriv.budget.WEAK_EPSILON` (see docs/privacy.md, Choosing ε).
    """


class DataWarning(UserWarning):
    """The input looks unusual and tabpriv made a choice the data owner should check.

    Examples: the delimiter of a CSV file was detected (not a comma), or :meth:`tabpriv.schema.Schema.infer`
    found an ID-like column, a numeric column with stray text, or a date column. The message says what
    was found and what to do; it never quotes row values beyond short stray tokens such as ``"N/A"``.
    """
