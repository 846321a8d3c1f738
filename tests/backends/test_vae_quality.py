"""``dpsgd-vae`` conditions on a categorical ``target`` (issue 18, quality grid); the grid's variants."""

from __future__ import annotations

import numpy as np
import pytest

from tabpriv import Synthesizer
from tabpriv.backends import get_backend_class
from tabpriv.backends.base import FitContext, spend_and_fit
from tabpriv.backends.vae.dpsgd import DPSGDVAEBackend
from tabpriv.budget import PrivacyBudget, PrivacyLedger
from tabpriv.errors import PrivacyParameterError
from tabpriv.transformers import EncodedTable, TableTransformer

from ..conftest import make_small_df, make_small_schema

QUICK = dict(DPSGDVAEBackend.quick_params)


def _encoded(n: int = 300) -> EncodedTable:
    return TableTransformer(make_small_schema()).fit().transform(make_small_df(n))


def _fit(**params: object) -> tuple[DPSGDVAEBackend, PrivacyLedger]:
    b = DPSGDVAEBackend(**{**QUICK, **params})
    led = PrivacyLedger(PrivacyBudget(4.0, 1e-5))
    spend_and_fit(b, _encoded(), led, FitContext("cpu", 0, True))
    return b, led


def test_categorical_target_conditions_exactly_as_condition_on() -> None:
    by_target, led_t = _fit(target="color")
    explicit, led_c = _fit(condition_on="color")
    (sp_t,), (sp_c,) = led_t.spends, led_c.spends
    # Same mechanism, paid the same way: DP-SGD plus the Gaussian histogram of the condition.
    assert "condition histogram" in sp_t.mechanism
    assert (sp_t.epsilon, sp_t.delta) == (sp_c.epsilon, sp_c.delta)
    assert sp_t.epsilon <= 4.0 and sp_t.delta <= 1e-5
    assert sp_t.parameters == sp_c.parameters
    assert sp_t.parameters["condition_histogram_sigma"] > 0
    assert by_target.condition_column_ == "color"
    assert by_target.condition_probs_ is not None and by_target.condition_probs_.shape == (3,)
    np.testing.assert_array_equal(by_target.sample(200, 5), explicit.sample(200, 5))


def test_numeric_target_and_no_target_do_not_condition() -> None:
    table = _encoded()
    budget = PrivacyBudget(4.0, 1e-5)
    plans = {
        t: DPSGDVAEBackend(**QUICK, target=t).plan(table.spans, table.n_rows, budget)
        for t in (None, "age", "score")
    }
    for t, plan in plans.items():
        (spend,) = plan.spends
        assert plan.noise.condition_on is None, t
        assert plan.noise.hist_sigma is None, t
        assert "condition_histogram_sigma" not in spend.parameters
        assert "condition histogram" not in spend.mechanism
        assert spend.epsilon == plans[None].spends[0].epsilon  # all of the budget to DP-SGD


def test_condition_on_wins_over_target() -> None:
    table = _encoded()
    b = DPSGDVAEBackend(**QUICK, condition_on="flag", target="color")
    plan = b.plan(table.spans, table.n_rows, PrivacyBudget(4.0, 1e-5))
    assert plan.noise.condition_on == "flag"


def test_unknown_target_refused_before_any_spend() -> None:
    led = PrivacyLedger(PrivacyBudget(4.0, 1e-5))
    with pytest.raises(PrivacyParameterError, match="not a column"):
        spend_and_fit(
            DPSGDVAEBackend(**QUICK, target="nope"),
            _encoded(),
            led,
            FitContext("cpu", 0, True),
        )
    assert led.spends == []


def test_state_round_trip_keeps_the_condition_column() -> None:
    b, _ = _fit(target="color")
    arrays, meta = b.get_state()
    assert "condition_on" not in meta  # re-derived from the saved parameters and the public spans
    fresh = DPSGDVAEBackend(**QUICK, target="color")
    fresh.set_state(arrays, meta)
    assert fresh.condition_column_ == "color"
    np.testing.assert_array_equal(fresh.sample(64, 3), b.sample(64, 3))
    # A file without spans (written before they were saved): the column is ``condition_on``.
    legacy = DPSGDVAEBackend(**QUICK, condition_on="color")
    legacy.set_state(arrays, {k: v for k, v in meta.items() if k != "spans"})
    assert legacy.condition_column_ == "color"


def test_synthesizer_target_reaches_dpsgd_vae() -> None:
    df = make_small_df(300)
    s = Synthesizer(
        backend="dpsgd-vae",
        epsilon=4.0,
        delta=1e-5,
        schema=make_small_schema(),
        random_state=0,
        target="flag",
        backend_params=QUICK,
    )
    s.fit(df)
    backend = s.backend_
    assert isinstance(backend, DPSGDVAEBackend)
    assert backend.get_params()["target"] == "flag"
    assert backend.condition_column_ == "flag"
    assert "condition histogram" in s.privacy_report.spends[0]["mechanism"]
    out = s.sample(100)
    assert set(out["flag"]) <= {"yes", "no"}


def test_benchmark_variants_are_valid_backend_parameters() -> None:
    from benchmarks import bench_vae_quality as bq

    for (backend, variant), (params, tier) in bq.VARIANTS.items():
        concrete = {k: ("flag" if v == bq.TARGET else v) for k, v in params.items()}
        get_backend_class(backend)(**concrete).validate_params()
        assert tier in (1, 2, 3, 4), (backend, variant)
    specs = bq.plan(5.1, [2, 1], ["adult"], None)
    order = [(bq.VARIANTS[(s["backend"], s["variant"])][1], s["seed"]) for s in specs]
    assert order == sorted(order)  # tier 1 first, then seed by seed within a tier
    assert len(specs) == len(bq.SEEDS) * sum(t in (1, 2) for _, t in bq.VARIANTS.values())
    assert len({bq._key(s) for s in specs}) == len(specs)
    assert [s["seed"] for s in bq.plan(5.1, [3], ["adult", "cps1988"], None)] == [0, 0]  # aim: 1 seed
