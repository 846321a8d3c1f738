"""The facade's flow: available budget -> plan (pure) -> spend_all -> fit (never sees the ledger)."""

from __future__ import annotations

import pytest

from tabpriv import Synthesizer
from tabpriv.backends.base import PrivacyPlan
from tabpriv.backends.independent import IndependentBackend
from tabpriv.budget import PrivacyBudget, PrivacyLedger
from tabpriv.errors import PrivacyParameterError
from tabpriv.transformers import EncodedTable

from .conftest import make_small_df, make_small_schema


def test_a_fit_that_raises_leaves_the_spend_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    """The cost is paid before any row is read and never refunded: fit may have touched the data."""
    seen: list[PrivacyPlan] = []

    def broken_fit(self, table, plan, context):  # type: ignore[no-untyped-def]
        seen.append(plan)
        next(iter(table.iter_chunks(8)))  # reads some rows, then fails
        raise RuntimeError("boom")

    monkeypatch.setattr(IndependentBackend, "fit", broken_fit)
    data = PrivacyLedger(PrivacyBudget(3.0, 1e-5))
    synth = Synthesizer(epsilon=2.0, schema=make_small_schema(), random_state=0, ledger=data)
    with pytest.raises(RuntimeError, match="boom"):
        synth.fit(make_small_df(300))
    assert len(data.spends) == 1 and len(synth.ledger_.spends) == 1
    assert [s.epsilon for s in data.spends] == [s.epsilon for s in seen[0].spends]
    assert data.epsilon_spent == pytest.approx(seen[0].epsilon) and data.epsilon_spent <= 2.0
    assert not hasattr(synth, "backend_")  # nothing half-fitted is kept


def test_a_plan_that_fails_spends_nothing_and_reads_no_row(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_read(*args: object, **kwargs: object) -> None:
        raise AssertionError("a row was read")

    monkeypatch.setattr(EncodedTable, "iter_chunks", no_read)
    monkeypatch.setattr(EncodedTable, "take", no_read)
    data = PrivacyLedger(PrivacyBudget(3.0, 1e-5))
    for params in ({"bins": 0}, {"chunk_bytes": "big"}):
        synth = Synthesizer(
            epsilon=2.0, schema=make_small_schema(), random_state=0, ledger=data, backend_params=params
        )
        with pytest.raises(PrivacyParameterError, match=next(iter(params))):
            synth.fit(make_small_df(300))
    assert data.spends == []


def test_fit_pays_exactly_the_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    plans: list[PrivacyPlan] = []
    real_plan = IndependentBackend.plan

    def spy(self, spans, n_rows, budget, *, seeded=False):  # type: ignore[no-untyped-def]
        plans.append(real_plan(self, spans, n_rows, budget, seeded=seeded))
        return plans[-1]

    monkeypatch.setattr(IndependentBackend, "plan", spy)
    synth = Synthesizer(epsilon=2.0, schema=make_small_schema(), random_state=0).fit(make_small_df(300))
    (plan,) = plans
    assert plan.backend == "independent" and plan.noise.sigma == synth.backend_.sigma_
    assert [s.to_dict()["parameters"] for s in synth.ledger_.spends] == [
        dict(s.parameters) for s in plan.spends
    ]
    # the budget the plan was given is what the ledger had left: the whole budget on a fresh ledger
    assert synth.ledger_.epsilon_spent == pytest.approx(plan.epsilon)
