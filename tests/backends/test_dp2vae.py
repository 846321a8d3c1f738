"""Tests of the ``dp2-vae`` backend: accounting against a second computation, release, budget."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import gammaln

from tabpriv.backends.base import FitContext, spend_and_fit
from tabpriv.backends.vae.dp2 import (
    DP2VAEBackend,
    calibrate_dp2vae,
    dp2vae_epsilon,
    dp2vae_epsilon_curve,
)
from tabpriv.budget import PrivacyBudget, PrivacyLedger
from tabpriv.errors import BudgetExceededError, DataValidationError
from tabpriv.transformers import EncodedTable, TableTransformer

from ..conftest import make_small_df, make_small_schema
from .test_vae_heads import decoder_out_width

QUICK = dict(DP2VAEBackend.quick_params)


def _encoded(n: int = 300) -> EncodedTable:
    return TableTransformer(make_small_schema()).fit().transform(make_small_df(n))


# -- a second, independent computation of the accounting ------------------------------------------
def _wang_general_rdp(q: float, z: float, alpha: int) -> float:
    """Wang, Balle & Kasiviswanathan (2019), Theorem 9: RDP of sampling without replacement under
    replace-one, for ANY base mechanism with RDP eps(j); here eps(j) = j / (2 z^2), eps(inf) = inf.

    Written from the paper, independently of dp-accounting (which implements a tighter
    Gaussian-specific variant, so this bound must lie at or above it).
    """

    def eps(j: int) -> float:
        return j / (2.0 * z * z)

    def log_comb(n: int, k: int) -> float:
        return float(gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1))

    e2 = eps(2)
    terms = [0.0]  # log of 1
    second = min(4.0 * math.expm1(e2), 2.0 * math.exp(e2))
    terms.append(2 * math.log(q) + log_comb(alpha, 2) + math.log(second))
    for j in range(3, alpha + 1):
        terms.append(j * math.log(q) + log_comb(alpha, j) + (j - 1) * eps(j) + math.log(2.0))
    m = max(terms)
    return (m + math.log(sum(math.exp(t - m) for t in terms))) / (alpha - 1)


def _second_epsilon(noise: float, k: int, steps: int, delta: float) -> float:
    """Epsilon from the general bound, composed over ``steps``, with the classical conversion."""
    z = noise / 2.0  # sensitivity 2C, noise std sigma*C
    best = math.inf
    for alpha in range(2, 97):
        rdp = steps * _wang_general_rdp(1.0 / k, z, alpha)
        best = min(best, rdp + math.log(1.0 / delta) / (alpha - 1))
    return best


CASES = [(7.47, 100, 2000), (3.0, 50, 500), (12.0, 200, 5000)]


@pytest.mark.parametrize(("noise", "k", "steps"), CASES)
def test_epsilon_between_independent_upper_and_lower_bounds(noise: float, k: int, steps: int) -> None:
    """Our figure (dp-accounting RDP, Gaussian-specific Wang et al. bound) must lie
    * at or below the general Wang et al. bound computed here independently (classical conversion),
    * at or above the exact PLD epsilon of the best-case pair of one step — the other subsets'
      output equal to the centre, (1-q) N(0) + q N(+C) vs (1-q) N(0) + q N(-C) with std sigma*C —
      which lower-bounds the true epsilon of the mechanism."""
    import dp_accounting
    from dp_accounting.pld import privacy_loss_distribution as pld

    ours = dp2vae_epsilon(noise, k, steps, 1e-5)
    upper = _second_epsilon(noise, k, steps, 1e-5)
    lower_pld = pld.from_gaussian_mechanism(
        standard_deviation=noise,  # PLD's REPLACE convention: shift of 2 x sensitivity (=C=1)
        sensitivity=1.0,
        sampling_prob=1.0 / k,
        neighboring_relation=dp_accounting.NeighboringRelation.REPLACE_ONE,
        value_discretization_interval=1e-3,
    ).self_compose(steps)
    lower = lower_pld.get_epsilon_for_delta(1e-5)
    assert lower <= ours <= upper + 1e-9
    # Within a factor of 2 above and 3 below (the bounds are loose, not wrong).
    assert upper <= 2.0 * ours and ours <= 3.0 * lower


def test_no_subsampling_equals_gaussian_with_half_noise_multiplier() -> None:
    """K = 1: every step uses the row's subset; sensitivity 2C with std sigma*C composed T times is
    one Gaussian mechanism with (shift / std) = 2 sqrt(T) / sigma: exact epsilon by the analytic
    Gaussian mechanism, which the RDP figure must bound from above, tightly."""
    import dp_accounting

    noise, steps, delta = 10.0, 20, 1e-5
    rdp_eps = dp2vae_epsilon(noise, 1, steps, delta)
    exact = dp_accounting.get_epsilon_gaussian(noise / (2.0 * math.sqrt(steps)), delta)
    assert exact <= rdp_eps <= 1.15 * exact
    # dp-accounting's PLD accountant reads GaussianDpEvent(z) under REPLACE_ONE as a shift of
    # 2 x sensitivity; the same mechanism is GaussianDpEvent(sigma) there, not sigma/2.
    pld = dp_accounting.pld.PLDAccountant(dp_accounting.NeighboringRelation.REPLACE_ONE)
    pld.compose(dp_accounting.GaussianDpEvent(noise), steps)
    assert pld.get_epsilon(delta) == pytest.approx(exact, rel=0.02)
    # With the wrong sensitivity (C instead of 2C) epsilon would be about half as large.
    assert dp2vae_epsilon(2 * noise, 1, steps, delta) < 0.6 * rdp_eps


def test_amplification_never_worse_than_unamplified() -> None:
    noise, k, steps, delta = 5.0, 20, 300, 1e-5
    amplified = dp2vae_epsilon(noise, k, steps, delta)
    assert amplified < dp2vae_epsilon(noise, 1, steps, delta)


def test_calibration_hits_target_from_below() -> None:
    cal = calibrate_dp2vae(1.0, 1e-5, 100, 2000)
    assert 0.99 <= cal.epsilon <= 1.0
    assert dp2vae_epsilon(cal.noise, 100, 2000, 1e-5) == pytest.approx(cal.epsilon)
    assert dp2vae_epsilon(cal.noise * 0.99, 100, 2000, 1e-5) > 1.0 - 0.05
    curve = dp2vae_epsilon_curve(cal.noise, 100, [1, 1000, 2000], 1e-5)
    assert curve[0] < curve[1] < curve[2] == pytest.approx(cal.epsilon)


# -- the backend ------------------------------------------------------------------------------------
def _fit(seed: int = 0, eps: float = 3.0, **kw: object) -> tuple[DP2VAEBackend, PrivacyLedger, list]:
    msgs: list = []
    params = {**QUICK, **kw}
    b = DP2VAEBackend(**params)  # type: ignore[arg-type]
    led = PrivacyLedger(PrivacyBudget(eps, 1e-5))
    spend_and_fit(b, _encoded(), led, FitContext("cpu", seed, True, lambda s, t, m: msgs.append((s, t, m))))
    return b, led, msgs


@pytest.fixture(scope="module")
def fitted() -> tuple[DP2VAEBackend, PrivacyLedger, list]:
    return _fit()


def test_fit_spends_budget_reports_progress_and_samples(fitted) -> None:
    b, led, msgs = fitted
    assert len(led.spends) == 1
    spend = led.spends[0]
    assert 0.99 * 3.0 <= spend.epsilon <= 3.0 and spend.delta == 1e-5
    assert spend.parameters["l2_sensitivity_per_step"] == 2.0 * b.clip
    assert spend.parameters["sampling_probability"] == pytest.approx(1 / QUICK["n_subsets"])
    assert msgs and msgs[-1][0] == QUICK["steps"] and "epsilon spent" in msgs[-1][2]
    spent = [float(m.rsplit(" ", 1)[1]) for _, _, m in msgs]
    assert spent == sorted(spent) and spent[-1] == pytest.approx(spend.epsilon, abs=1e-3)
    x = b.sample(200, seed=1)
    assert x.shape == (200, _encoded().width) and x.dtype == np.float32
    table = _encoded()
    for span in table.spans:  # categorical blocks are one-hot, numbers in [-1, 1]
        block = x[:, span.slice]
        if span.kind == "categorical":
            np.testing.assert_array_equal(block.sum(1), 1.0)
        else:
            assert np.all(np.abs(block[:, 0]) <= 1.0)
    details = b.privacy_details()
    assert details.adjacency == "replace-one" and "REPLACE_ONE" in details.accountant


def test_released_state_has_no_encoder_weights(fitted) -> None:
    b, _, _ = fitted
    arrays, meta = b.get_state()
    width, hidden, latent = _encoded().width, QUICK["hidden"], QUICK["latent_dim"]
    assert arrays and all(k.startswith("decoder.") for k in arrays)
    shapes = {v.shape for v in arrays.values()}
    # Encoder layers: (hidden, width) first and (2*latent, hidden) last; the decoder has neither.
    assert (hidden, width) not in shapes and (2 * latent, hidden) not in shapes
    n_params = sum(v.size for v in arrays.values())
    out = decoder_out_width(_encoded().spans)  # the row plus each number's bins
    decoder_params = latent * hidden + hidden + hidden * hidden + hidden + hidden * out + out
    assert n_params == decoder_params
    assert not any("enc" in k for k in arrays) and "enc" not in str(sorted(meta))
    # and nothing encoder-like hides on the fitted object either
    assert not any("enc" in k for k in vars(b))


def test_state_round_trip_and_seed_reproducible(fitted) -> None:
    b1, _, _ = fitted
    b2, _, _ = _fit(seed=0)
    b3, _, _ = _fit(seed=6)
    np.testing.assert_array_equal(b1.sample(50, 2), b2.sample(50, 2))
    assert not np.array_equal(b1.sample(50, 2), b3.sample(50, 2))
    arrays, meta = b1.get_state()
    fresh = DP2VAEBackend(**QUICK)  # type: ignore[arg-type]
    fresh.set_state(arrays, meta)
    np.testing.assert_array_equal(fresh.sample(50, 2), b1.sample(50, 2))


def _watched(table: EncodedTable, led: PrivacyLedger) -> tuple[EncodedTable, list[int]]:
    """A lazy copy of ``table`` whose every row read (take, iter_chunks, data, clipped_rows) is logged
    with the number of ledger spends at that moment."""
    reads: list[int] = []

    def encode(rows: slice | np.ndarray) -> np.ndarray:
        reads.append(len(led.spends))
        return table.data[rows]

    return EncodedTable.lazy(table.spans, table.n_rows, encode), reads


def test_spends_before_touching_data() -> None:
    led = PrivacyLedger(PrivacyBudget(3.0, 1e-5))
    spy, reads = _watched(_encoded(), led)
    b = DP2VAEBackend(**{**QUICK, "condition_on": "color"})  # type: ignore[arg-type]
    spend_and_fit(b, spy, led, FitContext("cpu", 0, True))
    # Every row read (the one encode pass that feeds every minibatch and the posterior pass, and the
    # condition histogram's pass) came after the one spend; n_rows (public under replace-one) is the
    # only thing read before it, and it reads no row. Encode once: no read per step.
    assert reads and min(reads) == 1
    assert len(reads) == 2 < QUICK["steps"]
    assert len(led.spends) == 1 and spy.is_lazy  # streamed: the matrix was never materialised


def test_lazy_table_gives_identical_release(monkeypatch: pytest.MonkeyPatch) -> None:
    """Streaming reads change nothing: eager and lazy tables give bit-identical decoders and samples,
    with the posterior pass and the condition histogram split into many chunks.

    (The posterior pass reads the (K, n/K) partition in column blocks of ``chunk_rows_for() // K``;
    a different block size changes the batched matmul's float32 rounding, ~1e-9 on the weights here,
    so both fits use the same blocks. With one block, as for every table with n/K <= that size, the
    fit equals the pre-streaming code's bit for bit: checked when the change was made.)
    """
    schema = make_small_schema()
    tt = TableTransformer(schema).fit()
    clean, _ = schema.validate(make_small_df(300))
    monkeypatch.setattr(EncodedTable, "chunk_rows_for", lambda self, target_bytes=0: 37)

    def run(table: EncodedTable) -> tuple[dict[str, np.ndarray], np.ndarray]:
        b = DP2VAEBackend(**{**QUICK, "condition_on": "color"})  # type: ignore[arg-type]
        spend_and_fit(b, table, PrivacyLedger(PrivacyBudget(3.0, 1e-5)), FitContext("cpu", 4, True))
        return b.get_state()[0], b.sample(100, 1)

    ref_state, ref_rows = run(tt.transform_validated(clean))
    lazy = tt.transform_lazy(clean)
    state, rows = run(lazy)
    assert lazy.is_lazy
    assert state.keys() == ref_state.keys()
    for k in ref_state:
        np.testing.assert_array_equal(state[k], ref_state[k])
    np.testing.assert_array_equal(rows, ref_rows)


def test_over_budget_and_bad_params_refuse_before_data() -> None:
    led = PrivacyLedger(PrivacyBudget(1.0, 1e-5))
    led.spend("other", 1.0, 1e-5, "test")
    with pytest.raises(BudgetExceededError):
        spend_and_fit(DP2VAEBackend(**QUICK), _encoded(), led, FitContext("cpu", 0, True))  # type: ignore[arg-type]
    with pytest.raises(DataValidationError, match="n_subsets"):
        spend_and_fit(
            DP2VAEBackend(**{**QUICK, "n_subsets": 1000}),  # type: ignore[arg-type]
            _encoded(),
            PrivacyLedger(PrivacyBudget(1.0)),
            FitContext("cpu", 0, True),
        )
    with pytest.raises(DataValidationError, match="categorical"):
        spend_and_fit(
            DP2VAEBackend(**{**QUICK, "condition_on": "age"}),  # type: ignore[arg-type]
            _encoded(),
            PrivacyLedger(PrivacyBudget(1.0)),
            FitContext("cpu", 0, True),
        )


def test_conditional_variant_releases_noisy_condition_histogram() -> None:
    b, led, _ = _fit(condition_on="color", eps=5.0)
    assert "condition histogram" in led.spends[0].mechanism
    assert led.spends[0].epsilon <= 5.0
    probs = b.condition_probs_
    assert probs is not None and probs.shape == (3,) and probs.sum() == pytest.approx(1.0)
    # true shares 0.5 / 0.3 / 0.2 (n=300); the noisy ones at epsilon 0.5-equivalent stay close
    np.testing.assert_allclose(probs, [0.5, 0.3, 0.2], atol=0.1)
    x = b.sample(4000, seed=3)
    span = next(s for s in _encoded().spans if s.name == "color")
    np.testing.assert_allclose(x[:, span.slice].mean(0), probs, atol=0.03)
    arrays, meta = b.get_state()
    fresh = DP2VAEBackend(**{**QUICK, "condition_on": "color"})  # type: ignore[arg-type]
    fresh.set_state(arrays, meta)
    np.testing.assert_array_equal(fresh.sample(20, 1), b.sample(20, 1))


def test_partition_is_disjoint_cover() -> None:
    from tabpriv.backends.vae.dp2_torch import _partition

    idx, sizes = _partition(103, 10, np.random.default_rng(0))
    rows = np.concatenate([idx[k, : sizes[k]] for k in range(10)])
    assert sorted(rows.tolist()) == list(range(103))
    assert sizes.min() == 10 and sizes.max() == 11


# -- secret randomness (issue 13 item 6) ------------------------------------------------------------
class _RecordingContext(FitContext):
    """A FitContext that records which secret streams were asked for."""

    purposes: list[str]

    def secret_rng(self, purpose: str) -> np.random.Generator:
        self.purposes.append(purpose)
        return super().secret_rng(purpose)


def _fit_with_key(key: int, seed: int = 0, **kw: object) -> DP2VAEBackend:
    b = DP2VAEBackend(**{**QUICK, **kw})  # type: ignore[arg-type]
    spend_and_fit(
        b, _encoded(), PrivacyLedger(PrivacyBudget(3.0, 1e-5)), FitContext("cpu", seed, True, secret_key=key)
    )
    return b


def test_gradient_noise_subset_choice_and_histogram_noise_use_secret_streams() -> None:
    ctx = _RecordingContext("cpu", 0, True)
    ctx.purposes = []
    b = DP2VAEBackend(**{**QUICK, "condition_on": "color"})  # type: ignore[arg-type]
    spend_and_fit(b, _encoded(), PrivacyLedger(PrivacyBudget(5.0, 1e-5)), ctx)
    assert set(ctx.purposes) == {
        "dp2vae-gradient-noise",
        "dp2vae-subset-choice",
        "dp2vae-histogram-noise",
    }


def test_release_depends_on_the_secret_key_not_only_the_public_seed() -> None:
    # Regression: before issue 13 every draw came from torch generators seeded from the public seed,
    # so the secret key changed nothing.
    a, b = _fit_with_key(1), _fit_with_key(2)
    differs = [not np.array_equal(a.decoder_state_[k], b.decoder_state_[k]) for k in a.decoder_state_]
    assert all(differs)
    c = _fit_with_key(1)  # same seed and key: a reproducible research run
    for k in a.decoder_state_:
        np.testing.assert_array_equal(a.decoder_state_[k], c.decoder_state_[k])
    h1 = _fit_with_key(1, condition_on="color").condition_probs_
    h2 = _fit_with_key(2, condition_on="color").condition_probs_
    assert h1 is not None and h2 is not None and not np.array_equal(h1, h2)


def test_gradient_noise_has_the_stated_std_and_shapes() -> None:
    import torch

    from tabpriv._random import secret_generator
    from tabpriv.backends.vae.dp2_torch import gradient_noise

    params = [torch.zeros(300, 40), torch.zeros(40), torch.zeros(7, 3, 2)]
    rng = secret_generator(5, "test")
    draws = [gradient_noise(rng, params, 0.7, torch.device("cpu")) for _ in range(5)]
    assert [tuple(t.shape) for t in draws[0]] == [(300, 40), (40,), (7, 3, 2)]
    flat = torch.cat([t.flatten() for d in draws for t in d]).double()
    n = flat.numel()  # 60,410 values: relative s.e. of the sample variance sqrt(2/n) ~ 0.6%; allow 5
    assert float(flat.var()) == pytest.approx(0.49, rel=5 * math.sqrt(2 / n))
    assert not torch.equal(draws[0][0], draws[1][0])  # fresh noise every step


@pytest.mark.parametrize(("n", "n_subsets", "steps"), [(300, 10, 40), (97, 3, 25)])
def test_accounted_steps_and_rate_are_those_executed(
    n: int, n_subsets: int, steps: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """T and q = 1/K that the accountant is given equal the noisy steps and the partition that run."""
    from tabpriv.backends.vae import dp2_torch

    noise_calls: list[float] = []
    parts: list[int] = []
    real_noise, real_partition = dp2_torch.gradient_noise, dp2_torch._partition

    def noise(rng, params, std, device):  # type: ignore[no-untyped-def]
        assert type(rng.bit_generator).__name__ == "ChaCha"  # the secret stream
        noise_calls.append(std)
        return real_noise(rng, params, std, device)

    def partition(n_rows: int, k: int, rng: np.random.Generator):  # type: ignore[no-untyped-def]
        parts.append(k)
        return real_partition(n_rows, k, rng)

    monkeypatch.setattr(dp2_torch, "gradient_noise", noise)
    monkeypatch.setattr(dp2_torch, "_partition", partition)
    b = DP2VAEBackend(**{**QUICK, "n_subsets": n_subsets, "steps": steps})  # type: ignore[arg-type]
    led = PrivacyLedger(PrivacyBudget(4.0, 1e-5))
    spend_and_fit(b, _encoded(n), led, FitContext("cpu", 0, True))
    p = led.spends[0].parameters
    assert p["steps"] == steps == len(noise_calls)
    assert parts == [n_subsets] and p["n_subsets"] == n_subsets
    assert p["sampling_probability"] == 1 / n_subsets
    assert set(noise_calls) == {p["noise_std"]}


# -- conditioning on a categorical target (issue 18, as dpsgd-vae) --------------------------------
def test_categorical_target_conditions_exactly_as_condition_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """``target="color"`` is ``condition_on="color"``: same plan, same spend, same decoder and rows.

    The conditioning is used (the training config gets the column, the decoder takes its one-hot
    block as input, the histogram's secret noise is drawn) and paid (the histogram in the one spend).
    """
    from tabpriv.backends.vae import dp2_torch

    configs: list[object] = []
    real_train = dp2_torch.train_dp2vae

    def train(config, *args, **kwargs):  # type: ignore[no-untyped-def]
        configs.append(config)
        return real_train(config, *args, **kwargs)

    monkeypatch.setattr(dp2_torch, "train_dp2vae", train)
    by_target, led_t, _ = _fit(target="color", eps=5.0)
    explicit, led_c, _ = _fit(condition_on="color", eps=5.0)
    plain, led_n, _ = _fit(eps=5.0)
    (sp_t,), (sp_c,), (sp_n,) = led_t.spends, led_c.spends, led_n.spends
    assert [c.condition_on for c in configs] == ["color", "color", None]  # type: ignore[attr-defined]
    assert by_target.condition_column_ == "color" and plain.condition_column_ is None
    # Paid: the histogram is part of the one planned spend, calibrated within the same budget.
    assert "condition histogram" in sp_t.mechanism and "condition histogram" not in sp_n.mechanism
    assert (sp_t.epsilon, sp_t.delta) == (sp_c.epsilon, sp_c.delta)
    assert sp_t.epsilon <= 5.0 and sp_t.delta <= 1e-5
    assert sp_t.parameters == sp_c.parameters
    assert sp_t.parameters["condition_histogram_noise_multiplier"] > 0
    # The decoder spends part of the budget on the histogram: more gradient noise than unconditioned.
    assert sp_t.parameters["sigma"] > sp_n.parameters["sigma"]
    assert by_target.privacy_details().noise["condition_histogram_noise_multiplier"] > 0
    # Used: the decoder's input is the latent plus the color block (3 categories).
    w0 = by_target.decoder_state_["net.0.weight"]
    assert w0.shape[1] == QUICK["latent_dim"] + 3
    assert plain.decoder_state_["net.0.weight"].shape[1] == QUICK["latent_dim"]
    probs = by_target.condition_probs_
    assert probs is not None and probs.shape == (3,) and plain.condition_probs_ is None
    for k in by_target.decoder_state_:
        np.testing.assert_array_equal(by_target.decoder_state_[k], explicit.decoder_state_[k])
    np.testing.assert_array_equal(by_target.sample(200, 5), explicit.sample(200, 5))


def test_numeric_or_no_target_does_not_condition_and_condition_on_wins() -> None:
    table = _encoded()
    budget = PrivacyBudget(4.0, 1e-5)
    plans = {
        t: DP2VAEBackend(**QUICK, target=t).plan(table.spans, table.n_rows, budget)  # type: ignore[arg-type]
        for t in (None, "age", "score")
    }
    for t, plan in plans.items():
        (spend,) = plan.spends
        assert plan.noise.condition_on is None, t
        assert plan.noise.calibration.hist_multiplier is None, t
        assert "condition histogram" not in spend.mechanism
        assert spend.parameters == plans[None].spends[0].parameters  # all of the budget to the decoder
    both = DP2VAEBackend(**QUICK, condition_on="flag", target="color")  # type: ignore[arg-type]
    assert both.plan(table.spans, table.n_rows, budget).noise.condition_on == "flag"


def test_unknown_target_refused_before_any_spend() -> None:
    from tabpriv.errors import PrivacyParameterError

    led = PrivacyLedger(PrivacyBudget(4.0, 1e-5))
    with pytest.raises(PrivacyParameterError, match="not a column"):
        spend_and_fit(
            DP2VAEBackend(**QUICK, target="nope"),  # type: ignore[arg-type]
            _encoded(),
            led,
            FitContext("cpu", 0, True),
        )
    assert led.spends == []


def test_target_conditioned_model_round_trips(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Backend state and a whole saved Synthesizer: the column is re-derived (no new saved key)."""
    from tabpriv import Synthesizer

    b, _, _ = _fit(target="color")
    arrays, meta = b.get_state()
    assert "condition_on" not in meta and "condition_probs" in arrays
    fresh = DP2VAEBackend(**QUICK, target="color")  # type: ignore[arg-type]
    fresh.set_state(arrays, meta)
    assert fresh.condition_column_ == "color"
    np.testing.assert_array_equal(fresh.sample(64, 3), b.sample(64, 3))
    # A file without spans (written before they were saved): the column is ``condition_on``.
    legacy = DP2VAEBackend(**QUICK, condition_on="color")  # type: ignore[arg-type]
    legacy.set_state(arrays, {k: v for k, v in meta.items() if k != "spans"})
    assert legacy.condition_column_ == "color"

    s = Synthesizer(
        backend="dp2-vae",
        epsilon=4.0,
        delta=1e-5,
        schema=make_small_schema(),
        random_state=0,
        target="flag",
        backend_params=QUICK,
    ).fit(make_small_df(300))
    backend = s.backend_
    assert isinstance(backend, DP2VAEBackend)
    assert backend.get_params()["target"] == "flag" and backend.condition_column_ == "flag"
    assert "condition histogram" in s.privacy_report.spends[0]["mechanism"]
    s.save(tmp_path / "m.tabpriv")
    loaded = Synthesizer.load(tmp_path / "m.tabpriv")
    assert isinstance(loaded.backend_, DP2VAEBackend) and loaded.backend_.condition_column_ == "flag"
    np.testing.assert_array_equal(loaded.backend_.sample(150, 2), backend.sample(150, 2))
    assert set(loaded.sample(150)["flag"]) <= {"yes", "no"}
