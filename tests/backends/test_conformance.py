"""One conformance suite, run against every registered backend.

Parametrised over :func:`tabpriv.backends.available_backends`, never over a typed list: a backend that
registers itself is tested. Each backend's ``quick_params`` keep the fits to seconds.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from tabpriv import Synthesizer
from tabpriv.backends import available_backends, get_backend_class
from tabpriv.budget import GUARANTEE_TEXT
from tabpriv.errors import BudgetExceededError, NotFittedError

from ..conftest import make_small_df, make_small_schema

BACKENDS = available_backends()


def _fit(name: str, seed: int | None = 0, epsilon: float = 5.0) -> Synthesizer:
    cls = get_backend_class(name)
    synth = Synthesizer(
        backend=name,
        epsilon=epsilon,
        delta=1e-5,
        schema=make_small_schema(),
        device="cpu",
        random_state=seed,
        backend_params=dict(cls.quick_params),
    )
    with warnings.catch_warnings():
        # conditional-guarantee backends may warn in their default mode; nothing else may
        warnings.simplefilter("error")
        return synth.fit(make_small_df(300))


@pytest.fixture(scope="module", params=BACKENDS)
def fitted(request: pytest.FixtureRequest) -> tuple[str, Synthesizer]:
    return request.param, _fit(request.param)


def test_class_declares_name_guarantee_devices(fitted) -> None:
    name, _ = fitted
    cls = get_backend_class(name)
    assert cls.name == name
    assert cls.guarantee in GUARANTEE_TEXT
    assert "cpu" in cls.devices
    assert cls.summary


def test_shapes_columns_and_dtypes(fitted) -> None:
    _, synth = fitted
    out = synth.sample(123)
    df = make_small_schema().conform(make_small_df(300))
    assert out.shape == (123, 5)
    assert list(out.columns) == list(df.columns)
    assert list(out.dtypes) == list(df.dtypes)
    raw = synth.backend_.sample(17, seed=3)
    assert raw.shape == (17, synth.transformer_.width_)
    assert raw.dtype == np.float32 and np.isfinite(raw).all()


def test_schema_respected(fitted) -> None:
    _, synth = fitted
    out = synth.sample(500)
    schema = make_small_schema()
    schema.validate(out)  # raises on any value outside the domain or NaN where not allowed
    assert set(out["color"]) <= {"red", "green", "blue"}
    assert out["age"].between(0, 99).all()


def test_budget_respected_and_reported(fitted) -> None:
    _, synth = fitted
    rep = synth.privacy_report
    assert 0 < rep.epsilon <= 5.0 * (1 + 1e-9)
    assert 0 < rep.delta <= 1e-5 * (1 + 1e-9)
    assert rep.spends and rep.accountant and rep.mechanism and rep.adjacency
    assert rep.guarantee_text == GUARANTEE_TEXT[rep.guarantee]
    assert rep.covered and rep.not_covered
    assert rep.seeded is True
    if rep.guarantee != "dp":
        assert not rep.end_to_end_dp
    with pytest.raises(BudgetExceededError):
        synth.fit(make_small_df(300))  # the same ledger: the budget is already spent


def test_seed_reproducible(fitted) -> None:
    name, synth = fitted
    first, again = _fit(name), _fit(name)
    pd.testing.assert_frame_equal(first.sample(200), again.sample(200))
    assert not first.sample(200).equals(_fit(name, seed=1).sample(200))
    a = synth.backend_.sample(50, seed=11)
    b = again.backend_.sample(50, seed=11)
    np.testing.assert_array_equal(a, b)


def test_save_load_round_trip(fitted, tmp_path) -> None:
    _, synth = fitted
    path = tmp_path / "model.tabpriv"
    synth.save(path)
    loaded = Synthesizer.load(path)
    np.testing.assert_allclose(
        loaded.backend_.sample(64, seed=5), synth.backend_.sample(64, seed=5), rtol=1e-5, atol=1e-6
    )
    assert loaded.privacy_report.epsilon == synth.privacy_report.epsilon
    assert loaded.privacy_report.seeded is True
    make_small_schema().validate(loaded.sample(50))


@pytest.mark.parametrize("name", BACKENDS)
def test_sample_before_fit_raises(name: str) -> None:
    with pytest.raises(NotFittedError, match="fit"):
        Synthesizer(backend=name, epsilon=1.0, schema=make_small_schema()).sample(5)
