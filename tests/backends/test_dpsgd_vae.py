"""Tests of the ``dpsgd-vae`` baseline: accounting against dp-accounting, release, budget."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tabpriv.backends.base import FitContext
from tabpriv.backends.dpsgd_vae import (
    DPSGDVAEBackend,
    opacus_epsilon,
    replace_one_from_add_remove,
)
from tabpriv.budget import PrivacyBudget, PrivacyLedger
from tabpriv.errors import BudgetExceededError
from tabpriv.transformers import EncodedTable, TableTransformer

from ..conftest import make_small_df, make_small_schema
from .test_vae_heads import decoder_out_width

QUICK = dict(DPSGDVAEBackend.quick_params)


def _encoded(n: int = 300) -> EncodedTable:
    return TableTransformer(make_small_schema()).fit().transform(make_small_df(n))


@pytest.mark.parametrize(("z", "q", "steps"), [(1.1, 256 / 32561, 1280), (0.8, 0.1, 20)])
def test_opacus_epsilon_against_dp_accounting(z: float, q: float, steps: int) -> None:
    """Opacus' RDP figure vs dp-accounting: its RDP accountant (same order of magnitude, both upper
    bounds) and its PLD accountant (tighter: must not exceed opacus' figure)."""
    import dp_accounting

    delta = 1e-6
    ours = opacus_epsilon(z, q, steps, delta)
    event = dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(z)), steps
    )
    rdp = dp_accounting.rdp.RdpAccountant()
    rdp.compose(event)
    pld = dp_accounting.pld.PLDAccountant()
    pld.compose(event)
    assert ours == pytest.approx(rdp.get_epsilon(delta), rel=0.05)
    assert pld.get_epsilon(delta) <= ours * (1 + 1e-6)


def test_group_privacy_conversion() -> None:
    assert replace_one_from_add_remove(1.0, 1e-6) == pytest.approx((2.0, (1 + math.e) * 1e-6))


def test_fit_respects_replace_one_budget_and_releases_decoder_only() -> None:
    msgs: list = []
    b = DPSGDVAEBackend(**QUICK)  # type: ignore[arg-type]
    led = PrivacyLedger(PrivacyBudget(4.0, 1e-5))
    table = _encoded()
    b.fit(table, led, FitContext("cpu", 0, True, lambda s, t, m: msgs.append(m)))
    sp = led.spends[0]
    assert sp.epsilon <= 4.0 and sp.delta <= 1e-5
    # The spend is the group-privacy conversion of opacus' add/remove figure, recomputed here.
    p = sp.parameters
    eps_ar = opacus_epsilon(
        p["noise_multiplier"], p["sampling_probability"], p["steps"], p["delta_add_remove"]
    )
    assert (sp.epsilon, sp.delta) == pytest.approx(replace_one_from_add_remove(eps_ar, p["delta_add_remove"]))
    assert sp.epsilon >= 0.95 * 4.0  # the budget is used, not wasted
    assert msgs and "epsilon spent" in msgs[-1]
    assert b.privacy_details().adjacency == "replace-one"
    arrays, meta = b.get_state()
    assert all(k.startswith("decoder.") for k in arrays)
    hidden, latent = QUICK["hidden"], QUICK["latent_dim"]
    out = decoder_out_width(table.spans)  # the row plus each number's bins
    assert sum(v.size for v in arrays.values()) == (
        latent * hidden + hidden + hidden * hidden + hidden + hidden * out + out
    )
    fresh = DPSGDVAEBackend(**QUICK)  # type: ignore[arg-type]
    fresh.set_state(arrays, meta)
    x = fresh.sample(64, 3)
    np.testing.assert_array_equal(x, b.sample(64, 3))
    assert x.shape == (64, table.width) and np.isfinite(x).all()


def test_over_budget_refused() -> None:
    led = PrivacyLedger(PrivacyBudget(1.0, 1e-5))
    led.spend("other", 0.999999, 1e-5 * 0.999999, "test")
    with pytest.raises(BudgetExceededError):
        DPSGDVAEBackend(**QUICK).fit(_encoded(), led, FitContext("cpu", 0, True))  # type: ignore[arg-type]


def test_spends_before_touching_data_and_streams() -> None:
    led = PrivacyLedger(PrivacyBudget(4.0, 1e-5))
    table = _encoded()
    reads: list[int] = []

    def encode(rows: slice | np.ndarray) -> np.ndarray:  # every row read of a lazy table lands here
        reads.append(len(led.spends))
        return table.data[rows]

    lazy = EncodedTable.lazy(table.spans, table.n_rows, encode)
    DPSGDVAEBackend(**{**QUICK, "condition_on": "color"}).fit(  # type: ignore[arg-type]
        lazy, led, FitContext("cpu", 0, True)
    )
    assert reads and min(reads) == 1 and lazy.is_lazy


def test_lazy_table_gives_identical_release(monkeypatch: pytest.MonkeyPatch) -> None:
    """Opacus' Poisson batches read with take() equal those of a TensorDataset: bit-identical fits."""
    schema = make_small_schema()
    tt = TableTransformer(schema).fit()
    clean, _ = schema.validate(make_small_df(300))
    kw = {**QUICK, "condition_on": "color"}  # the histogram pass too

    def run(table: EncodedTable) -> tuple[dict[str, np.ndarray], np.ndarray]:
        b = DPSGDVAEBackend(**kw)  # type: ignore[arg-type]
        b.fit(table, PrivacyLedger(PrivacyBudget(4.0, 1e-5)), FitContext("cpu", 2, True))
        return b.get_state()[0], b.sample(100, 1)

    ref_state, ref_rows = run(tt.transform_validated(clean))
    lazy = tt.transform_lazy(clean)
    monkeypatch.setattr(EncodedTable, "chunk_rows_for", lambda self, target_bytes=0: 37)
    state, rows = run(lazy)
    assert lazy.is_lazy and state.keys() == ref_state.keys()
    for k in ref_state:
        np.testing.assert_array_equal(state[k], ref_state[k])
    np.testing.assert_array_equal(rows, ref_rows)
