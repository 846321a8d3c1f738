"""dp2-vae's faster training (issue 18) computes what the vectorised version computed, bit for bit.

Each piece against the code it replaced: the stacked initialisation against ``init_linear_`` on K
modules, the batched MLP against ``vmap(functional_call(...))``, the target-based loss against
``recon_loss`` (values and gradients), the optimiser against ``torch.optim.Adam(foreach=True)``,
and the grouped stage 1 against one group of all K pairs (the same released decoder). The whole fit
on Adult gives the same sampled table as before these changes (``benchmarks/results/seed_speed.md``).
"""

from __future__ import annotations

import numpy as np
import pytest

from tabpriv.backends.base import FitContext, spend_and_fit
from tabpriv.backends.vae.dp2 import DP2VAEBackend
from tabpriv.budget import PrivacyBudget, PrivacyLedger
from tabpriv.transformers import EncodedTable, TableTransformer

from ..conftest import make_small_df, make_small_schema

torch = pytest.importorskip("torch")

QUICK = dict(DP2VAEBackend.quick_params)


def _encoded(n: int = 300) -> EncodedTable:
    return TableTransformer(make_small_schema()).fit().transform(make_small_df(n))


def test_foreach_adam_equals_torch_adam_bit_for_bit() -> None:
    from tabpriv.backends.vae.dp2_torch import ForeachAdam

    g = torch.Generator().manual_seed(0)
    shapes = [(20, 37, 11), (20, 37), (13,), (5, 300)]
    start = [torch.randn(s, generator=g) for s in shapes]
    mine = [p.clone().requires_grad_(True) for p in start]
    ref = [p.clone().requires_grad_(True) for p in start]
    opt_mine, opt_ref = ForeachAdam(mine, 3e-3), torch.optim.Adam(ref, lr=3e-3, foreach=True)
    for t in range(25):  # gradients over 6 orders of magnitude (Adam's eps matters at the small end)
        grads = [torch.randn(s, generator=g) * 10.0 ** (t % 6 - 4) for s in shapes]
        for p, q, gr in zip(mine, ref, grads, strict=True):
            p.grad, q.grad = gr.clone(), gr.clone()
        opt_mine.step()
        opt_ref.step()
    for p, q in zip(mine, ref, strict=True):
        assert torch.equal(p, q)
    assert not torch.equal(mine[0], start[0])


def test_stacked_init_equals_init_linear_on_k_modules() -> None:
    from tabpriv.backends.vae.common import MLP, init_linear_
    from tabpriv.backends.vae.dp2_torch import _stacked_init

    sizes, k = [7, 5, 5, 11], 4
    g_ref, g_new = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    mods = [MLP(sizes) for _ in range(k)]
    for m in mods:
        init_linear_(m, g_ref)
    stacked = _stacked_init(k, sizes, g_new)
    for j, m in enumerate(mods):
        linears = [x for x in m.modules() if isinstance(x, torch.nn.Linear)]
        for lin, (w, b) in zip(linears, stacked, strict=True):
            assert torch.equal(lin.weight, w[j]) and torch.equal(lin.bias, b[j])
    assert torch.equal(torch.rand(5, generator=g_ref), torch.rand(5, generator=g_new))  # same position


def test_batched_mlp_equals_vmap_values_and_gradients() -> None:
    from torch.func import functional_call, stack_module_state, vmap

    from tabpriv.backends.vae.common import MLP
    from tabpriv.backends.vae.dp2_torch import _batched_mlp

    sizes, k = [8, 32, 32, 41], 6
    stacked, _ = stack_module_state([MLP(sizes) for _ in range(k)])
    ref_p = {n: p.detach().clone().requires_grad_(True) for n, p in stacked.items()}
    mine_p = [p.detach().clone().requires_grad_(True) for p in stacked.values()]
    base = MLP(sizes).to("meta")
    x = torch.randn(k, 32, 8, generator=torch.Generator().manual_seed(1))
    w = torch.randn(k, 32, 41, generator=torch.Generator().manual_seed(2))
    ref = vmap(lambda p, xx: functional_call(base, (p,), (xx,)))(ref_p, x)
    mine = _batched_mlp(list(zip(mine_p[0::2], mine_p[1::2], strict=True)), x)
    assert torch.equal(ref, mine)
    g_ref = torch.autograd.grad((ref * w).sum(), list(ref_p.values()))
    g_mine = torch.autograd.grad((mine * w).sum(), mine_p)
    for a, b in zip(g_ref, g_mine, strict=True):
        assert torch.equal(a, b)


def _no_missing_table(n: int = 200) -> EncodedTable:
    """Categories and binned numbers only: the layout of the one-node loss (``_BlockCrossEntropy``)."""
    from tabpriv.schema import Column, Schema

    schema = Schema(
        (
            Column("color", "categorical", categories=("red", "green", "blue")),
            Column("age", "integer", lower=0, upper=99),
            Column("wide", "integer", lower=0, upper=10_000),
            Column("score", "continuous", lower=-5.0, upper=5.0),
        )
    )
    df = make_small_df(n)[["color", "age"]].assign(
        wide=np.arange(n) * 37 % 10_001, score=np.linspace(-5.0, 5.0, n)
    )
    return TableTransformer(schema).fit().transform(df)


@pytest.mark.parametrize(
    ("numeric_bins", "with_missing"),
    [(20, True), (0, True), (20, False)],
    ids=["bins", "regression", "fused"],
)
def test_loss_from_targets_equals_recon_loss_values_and_gradients(
    numeric_bins: int, with_missing: bool
) -> None:
    from tabpriv.backends.vae.common import SpanLayout, recon_loss
    from tabpriv.backends.vae.dp2_torch import loss_targets, recon_loss_from_targets

    table = _encoded(200) if with_missing else _no_missing_table(200)
    layout = SpanLayout.from_spans(table.spans, None, numeric_bins)
    x = torch.as_tensor(table.take(np.arange(200)), dtype=torch.float32).reshape(5, 40, -1)
    logits = torch.randn(5, 40, layout.out_width, generator=torch.Generator().manual_seed(4)) * 3
    tg = loss_targets(x, layout)
    assert tg is not None and tg.shape == (5, 40, len(layout.softmax) + len(layout.numeric))
    a, b = logits.clone().requires_grad_(True), logits.clone().requires_grad_(True)
    ref = recon_loss(a, x, layout)
    mine = recon_loss_from_targets(b, x, layout, tg)
    fused = type(mine.grad_fn).__name__.startswith("_BlockCrossEntropy")
    assert fused == (not with_missing)  # the one-node loss where the layout allows it
    assert torch.equal(ref, mine)
    (ga,) = torch.autograd.grad(ref.mean(dim=1).sum(), [a])
    (gb,) = torch.autograd.grad(mine.mean(dim=1).sum(), [b])
    assert torch.equal(ga, gb)
    bad = x.clone()
    a0, w0 = layout.softmax[0]
    bad[0, 0, a0 : a0 + w0] = 0.5  # not one-hot: the rows themselves are needed
    assert loss_targets(bad, layout) is None


def _fit(seed: int = 0) -> DP2VAEBackend:
    b = DP2VAEBackend(**{**QUICK, "n_subsets": 12, "steps": 30, "pretrain_steps": 6})  # type: ignore[arg-type]
    spend_and_fit(
        b, _encoded(), PrivacyLedger(PrivacyBudget(4.0, 1e-5)), FitContext("cpu", seed, True, secret_key=7)
    )
    return b


def test_stage1_in_groups_gives_the_release_of_one_vectorised_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    from tabpriv.backends.vae import dp2_torch

    monkeypatch.setattr(dp2_torch, "_STAGE1_GROUP_FLOATS", 1 << 40)  # all 12 pairs in one group
    whole = _fit()
    monkeypatch.setattr(dp2_torch, "_STAGE1_GROUP_FLOATS", 1)  # one pair per group
    one_by_one = _fit()
    monkeypatch.setattr(dp2_torch, "_STAGE1_GROUP_FLOATS", 5 * 16 * 64)  # uneven groups
    uneven = _fit()
    for name, ref in whole.decoder_state_.items():
        np.testing.assert_array_equal(ref, one_by_one.decoder_state_[name])
        np.testing.assert_array_equal(ref, uneven.decoder_state_[name])
    assert whole.losses_ == one_by_one.losses_ == uneven.losses_
    other = _fit(seed=1)  # and the release does depend on the run (the comparison is not vacuous)
    assert not np.array_equal(other.decoder_state_["net.4.weight"], whole.decoder_state_["net.4.weight"])
