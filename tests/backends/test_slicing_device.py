"""The slicing backend's chunked, device-resident computations equal the plain ones (issue 18).

The rewrite of the bandwidths, the random-feature statistics and the training step must give, on the
CPU, bit for bit the values of the code it replaced (kept here, as the reference); the device paths of
the release and of sampling are checked on the CPU against the host paths, and on a GPU when present.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tabpriv import Synthesizer
from tabpriv._random import secret_generator
from tabpriv.backends.slicing import training as tr
from tabpriv.backends.slicing.backend import SlicingBackend
from tabpriv.backends.slicing.mechanism import (
    SlicingRelease,
    _privatise_on_device,
    draw_projection,
    enforce_blocks,
    enforce_blocks_torch,
    privatise,
)
from tabpriv.backends.slicing.training import TrainConfig, sample_rows, sample_rows_torch, train_generator
from tabpriv.errors import DeviceError
from tabpriv.transformers import TableTransformer

from ..conftest import make_small_df, make_small_schema


def _encoded(n: int = 300):
    tt = TableTransformer(make_small_schema()).fit()
    return tt.transform(make_small_df(n))


# -- the reference: the numpy bandwidth and the training loop before issue 18 (mmd, rff, swd) --------
def _old_median_bandwidth(y: np.ndarray, m: int, k: int, rng: np.random.Generator) -> np.ndarray:
    idx = rng.choice(y.shape[0], size=min(512, y.shape[0]), replace=False)
    s = y[idx].reshape(len(idx), m, k).transpose(1, 0, 2).astype(np.float64)
    d2 = ((s[:, :, None, :] - s[:, None, :, :]) ** 2).sum(-1)
    iu = np.triu_indices(len(idx), 1)
    return np.sqrt(0.5 * np.median(d2[:, iu[0], iu[1]], axis=1))


def _old_train(release: SlicingRelease, cfg: TrainConfig, seed: int) -> tuple[dict, list[float]]:
    f = tr._f(cfg.divergence)
    rng = np.random.default_rng(seed % (2**63))
    torch.manual_seed(int(rng.integers(2**62)))
    gen_t = torch.Generator()
    gen_t.manual_seed(int(rng.integers(2**62)))
    k, m = release.k, release.n_slices
    n = release.noisy.shape[0]
    sigma = float(release.sigma)
    u = torch.as_tensor(release.projection)
    y_all = torch.as_tensor(release.noisy)
    g = tr.build_generator(release.spans, cfg)
    opt = torch.optim.Adam(g.parameters(), lr=cfg.lr)
    mults = torch.as_tensor(cfg.bandwidths, dtype=torch.float32)
    n_e = len(cfg.bandwidths)
    h = torch.as_tensor(_old_median_bandwidth(release.noisy, m, k, rng), dtype=torch.float32)
    if cfg.estimator in ("rff", "mmd"):
        nf = cfg.n_features
        mult_j = mults.repeat(math.ceil(nf / n_e))[:nf]
        w = torch.randn(m, nf, k, generator=gen_t) / (h[:, None, None] * mult_j[None, :, None])
        b = torch.rand(m, nf, generator=gen_t) * (2 * math.pi)
        damp = torch.exp(-0.5 * sigma**2 * (w**2).sum(-1))
        scale = math.sqrt(2.0 / nf)

        def feats(proj: torch.Tensor, sl: torch.Tensor) -> torch.Tensor:
            z = torch.einsum("rsk,sdk->srd", proj, w[sl]) + b[sl][:, None, :]
            return scale * torch.cos(z)

        all_sl = torch.arange(m)
        mu_real = torch.zeros(m, nf)
        cov = torch.zeros(m, nf, nf) if cfg.estimator == "rff" else None
        with torch.no_grad():
            for s0 in range(0, n, 4096):
                ph = feats(y_all[s0 : s0 + 4096].reshape(-1, m, k), all_sl)
                mu_real += ph.sum(1) / n
                if cov is not None:
                    cov += torch.einsum("srd,sre->sde", ph, ph) / n
            chol = None if cov is None else torch.linalg.cholesky(cov + cfg.reg * torch.eye(nf))
    if cfg.estimator == "swd":
        levels = (torch.arange(cfg.batch_size, dtype=torch.float32) + 0.5) / cfg.batch_size
        q_real = torch.quantile(y_all[: min(n, 2**24 // max(1, m * k))].T, levels, dim=1).T
    history = []
    n_sel = m if cfg.slices_per_step <= 0 else min(m, cfg.slices_per_step)
    for _ in range(cfg.steps):
        sl = torch.randperm(m, generator=gen_t)[:n_sel] if n_sel < m else torch.arange(m)
        x_syn = g(torch.randn(cfg.batch_size, cfg.latent_dim, generator=gen_t))
        cols = (sl[:, None] * k + torch.arange(k)[None, :]).reshape(-1)
        p = (x_syn @ u[:, cols]).reshape(cfg.batch_size, n_sel, k)
        if cfg.estimator == "mmd":
            mu_syn = feats(p, sl).mean(1) * damp[sl]
            loss = ((mu_syn - mu_real[sl]) ** 2).sum(-1).mean()
        elif cfg.estimator == "rff":
            assert chol is not None
            mu_syn = feats(p, sl).mean(1) * damp[sl]
            theta = torch.cholesky_solve(mu_syn[:, :, None], chol[sl]).squeeze(-1)
            idx = torch.randint(0, n, (cfg.real_batch,), generator=gen_t)
            ph = feats(y_all[idx][:, cols].reshape(cfg.real_batch, n_sel, k), sl)
            loss = f(torch.einsum("srd,sd->sr", ph, theta).clamp_min(0.0)).mean()
        else:
            ps = (p + sigma * torch.randn(p.shape, generator=gen_t)).reshape(cfg.batch_size, -1)
            loss = ((torch.sort(ps, dim=0).values.T - q_real[cols]) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        history.append(float(loss.detach()))
    return {k_: t.detach().numpy().copy() for k_, t in g.state_dict().items()}, history


def _release(n: int, m: int, k: int, seed: int = 0) -> SlicingRelease:
    table = _encoded(n)
    return privatise(table, sigma=0.7, n_slices=m, k=k, seed=seed, accounting={}, chunk_rows=1000,
                     secret_rng=secret_generator(seed, "test"))  # fmt: skip


# -- bandwidths ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("n", "m", "k", "quantised"),
    [(900, 6, 2, False), (50, 4, 3, False), (300, 3, 1, False), (120, 2, 10, False), (400, 5, 2, True),
     (51, 3, 9, True), (3, 2, 2, False), (2, 2, 2, False)],
)  # fmt: skip
def test_median_bandwidth_equals_the_numpy_computation_bit_for_bit(
    n: int, m: int, k: int, quantised: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(tr._CHUNK_BYTES, "cpu", 4096)  # several slice chunks even on small inputs
    y = np.random.default_rng(n).standard_normal((n, m * k)).astype(np.float32)
    if quantised:  # many tied distances: the two middle values are often equal
        y = np.round(y * 2) / 2
    old = torch.as_tensor(_old_median_bandwidth(y, m, k, np.random.default_rng(1)), dtype=torch.float32)
    new = tr._median_bandwidth(torch.as_tensor(y), m, k, np.random.default_rng(1))
    assert new.dtype == torch.float32
    assert torch.equal(old, new)


# -- the random-feature embedding ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("rows", "n_s", "n_f", "k", "step"),
    [(64, 10, 16, 2, 3), (32, 70, 6, 1, 2), (45, 90, 7, 3, 4), (64, 4, 16, 2, 64), (40, 12, 16, 2, 4),
     (50, 24, 96, 3, 2), (33, 8, 32, 1, 2)],
)  # fmt: skip
def test_mean_cos_features_equal_the_plain_graph_forward_and_backward(
    rows: int, n_s: int, n_f: int, k: int, step: int
) -> None:
    # aligned chunks (the cosine and sine chunk by chunk) and not (over the whole buffer)
    assert step < n_s or n_s == 4  # several chunks
    gen = torch.Generator().manual_seed(rows + k)
    p = torch.randn(rows, n_s, k, generator=gen)
    w = torch.randn(n_s, n_f, k, generator=gen)
    b = torch.rand(n_s, n_f, generator=gen) * 6.0
    g_out = torch.randn(n_s, n_f, generator=gen)
    scale = math.sqrt(2.0 / n_f)
    p_ref = p.clone().requires_grad_()
    ref = (scale * torch.cos(torch.einsum("rsk,sdk->srd", p_ref, w) + b[:, None, :])).mean(1)
    (g_ref,) = torch.autograd.grad(ref, p_ref, g_out)
    p_new = p.clone().requires_grad_()
    zbuf, cbuf = tr._FeatureBuffer(n_s * rows * n_f + 5, "cpu"), tr._FeatureBuffer(n_s * rows * n_f, "cpu")
    new = tr._mean_cos_features().apply(p_new, w, b, scale, step, zbuf, cbuf)
    (g_new,) = torch.autograd.grad(new, p_new, g_out)
    assert torch.equal(ref.detach(), new.detach())
    assert torch.equal(g_ref, g_new)


def test_slice_chunks_keep_vector_alignment() -> None:
    for rows, per in [(300, 50), (3889, 50), (512, 96), (7, 3)]:
        step = tr._slices_per_chunk(rows, per, "cpu")
        assert step >= 1
        assert (step * per) % tr._ALIGN == 0
    assert tr._aligned(256, 96, 10) and tr._aligned(12, 16, 4)
    assert not tr._aligned(10, 16, 4) and not tr._aligned(70, 6, 32)


@pytest.mark.parametrize(
    ("estimator", "params"),
    [("mmd", {}), ("mmd", {"slices_per_step": 5}), ("rff", {}), ("rff", {"slices_per_step": 3}),
     ("swd", {}), ("mmd", {"n_features": 16}), ("rff", {"n_features": 16})],
)  # fmt: skip
def test_training_equals_the_code_it_replaced_bit_for_bit(
    estimator: str, params: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 5,000 rows: two row blocks of the real-side sums (4096 + 904); tiny chunk budget: many slice chunks
    monkeypatch.setitem(tr._CHUNK_BYTES, "cpu", 8192)
    k = 1 if estimator == "swd" else 2
    release = _release(5000, 12, k)
    params = {"n_features": 10, **params}  # 12 x 10 features: not aligned; 12 x 16: aligned chunks
    cfg = TrainConfig(estimator=estimator, steps=4, batch_size=50, real_batch=30, hidden=16, latent_dim=4,
                      **params)  # fmt: skip
    w_old, h_old = _old_train(release, cfg, seed=11)
    w_new, h_new = train_generator(release, cfg, seed=11)
    assert h_old == h_new
    assert w_old.keys() == w_new.keys()
    for name in w_old:
        np.testing.assert_array_equal(w_old[name], w_new[name])


def test_wasserstein_training_computes_no_bandwidth(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the swd estimator has no kernel bandwidth")

    monkeypatch.setattr(tr, "_median_bandwidth", refuse)
    cfg = TrainConfig(estimator="swd", steps=2, batch_size=16, hidden=8, latent_dim=4)
    _, history = train_generator(_release(200, 6, 1), cfg, seed=0)
    assert len(history) == 2


def test_loss_history_has_one_value_per_step_and_progress_reads_them() -> None:
    seen: list[tuple[int, str]] = []
    cfg = TrainConfig(steps=53, batch_size=16, hidden=8, latent_dim=4, n_features=8)
    _, history = train_generator(
        _release(200, 4, 2), cfg, seed=0, progress=lambda i, n, s: seen.append((i, s))
    )
    assert len(history) == 53
    assert [i for i, _ in seen] == [1, 51, 53]
    assert seen[-1][1].endswith(f"{history[-1]:.4g}")


# -- the release on a device -------------------------------------------------------------------------
def test_enforce_blocks_torch_equals_numpy() -> None:
    table = _encoded()
    wild = np.random.default_rng(0).normal(0, 5, size=(500, table.width)).astype(np.float32)
    host = enforce_blocks(wild, table.spans)
    dev = enforce_blocks_torch(torch.as_tensor(wild), table.spans).numpy()
    np.testing.assert_allclose(dev, host, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("sample_size", [None, 173])
def test_release_on_a_device_has_the_host_noise_and_projection(sample_size: int | None) -> None:
    table = _encoded(400)
    args = {"sigma": 1.3, "n_slices": 5, "k": 2, "seed": 4, "accounting": {"x": 1}, "chunk_rows": 97,
            "sample_size": sample_size}  # fmt: skip
    host = privatise(table, secret_rng=secret_generator(9, "t"), **args)  # type: ignore[arg-type]
    # the device path itself, run on the CPU (privatise sends every non-CPU device there)
    rng = secret_generator(9, "t")
    chosen_slots = None
    if sample_size is not None:
        from tabpriv.backends.slicing.mechanism import draw_sample

        chosen_slots = draw_sample(rng, table.n_rows, sample_size)
    dev = _privatise_on_device(
        table, draw_projection(4, table.width, 10), sigma=1.3, k=2, accounting={"x": 1}, chunk_rows=97,
        sample=chosen_slots, secret_rng=rng, device="cpu",
    )  # fmt: skip
    np.testing.assert_array_equal(dev.projection, host.projection)
    # Same noise draw, same rows in the same slots: only the float32 product XU may differ (last bits).
    np.testing.assert_allclose(dev.noisy, host.noisy, rtol=0, atol=1e-5)
    assert dev.noisy.shape == host.noisy.shape
    assert dev.accounting == host.accounting and dev.sigma == host.sigma
    u_t, y_t = dev.device_tensors["cpu"]
    assert torch.equal(y_t, torch.as_tensor(dev.noisy))
    u2, y2 = tr.release_tensors(dev, "cpu")
    assert u2 is u_t and y2 is y_t  # the device copy is used, not copied again


# -- sampling on a device ----------------------------------------------------------------------------
def test_device_sampler_draws_valid_rows_with_the_host_sampler_distribution() -> None:
    table = _encoded(300)
    cfg = TrainConfig(steps=1, batch_size=16, hidden=8, latent_dim=4, n_features=8)
    weights, _ = train_generator(_release(300, 4, 2), cfg, seed=0)
    host = sample_rows(table.spans, cfg, weights, 20000, seed=3)
    dev = sample_rows_torch(table.spans, cfg, weights, 20000, seed=3, device="cpu")
    assert dev.dtype == np.float32 and dev.shape == host.shape
    for span in table.spans:
        for b in span.blocks:
            x, y = dev[:, b.start : b.stop], host[:, b.start : b.stop]
            if b.activation == "softmax":
                assert set(np.unique(x)) <= {0.0, 1.0}
                np.testing.assert_array_equal(x.sum(1), 1.0)
                assert 0.5 * np.abs(x.mean(0) - y.mean(0)).sum() < 0.03
            elif b.activation == "sigmoid":
                assert set(np.unique(x)) <= {0.0, 1.0}
                assert abs(x.mean() - y.mean()) < 0.03
            else:  # numbers: the same latent draws, so the same values up to float rounding
                np.testing.assert_allclose(x, y, atol=1e-6)


def test_to_sets_the_sampling_device_and_refuses_an_absent_gpu() -> None:
    syn = Synthesizer("slicing", epsilon=2.0, schema=make_small_schema(), random_state=0, device="cpu",
                      backend_params=dict(SlicingBackend.quick_params))  # fmt: skip
    syn.fit(make_small_df(200))
    be = syn.backend_
    assert be.to("cpu") is be and be.device_ == "cpu"
    a = be.sample(50, seed=1)
    np.testing.assert_array_equal(a, be.sample(50, seed=1))
    assert be.release_.device_tensors == {}
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError):
            be.to("cuda")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_slicing_fits_and_samples_on_cuda(tmp_path) -> None:
    df, schema = make_small_df(400), make_small_schema()
    syn = Synthesizer("slicing", epsilon=2.0, schema=schema, random_state=0, device="cuda",
                      backend_params=dict(SlicingBackend.quick_params))  # fmt: skip
    syn.fit(df)
    be = syn.backend_
    assert be.device_ == "cuda" and be.release_.device_tensors == {}
    assert len(syn.sample(300)) == 300
    # the release computed on the device carries the host path's noise: residual variance sigma^2
    table = _encoded(2000)
    rel = privatise(table, sigma=1.7, n_slices=50, k=2, seed=1, accounting={}, chunk_rows=333,
                    secret_rng=secret_generator(1, "test"), device="cuda")  # fmt: skip
    host = privatise(table, sigma=1.7, n_slices=50, k=2, seed=1, accounting={}, chunk_rows=333,
                     secret_rng=secret_generator(1, "test"))  # fmt: skip
    np.testing.assert_allclose(rel.noisy, host.noisy, atol=1e-4)
    path = tmp_path / "s.tabpriv"
    syn.save(path)
    loaded = Synthesizer.load(path)
    assert loaded.backend_.device_ == "cpu"
    loaded.backend_.to("cuda")
    assert loaded.backend_.sample(100, seed=0).shape[0] == 100
    w, _ = train_generator(_release(300, 4, 2), TrainConfig(steps=3, batch_size=16, hidden=8, latent_dim=4,
                                                            n_features=8), device="cuda", seed=0)  # fmt: skip
    assert all(np.isfinite(v).all() for v in w.values())
