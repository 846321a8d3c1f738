"""Shared fixtures: the bundled Adult table, its schema, and a small mixed table."""

from __future__ import annotations

import os
from pathlib import Path

# One OpenMP (torch) thread per test process, set before anything imports torch: on the 2-core CI
# machine the default of two spinning OpenMP threads made the suite slower, not faster (683 tests:
# 305 s wall and 291 CPU-s with the default, 264 s and 191 CPU-s with one). Overridable from outside.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pandas as pd
import pytest

from tabpriv.schema import Column, Schema

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "datasets"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "real_auto_backend: use the real backend='auto' rule (default: the 'independent' double)"
    )


@pytest.fixture(autouse=True)
def _fast_auto_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests that do not name a backend get ``independent`` from ``backend='auto'`` (a test double).

    The real rule picks ``aim``, whose JIT-compiled rounds take minutes on the bundled Adult table;
    every test about the facade, the CLI or the files would pay that. The rule itself and a real
    ``auto`` fit are tested in ``tests/backends/test_auto.py`` (marked ``real_auto_backend``).
    """
    if request.node.get_closest_marker("real_auto_backend") is not None:
        return
    import tabpriv.synthesizer as synthesizer

    monkeypatch.setattr(
        synthesizer, "choose_backend", lambda spans, params=None: ("independent", "test double of 'auto'")
    )


@pytest.fixture(scope="session")
def adult_df() -> pd.DataFrame:
    from tabpriv.datasets import load_adult

    return load_adult("train")


@pytest.fixture(scope="session")
def adult_schema() -> Schema:
    from tabpriv.datasets import adult_schema

    return adult_schema()


def make_small_schema() -> Schema:
    return Schema(
        (
            Column("color", "categorical", categories=("red", "green", "blue")),
            Column("code", "categorical", categories=(1, 2, 3, 4), missing=True),
            Column("age", "integer", lower=0, upper=99),
            Column("score", "continuous", lower=-5.0, upper=5.0, missing=True),
            Column("flag", "categorical", categories=("yes", "no")),
        )
    )


def make_small_df(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    color = rng.choice(["red", "green", "blue"], size=n, p=[0.5, 0.3, 0.2])
    code = rng.choice([1.0, 2.0, 3.0, 4.0, np.nan], size=n)
    age = rng.integers(0, 100, size=n)
    score = np.where(rng.random(n) < 0.1, np.nan, np.clip(rng.normal(0, 2, n), -5, 5))
    flag = np.where(age > 50, "yes", "no")
    return pd.DataFrame({"color": color, "code": code, "age": age, "score": score, "flag": flag}).astype(
        {"color": object, "flag": object}
    )


@pytest.fixture()
def small_schema() -> Schema:
    return make_small_schema()


@pytest.fixture()
def small_df() -> pd.DataFrame:
    return make_small_df()
