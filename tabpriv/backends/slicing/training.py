"""Training a generator on a :class:`SlicingRelease` (pure post-processing; imports torch).

Estimators of the smoothed-sliced divergence between the released real projections ``Y = XU + V``
and the synthetic projections ``GU + V'`` (``V' ~ N(0, sigma^2)``, the same smoothing):

* ``"kmm"`` — the paper's estimator, faithfully: per slice a Gaussian-kernel Gram matrix of a real
  mini-batch, the cross Gram matrix with noisy synthetic projections, the kernel-mean-matching ratio
  ``r = [(K + tau I)^{-1} K_{rs} 1 * b_r / b_g]_+`` (batched Cholesky solves), median-heuristic
  bandwidth per slice with an ensemble of multipliers, loss ``mean f(r)``.
* ``"rff"`` — the same KMM ratio in a random-Fourier-feature space: the real side uses **all n**
  released rows (its feature covariance and Cholesky factor are computed once), the synthetic side uses
  the **analytic** smoothed embedding ``E_v cos(w.(p + v) + b) = exp(-sigma^2 |w|^2 / 2) cos(w.p + b)``
  (no sampled noise), and a random subset of slices and of real rows per step.
* ``"mmd"`` — the smoothed-sliced MMD with the same features: ``||mu_real - mu_syn||^2`` per slice,
  the real embedding precomputed once over all n rows.
* ``"swd"`` — SliceWass baseline (``k = 1``): squared 1-D Wasserstein distance between the sorted
  noisy synthetic projections and the quantiles of all n released projections.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from tabpriv.transformers.encoded import ColumnSpan

if TYPE_CHECKING:
    import torch

    from tabpriv.backends.slicing.mechanism import SlicingRelease

__all__ = ["TrainConfig", "build_generator", "sample_rows", "train_generator"]

ESTIMATORS = ("kmm", "rff", "mmd", "swd")
DIVERGENCES = ("kl", "js", "pearson")
#: Default ridge ``tau`` per estimator (kmm: measured, see docs/slicing.md).
DEFAULT_REG = {"kmm": 1.0, "rff": 1e-2}


@dataclass
class TrainConfig:
    """Hyper-parameters of the generator and its training (all post-processing).

    Attributes:
        estimator: ``"kmm"``, ``"rff"``, ``"mmd"`` or ``"swd"``.
        divergence: f of the f-divergence: ``"kl"``, ``"js"`` or ``"pearson"`` (kmm / rff).
        steps: Optimiser steps.
        batch_size: Synthetic rows per step.
        real_batch: Real (released) rows per step for the kmm Gram matrices / the rff ratio evaluation.
        slices_per_step: Slices used per step (0 = all): an unbiased estimate of the slice average.
        lr: Adam learning rate.
        latent_dim: Generator noise dimension.
        hidden: Width of the residual blocks.
        n_blocks: Number of residual blocks.
        head: ``"gumbel"`` (straight-through-free Gumbel-softmax) or ``"softmax"`` for categories.
        temperature: Gumbel-softmax temperature.
        n_features: Random Fourier features per slice (rff / mmd).
        bandwidths: Multipliers of the median-heuristic bandwidth (ensemble).
        reg: Ridge ``tau`` of the KMM solve (the backends pass :data:`DEFAULT_REG` per estimator).

    """

    estimator: str = "mmd"
    divergence: str = "kl"
    steps: int = 60
    batch_size: int = 512
    real_batch: int = 256
    slices_per_step: int = 0
    lr: float = 2e-3
    latent_dim: int = 64
    hidden: int = 256
    n_blocks: int = 2
    head: str = "gumbel"
    temperature: float = 0.5
    n_features: int = 96
    bandwidths: tuple[float, ...] = (0.5, 1.0, 2.0)
    reg: float = 1e-2

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        d = asdict(self)
        d["bandwidths"] = list(self.bandwidths)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`."""
        d = dict(d)
        d["bandwidths"] = tuple(float(b) for b in d.get("bandwidths", (0.5, 1.0, 2.0)))
        return cls(**d)


# -- generator --------------------------------------------------------------------------------------
def build_generator(spans: tuple[ColumnSpan, ...], cfg: TrainConfig) -> torch.nn.Module:
    """An MLP with residual blocks and a head per block (tanh / softmax or Gumbel / sigmoid)."""
    import torch
    from torch import nn

    width = spans[-1].stop if spans else 0
    blocks = [b for s in spans for b in s.blocks]

    class _Res(nn.Module):
        def __init__(self, h: int) -> None:
            super().__init__()
            self.net = nn.Sequential(nn.Linear(h, h), nn.LayerNorm(h), nn.SiLU(), nn.Linear(h, h))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.net(x)

    class _Generator(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inp = nn.Linear(cfg.latent_dim, cfg.hidden)
            self.body = nn.Sequential(*[_Res(cfg.hidden) for _ in range(cfg.n_blocks)])
            self.out = nn.Sequential(nn.SiLU(), nn.Linear(cfg.hidden, width))

        def forward(self, z: torch.Tensor, mode: str = "train") -> torch.Tensor:
            logits = self.out(self.body(self.inp(z)))
            parts = []
            for b in blocks:
                x = logits[:, b.start : b.stop]
                if b.activation == "tanh":
                    parts.append(torch.tanh(x))
                elif b.activation == "sigmoid":
                    parts.append(torch.sigmoid(x))
                elif mode == "train" and cfg.head == "gumbel":
                    parts.append(nn.functional.gumbel_softmax(x, tau=cfg.temperature, hard=False))
                else:
                    parts.append(torch.softmax(x, dim=1))
            return torch.cat(parts, dim=1)

    return _Generator()


# -- divergences ------------------------------------------------------------------------------------
def _f(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    import torch

    def xlogx(t: torch.Tensor) -> torch.Tensor:
        return t * torch.log(t.clamp_min(1e-12))

    if name == "kl":
        return xlogx
    if name == "js":
        return lambda t: 0.5 * (xlogx(t) - (1 + t) * torch.log((1 + t) / 2))
    if name == "pearson":
        return lambda t: (t - 1.0) ** 2
    raise ValueError(f"divergence must be one of {DIVERGENCES}; got {name!r}.")


def _median_bandwidth(y: np.ndarray, m: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """Median-heuristic bandwidth per slice from up to 512 released rows: ``(m,)``."""
    idx = rng.choice(y.shape[0], size=min(512, y.shape[0]), replace=False)
    s = y[idx].reshape(len(idx), m, k).transpose(1, 0, 2).astype(np.float64)
    d2 = ((s[:, :, None, :] - s[:, None, :, :]) ** 2).sum(-1)
    iu = np.triu_indices(len(idx), 1)
    return np.sqrt(0.5 * np.median(d2[:, iu[0], iu[1]], axis=1))


# -- training ---------------------------------------------------------------------------------------
def train_generator(
    release: SlicingRelease,
    cfg: TrainConfig,
    *,
    device: str = "cpu",
    seed: int = 0,
    progress: Callable[[int, int | None, str], None] | None = None,
) -> tuple[dict[str, np.ndarray], list[float]]:
    """Train a generator on a release. Spends no privacy (post-processing of the release only).

    Returns:
        The generator's weights as numpy arrays and the loss history (one value per step).

    """
    import torch

    if cfg.estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}; got {cfg.estimator!r}.")
    f = _f(cfg.divergence)
    rng = np.random.default_rng(seed % (2**63))
    torch.manual_seed(int(rng.integers(2**62)))
    gen_t = torch.Generator(device=device)
    gen_t.manual_seed(int(rng.integers(2**62)))
    dev = torch.device(device)

    k, m = release.k, release.n_slices
    n = release.noisy.shape[0]
    sigma = float(release.sigma)
    u = torch.as_tensor(release.projection, device=dev)  # (d, m')
    y_np = release.noisy
    y_all = torch.as_tensor(y_np, device=dev)  # (n, m')
    g = build_generator(release.spans, cfg).to(dev)
    opt = torch.optim.Adam(g.parameters(), lr=cfg.lr)
    mults = torch.as_tensor(cfg.bandwidths, dtype=torch.float32, device=dev)
    n_e = len(cfg.bandwidths)
    h = torch.as_tensor(_median_bandwidth(y_np, m, k, rng), dtype=torch.float32, device=dev)  # (m,)

    # -- precomputation for the feature estimators (real side, all n rows, once) --------------------
    if cfg.estimator in ("rff", "mmd"):
        nf = cfg.n_features
        # frequencies: slice s, feature j uses bandwidth h_s * mult[j % n_e]
        mult_j = mults.repeat(math.ceil(nf / n_e))[:nf]  # (D,)
        w = torch.randn(m, nf, k, generator=gen_t, device=dev) / (h[:, None, None] * mult_j[None, :, None])
        b = torch.rand(m, nf, generator=gen_t, device=dev) * (2 * math.pi)
        damp = torch.exp(-0.5 * sigma**2 * (w**2).sum(-1))  # (m, D) analytic smoothing
        scale = math.sqrt(2.0 / nf)

        def feats(proj: torch.Tensor, sl: torch.Tensor) -> torch.Tensor:
            # proj: (rows, |sl|, k) -> (|sl|, rows, D)
            z = torch.einsum("rsk,sdk->srd", proj, w[sl]) + b[sl][:, None, :]
            return scale * torch.cos(z)

        all_sl = torch.arange(m, device=dev)
        mu_real = torch.zeros(m, nf, device=dev)
        cov = torch.zeros(m, nf, nf, device=dev) if cfg.estimator == "rff" else None
        with torch.no_grad():
            for s0 in range(0, n, 4096):
                ph = feats(y_all[s0 : s0 + 4096].reshape(-1, m, k), all_sl)
                mu_real += ph.sum(1) / n
                if cov is not None:
                    cov += torch.einsum("srd,sre->sde", ph, ph) / n
            chol = None
            if cov is not None:
                eye = torch.eye(nf, device=dev)
                chol = torch.linalg.cholesky(cov + cfg.reg * eye)
    if cfg.estimator == "swd":
        with torch.no_grad():
            levels = (torch.arange(cfg.batch_size, device=dev, dtype=torch.float32) + 0.5) / cfg.batch_size
            q_real = torch.quantile(y_all[: min(n, 2**24 // max(1, m * k))].T, levels, dim=1).T  # (m', b)

    history: list[float] = []
    n_sel = m if cfg.slices_per_step <= 0 else min(m, cfg.slices_per_step)
    for step in range(cfg.steps):
        sl = (
            torch.randperm(m, generator=gen_t, device=dev)[:n_sel]
            if n_sel < m
            else torch.arange(m, device=dev)
        )
        zlat = torch.randn(cfg.batch_size, cfg.latent_dim, generator=gen_t, device=dev)
        x_syn = g(zlat)
        cols = (sl[:, None] * k + torch.arange(k, device=dev)[None, :]).reshape(-1)
        p = (x_syn @ u[:, cols]).reshape(cfg.batch_size, n_sel, k)  # (b, S, k)
        if cfg.estimator == "kmm":
            idx = torch.randint(0, n, (cfg.real_batch,), generator=gen_t, device=dev)
            r = y_all[idx][:, cols].reshape(cfg.real_batch, n_sel, k).transpose(0, 1)  # (S, br, k)
            ps = (p + sigma * torch.randn(p.shape, generator=gen_t, device=dev)).transpose(0, 1)
            d_rr = torch.cdist(r, r) ** 2  # (S, br, br)
            d_rs = torch.cdist(r, ps) ** 2  # (S, br, b)
            h2 = (h[sl][:, None] * mults[None, :]) ** 2  # (S, E)
            kr = torch.exp(-d_rr[:, None] / (2 * h2[:, :, None, None]))  # (S, E, br, br)
            ks = torch.exp(-d_rs[:, None] / (2 * h2[:, :, None, None])).mean(-1, keepdim=True)
            eye = torch.eye(cfg.real_batch, device=dev)
            lch = torch.linalg.cholesky(kr + cfg.reg * cfg.real_batch * eye)
            ratio = torch.cholesky_solve(ks * cfg.real_batch, lch).squeeze(-1).clamp_min(0.0)
            loss = f(ratio).mean()
        elif cfg.estimator == "mmd":
            mu_syn = feats(p, sl).mean(1) * damp[sl]  # (S, D)
            loss = ((mu_syn - mu_real[sl]) ** 2).sum(-1).mean()
        elif cfg.estimator == "rff":
            assert chol is not None
            mu_syn = feats(p, sl).mean(1) * damp[sl]  # (S, D)
            theta = torch.cholesky_solve(mu_syn[:, :, None], chol[sl]).squeeze(-1)  # (S, D)
            idx = torch.randint(0, n, (cfg.real_batch,), generator=gen_t, device=dev)
            ph = feats(y_all[idx][:, cols].reshape(cfg.real_batch, n_sel, k), sl)  # (S, br, D)
            ratio = torch.einsum("srd,sd->sr", ph, theta).clamp_min(0.0)
            loss = f(ratio).mean()
        else:  # swd
            ps = (p + sigma * torch.randn(p.shape, generator=gen_t, device=dev)).reshape(cfg.batch_size, -1)
            srt = torch.sort(ps, dim=0).values.T  # (S*k, b)
            loss = ((srt - q_real[cols]) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        history.append(float(loss.detach()))
        if progress is not None and (step % 50 == 0 or step == cfg.steps - 1):
            progress(step + 1, cfg.steps, f"slicing {cfg.estimator} loss {history[-1]:.4g}")
    state = {name: t.detach().cpu().numpy().copy() for name, t in g.state_dict().items()}
    return state, history


def sample_rows(
    spans: tuple[ColumnSpan, ...],
    cfg: TrainConfig,
    weights: dict[str, np.ndarray],
    n: int,
    seed: int,
    device: str = "cpu",
) -> np.ndarray:
    """Sample ``n`` encoded rows: one-hot categories and 0/1 indicators drawn from the heads."""
    import torch

    g = build_generator(spans, cfg)
    g.load_state_dict({k: torch.as_tensor(v) for k, v in weights.items()})
    g.to(device).eval()
    tg = torch.Generator(device=device)
    tg.manual_seed(seed % (2**63 - 1))
    out = np.empty((n, spans[-1].stop if spans else 0), dtype=np.float32)
    rng = np.random.default_rng(seed % (2**63))
    with torch.no_grad():
        for s0 in range(0, n, 65536):
            nb = min(n, s0 + 65536) - s0
            z = torch.randn(nb, cfg.latent_dim, generator=tg, device=device)
            x = g(z, mode="sample").cpu().numpy().astype(np.float64)
            for span in spans:
                for b in span.blocks:
                    blk = x[:, b.start : b.stop]
                    if b.activation == "softmax":
                        cum = np.cumsum(blk / blk.sum(1, keepdims=True), axis=1)
                        pick = (rng.random((nb, 1)) > cum).sum(1).clip(0, b.width - 1)
                        oh = np.zeros_like(blk)
                        oh[np.arange(nb), pick] = 1.0
                        x[:, b.start : b.stop] = oh
                    elif b.activation == "sigmoid":
                        x[:, b.start : b.stop] = (rng.random(blk.shape) < blk).astype(np.float64)
            out[s0 : s0 + nb] = x
    return out
