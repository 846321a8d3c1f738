"""Ghost clipping (issue 18): the per-record norms and the clipped sums equal those of the hooks mode.

DP-SGD's sensitivity rests on every record's gradient being clipped to ``C``. The ghost mode
(opacus' ``GradSampleModuleFastGradientClipping``) computes each record's gradient norm without the
gradient; these tests check, on many random small models, batches and losses (the VAE backends' own
per-record losses among them), that those norms are the hooks mode's norms (``GradSampleModule``,
materialised per-record gradients), that the clipped sums agree, and that the loop runs the same
sampler, noise and step count in both modes.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("opacus")

from opacus import GradSampleModule  # noqa: E402
from opacus.grad_sample import GradSampleModuleFastGradientClipping  # noqa: E402

from tabpriv._random import secret_generator  # noqa: E402
from tabpriv.backends.vae import dpsgd_loop  # noqa: E402
from tabpriv.backends.vae.dpsgd_loop import GhostRecords, clip_and_sum, dpsgd_schedule, ghost_records  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:Full backward hook is firing")


def _mlp(gen: torch.Generator, d: int, h: int, out: int) -> torch.nn.Module:
    nn = torch.nn
    model = nn.Sequential(nn.Linear(d, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(), nn.Linear(h, out))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    return model


def _hooks_norms(model: torch.nn.Module, loss_fn, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:  # type: ignore[no-untyped-def]
    params = [p for p in model.parameters() if p.requires_grad]
    gsm = GradSampleModule(model, batch_first=True, loss_reduction="sum")
    try:
        loss_fn(x).sum().backward()
        gs = [p.grad_sample for p in params]
        b = x.shape[0]
        norms = torch.stack([g.reshape(b, -1).norm(2, dim=1) for g in gs], dim=1).norm(2, dim=1)
        summed = clip_and_sum(gs, 1.0)
    finally:
        gsm._close()
        for p in params:
            p.grad, p.grad_sample = None, None
    return norms.detach(), [s.detach() for s in summed]


def _ghost_norms(model: torch.nn.Module, loss_fn, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:  # type: ignore[no-untyped-def]
    params = [p for p in model.parameters() if p.requires_grad]
    gsm = GradSampleModuleFastGradientClipping(
        model, batch_first=True, loss_reduction="sum", max_grad_norm=1.0, use_ghost_clipping=True
    )
    try:
        rec = ghost_records(gsm, params, loss_fn(x))
        summed = clip_and_sum(rec, 1.0)
    finally:
        gsm._close()
    return rec.norms.detach(), summed


def test_ghost_norms_equal_hooks_norms_on_random_models() -> None:
    """60 random (model, batch, loss) draws: every per-record norm and every clipped sum agree."""
    rel_norm, rel_sum, clipped = [], [], 0
    for trial in range(60):
        gen = torch.Generator().manual_seed(trial)
        d, h, out = 3 + trial % 7, 4 + trial % 5, 2 + trial % 3
        b = 1 + trial % 17
        model = _mlp(gen, d, h, out)
        x = torch.randn((b, d), generator=gen) * (1 + trial % 4)
        target = torch.randn((b, out), generator=gen)

        n_h, s_h = _hooks_norms(model, lambda xb: ((model(xb) - target) ** 2).sum(1), x)  # noqa: B023
        n_g, s_g = _ghost_norms(model, lambda xb: ((model(xb) - target) ** 2).sum(1), x)  # noqa: B023
        rel_norm.append(float(((n_g - n_h).abs() / n_h.clamp_min(1e-12)).max()))
        flat_h, flat_g = torch.cat([s.flatten() for s in s_h]), torch.cat([s.flatten() for s in s_g])
        rel_sum.append(float((flat_g - flat_h).norm() / flat_h.norm().clamp_min(1e-12)))
        clipped += int((n_h > 1.0).sum())
    assert clipped > 100  # the clip is active for many records
    assert max(rel_norm) < 1e-4 and float(np.median(rel_norm)) < 1e-6
    assert max(rel_sum) < 1e-4


def _vae_losses() -> list[tuple[str, torch.nn.Module, object, torch.Tensor]]:
    """The per-record losses of dpsgd-vae and lipschitz-vae (spectral and penalty) on encoded rows."""
    from tabpriv.backends.vae import lipschitz_torch as lt
    from tabpriv.backends.vae.common import SpanLayout, init_linear_
    from tabpriv.backends.vae.dpsgd_torch import VAE
    from tabpriv.transformers import TableTransformer

    from ..conftest import make_small_df, make_small_schema

    schema = make_small_schema()
    tt = TableTransformer(schema).fit()
    clean, _ = schema.validate(make_small_df(64))
    table = tt.transform_validated(clean)
    x = torch.as_tensor(table.data[:48])
    out = []
    layout = SpanLayout.from_spans(table.spans, None, 20)
    vae = VAE(layout, 16, 4)
    init_linear_(vae, torch.Generator().manual_seed(1))
    eps = torch.randn((48, 4), generator=torch.Generator().manual_seed(2))
    out.append(("dpsgd-vae", vae, lambda xb: vae(xb, eps), x))
    heads = lt.Heads(table.spans, 20)
    for enforcement in ("spectral", "penalty"):
        model = lt.build_model(lt.Arch(table.width, 16, 4, 2, heads.out_width), 3)
        cfg = lt.TrainConfig(1.0, 0.5, 1.1, 1.0, enforcement, 10.0, 1, 16, 1e-3, True)

        def loss(xb: torch.Tensor, model=model, cfg=cfg) -> torch.Tensor:  # type: ignore[no-untyped-def]
            return lt._per_sample_loss(model, heads, xb, cfg, torch.Generator().manual_seed(4))

        out.append((f"lipschitz-vae-{enforcement}", model, loss, x))
    return out


def test_ghost_norms_equal_hooks_norms_on_the_vae_losses() -> None:
    """The backends' own losses (softmax, bin and indicator heads; the penalty's (B, 2, d) inputs)."""
    for name, model, loss, x in _vae_losses():
        model.train()
        n_h, s_h = _hooks_norms(model, loss, x)
        n_g, s_g = _ghost_norms(model, loss, x)
        assert float(((n_g - n_h).abs() / n_h).max()) < 1e-4, name
        for a, b in zip(s_h, s_g, strict=True):
            assert torch.allclose(a, b, rtol=1e-4, atol=1e-6), name


def test_ghost_clip_bounds_every_record() -> None:
    """One record at a time: the ghost sum has norm min(norm, C), whatever the gradient's size."""
    gen = torch.Generator().manual_seed(0)
    model = _mlp(gen, 5, 6, 3)
    params = list(model.parameters())
    for scale in (0.01, 1.0, 100.0):
        x = torch.randn((1, 5), generator=gen) * scale
        g = torch.autograd.grad((model(x) ** 2).sum(), params)
        true_norm = float(torch.sqrt(sum((gi**2).sum() for gi in g)))
        for clip in (0.1, 1.0, 10.0):
            rec = GhostRecords(torch.tensor([true_norm]), (model(x) ** 2).sum(1), params)
            got = float(torch.sqrt(sum((s**2).sum() for s in clip_and_sum(rec, clip))))
            assert got == pytest.approx(min(true_norm, clip * true_norm / (true_norm + 1e-6)), rel=1e-4)
    empty = GhostRecords(torch.zeros(0), torch.zeros(0), params)
    assert all(float(s.abs().sum()) == 0.0 for s in clip_and_sum(empty, 1.0))


@pytest.mark.parametrize("mode", ["ghost", "hooks"])
def test_loop_runs_the_accounted_sampler_noise_and_steps(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both modes: T steps, one Poisson draw of rate q and one noise draw of std zC per step."""
    schedule = dpsgd_schedule(97, 16, 3)
    draws: list[float] = []
    stds: list[float] = []
    real_batch, real_noise = dpsgd_loop.poisson_batch, dpsgd_loop.gaussian_noise

    def batch(rng, n_rows, q):  # type: ignore[no-untyped-def]
        assert n_rows == schedule.n_rows
        draws.append(q)
        return real_batch(rng, n_rows, q)

    def noise(rng, shape, std, device, dtype=None):  # type: ignore[no-untyped-def]
        stds.append(std)
        return real_noise(rng, shape, std, device, dtype)

    monkeypatch.setattr(dpsgd_loop, "poisson_batch", batch)
    monkeypatch.setattr(dpsgd_loop, "gaussian_noise", noise)
    gen = torch.Generator().manual_seed(0)
    model = _mlp(gen, 4, 5, 2)
    data = torch.randn((97, 4), generator=gen)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    steps = dpsgd_loop.run_dpsgd(
        model, opt, lambda xb: (model(xb) ** 2).sum(1), lambda idx: data[torch.as_tensor(idx)], schedule,
        noise_multiplier=1.3, clip=0.5, sampler_rng=secret_generator(1, "s"),
        noise_rng=secret_generator(1, "n"), grad_sample_mode=mode,
    )  # fmt: skip
    assert steps == schedule.steps == len(draws) == len(stds) == 3 * 7
    assert set(draws) == {schedule.sampling_probability} == {16 / 97}
    assert set(stds) == {1.3 * 0.5}
    assert not any(hasattr(p, "_norm_sample") or getattr(p, "grad_sample", None) is not None
                   for p in model.parameters())  # fmt: skip


def test_modes_train_the_same_model_up_to_rounding() -> None:
    """Same seeds: ghost and hooks give the same weights after 20 noisy steps, to float rounding."""
    weights = {}
    for mode in ("ghost", "hooks"):
        gen = torch.Generator().manual_seed(0)
        model = _mlp(gen, 4, 5, 2)
        data = torch.randn((60, 4), generator=gen) * 3
        opt = torch.optim.Adam(model.parameters(), lr=0.01)
        dpsgd_loop.run_dpsgd(
            model, opt, lambda xb, m=model: (m(xb) ** 2).sum(1), lambda idx, d=data: d[torch.as_tensor(idx)],
            dpsgd_schedule(60, 10, 2), noise_multiplier=0.8, clip=1.0, sampler_rng=secret_generator(2, "s"),
            noise_rng=secret_generator(2, "n"), grad_sample_mode=mode,
        )  # fmt: skip
        weights[mode] = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert torch.allclose(weights["ghost"], weights["hooks"], atol=1e-5)


def test_unknown_mode_refused() -> None:
    from tabpriv.errors import PrivacyParameterError

    model = torch.nn.Linear(2, 1)
    with pytest.raises(PrivacyParameterError, match="grad_sample_mode"):
        dpsgd_loop.run_dpsgd(
            model, torch.optim.SGD(model.parameters(), lr=0.1), lambda xb: model(xb).sum(1),
            lambda idx: torch.zeros((len(idx), 2)), dpsgd_schedule(10, 5, 1), noise_multiplier=1.0, clip=1.0,
            sampler_rng=secret_generator(0, "s"), noise_rng=secret_generator(0, "n"), grad_sample_mode="fast",
        )  # fmt: skip


@pytest.mark.parametrize("backend", ["dpsgd-vae", "lipschitz-vae"])
def test_audit_sensitivity_mutation_still_bites_in_ghost_mode(backend: str) -> None:
    """The audits' ``sensitivity-x2`` mutation (clip_and_sum at 2C) changes the ghost path's clip too."""
    from tabpriv.audit.targets import MUTATIONS

    gen = torch.Generator().manual_seed(0)
    model = _mlp(gen, 4, 5, 2)
    params = list(model.parameters())
    x = torch.randn((1, 4), generator=gen) * 100  # one record, gradient norm far above C

    def step_norm() -> float:
        gsm = GradSampleModuleFastGradientClipping(
            model, batch_first=True, loss_reduction="sum", max_grad_norm=1.0, use_ghost_clipping=True
        )
        try:
            rec = ghost_records(gsm, params, (model(x) ** 2).sum(1))
            dpsgd_loop.noisy_gradient_(
                params, secret_generator(0, "n"), noise_multiplier=0.0, clip=1.0, expected_batch=1, batch=1,
                records=rec,
            )  # fmt: skip
        finally:
            gsm._close()
        return float(torch.sqrt(sum((p.grad**2).sum() for p in params)))

    assert step_norm() == pytest.approx(1.0, rel=1e-4)
    with MUTATIONS[backend]["sensitivity-x2"].applied():
        assert step_norm() == pytest.approx(2.0, rel=1e-4)
    assert step_norm() == pytest.approx(1.0, rel=1e-4)
