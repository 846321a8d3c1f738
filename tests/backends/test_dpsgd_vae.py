"""Tests of the ``dpsgd-vae`` baseline: accounting against dp-accounting, release, budget."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tabpriv.backends.base import FitContext, spend_and_fit
from tabpriv.backends.vae.dpsgd import (
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
    from tabpriv.accounting import dpsgd_epsilon

    msgs: list = []
    b = DPSGDVAEBackend(**QUICK)  # type: ignore[arg-type]
    led = PrivacyLedger(PrivacyBudget(4.0, 1e-5))
    table = _encoded()
    spend_and_fit(b, table, led, FitContext("cpu", 0, True, lambda s, t, m: msgs.append(m)))
    sp = led.spends[0]
    assert sp.epsilon <= 4.0 and sp.delta <= 1e-5
    # The spend is the replace-one PLD figure of the mechanism that ran, recomputed here.
    p = sp.parameters
    vdi = p["pld_value_discretization_interval"]
    eps = dpsgd_epsilon(
        p["noise_multiplier"],
        p["sampling_probability"],
        p["steps"],
        sp.delta,
        value_discretization_interval=vdi,
    )
    assert eps == pytest.approx(sp.epsilon, rel=1e-12)
    assert "REPLACE_ONE" in sp.accountant
    # group privacy of opacus' add/remove figure at the same noise is an upper bound (never tighter)
    d_ar = 1e-6
    e_ar = opacus_epsilon(p["noise_multiplier"], p["sampling_probability"], p["steps"], d_ar)
    e_group, d_group = replace_one_from_add_remove(e_ar, d_ar)
    assert dpsgd_epsilon(p["noise_multiplier"], p["sampling_probability"], p["steps"], d_group) <= e_group
    assert sp.epsilon >= 0.98 * 4.0  # the budget is used, not wasted
    assert msgs and "epsilon spent" in msgs[-1] and "loss" not in " ".join(msgs)
    assert b.privacy_details().adjacency == "replace-one"
    assert not hasattr(b, "losses_")  # no un-noised training loss kept
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
        spend_and_fit(DPSGDVAEBackend(**QUICK), _encoded(), led, FitContext("cpu", 0, True))  # type: ignore[arg-type]


def test_spends_before_touching_data_and_streams() -> None:
    led = PrivacyLedger(PrivacyBudget(4.0, 1e-5))
    table = _encoded()
    reads: list[int] = []

    def encode(rows: slice | np.ndarray) -> np.ndarray:  # every row read of a lazy table lands here
        reads.append(len(led.spends))
        return table.data[rows]

    lazy = EncodedTable.lazy(table.spans, table.n_rows, encode)
    spend_and_fit(
        DPSGDVAEBackend(**{**QUICK, "condition_on": "color"}),  # type: ignore[arg-type]
        lazy,
        led,
        FitContext("cpu", 0, True),
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
        spend_and_fit(b, table, PrivacyLedger(PrivacyBudget(4.0, 1e-5)), FitContext("cpu", 2, True))
        return b.get_state()[0], b.sample(100, 1)

    ref_state, ref_rows = run(tt.transform_validated(clean))
    lazy = tt.transform_lazy(clean)
    monkeypatch.setattr(EncodedTable, "chunk_rows_for", lambda self, target_bytes=0: 37)
    state, rows = run(lazy)
    assert lazy.is_lazy and state.keys() == ref_state.keys()
    for k in ref_state:
        np.testing.assert_array_equal(state[k], ref_state[k])
    np.testing.assert_array_equal(rows, ref_rows)


@pytest.mark.parametrize("mode", ["ghost", "hooks"])
@pytest.mark.parametrize(("n", "batch_size"), [(383, 256), (300, 32), (97, 200)])
def test_accounted_steps_and_rate_are_those_executed(
    n: int, batch_size: int, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """T and q given to the accountant equal the Poisson draws the loop made.

    Before, opacus' DPDataLoader ran at q = 1 / ceil(n / B) while q = B / n was accounted.
    """
    from tabpriv.backends.vae import dpsgd_loop

    calls: list[tuple[int, float]] = []
    real = dpsgd_loop.poisson_batch

    def counting(rng: np.random.Generator, n_rows: int, q: float) -> np.ndarray:
        assert type(rng.bit_generator).__name__ == "ChaCha"  # the secret stream
        calls.append((n_rows, q))
        return real(rng, n_rows, q)

    monkeypatch.setattr(dpsgd_loop, "poisson_batch", counting)
    b = DPSGDVAEBackend(**{**QUICK, "batch_size": batch_size, "grad_sample_mode": mode})  # type: ignore[arg-type]
    led = PrivacyLedger(PrivacyBudget(4.0, 1e-5))
    spend_and_fit(b, _encoded(n), led, FitContext("cpu", 0, True))
    p = led.spends[0].parameters
    assert (
        p["steps"] == QUICK["epochs"] * math.ceil(n / min(batch_size, n)) == len(calls) == b.steps_executed_
    )
    assert p["sampling_probability"] == min(batch_size, n) / n
    assert all(c == (n, p["sampling_probability"]) for c in calls)
    assert b.privacy_details().extra["steps_executed"] == len(calls)


def test_poisson_batch_is_poisson_sampling() -> None:
    """Each row in with probability q independently: inclusion frequency q per row, size Binomial(n, q)."""
    from scipy.stats import binomtest

    from tabpriv._random import secret_generator
    from tabpriv.backends.vae.dpsgd_loop import poisson_batch

    rng = secret_generator(7, "test")
    n, q, reps = 50, 0.2, 4000
    hits = np.zeros(n)
    sizes = []
    for _ in range(reps):
        idx = poisson_batch(rng, n, q)
        assert np.all(np.diff(idx) > 0)  # sorted, no repeats
        hits[idx] += 1
        sizes.append(idx.size)
    # per-row inclusion: binomial(reps, q); Bonferroni over the 50 rows at 1e-3 overall
    pvals = [binomtest(int(h), reps, q).pvalue for h in hits]
    assert min(pvals) > 1e-3 / n
    assert np.mean(sizes) == pytest.approx(n * q, rel=0.02)
    assert np.var(sizes) == pytest.approx(n * q * (1 - q), rel=0.1)
    np.testing.assert_array_equal(poisson_batch(rng, 5, 1.0), np.arange(5))


def test_secret_key_drives_noise_and_sampler() -> None:
    """Same public seed, another secret key: another decoder; the same key: bit-identical."""
    table = _encoded()

    def fit(key: int) -> dict[str, np.ndarray]:
        b = DPSGDVAEBackend(**{**QUICK, "condition_on": "color"})  # type: ignore[arg-type]
        spend_and_fit(
            b, table, PrivacyLedger(PrivacyBudget(4.0, 1e-5)), FitContext("cpu", 5, True, secret_key=key)
        )
        arrays, _ = b.get_state()
        return arrays

    a, a2, c = fit(1), fit(1), fit(2)
    assert all(np.array_equal(a[k], a2[k]) for k in a)
    assert all(not np.array_equal(a[k], c[k]) for k in a)  # weights and the noisy condition histogram


@pytest.mark.filterwarnings("ignore:Full backward hook is firing")  # opacus' hooks on the input layer
def test_noisy_step_is_clipped_sum_plus_secret_noise() -> None:
    """One DP-SGD step: (sum of per-record gradients clipped to C + N(0, (zC)^2) from ChaCha20) / b."""
    import torch
    from opacus import GradSampleModule

    from tabpriv._random import secret_generator, secret_normal_torch
    from tabpriv.backends.vae.dpsgd_loop import noisy_gradient_

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    x = torch.randn(5, 3) * 10

    def loss(xb: torch.Tensor) -> torch.Tensor:
        return (model(xb) ** 2).sum(1)

    params = list(model.parameters())
    clip, z, b = 1.0, 0.7, 8
    manual = [torch.zeros_like(p) for p in params]
    norms = []
    for i in range(5):  # per-record gradients one by one, clipped by hand
        g = torch.autograd.grad(loss(x[i : i + 1]).sum(), params)
        nrm = float(torch.sqrt(sum((gi**2).sum() for gi in g)))
        norms.append(nrm)
        for m, gi in zip(manual, g, strict=True):
            m += min(1.0, clip / (nrm + 1e-6)) * gi
    assert max(norms) > 10 * clip  # the clip matters
    gsm = GradSampleModule(model, batch_first=True, loss_reduction="sum")
    loss(x).sum().backward()
    noisy_gradient_(
        params, secret_generator(3, "t"), noise_multiplier=z, clip=clip, expected_batch=b, batch=5
    )
    gsm._close()
    noise = secret_normal_torch(secret_generator(3, "t"), (sum(p.numel() for p in params),), std=z * clip)
    expect = torch.cat([m.flatten() for m in manual]) + noise
    got = torch.cat([p.grad.flatten() for p in params if p.grad is not None]) * b
    assert torch.allclose(got, expect, atol=1e-5)
