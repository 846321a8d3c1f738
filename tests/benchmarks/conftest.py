"""Fixtures of the benchmark tests: a tiny mixed table written as CSV with its declared schema.

``benchmarks`` (the runner package at the repository root) is importable here because ``tests`` and
``tests/benchmarks`` are packages: pytest puts the repository root, the first folder above them
without an ``__init__.py``, on ``sys.path``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tabpriv.schema import Column, Schema

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "datasets"


def tiny_schema() -> Schema:
    """Declared schema of :func:`tiny_table` (``id`` keeps rows apart in the split tests)."""
    return Schema(
        (
            Column("id", "integer", lower=0, upper=100_000),
            Column("color", "categorical", categories=("red", "green", "blue")),
            Column("age", "integer", lower=18, upper=90),
            Column("score", "continuous", lower=0.0, upper=10.0, missing=True),
            Column("flag", "categorical", categories=("no", "yes")),
        )
    )


def tiny_table(n: int = 200, seed: int = 0) -> pd.DataFrame:
    """A small table with a learnable target (``flag`` follows ``age``) and a few missing scores."""
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 91, n)
    score = np.where(rng.random(n) < 0.1, np.nan, np.round(rng.uniform(0, 10, n), 3))
    return pd.DataFrame(
        {
            "id": np.arange(n),
            "color": rng.choice(["red", "green", "blue"], n),
            "age": age,
            "score": score,
            "flag": np.where(age + rng.normal(0, 8, n) > 50, "yes", "no"),
        }
    )


@pytest.fixture()
def tiny_csv(tmp_path: Path) -> tuple[Path, Path]:
    """(CSV path, schema path) of a 1000-row tiny table under ``tmp_path``.

    1000 rows: the seeded 80/20 split leaves the 200 hold-out rows the membership attacks need.
    """
    csv = tmp_path / "tiny.csv"
    tiny_table(1000).to_csv(csv, index=False)
    schema_path = tmp_path / "tiny.schema.json"
    tiny_schema().to_json(schema_path)
    return csv, schema_path
