"""Tests of the ``lipschitz-vae`` backend (issue 6)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tabpriv.accounting import gdp_delta, gdp_epsilon, gdp_mu
from tabpriv.backends import get_backend_class
from tabpriv.backends.base import FitContext, spend_and_fit
from tabpriv.backends.vae.lipschitz import PAPER_MODE_WARNING, LipschitzVAEBackend
from tabpriv.budget import PrivacyBudget, PrivacyLedger
from tabpriv.errors import BudgetExceededError, PrivacyParameterError, TabprivError
from tabpriv.transformers import TableTransformer
from tabpriv.transformers.encoded import EncodedTable

from ..conftest import make_small_df, make_small_schema

QUICK = {"epochs": 2, "hidden": 16, "batch_size": 64}


@pytest.fixture(scope="module")
def table() -> EncodedTable:
    schema = make_small_schema()
    tt = TableTransformer(schema).fit()
    return tt.transform(schema.conform(make_small_df(300)))


def _fit(table: EncodedTable, seed: int = 0, eps: float = 5.0, **kw: object) -> tuple:
    led = PrivacyLedger(PrivacyBudget(eps, 1e-5))
    b = LipschitzVAEBackend(**{**QUICK, **kw})  # type: ignore[arg-type]
    spend_and_fit(b, table, led, FitContext("cpu", seed, True))
    return b, led


def _pairs_ratio(b: LipschitzVAEBackend, x: np.ndarray, rng: np.random.Generator) -> float:
    """Largest ||mu(a) - mu(b)|| / ||a - b|| over random row pairs and random nearby points."""
    n = 3000
    a = x[rng.integers(0, len(x), n)].astype(np.float64)
    far = x[rng.integers(0, len(x), n)].astype(np.float64)
    near = a + 1e-3 * rng.standard_normal(a.shape)
    wide = a + rng.standard_normal(a.shape)
    ratios = []
    for other in (far, near, wide):
        num = np.linalg.norm(b.encoder_mean(a) - b.encoder_mean(other), axis=1)
        den = np.linalg.norm(a - other, axis=1)
        ok = den > 1e-9
        ratios.append((num[ok] / den[ok]).max())
    return float(max(ratios))


def test_registered() -> None:
    cls = get_backend_class("lipschitz-vae")
    assert cls is LipschitzVAEBackend
    assert cls.guarantee == "conditional"  # worst case over modes
    assert "cuda" in cls.devices


def test_certified_bound_upper_bounds_empirical(table: EncodedTable) -> None:
    b, _ = _fit(table, lipschitz=2.0)
    rng = np.random.default_rng(0)
    emp = _pairs_ratio(b, table.clipped_rows(), rng)
    cert = b.lipschitz_bound_
    assert cert <= 2.0
    assert cert == pytest.approx(math.prod(b.layer_norms_), rel=1e-12)
    assert 0 < emp <= cert * (1 + 1e-9)


def test_projection_is_tight_and_certified_on_large_weights() -> None:
    """Weights far above the target are projected to it exactly; the bound holds empirically."""
    import torch

    from tabpriv.backends.vae import lipschitz_torch as lt

    model = lt.build_model(lt.Arch(12, 32, 4, 3), seed=1)
    with torch.no_grad():
        for layer in model.enc:
            layer.weight.mul_(25.0)
    before = lt.certified_lipschitz(model)
    cert = lt.enforce_certified_(model, 0.5)
    assert before > 10.0
    assert 0.5 * (1 - 1e-4) <= cert <= 0.5  # every layer was above c, so the product is ~tight
    norms = lt.spectral_norms(model)
    c = 0.5 ** (1 / 3)
    assert all(n <= c for n in norms)
    rng = np.random.default_rng(3)
    a = rng.standard_normal((4000, 12))
    d = rng.standard_normal((4000, 12)) * 10 ** rng.uniform(-3, 1, (4000, 1))
    num = np.linalg.norm(lt.encoder_mean(model, a) - lt.encoder_mean(model, a + d), axis=1)
    emp = float((num / np.linalg.norm(d, axis=1)).max())
    assert emp <= cert * (1 + 1e-9)
    assert emp > 0.05 * cert  # the check is not vacuous


def test_paper_mode_needs_explicit_flag(table: EncodedTable) -> None:
    led = PrivacyLedger(PrivacyBudget(5.0, 1e-5))
    b = LipschitzVAEBackend(mode="paper", release="reconstruction", **QUICK)  # type: ignore[arg-type]
    with pytest.raises(TabprivError, match="allow_paper_mode=True"):
        spend_and_fit(b, table, led, FitContext("cpu", 0, True))
    assert led.spends == []
    assert not b.is_fitted
    b2 = LipschitzVAEBackend(mode="paper", release="reconstruction", allow_paper_mode="yes")  # type: ignore[arg-type]
    with pytest.raises(TabprivError):
        spend_and_fit(b2, table, led, FitContext("cpu", 0, True))


def test_paper_mode_with_flag_is_labelled_conditional(table: EncodedTable) -> None:
    b, led = _fit(table, mode="paper", allow_paper_mode=True, release="reconstruction")
    assert b.effective_guarantee == "conditional"
    det = b.privacy_details()
    assert PAPER_MODE_WARNING in det.warnings
    assert any("training" in s for s in det.not_covered)
    assert len(led.spends) == 1 and led.epsilon_spent <= 5.0
    # paper mode + prior samples has no guarantee at all: refused
    with pytest.raises(PrivacyParameterError):
        _fit(table, mode="paper", allow_paper_mode=True, release="prior")


def test_default_mode_is_dp(table: EncodedTable) -> None:
    b, led = _fit(table)
    assert b.effective_guarantee == "dp"
    det = b.privacy_details()
    assert det.warnings == ["seeded run: anyone who knows the seed can reproduce the noise"]
    assert det.adjacency == "replace-one"
    assert len(led.spends) == 1
    assert 4.5 < led.epsilon_spent <= 5.0 and led.delta_spent <= 1e-5
    # penalty enforcement certifies nothing: a reconstruction release becomes conditional
    bp, _ = _fit(table, release="reconstruction", enforcement="penalty")
    assert bp.effective_guarantee == "conditional"
    assert bp.privacy_details().noise["lipschitz_bound_certified"] is False


def test_reconstruction_budget_split_and_gdp(table: EncodedTable) -> None:
    b, led = _fit(table, release="reconstruction", n_samples_per_record=2, lipschitz=1.0)
    assert len(led.spends) == 2
    assert led.epsilon_spent <= 5.0 * (1 + 1e-12) and led.delta_spent <= 1e-5 * (1 + 1e-12)
    p = b.plan_
    d = 2 * table.row_norm_bound
    assert p["mu"] == pytest.approx(math.sqrt(2) * 1.0 * d / p["encoder_noise"], rel=1e-12)
    assert led.spends[1].epsilon <= 2.5 and led.spends[1].epsilon == pytest.approx(2.5, rel=1e-6)
    assert gdp_delta(led.spends[1].epsilon, p["mu"]) <= led.spends[1].delta
    assert b.lipschitz_bound_ <= 1.0
    assert b.latents_ is not None and b.latents_.shape == (300 * 2, 8)
    # an encoder noise too small for the budget is refused before any spend
    led2 = PrivacyLedger(PrivacyBudget(1.0, 1e-5))
    small = LipschitzVAEBackend(release="reconstruction", encoder_noise=0.1, **QUICK)  # type: ignore[arg-type]
    with pytest.raises(PrivacyParameterError, match="encoder_noise"):
        spend_and_fit(small, table, led2, FitContext("cpu", 0, True))
    assert led2.spends == []


@pytest.mark.parametrize("mu", [0.1, 0.5, 1.0, 3.0])
def test_gdp_conversion_matches_analytic_gaussian(mu: float) -> None:
    import dp_accounting

    delta = 1e-5
    eps = gdp_epsilon(mu, delta)
    assert gdp_delta(eps, mu) <= delta
    # mu-GDP is exactly the Gaussian mechanism with noise multiplier 1/mu (Balle & Wang, analytic)
    ref = dp_accounting.get_epsilon_gaussian(1 / mu, delta)
    assert eps == pytest.approx(ref, rel=1e-4, abs=1e-6)
    assert gdp_mu(eps, delta) == pytest.approx(mu, rel=1e-6)


def test_spend_before_data(table: EncodedTable) -> None:
    led = PrivacyLedger(PrivacyBudget(5.0, 1e-5))
    reads: list[int] = []

    def encode(rows: slice | np.ndarray) -> np.ndarray:  # every row read of a lazy table lands here
        reads.append(len(led.spends))
        return table.data[rows]

    w = EncodedTable.lazy(table.spans, table.n_rows, encode)
    spend_and_fit(
        LipschitzVAEBackend(release="reconstruction", **QUICK),  # type: ignore[arg-type]
        w,
        led,
        FitContext("cpu", 0, True),
    )
    assert reads and min(reads) == 2  # both spends (training, reconstruction) before any row
    assert w.is_lazy
    with pytest.raises(BudgetExceededError):
        spend_and_fit(LipschitzVAEBackend(**QUICK), w, led, FitContext("cpu", 0, True))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"release": "reconstruction", "n_samples_per_record": 2},
        {"mode": "paper", "allow_paper_mode": True, "release": "reconstruction"},
    ],
    ids=["dp-prior", "dp-reconstruction", "paper"],
)
def test_lazy_table_gives_identical_release(kw: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows clipped per minibatch/chunk equal clipped_rows(): eager and lazy fits are bit-identical."""
    schema = make_small_schema()
    tt = TableTransformer(schema).fit()
    clean = schema.conform(make_small_df(300))
    eager = tt.transform(clean)
    # rows above the norm bound, so that the clip matters: scale the numeric coordinates up
    big = eager.data.copy()
    big[:, [b.start for s in eager.spans for b in s.blocks if b.activation == "tanh"]] *= 5.0
    assert (np.linalg.norm(big, axis=1) > eager.row_norm_bound).any()
    ref_b, _ = _fit(EncodedTable(big, eager.spans), seed=3, **kw)
    lazy = EncodedTable.lazy(eager.spans, eager.n_rows, lambda rows: big[rows])
    monkeypatch.setattr(EncodedTable, "chunk_rows_for", lambda self, target_bytes=0: 37)
    b, _ = _fit(lazy, seed=3, **kw)
    assert lazy.is_lazy
    ref_state, state = ref_b.get_state()[0], b.get_state()[0]
    assert state.keys() == ref_state.keys()
    for k in ref_state:
        np.testing.assert_array_equal(state[k], ref_state[k])
    np.testing.assert_array_equal(b.sample(80, 2), ref_b.sample(80, 2))


def test_seed_reproducible(table: EncodedTable) -> None:
    a, _ = _fit(table, seed=5, release="reconstruction")
    b, _ = _fit(table, seed=5, release="reconstruction")
    c, _ = _fit(table, seed=6, release="reconstruction")
    np.testing.assert_array_equal(a.sample(40, 1), b.sample(40, 1))
    assert not np.array_equal(a.sample(40, 1), c.sample(40, 1))
    assert not np.array_equal(a.sample(40, 1), a.sample(40, 2))


@pytest.mark.parametrize("release", ["prior", "reconstruction"])
def test_save_load_round_trip(table: EncodedTable, release: str) -> None:
    b, _ = _fit(table, release=release)
    arrays, meta = b.get_state()
    assert all(isinstance(v, np.ndarray) for v in arrays.values())
    meta2 = json.loads(json.dumps(meta))
    fresh = LipschitzVAEBackend(**b.get_params())
    fresh.set_state(arrays, meta2)
    np.testing.assert_array_equal(fresh.sample(30, 4), b.sample(30, 4))
    assert fresh.privacy_details().noise == b.privacy_details().noise
    out = fresh.sample(30, 4)
    assert out.shape == (30, table.width) and out.dtype == np.float32


def test_invalid_parameters(table: EncodedTable) -> None:
    for kw in ({"mode": "fast"}, {"release": "all"}, {"enforcement": "none"}, {"lipschitz": -1.0}):
        with pytest.raises(PrivacyParameterError):
            _fit(table, **kw)


def test_reconstruction_blocks_draw_released_codes_jointly(table: EncodedTable) -> None:
    """Chunked sampling of a reconstruction release decodes the codes of one draw: none repeats.

    The codes (hence every category and indicator probability) are those of one unsplit draw; the
    numbers drawn from their bins follow the block-seed rule (one block = the unsplit draw).
    """
    b, _ = _fit(table, release="reconstruction")
    n = table.n_rows  # every released code exactly once
    whole = b.sample(n, seed=7)
    blocks = np.concatenate(list(b.sample_chunks(n, seed=7, chunk_rows=64)))
    numbers = [h.index for h in b.heads_.numeric]
    assert numbers  # the binned heads are on by default
    rest = [j for j in range(table.width) if j not in numbers]
    np.testing.assert_allclose(blocks[:, rest], whole[:, rest], rtol=1e-6, atol=1e-6)
    one_block = np.concatenate(list(b.sample_chunks(n, seed=7, chunk_rows=n)))
    np.testing.assert_array_equal(one_block, whole)
    order = b._released_code_order(n, seed=7)
    assert len(np.unique(order)) == n  # a permutation: each released code used once
    with pytest.raises(ValueError, match="chunk_rows"):
        next(b.sample_chunks(n, seed=7, chunk_rows=0))


def _encoded_small(n: int) -> EncodedTable:
    schema = make_small_schema()
    return TableTransformer(schema).fit().transform(schema.conform(make_small_df(n)))


@pytest.mark.parametrize(("n", "batch_size"), [(383, 256), (200, 64), (300, 64)])
def test_accounted_steps_and_rate_are_those_executed(
    n: int, batch_size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The accountant's T and q equal the Poisson draws the loop made (review item 3).

    The old code accounted T = epochs * round(n / B) at q = B / n while opacus ran epochs * ceil(n / B)
    steps at q = 1 / ceil(n / B) (n = 383, B = 256: 10 accounted steps at q = 0.668, 20 run at 0.5).
    """
    from tabpriv.accounting import dpsgd_epsilon
    from tabpriv.backends.vae import dpsgd_loop

    calls: list[tuple[int, float]] = []
    real = dpsgd_loop.poisson_batch

    def counting(rng: np.random.Generator, n_rows: int, q: float) -> np.ndarray:
        calls.append((n_rows, q))
        return real(rng, n_rows, q)

    monkeypatch.setattr(dpsgd_loop, "poisson_batch", counting)
    b, led = _fit(_encoded_small(n), batch_size=batch_size, epochs=3)
    (spend,) = led.spends
    steps, q = spend.parameters["steps"], spend.parameters["sample_rate"]
    assert steps == 3 * math.ceil(n / min(batch_size, n)) == len(calls)
    assert b.train_info_["steps"] == steps == b.privacy_details().extra["train_steps"]
    assert all(c == (n, q) for c in calls) and q == pytest.approx(min(batch_size, n) / n, rel=1e-15)
    z, vdi = spend.parameters["noise_multiplier"], spend.parameters["pld_value_discretization_interval"]
    eps = dpsgd_epsilon(z, q, steps, spend.delta, value_discretization_interval=vdi)
    assert eps == pytest.approx(spend.epsilon, rel=1e-12) and 0.98 * 5.0 <= spend.epsilon <= 5.0


def test_noise_and_sampler_come_from_the_secret_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """Same public seed, different secret key: different weights and codes; same key: identical.

    Before, the DP-SGD noise, the Poisson sampler and the release noise came from torch generators
    seeded by the public seed, so the secret key changed nothing.
    """
    from tabpriv.backends.vae import dpsgd_loop

    table = _encoded_small(300)
    noise_calls: list[tuple[int, ...]] = []
    real = dpsgd_loop.gaussian_noise

    def counting(
        rng: np.random.Generator, shape: tuple[int, ...], std: float, device: object, dtype: object = None
    ) -> object:
        assert type(rng.bit_generator).__name__ == "ChaCha"
        noise_calls.append(shape)
        return real(rng, shape, std, device, dtype)

    monkeypatch.setattr(dpsgd_loop, "gaussian_noise", counting)

    def fit(key: int) -> LipschitzVAEBackend:
        b = LipschitzVAEBackend(**{**QUICK, "release": "reconstruction"})  # type: ignore[arg-type]
        spend_and_fit(
            b, table, PrivacyLedger(PrivacyBudget(5.0, 1e-5)), FitContext("cpu", 11, True, secret_key=key)
        )
        return b

    a, a2, c = fit(1), fit(1), fit(2)
    assert len(noise_calls) == 3 * a.plan_["steps"]  # one secret draw per DP-SGD step
    sa, sa2, sc = a.get_state()[0], a2.get_state()[0], c.get_state()[0]
    for k in sa:
        np.testing.assert_array_equal(sa[k], sa2[k])
    assert any(not np.array_equal(sa[k], sc[k]) for k in sa if k.startswith("model."))
    assert a.latents_ is not None and c.latents_ is not None
    assert not np.allclose(a.latents_, c.latents_)


def test_no_unnoised_training_figure_is_kept(table: EncodedTable, caplog: pytest.LogCaptureFixture) -> None:
    """Review item 4: no training loss in the saved state, the report or the log (DEBUG included)."""
    import logging

    with caplog.at_level(logging.DEBUG):
        b, _ = _fit(table)
    _, meta = b.get_state()
    text = json.dumps(meta) + json.dumps(b.privacy_details().__dict__, default=str)
    assert "loss" not in text
    assert set(meta["train_info"]) == {"steps"}
    assert all("loss" not in r.getMessage() for r in caplog.records)
