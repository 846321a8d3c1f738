"""The ``independent`` audit's adversary counts what the backend counts (tabpriv/audit/targets.py).

``_independent_direction`` is the auditor's ``counts(D)`` and ``counts(D') - counts(D)``; it must bin
exactly as the backend's exact histograms do, the trailing "missing" bin of a number included.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tabpriv.audit.e2e import Scenario, mixed_scenario
from tabpriv.audit.targets import _independent_direction
from tabpriv.backends.independent import _true_histograms, histogram_layout
from tabpriv.schema import Column, Schema
from tabpriv.transformers import TableTransformer
from tabpriv.transformers.encoded import DEFAULT_CHUNK_BYTES


def _backend_counts(scenario: Scenario, df: pd.DataFrame, bins: int) -> np.ndarray:
    """The backend's own exact histograms of ``df``, concatenated."""
    clean, _ = scenario.schema.validate(df, clip=True)
    table = TableTransformer(scenario.schema).fit().transform(clean)
    layouts = [histogram_layout(s, bins) for s in table.spans]
    return np.concatenate(_true_histograms(table, layouts, DEFAULT_CHUNK_BYTES)).astype(np.float64)


def test_direction_puts_a_missing_number_in_the_missing_bin() -> None:
    schema = Schema(
        (
            Column("c", "categorical", categories=("a", "b")),
            Column("x", "continuous", lower=0.0, upper=1.0, bins=4, missing=True),
        )
    )
    d = pd.DataFrame({"c": ["a"] * 6, "x": [0.0] * 6})
    d_prime = d.assign(x=[np.nan, *[0.0] * 5], c=["b", *["a"] * 5])
    scenario = Scenario(schema, d, d_prime)
    base, direction, sizes = _independent_direction(scenario, 32)
    assert sizes == [2, 4 + 1]  # x: 4 value bins and the missing bin
    np.testing.assert_array_equal(base, _backend_counts(scenario, d, 32))
    np.testing.assert_array_equal(base + direction, _backend_counts(scenario, d_prime, 32))
    # row 0 leaves "a" for "b" and leaves x's lowest bin for the missing bin (x's last cell)
    np.testing.assert_array_equal(direction, [-1, 1, -1, 0, 0, 0, 1])


def test_direction_of_the_shipped_audit_scenario_equals_the_backend_counts() -> None:
    scenario = mixed_scenario(20)
    base, direction, _ = _independent_direction(scenario, 32)
    np.testing.assert_array_equal(base, _backend_counts(scenario, scenario.d, 32))
    np.testing.assert_array_equal(base + direction, _backend_counts(scenario, scenario.d_prime, 32))
    assert float(np.sum(direction**2)) == 2.0 * len(scenario.schema.names)  # sqrt(2c): one count each way
