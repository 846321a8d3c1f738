"""One conformance suite, run against every registered backend.

Parametrised over :func:`tabpriv.backends.available_backends`, never over a typed list: a backend that
registers itself is tested. Each backend's ``quick_params`` keep the fits to seconds.
"""

from __future__ import annotations

import dataclasses
import inspect
import warnings

import numpy as np
import pandas as pd
import pytest

from tabpriv import Synthesizer
from tabpriv.backends import available_backends, get_backend_class
from tabpriv.backends.base import FitContext, PlannedSpend, PrivacyPlan
from tabpriv.budget import GUARANTEE_TEXT, PrivacyBudget, PrivacyLedger
from tabpriv.errors import BudgetExceededError, NotFittedError, PrivacyParameterError

from .._helpers import quick_synthesizer
from ..conftest import make_small_df, make_small_schema

BACKENDS = available_backends()


def _fit(name: str, seed: int | None = 0, epsilon: float = 5.0) -> Synthesizer:
    synth = quick_synthesizer(name, epsilon=epsilon, seed=seed)
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
    assert list(out.dtypes) == [c.output_dtype for c in make_small_schema()]
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


# -- the privacy plan: pure, within budget, validated; fit never sees the ledger ----------------------
def _spans() -> tuple:
    from tabpriv.transformers import TableTransformer

    return TableTransformer(make_small_schema()).fit().transform(make_small_df(300)).spans


def _quick(name: str):  # type: ignore[no-untyped-def]
    cls = get_backend_class(name)
    return cls(**dict(cls.quick_params))


@pytest.mark.parametrize("name", BACKENDS)
def test_plan_signature_takes_no_table_and_fit_no_ledger(name: str) -> None:
    cls = get_backend_class(name)
    assert list(inspect.signature(cls.plan).parameters) == ["self", "spans", "n_rows", "budget", "seeded"]
    assert list(inspect.signature(cls.fit).parameters) == ["self", "table", "plan", "context"]


@pytest.mark.parametrize("name", BACKENDS)
def test_plan_is_pure_and_within_budget(name: str) -> None:
    spans, budget = _spans(), PrivacyBudget(5.0, 1e-5)
    state = np.random.get_state()
    first = _quick(name).plan(spans, 300, budget, seeded=True)
    again = _quick(name).plan(spans, 300, budget, seeded=True)
    after = np.random.get_state()
    assert first == again  # the same public inputs give an equal plan
    assert state[0] == after[0] and np.array_equal(state[1], after[1])  # no global randomness drawn
    assert isinstance(first, PrivacyPlan) and first.backend == name
    assert first.spends and all(isinstance(s, PlannedSpend) for s in first.spends)
    assert all(s.epsilon > 0 and s.delta > 0 and s.accountant and s.mechanism for s in first.spends)
    assert first.epsilon <= budget.epsilon * (1 + 1e-9)
    assert first.delta <= budget.delta * (1 + 1e-9)
    assert dataclasses.is_dataclass(first.noise) and type(first.noise).__dataclass_params__.frozen  # type: ignore[attr-defined]
    assert first.details.mechanism and first.details.accountant and first.details.adjacency == "replace-one"
    # a smaller budget gives a plan within it (the plan follows the budget it is given)
    small = _quick(name).plan(spans, 300, PrivacyBudget(2.0, 1e-5), seeded=True)
    assert small.epsilon <= 2.0 * (1 + 1e-9) and small != first


@pytest.mark.parametrize("name", BACKENDS)
def test_fit_reads_no_ledger(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from tabpriv.transformers import TableTransformer

    def _refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a backend's fit touched a ledger")

    table = TableTransformer(make_small_schema()).fit().transform(make_small_df(300))
    backend = _quick(name)
    plan = backend.plan(table.spans, table.n_rows, PrivacyBudget(5.0, 1e-5), seeded=True)
    for attr in ("available", "check", "spend", "spend_all", "child"):
        monkeypatch.setattr(PrivacyLedger, attr, _refuse)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert backend.fit(table, plan, FitContext("cpu", 0, True)) is backend
    assert backend.is_fitted
    backend.sample(5, seed=1)


@pytest.mark.parametrize("name", BACKENDS)
def test_every_parameter_is_declared_and_a_bad_one_is_refused_before_anything_runs(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tabpriv.transformers import EncodedTable

    cls = get_backend_class(name)
    declared = cls._parameter_constraints
    assert set(declared) == set(_quick(name).get_params()), "every constructor argument needs constraints"
    bad = object()  # meets no constraint of any kind
    for param in declared:
        backend = _quick(name)
        setattr(backend, param, bad)
        with pytest.raises(PrivacyParameterError, match=rf"{param} must be .*; got <object object"):
            backend.plan(_spans(), 300, PrivacyBudget(5.0, 1e-5))
    # end to end: nothing spent, no row read
    monkeypatch.setattr(EncodedTable, "iter_chunks", _never)
    monkeypatch.setattr(EncodedTable, "take", _never)
    first = next(iter(declared))
    ledger = PrivacyLedger(PrivacyBudget(5.0, 1e-5))
    synth = Synthesizer(
        backend=name,
        epsilon=5.0,
        schema=make_small_schema(),
        random_state=0,
        backend_params={**cls.quick_params, first: bad},
        ledger=ledger,
    )
    with pytest.raises(PrivacyParameterError, match=first):
        synth.fit(make_small_df(300))
    assert ledger.spends == []


def _never(*args: object, **kwargs: object) -> None:
    raise AssertionError("a row was read before the parameters were validated")


@pytest.mark.parametrize("name", BACKENDS)
def test_fit_refuses_a_plan_made_for_another_table_or_backend(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tabpriv.transformers import EncodedTable, TableTransformer

    table = TableTransformer(make_small_schema()).fit().transform(make_small_df(300))
    budget = PrivacyBudget(5.0, 1e-5)
    other_rows = _quick(name).plan(table.spans, 299, budget, seeded=True)
    other_name = "independent" if name != "independent" else "slicing"
    other_backend = _quick(other_name).plan(table.spans, 300, budget, seeded=True)
    monkeypatch.setattr(EncodedTable, "iter_chunks", _never)
    monkeypatch.setattr(EncodedTable, "take", _never)
    for plan, fragment in ((other_rows, "299 rows"), (other_backend, repr(other_name))):
        backend = _quick(name)
        with pytest.raises(PrivacyParameterError, match=fragment):
            backend.fit(table, plan, FitContext("cpu", 0, True))
        assert not backend.is_fitted
