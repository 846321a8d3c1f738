"""The one public rule for keeping an integer column's values as levels (shared by every backend).

An integer column whose declared bounds allow at most :data:`DEFAULT_MAX_LEVELS` whole numbers keeps
**one level per value**: a backend that discretises it (the marginal backends' domain, the VAE
backends' binned number heads) models each value on its own, so spikes survive and decoding can only
put a row on a value the column may take. A wider integer column, and every continuous one, is binned
(equal-width bins over the declared bounds). The rule reads only the schema's span (public), never
the data.

``tabpriv.backends.marginal.domain.DEFAULT_MAX_LEVELS`` is the same number (a test keeps them equal).
"""

from __future__ import annotations

from tabpriv.transformers.encoded import ColumnSpan

__all__ = ["DEFAULT_MAX_LEVELS", "keeps_values"]

#: Integer columns with at most this many whole numbers between their bounds keep one level per value.
DEFAULT_MAX_LEVELS = 100


def keeps_values(span: ColumnSpan, max_levels: int = DEFAULT_MAX_LEVELS) -> bool:
    """Whether ``span`` is an integer column with at most ``max_levels`` values (one level per value)."""
    return span.kind == "integer" and span.n_levels is not None and span.n_levels <= max_levels
