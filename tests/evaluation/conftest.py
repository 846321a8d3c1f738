from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tabpriv.schema import Column, Schema


def make_schema() -> Schema:
    """The declared schema of :func:`draw`'s tables."""
    return Schema(
        (
            Column("colour", "categorical", categories=("red", "green", "blue"), missing=True),
            Column("age", "integer", lower=18, upper=90),
            Column("income", "continuous", lower=0.0, upper=100.0),
            Column("label", "categorical", categories=("no", "yes")),
        )
    )


@pytest.fixture
def small_schema() -> Schema:
    return make_schema()


def draw(n: int, seed: int) -> pd.DataFrame:
    """A table from a fixed distribution with a learnable label."""
    rng = np.random.default_rng(seed)
    colour = rng.choice(np.array(["red", "green", "blue"], dtype=object), size=n, p=[0.5, 0.3, 0.2])
    colour[rng.random(n) < 0.05] = np.nan
    age = rng.integers(18, 91, size=n)
    income = np.clip(rng.normal(40 + 0.3 * (age - 18), 12, size=n), 0, 100)
    logit = (income - 55) / 8 + (colour == "blue") * 1.0
    label = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "yes", "no").astype(object)
    return pd.DataFrame({"colour": colour, "age": age, "income": income, "label": label})


@pytest.fixture
def tables() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Training table, hold-out and an independent draw (the "synthetic" table)."""
    return draw(1500, 1), draw(1500, 2), draw(1500, 3)
