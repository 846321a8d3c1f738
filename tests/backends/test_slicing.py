"""Tests of the slicing mechanism's accounting, its release, and the two slicing backends."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from tabpriv import Synthesizer
from tabpriv._random import derive_seed, secret_generator
from tabpriv.accounting import amplify_wor, rdp_to_dp, slicing_epsilon, slicing_rdp
from tabpriv.backends import get_backend_class
from tabpriv.backends.base import FitContext, spend_and_fit
from tabpriv.backends.slicing.backend import SlicingBackend, retrain_from_release
from tabpriv.backends.slicing.mechanism import (
    SlicingRelease,
    block_sensitivity,
    calibrate_sigma,
    enforce_blocks,
    privatise,
)
from tabpriv.budget import PrivacyBudget, PrivacyLedger
from tabpriv.errors import BudgetExceededError
from tabpriv.transformers import TableTransformer

from ..conftest import make_small_df, make_small_schema

QUICK = {"n_slices": 8, "steps": 15, "batch_size": 64, "real_batch": 32, "hidden": 32,
         "latent_dim": 8, "n_features": 16}  # fmt: skip


def _gauss_renyi(cov_p: np.ndarray, cov_q: np.ndarray, alpha: float) -> float:
    """Closed-form Renyi divergence between N(0, cov_p) and N(0, cov_q)."""
    mix = alpha * cov_q + (1 - alpha) * cov_p
    _, ld_mix = np.linalg.slogdet(mix)
    _, ld_p = np.linalg.slogdet(cov_p)
    _, ld_q = np.linalg.slogdet(cov_q)
    return float(-(ld_mix - (1 - alpha) * ld_p - alpha * ld_q) / (2 * (alpha - 1)))


def _joint_cov(x: np.ndarray, sigma: float) -> np.ndarray:
    """Covariance of (u, x.u + v) with u ~ N(0, I/d), v ~ N(0, sigma^2)."""
    d = len(x)
    cov = np.zeros((d + 1, d + 1))
    cov[:d, :d] = np.eye(d) / d
    cov[:d, d] = cov[d, :d] = x / d
    cov[d, d] = x @ x / d + sigma**2
    return cov


@pytest.mark.parametrize(("alpha", "sigma"), [(2.0, 1.5), (5.0, 6.0), (1.5, 1.2)])
def test_rdp_formula_matches_joint_gaussian_divergence(alpha: float, sigma: float) -> None:
    # Independent computation: the pair (u, y) for one projection is jointly Gaussian; the other
    # rows are the same function of u under both tables, so their divergence is this one.
    d = 3
    x = np.array([1.0, 0.0, 0.5])
    xp = np.array([0.0, 1.0, -0.5])
    delta = float(np.linalg.norm(x - xp))
    exact = _gauss_renyi(_joint_cov(x, sigma), _joint_cov(xp, sigma), alpha)
    assert slicing_rdp(alpha, sigma, d, 1, delta) == pytest.approx(exact, rel=1e-9)
    # m' independent projections add up
    assert slicing_rdp(alpha, sigma, d, 7, delta) == pytest.approx(7 * exact, rel=1e-9)


def test_rdp_formula_matches_monte_carlo() -> None:
    rng = np.random.default_rng(0)
    d, sigma, alpha = 2, 3.0, 2.0
    x, xp = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    n = 400_000
    u = rng.normal(0, 1 / math.sqrt(d), size=(n, d))
    y = u @ x + rng.normal(0, sigma, n)
    # log p(u, y) - log q(u, y): the u-densities cancel
    llr = (-((y - u @ x) ** 2) + (y - u @ xp) ** 2) / (2 * sigma**2)
    mc = math.log(np.mean(np.exp((alpha - 1) * llr))) / (alpha - 1)
    assert mc == pytest.approx(slicing_rdp(alpha, sigma, d, 1, math.sqrt(2.0)), rel=0.03)


def test_large_noise_limit_is_the_gaussian_mechanism() -> None:
    import dp_accounting

    d, m_prime, delta_s, sigma = 50, 100_000, 2.0, 90.0
    z = sigma * math.sqrt(d) / (delta_s * math.sqrt(m_prime))  # effective noise multiplier
    eps, _ = slicing_epsilon(sigma, d, m_prime, delta_s, 1e-5)
    acc = dp_accounting.rdp.RdpAccountant(orders=list(np.linspace(1.01, 100, 4000)))
    acc.compose(dp_accounting.GaussianDpEvent(z))
    eps_gauss = acc.get_epsilon(1e-5)
    assert eps >= eps_gauss - 1e-9  # the slicing curve dominates the Gaussian one
    assert eps == pytest.approx(eps_gauss, rel=0.01)


def test_conversion_matches_dp_accounting() -> None:
    from dp_accounting.rdp.rdp_privacy_accountant import compute_epsilon

    orders = np.array([1.5, 2.0, 4.0, 8.0, 16.0])
    rdp = np.array([0.3, 0.5, 1.1, 2.4, 5.0])
    mine = min(rdp_to_dp(a, r, 1e-5) for a, r in zip(orders, rdp, strict=True))
    theirs, _ = compute_epsilon(orders, rdp, 1e-5)
    assert mine == pytest.approx(theirs, rel=1e-9)


@pytest.mark.parametrize(("target", "m_prime"), [(5.1, 128), (1.0, 500), (0.3, 16)])
def test_calibration_respects_target_within_one_percent(target: float, m_prime: int) -> None:
    cal = calibrate_sigma(target, 1e-5, 109, m_prime, 6.0)
    assert cal.epsilon <= target
    assert cal.epsilon >= 0.99 * target
    # a slightly smaller sigma overspends
    assert slicing_epsilon(cal.sigma * 0.99, 109, m_prime, 6.0, 1e-5)[0] > target


def _encoded(n: int = 300):
    schema = make_small_schema()
    tt = TableTransformer(schema).fit()
    return tt.transform(make_small_df(n))


def test_block_sensitivity_and_enforcement() -> None:
    table = _encoded()
    # color (softmax) + code (softmax) + age (tanh) + score (tanh, sigmoid) + flag (softmax)
    assert block_sensitivity(table.spans) == pytest.approx(math.sqrt(2 + 2 + 4 + 4 + 1 + 2))
    np.testing.assert_array_equal(enforce_blocks(table.data, table.spans), table.data)
    wild = np.random.default_rng(0).normal(0, 5, size=(1000, table.width)).astype(np.float32)
    e = enforce_blocks(wild, table.spans)
    diffs = np.linalg.norm(e[:500] - e[500:], axis=1)
    assert diffs.max() <= block_sensitivity(table.spans) + 1e-5


def test_released_noise_has_stated_variance() -> None:
    table = _encoded(2000)
    sigma = 1.7
    rel = privatise(table, sigma=sigma, n_slices=50, k=2, seed=1, accounting={}, chunk_rows=333,
                    secret_rng=secret_generator(1, "test"))  # fmt: skip
    x = enforce_blocks(table.data, table.spans)
    resid = rel.noisy.astype(np.float64) - x.astype(np.float64) @ rel.projection.astype(np.float64)
    n_vals = resid.size  # 200,000 values: the sample variance has relative sd sqrt(2/n) ~ 0.3%
    assert resid.var() == pytest.approx(sigma**2, rel=5 * math.sqrt(2 / n_vals))
    assert abs(resid.mean()) < 5 * sigma / math.sqrt(n_vals)
    d = table.width
    assert rel.projection.var() == pytest.approx(1 / d, rel=0.1)
    assert rel.noisy.dtype == np.float32


class _NoTouch:
    """An encoded table whose data must not be read."""

    def __init__(self, table) -> None:  # type: ignore[no-untyped-def]
        self.spans = table.spans
        self.width = table.width
        self.n_rows = table.n_rows
        self.row_norm_bound = table.row_norm_bound
        self.n_columns = table.n_columns

    @property
    def data(self) -> np.ndarray:
        raise AssertionError("the data was touched before the budget was spent")


def test_budget_spent_once_and_over_budget_touches_nothing() -> None:
    table = _encoded()
    ledger = PrivacyLedger(PrivacyBudget(2.0, 1e-5))
    ctx = FitContext(device="cpu", seed=3, seeded=True)
    spend_and_fit(SlicingBackend(**QUICK), table, ledger, ctx)
    assert len(ledger.spends) == 1
    assert 0.99 * 2.0 <= ledger.epsilon_spent <= 2.0
    with pytest.raises(BudgetExceededError):
        spend_and_fit(SlicingBackend(**QUICK), _NoTouch(table), ledger, ctx)  # type: ignore[arg-type]
    assert len(ledger.spends) == 1


def test_retrain_from_saved_release_needs_no_table_and_no_ledger(tmp_path) -> None:
    synth = Synthesizer("slicing", epsilon=3.0, schema=make_small_schema(), device="cpu",
                        random_state=0, backend_params=QUICK)  # fmt: skip
    synth.fit(make_small_df(300))
    spends_before = synth.ledger_.to_list()
    path = tmp_path / "release.safetensors"
    synth.backend_.save_release(path)
    rel = SlicingRelease.load(path)
    assert rel.accounting["epsilon"] <= 3.0
    assert rel.accounting["adjacency"] == "replace-one"
    b = retrain_from_release(path, seed=5, **{**QUICK, "estimator": "rff", "steps": 10})
    rows = b.sample(100, seed=1)
    assert rows.shape == (100, synth.transformer_.width_)
    assert np.isfinite(rows).all()
    df = synth.transformer_.inverse_transform(rows)
    make_small_schema().validate(df)
    assert synth.ledger_.to_list() == spends_before
    # the retrained generator replaces the old one in a synthesizer without touching the ledger
    synth.backend_ = b
    assert synth.sample(50).shape == (50, 5)
    assert synth.ledger_.to_list() == spends_before


@pytest.mark.parametrize(
    ("backend", "params"),
    [
        ("slicing", {"estimator": "kmm", "divergence": "kl"}),
        ("slicing", {"estimator": "kmm", "divergence": "js", "head": "softmax"}),
        ("slicing", {"estimator": "rff", "divergence": "pearson"}),
        ("slicing", {"estimator": "mmd", "k": 3}),
        ("slicing-wasserstein", {}),
    ],
)
def test_tiny_cpu_fit_every_estimator(backend: str, params: dict) -> None:
    cls = get_backend_class(backend)
    base = dict(cls.quick_params)
    synth = Synthesizer(backend, epsilon=4.0, schema=make_small_schema(), device="cpu",
                        random_state=1, backend_params={**base, **params})  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        synth.fit(make_small_df(300))
    out = synth.sample(200)
    assert out.shape == (200, 5)
    hist = synth.backend_.loss_history_
    assert len(hist) == base["steps"] and all(math.isfinite(v) for v in hist)
    det = synth.backend_.privacy_details()
    assert det.adjacency == "replace-one"
    assert det.noise["sigma"] > 0
    assert synth.privacy_report.epsilon <= 4.0


def test_wasserstein_rejects_k_other_than_one() -> None:
    from tabpriv.errors import PrivacyParameterError

    synth = Synthesizer("slicing-wasserstein", epsilon=1.0, schema=make_small_schema(),
                        device="cpu", backend_params={"k": 2})  # fmt: skip
    with pytest.raises(PrivacyParameterError, match="k=1"):
        synth.fit(make_small_df(100))


@pytest.mark.filterwarnings("ignore:At epsilon = 50 the guarantee is weak")
def test_training_learns_a_marginal_at_low_noise() -> None:
    synth = Synthesizer("slicing", epsilon=50.0, delta=1e-5, schema=make_small_schema(),
                        device="cpu", random_state=2,
                        backend_params={**QUICK, "steps": 150, "n_slices": 32})  # fmt: skip
    synth.fit(make_small_df(3000))
    h = synth.backend_.loss_history_
    assert np.mean(h[-20:]) < np.mean(h[:5])
    out = synth.sample(4000)
    freq = out["color"].value_counts(normalize=True).reindex(["red", "green", "blue"]).fillna(0)
    # true marginal (0.5, 0.3, 0.2); uniform would be 0.2 TVD away
    assert 0.5 * np.abs(freq.to_numpy() - np.array([0.5, 0.3, 0.2])).sum() < 0.1


# -- streaming read ------------------------------------------------------------------------------------
class _StreamOnly:
    """An encoded table readable only through ``iter_chunks`` (as a lazily encoded table would be)."""

    def __init__(self, table) -> None:  # type: ignore[no-untyped-def]
        self._t = table
        self.spans = table.spans
        self.width = table.width
        self.n_rows = table.n_rows
        self.row_norm_bound = table.row_norm_bound
        self.n_columns = table.n_columns
        self.chunks_read = 0

    @property
    def data(self) -> np.ndarray:
        raise AssertionError("the slicing fit path touched table.data instead of iter_chunks")

    def iter_chunks(self, chunk_rows: int = 65_536):  # type: ignore[no-untyped-def]
        for start, block in self._t.iter_chunks(chunk_rows):
            self.chunks_read += 1
            yield start, block


@pytest.mark.parametrize("subsample", [None, 0.5])
def test_fit_reads_the_table_only_through_iter_chunks(subsample: float | None) -> None:
    table = _encoded(500)
    stream = _StreamOnly(table)
    ledger = PrivacyLedger(PrivacyBudget(2.0, 1e-5))
    b = SlicingBackend(**{**QUICK, "chunk_rows": 64, "subsample": subsample})
    spend_and_fit(b, stream, ledger, FitContext(device="cpu", seed=3, seeded=True))  # type: ignore[arg-type]
    assert stream.chunks_read == math.ceil(500 / 64)
    assert SlicingBackend.streaming is True
    assert get_backend_class("slicing-wasserstein").streaming is True


def test_streamed_release_equals_the_in_memory_formula() -> None:
    # Same seed, different chunk sizes: the release does not depend on the chunking.
    table = _encoded(700)
    a = privatise(table, sigma=0.5, n_slices=6, k=2, seed=9, accounting={}, chunk_rows=700,
                  secret_rng=secret_generator(9, "test"))  # fmt: skip
    b = privatise(table, sigma=0.5, n_slices=6, k=2, seed=9, accounting={}, chunk_rows=64,
                  secret_rng=secret_generator(9, "test"))  # fmt: skip
    np.testing.assert_array_equal(a.noisy, b.noisy)
    x = enforce_blocks(table.data, table.spans)
    resid = a.noisy.astype(np.float64) - x.astype(np.float64) @ a.projection.astype(np.float64)
    assert resid.std() == pytest.approx(0.5, rel=0.05)


# -- subsampling without replacement ------------------------------------------------------------------
def _gauss_profile(eps: float, s: float, sens: float = 2.0) -> float:
    """Exact privacy profile delta(eps) of the Gaussian mechanism N(f(D), s^2) with L2 sensitivity sens."""
    from scipy.stats import norm

    return float(
        norm.cdf(-eps * s / sens + sens / (2 * s))
        - math.exp(eps) * norm.cdf(-eps * s / sens - sens / (2 * s))
    )


def _hockey_stick_wor_pair(eps: float, s: float, gamma: float) -> float:
    """H_{e^eps}(P || P'), P = (1-g)N(0,s^2) + gN(1,s^2), P' = (1-g)N(0,s^2) + gN(-1,s^2), by quadrature.

    The pair is a sum query over rows in [-1, 1] (sensitivity 2) with every row but one at 0, the
    changed row +1 vs -1, sampled without replacement at rate gamma.
    """
    from scipy import integrate
    from scipy.stats import norm

    a = math.exp(eps)

    def f(x: float) -> float:
        p = (1 - gamma) * norm.pdf(x, 0, s) + gamma * norm.pdf(x, 1, s)
        q = (1 - gamma) * norm.pdf(x, 0, s) + gamma * norm.pdf(x, -1, s)
        return max(0.0, p - a * q)

    val, _ = integrate.quad(f, -40 * s - 2, 40 * s + 2, points=[0.0], limit=400, epsabs=1e-14)
    return float(val)


@pytest.mark.parametrize("s", [0.5, 1.0, 2.0])
@pytest.mark.parametrize("gamma", [0.5, 0.25, 0.1])
def test_wor_amplification_bounds_the_exact_gaussian_pair(s: float, gamma: float) -> None:
    tight_somewhere = False
    for eps in (0.05, 0.2, 0.5, 1.0, 2.0, 4.0, 6.0):
        eps_amp, delta_amp = amplify_wor(eps, _gauss_profile(eps, s), gamma)
        exact = _hockey_stick_wor_pair(eps_amp, s, gamma)
        assert exact <= delta_amp * (1 + 1e-6) + 1e-13, (eps, exact, delta_amp)
        tight_somewhere |= exact >= 0.9 * delta_amp
    assert tight_somewhere  # the bound is not vacuous: within 10% of exact at small eps


def test_wor_amplified_slicing_epsilon_dominates_the_exact_pair_and_dp_accounting() -> None:
    # Gaussian limit of the slicing mechanism (large d sigma^2): effective noise multiplier z.
    import dp_accounting
    from dp_accounting import NeighboringRelation
    from scipy.optimize import brentq

    d, m_prime, sens, n = 50, 100_000, 2.0, 100_000
    for gamma in (0.5, 0.25):
        cal = calibrate_sigma(5.1, 1e-5, d, m_prime, sens, subsample=gamma, method="rdp")
        z = cal.sigma * math.sqrt(d) / (sens * math.sqrt(m_prime))
        # exact epsilon at delta of the tight 1-D pair with multiplier z (noise s = 2z for sens 2)
        eps_exact = brentq(lambda e, z=z, g=gamma: _hockey_stick_wor_pair(e, 2 * z, g) - 1e-5, 1e-3, 20.0)
        assert cal.epsilon >= eps_exact
        # independent accountant: dp-accounting's RDP bound for sampling without replacement
        # (Wang, Balle & Kasiviswanathan 2019), replace-one, same multiplier
        acc = dp_accounting.rdp.RdpAccountant(
            orders=list(range(2, 65)),
            neighboring_relation=NeighboringRelation.REPLACE_ONE,
        )
        acc.compose(
            dp_accounting.SampledWithoutReplacementDpEvent(
                n, round(gamma * n), dp_accounting.GaussianDpEvent(z)
            )
        )
        eps_rdp = acc.get_epsilon(1e-5)
        assert eps_exact <= eps_rdp
        # the two upper bounds agree within 10% (here the (eps, delta)-level theorem is the tighter)
        assert cal.epsilon == pytest.approx(eps_rdp, rel=0.10)


@pytest.mark.parametrize(("target", "gamma", "m_prime"), [(5.1, 0.25, 512), (1.0, 0.5, 128), (5.1, 0.1, 64)])
def test_calibration_with_subsample_lands_within_two_percent(
    target: float, gamma: float, m_prime: int
) -> None:
    cal = calibrate_sigma(target, 1e-5, 110, m_prime, math.sqrt(42), subsample=gamma, method="rdp")
    assert 0.98 * target <= cal.epsilon <= target
    assert cal.delta <= 1e-5
    base, _ = slicing_epsilon(cal.sigma, 110, m_prime, math.sqrt(42), 1e-5 / gamma)
    assert amplify_wor(base, 1e-5 / gamma, gamma)[0] == pytest.approx(cal.epsilon, rel=1e-9)
    # less noise than without subsampling, and more epsilon for that sigma without amplification
    assert cal.sigma < calibrate_sigma(target, 1e-5, 110, m_prime, math.sqrt(42)).sigma
    assert cal.epsilon_unamplified is not None and cal.epsilon_unamplified > target


def test_exactly_m_distinct_rows_enter_the_release() -> None:
    table = _encoded(400)
    # make every row unique through a numeric coordinate, then recover rows from a noiseless release
    data = table.data.copy()
    tanh_col = next(b.start for s in table.spans for b in s.blocks if b.activation == "tanh")
    data[:, tanh_col] = np.linspace(-0.99, 0.99, 400, dtype=np.float32)
    table = table.with_data(data)
    rel = privatise(table, sigma=1e-6, n_slices=20, k=2, seed=4, accounting={}, chunk_rows=37,
                    sample_size=100, secret_rng=secret_generator(4, "test"))  # fmt: skip
    assert rel.noisy.shape == (100, 40)
    xh = rel.noisy.astype(np.float64) @ np.linalg.pinv(rel.projection.astype(np.float64))
    idx = np.argmin(((xh[:, None, :] - data[None, :, :]) ** 2).sum(-1), axis=1)
    assert np.abs(xh - data[idx]).max() < 1e-3
    assert len(set(idx.tolist())) == 100
    assert not np.all(np.diff(idx) > 0)  # released in random order, not table order


def test_subsampled_fit_reports_both_epsilons_and_saves_the_scheme(tmp_path) -> None:
    synth = Synthesizer("slicing", epsilon=3.0, schema=make_small_schema(), device="cpu",
                        random_state=0, backend_params={**QUICK, "subsample": 0.25})  # fmt: skip
    synth.fit(make_small_df(300))
    b = synth.backend_
    assert b.release_.noisy.shape[0] == 75
    rep = synth.privacy_report
    assert 0.98 * 3.0 <= rep.epsilon <= 3.0
    ex = rep.extra
    assert ex["epsilon_amplified"] == pytest.approx(rep.epsilon)
    assert ex["epsilon_unamplified"] > 3.0  # the same sigma on all rows, without amplification
    assert ex["subsampling"]["sample_size"] == 75 and ex["subsampling"]["gamma"] == 0.25
    assert "Balle, Barthe & Gaboardi" in ex["subsampling"]["theorem"]
    assert "without replacement" in rep.mechanism
    assert rep.noise["subsample_gamma"] == 0.25
    path = tmp_path / "rel.safetensors"
    b.save_release(path)
    rel = SlicingRelease.load(path)
    assert rel.accounting["subsampling"]["sample_size"] == 75
    again = retrain_from_release(path, seed=1, **{**QUICK, "steps": 3})
    assert again.privacy_details().extra["subsampling"]["gamma"] == 0.25
    assert again.subsample == 0.25


def test_subsample_argument_is_validated() -> None:
    from tabpriv.errors import PrivacyParameterError

    for bad in (0.0, 1.5, -0.1, True):
        synth = Synthesizer("slicing", epsilon=1.0, schema=make_small_schema(), device="cpu",
                            backend_params={**QUICK, "subsample": bad})  # fmt: skip
        with pytest.raises(PrivacyParameterError, match="subsample"):
            synth.fit(make_small_df(100))


def test_reg_defaults_per_estimator_and_is_validated() -> None:
    from tabpriv.backends.slicing.training import DEFAULT_REG
    from tabpriv.errors import PrivacyParameterError

    assert SlicingBackend(estimator="kmm")._train_config().reg == DEFAULT_REG["kmm"]
    assert SlicingBackend(estimator="rff")._train_config().reg == DEFAULT_REG["rff"]
    assert SlicingBackend(estimator="kmm", reg=0.3)._train_config().reg == 0.3
    with pytest.raises(PrivacyParameterError, match="reg"):
        SlicingBackend(reg=-1.0)._train_config()


def test_fit_on_a_lazy_table_never_materialises_it() -> None:
    schema = make_small_schema()
    tt = TableTransformer(schema).fit()
    clean = schema.validate(make_small_df(400))[0]
    lazy = tt.transform_lazy(clean)
    ledger = PrivacyLedger(PrivacyBudget(2.0, 1e-5))
    b = SlicingBackend(**{**QUICK, "chunk_rows": 50, "subsample": 0.5})
    spend_and_fit(b, lazy, ledger, FitContext(device="cpu", seed=3, seeded=True))
    assert lazy.is_lazy  # the full matrix was never built
    assert b.release_.noisy.shape[0] == 200


# -- public U, secret V (issue 13 item 6) ---------------------------------------------------------------
def _old_public_stream_release(table, sigma: float, m_prime: int, seed: int, chunk_rows: int):  # type: ignore[no-untyped-def]
    """The release as the code before issue 13 drew it: U, then V, from ONE PCG64 stream of ``seed``."""
    rng = np.random.default_rng(seed)
    d = table.width
    u = (rng.standard_normal((d, m_prime), dtype=np.float32) / np.float32(math.sqrt(d))).astype(np.float32)
    noise = []
    for start in range(0, table.n_rows, chunk_rows):
        rows = min(chunk_rows, table.n_rows - start)
        v = rng.standard_normal((rows, m_prime), dtype=np.float32)
        v *= np.float32(sigma)
        noise.append(v)
    return u, np.concatenate(noise)


def _fit_slicing(table, key: int, seed: int = 3):  # type: ignore[no-untyped-def]
    b = SlicingBackend(**{**QUICK, "steps": 1})
    spend_and_fit(
        b, table, PrivacyLedger(PrivacyBudget(2.0, 1e-5)), FitContext("cpu", seed, True, secret_key=key)
    )
    return b


def test_u_is_public_and_unchanged_but_v_is_not_regenerable_from_the_public_stream() -> None:
    table = _encoded(300)
    b = _fit_slicing(table, key=1)
    rel = b.release_
    m_prime = rel.projection.shape[1]
    # U is still exactly the public draw it always was for this seed (the first draw of its stream)
    u_old, v_old = _old_public_stream_release(
        table, rel.sigma, m_prime, derive_seed(3, "slicing-noise"), b.chunk_rows
    )
    np.testing.assert_array_equal(rel.projection, u_old)
    # ... but whoever knows that stream (seed recovered from U) can no longer regenerate V
    x = enforce_blocks(table.data, table.spans).astype(np.float64)
    v = rel.noisy.astype(np.float64) - x @ rel.projection.astype(np.float64)
    assert v.std() == pytest.approx(rel.sigma, rel=0.05)  # V is the noise (the test is not vacuous)
    assert np.abs(v - v_old).max() > rel.sigma  # not the public-stream noise
    assert abs(np.corrcoef(v.ravel(), v_old.ravel())[0, 1]) < 0.05
    residual = rel.noisy.astype(np.float64) - (x @ u_old.astype(np.float64) + v_old)
    assert residual.std() > 0.5 * rel.sigma  # subtracting the regenerated noise does not give XU


def test_same_public_seed_other_secret_key_changes_v_not_u() -> None:
    table = _encoded(200)
    a, b = _fit_slicing(table, key=1), _fit_slicing(table, key=2)
    np.testing.assert_array_equal(a.release_.projection, b.release_.projection)
    assert not np.allclose(a.release_.noisy, b.release_.noisy)
    c = _fit_slicing(table, key=1)  # same key, same seed: a reproducible research run
    np.testing.assert_array_equal(a.release_.noisy, c.release_.noisy)


def test_the_secret_subsample_does_not_come_from_the_public_stream() -> None:
    table = _encoded(400)
    data = table.data.copy()
    tanh_col = next(b.start for s in table.spans for b in s.blocks if b.activation == "tanh")
    data[:, tanh_col] = np.linspace(-0.99, 0.99, 400, dtype=np.float32)
    table = table.with_data(data)

    def chosen(key: int) -> list[int]:
        rel = privatise(table, sigma=1e-6, n_slices=20, k=2, seed=4, accounting={}, chunk_rows=37,
                        sample_size=100, secret_rng=secret_generator(key, "test"))  # fmt: skip
        xh = rel.noisy.astype(np.float64) @ np.linalg.pinv(rel.projection.astype(np.float64))
        return np.argmin(((xh[:, None, :] - data[None, :, :]) ** 2).sum(-1), axis=1).tolist()

    a, b = chosen(1), chosen(2)
    assert sorted(a) != sorted(b)  # same public seed, other secret key: another sample
    assert chosen(1) == a
    old = np.random.default_rng(4)  # the old code drew U, then the sample, from the public stream
    old.standard_normal((table.width, 40), dtype=np.float32)
    old_rows = np.sort(old.choice(400, size=100, replace=False))
    assert sorted(a) != old_rows.tolist()


def test_plan_and_report_state_the_accountant_method_and_the_rdp_cross_check() -> None:
    # Both figures are functions of public quantities (sigma, d, m', Delta, delta): recompute the RDP
    # route independently and check the plan, the ledger parameters and the report carry it.
    schema = make_small_schema()
    table = _encoded(200)
    backend = SlicingBackend(**QUICK)
    plan = backend.plan(table.spans, table.n_rows, PrivacyBudget(2.0, 1e-5))
    params = plan.spends[0].parameters
    assert params["accountant_method"] == "exact"
    rdp, _ = slicing_epsilon(params["sigma"], params["d"], params["n_projections"],
                             params["l2_sensitivity"], 1e-5)  # fmt: skip
    assert params["epsilon_rdp"] == pytest.approx(rdp, rel=1e-9)
    assert params["epsilon_rdp"] > plan.spends[0].epsilon  # the exact profile is tighter at this sigma
    synth = Synthesizer("slicing", epsilon=2.0, schema=schema, device="cpu", random_state=0,
                        backend_params=QUICK)  # fmt: skip
    synth.fit(make_small_df(200))
    extra = synth.privacy_report.extra
    assert extra["accountant_method"] == "exact"
    assert extra["epsilon_rdp"] == pytest.approx(rdp, rel=1e-9)
    assert synth.backend_.release_.accounting["epsilon_rdp"] == pytest.approx(rdp, rel=1e-9)
