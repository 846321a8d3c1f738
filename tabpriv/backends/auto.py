"""``backend="auto"`` (the default): which backend a release uses when none is named, and why.

The rule (public: it reads the schema's spans and the parameters, never the rows), chosen by the
benchmark grid (``benchmarks/results/marginal*.md``; ``docs/marginal.md`` has the figures):

1. ``aim`` when every column fits the marginal backends' model-size limit and the table has at most
   :data:`AIM_MAX_COLUMNS` columns: the best measured release on every table of the grid (Adult,
   CPS 1988, the 1980 census), at a cost that grows with the number of columns (its rounds and its
   candidates grow with them; Adult's 15 columns take minutes on 2 CPU cores);
2. ``mst`` on wider tables: one round of selection instead of many (about a minute on Adult);
3. ``independent`` when a column alone exceeds the model-size limit (no pair can be measured), the
   quality floor.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tabpriv.transformers.encoded import ColumnSpan

__all__ = ["AIM_MAX_COLUMNS", "AUTO", "choose_backend"]

#: The name that selects the rule below.
AUTO = "auto"
#: Widest table (columns) ``auto`` gives to ``aim``; wider ones get ``mst``.
AIM_MAX_COLUMNS = 20


def choose_backend(spans: tuple[ColumnSpan, ...], params: Mapping[str, Any] | None = None) -> tuple[str, str]:
    """The backend ``auto`` picks for a table with ``spans``, and the reason in one sentence."""
    from tabpriv.backends.marginal.common import DEFAULT_MAX_CELLS
    from tabpriv.backends.marginal.domain import DEFAULT_BINS, DEFAULT_MAX_LEVELS, MarginalDomain

    p = dict(params or {})
    domain = MarginalDomain(
        spans, max_levels=int(p.get("max_levels", DEFAULT_MAX_LEVELS)), bins=int(p.get("bins", DEFAULT_BINS))
    )
    limit = int(p.get("max_cells", DEFAULT_MAX_CELLS))
    too_big = [c.name for c in domain.columns if c.size > limit]
    if too_big:
        return "independent", (
            f"auto: column(s) {', '.join(too_big)} exceed the marginal backends' model-size limit "
            f"({limit} cells), so the one-way 'independent' floor was used"
        )
    c = len(domain)
    if c <= AIM_MAX_COLUMNS:
        return "aim", (
            f"auto: 'aim' (adaptive noisy marginals), the best backend of the benchmark grid, for a table "
            f"of {c} columns (<= {AIM_MAX_COLUMNS})"
        )
    return "mst", (
        f"auto: 'mst' (noisy marginals on a spanning tree) because the table has {c} columns "
        f"(> {AIM_MAX_COLUMNS}, where aim's rounds get slow)"
    )
