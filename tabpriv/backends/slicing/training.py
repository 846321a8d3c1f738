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

__all__ = [
    "TrainConfig",
    "build_generator",
    "release_tensors",
    "sample_rows",
    "sample_rows_torch",
    "train_generator",
]

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


#: Bytes of one slice chunk's ``(slices, rows, features)`` temporary: small on the CPU, so that the
#: allocator reuses its heap instead of mapping (and page-faulting) fresh memory for every chunk.
_CHUNK_BYTES = {"cpu": 4 << 20, "cuda": 256 << 20}


#: A chunk holds a multiple of this many elements: torch's CPU kernels compute a transcendental
#: function (cos, sin) with vector code on blocks of 2 x (up to 16) floats and with scalar code on the
#: remainder, which may differ in the last bit; aligned chunks keep every element on the same code path
#: as in the unchunked tensor (so the values are bit for bit those of the plain expression).
_ALIGN = 64


def _slices_per_chunk(rows: int, per_slice: int, device: Any, itemsize: int = 4) -> int:
    """Slices per chunk so that a ``(slices, rows, per_slice)`` temporary stays near the budget.

    The count is a multiple of ``_ALIGN / gcd(_ALIGN, per_slice)`` (see :data:`_ALIGN`, :func:`_aligned`).
    """
    budget = _CHUNK_BYTES["cpu" if str(device) == "cpu" else "cuda"]
    q = _ALIGN // math.gcd(_ALIGN, max(1, per_slice))
    step = max(1, budget // max(1, rows * per_slice * itemsize))
    return max(q, step - step % q)


def _pairwise_sum(terms: list[torch.Tensor]) -> torch.Tensor:
    """``sum(terms)`` in the order of numpy's pairwise summation (``n <= 128``: its unrolled loop)."""
    n = len(terms)
    if n < 8:
        res = terms[0]
        for t in terms[1:]:
            res = res + t
        return res
    if n <= 128:
        r = list(terms[:8])
        for i in range(8, n - n % 8, 8):
            for j in range(8):
                r[j] = r[j] + terms[i + j]
        res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
        for t in terms[n - n % 8 :]:
            res = res + t
        return res
    n2 = n // 2
    n2 -= n2 % 8
    return _pairwise_sum(terms[:n2]) + _pairwise_sum(terms[n2:])


def _median_bandwidth(y: torch.Tensor, m: int, k: int, rng: np.random.Generator) -> torch.Tensor:
    """Median-heuristic bandwidth per slice from up to 512 released rows: ``(m,)`` float32.

    ``sqrt(median_{i<j} ||s_i - s_j||^2 / 2)`` over the pairs of the chosen rows, per slice, in float64
    on the device of ``y``, slice chunk by slice chunk (no ``(m, 512, 512, k)`` temporary). The same
    value, bit for bit, as the numpy computation it replaced (a test keeps the old one): the squared
    distances are summed in numpy's order (first coordinate, then numpy's pairwise sum of the others)
    and the median of an even count is the mean of the two middle values.
    """
    import torch

    idx = rng.choice(y.shape[0], size=min(512, y.shape[0]), replace=False)
    r = len(idx)
    sel = torch.as_tensor(idx, device=y.device)
    s = y.index_select(0, sel).reshape(r, m, k).transpose(0, 1).to(torch.float64)  # (m, r, k)
    iu = torch.triu_indices(r, r, 1, device=y.device)
    n_pairs = iu.shape[1]
    out = torch.empty(m, dtype=torch.float64, device=y.device)
    if n_pairs == 0:
        out.zero_()
        return out.to(torch.float32)
    step = _slices_per_chunk(n_pairs, 2, y.device, itemsize=8)
    lo_rank = (n_pairs - 1) // 2  # 0-based ranks of the middle value(s)
    for s0 in range(0, m, step):
        blk = s[s0 : s0 + step]
        a, b = blk[:, iu[0]], blk[:, iu[1]]  # (c, P, k)
        sq = [(a[:, :, j] - b[:, :, j]) ** 2 for j in range(k)]
        d2 = sq[0] + _pairwise_sum(sq[1:]) if k > 1 else sq[0] + 0.0
        lo = torch.kthvalue(d2, lo_rank + 1, dim=1).values
        if n_pairs % 2:
            med = lo
        else:
            # The next order statistic: lo itself if it is repeated, else the least value above it.
            above = torch.where(d2 > lo[:, None], d2, torch.full_like(d2, math.inf)).min(dim=1).values
            ties = (d2 <= lo[:, None]).sum(dim=1) > lo_rank + 1
            med = (lo + torch.where(ties, lo, above)) / 2
        out[s0 : s0 + step] = med
    return torch.sqrt(0.5 * out).to(torch.float32)


class _FeatureBuffer:
    """Reused storage for ``(S, rows, D)`` random-feature tensors, laid out as ``einsum`` lays them out.

    The plain expression ``scale * cos(einsum("rsk,sdk->srd", p, w) + b)`` allocates several such
    tensors per call (403 MB each for Adult's real side, 50 MB per training step), and the allocator
    maps and page-faults fresh memory for each. Here one buffer is allocated once and every call writes
    into a view of it with the shape **and the strides** of ``einsum``'s result (read from a ``meta``
    computation), so that the element-wise functions and the reductions run on tensors of the same
    layout as in the plain expression and give the same values bit for bit.
    """

    def __init__(self, numel: int, device: Any) -> None:
        import torch

        self.flat = torch.empty(numel, device=device)
        self._strides: dict[tuple[int, int, int, int], tuple[int, ...]] = {}

    def strides(self, rows: int, n_s: int, n_f: int, k: int) -> tuple[int, ...]:
        """The strides of ``einsum("rsk,sdk->srd")``'s ``(n_s, rows, n_f)`` result."""
        import torch

        key = (rows, n_s, n_f, k)
        if key not in self._strides:
            left = torch.empty(rows, n_s, k, device="meta")
            meta = torch.einsum("rsk,sdk->srd", left, torch.empty(n_s, n_f, k, device="meta"))
            self._strides[key] = tuple(meta.stride())
        return self._strides[key]

    def view(self, rows: int, n_s: int, n_f: int, k: int) -> torch.Tensor:
        """An ``(n_s, rows, n_f)`` view with ``einsum("rsk,sdk->srd")``'s strides."""
        if n_s * rows * n_f > self.flat.numel():
            raise ValueError("feature buffer too small")  # an internal error: sizes come from the config
        return self.flat.as_strided((n_s, rows, n_f), self.strides(rows, n_s, n_f, k))

    def order(self, rows: int, n_s: int, n_f: int, k: int) -> tuple[int, ...]:
        """The dimensions of the einsum result's layout, outermost first."""
        st = self.strides(rows, n_s, n_f, k)
        return tuple(sorted(range(3), key=lambda i: -st[i]))

    def like(self, shape: tuple[int, ...], order: tuple[int, ...]) -> torch.Tensor:
        """A dense tensor of ``shape`` at the start of the buffer, its dimensions laid out in ``order``."""
        dense = self.flat[: math.prod(shape)].view(*(shape[i] for i in order))
        return dense.permute(*sorted(range(3), key=lambda i: order.index(i)))


def _aligned(n_s: int, n_f: int, step: int) -> bool:
    """Whether every slice chunk of ``step`` slices (the last one too) holds whole vector blocks.

    Then each element of a chunk's ``cos`` / ``sin`` takes the same (vector) code path as in the
    unchunked tensor (see :data:`_ALIGN`), and the chunks may be computed in the cache, one at a time.
    """
    return all((size * n_f) % _ALIGN == 0 for size in {min(step, n_s), n_s % step or step})


def _features_into(
    cout: torch.Tensor,
    proj: torch.Tensor,
    w: torch.Tensor,
    b: torch.Tensor,
    scale: float,
    step: int,
    zout: torch.Tensor | None = None,
) -> torch.Tensor:
    """``cout <- scale * cos(z)``, ``z = einsum("rsk,sdk->srd", proj, w) + b`` (also into ``zout``).

    The projections are computed ``step`` slices at a time (the same values as the unchunked einsum);
    where the chunks are :func:`_aligned` the cosine is too, in the cache, else it runs once over the
    whole of ``cout`` (as in the plain expression). ``cout``/``zout``: :class:`_FeatureBuffer` views;
    ``zout`` holds the phases as contiguous slice chunks (:func:`_chunk_views`) where aligned, else in
    ``einsum``'s layout.
    """
    import torch

    n_s = w.shape[0]
    aligned = _aligned(n_s, w.shape[1], step)
    zch = _chunk_views(zout, n_s, step) if zout is not None and aligned else None
    for i, s0 in enumerate(range(0, n_s, step)):
        c = slice(s0, s0 + step)
        t = torch.einsum("rsk,sdk->srd", proj[:, c], w[c])
        t += b[c, None, :]
        if zch is not None:
            zch[i].copy_(t)
        elif zout is not None:
            zout[c] = t
        if aligned:
            t.cos_()
            t *= scale
        cout[c] = t
    if not aligned:
        cout.cos_()
        cout *= scale
    return cout


def _chunk_views(buf: torch.Tensor, n_s: int, step: int) -> list[torch.Tensor]:
    """Contiguous ``(size, rows, D)`` chunks of the flat storage of ``buf`` (a ``(S, rows, D)`` view)."""
    rows, n_f = buf.shape[1], buf.shape[2]
    flat = buf.as_strided((buf.numel(),), (1,))
    out, off = [], 0
    for s0 in range(0, n_s, step):
        size = min(step, n_s - s0)
        out.append(flat[off : off + size * rows * n_f].view(size, rows, n_f))
        off += size * rows * n_f
    return out


_MEAN_COS: Any = None


def _mean_cos_features() -> Any:
    """The autograd function of the synthetic side's mean random-Fourier embedding (built once).

    ``apply(p, w, b, scale, step, zbuf, cbuf)`` with ``p (rows, S, k)``, ``w (S, D, k)``, ``b (S, D)``
    returns ``mean_rows scale * cos(einsum("rsk,sdk->srd", p, w) + b)``: ``(S, D)``. The phases (what
    the backward needs) live in ``zbuf`` and the features in ``cbuf`` (:class:`_FeatureBuffer`,
    allocated once per training and reused by every step); the projections, and where
    :func:`_aligned` the cosine and the sine, are computed ``step`` slices at a time. Forward and
    backward give exactly the values of the plain autograd graph of that expression (the same kernels,
    the reduction on a tensor of the same layout; a test checks it).
    """
    global _MEAN_COS
    if _MEAN_COS is not None:
        return _MEAN_COS
    import torch

    class MeanCosFeatures(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, p: Any, w: Any, b: Any, scale: float, step: int, zbuf: Any, cbuf: Any) -> Any:
            shape = (p.shape[0], w.shape[0], w.shape[1], p.shape[2])
            z = zbuf.view(*shape)
            c = _features_into(cbuf.view(*shape), p, w, b, scale, step, zout=z)
            ctx.save_for_backward(p, w)
            ctx.z, ctx.c, ctx.scale, ctx.step = z, c, scale, step
            return c.mean(1)

        @staticmethod
        def backward(ctx: Any, grad: Any) -> Any:
            p, w = ctx.saved_tensors
            rows, n_s, step = p.shape[0], w.shape[0], ctx.step
            # The plain graph's backward: mean -> grad / rows; scale * . -> * scale; cos -> * -sin(z);
            # then the einsum's own backward. The first two act on values equal along the rows: they
            # are computed once per (slice, feature), with the sign (exact); the products are the same.
            g_small = -((grad / rows) * ctx.scale)
            aligned = _aligned(n_s, w.shape[1], step)
            if aligned:
                zch = _chunk_views(ctx.z, n_s, step)
            else:  # the sine over the whole tensor, in einsum's layout, as in the plain graph
                sines = torch.sin(ctx.z, out=ctx.c)
            gp = torch.empty_like(p)
            for i, s0 in enumerate(range(0, n_s, step)):
                c = slice(s0, s0 + step)
                t = torch.sin(zch[i]) if aligned else sines[c]
                t *= g_small[c, None, :]
                if p.shape[2] > 1:  # einsum's backward for p is this bmm (bit for bit; a test checks)
                    gp[:, c] = torch.bmm(t, w[c]).permute(1, 0, 2)
                    continue
                with torch.enable_grad():  # k = 1: einsum multiplies instead; use its own backward
                    pc = p[:, c].detach().requires_grad_()
                    z0 = torch.einsum("rsk,sdk->srd", pc, w[c])
                (gp[:, c],) = torch.autograd.grad(z0, pc, t)
            ctx.z = ctx.c = None
            return gp, None, None, None, None, None, None

    _MEAN_COS = MeanCosFeatures
    return _MEAN_COS


# -- training ---------------------------------------------------------------------------------------
def release_tensors(release: SlicingRelease, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(U, XU + V)`` of ``release`` as float32 tensors on ``device``, moved there once per release.

    A release computed on that device (:func:`~tabpriv.backends.slicing.mechanism.privatise` with
    ``device``) is already there (:attr:`SlicingRelease.device_tensors`) and is not copied again; on
    the CPU the tensors share the release's memory.
    """
    import torch

    dev = torch.device(device)
    cached = release.device_tensors.get(str(dev))
    if cached is not None:
        return cached
    return torch.as_tensor(release.projection, device=dev), torch.as_tensor(release.noisy, device=dev)


def train_generator(
    release: SlicingRelease,
    cfg: TrainConfig,
    *,
    device: str = "cpu",
    seed: int = 0,
    progress: Callable[[int, int | None, str], None] | None = None,
) -> tuple[dict[str, np.ndarray], list[float]]:
    """Train a generator on a release. Spends no privacy (post-processing of the release only).

    Everything runs on ``device``: the release is moved there once, the bandwidths, the real-side
    statistics and every step are computed there, and the losses are read back to the host only
    every 50 steps (for ``progress``) and at the end.

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
    u, y_all = release_tensors(release, device)  # (d, m'), (n, m')
    g = build_generator(release.spans, cfg).to(dev)
    opt = torch.optim.Adam(g.parameters(), lr=cfg.lr)
    mults = torch.as_tensor(cfg.bandwidths, dtype=torch.float32, device=dev)
    n_e = len(cfg.bandwidths)
    # The median-heuristic bandwidths (the Wasserstein loss has no kernel: nothing to compute).
    h = _median_bandwidth(y_all, m, k, rng) if cfg.estimator != "swd" else None  # (m,)

    # -- precomputation for the feature estimators (real side, all n rows, once) --------------------
    if cfg.estimator in ("rff", "mmd"):
        assert h is not None
        nf = cfg.n_features
        # frequencies: slice s, feature j uses bandwidth h_s * mult[j % n_e]
        mult_j = mults.repeat(math.ceil(nf / n_e))[:nf]  # (D,)
        w = torch.randn(m, nf, k, generator=gen_t, device=dev) / (h[:, None, None] * mult_j[None, :, None])
        b = torch.rand(m, nf, generator=gen_t, device=dev) * (2 * math.pi)
        damp = torch.exp(-0.5 * sigma**2 * (w**2).sum(-1))  # (m, D) analytic smoothing
        scale = math.sqrt(2.0 / nf)
        mean_cos = _mean_cos_features()

        mu_real = torch.zeros(m, nf, device=dev)
        cov = torch.zeros(m, nf, nf, device=dev) if cfg.estimator == "rff" else None
        with torch.no_grad():
            # Rows in blocks of 4096 (the accumulation order of the sums). Aligned slice chunks are
            # computed and summed one at a time, in the cache: a chunk laid out (rows, slices, D) as
            # einsum lays out the whole, with a multiple of _ALIGN lanes, sums to the same values
            # (a test checks it); otherwise one buffer for the whole block, reused by every block.
            step_r = _slices_per_chunk(min(n, 4096), nf, dev)
            if _aligned(m, nf, step_r):
                ch_buf = _FeatureBuffer(step_r * min(n, 4096) * nf, dev)
                for r0 in range(0, n, 4096):
                    yb = y_all[r0 : r0 + 4096].reshape(-1, m, k)
                    order = ch_buf.order(yb.shape[0], m, nf, k)
                    for s0 in range(0, m, step_r):
                        c = slice(s0, s0 + step_r)
                        t = torch.einsum("rsk,sdk->srd", yb[:, c], w[c])
                        t += b[c, None, :]
                        t.cos_()
                        t *= scale
                        ph = ch_buf.like(t.shape, order)
                        ph.copy_(t)
                        mu_real[c] += ph.sum(1) / n
                        if cov is not None:
                            cov[c] += torch.einsum("srd,sre->sde", ph, ph) / n
                del ch_buf
            else:
                ph_buf = _FeatureBuffer(m * min(n, 4096) * nf, dev)
                for r0 in range(0, n, 4096):
                    yb = y_all[r0 : r0 + 4096].reshape(-1, m, k)
                    ph = _features_into(ph_buf.view(yb.shape[0], m, nf, k), yb, w, b, scale, step_r)
                    mu_real += ph.sum(1) / n
                    if cov is not None:
                        cov += torch.einsum("srd,sre->sde", ph, ph) / n
                del ph_buf, ph
            chol = None
            if cov is not None:
                eye = torch.eye(nf, device=dev)
                chol = torch.linalg.cholesky(cov + cfg.reg * eye)
    if cfg.estimator == "swd":
        with torch.no_grad():
            levels = (torch.arange(cfg.batch_size, device=dev, dtype=torch.float32) + 0.5) / cfg.batch_size
            q_real = torch.quantile(y_all[: min(n, 2**24 // max(1, m * k))].T, levels, dim=1).T  # (m', b)

    losses: list[torch.Tensor] = []
    history: list[float] = []
    n_sel = m if cfg.slices_per_step <= 0 else min(m, cfg.slices_per_step)
    all_sl = torch.arange(m, device=dev)
    k_off = torch.arange(k, device=dev)[None, :]
    if cfg.estimator in ("rff", "mmd"):
        step_s = _slices_per_chunk(max(cfg.batch_size, cfg.real_batch), cfg.n_features, dev)
        zbuf = _FeatureBuffer(n_sel * cfg.batch_size * cfg.n_features, dev)  # phases, every step
        cbuf = _FeatureBuffer(n_sel * cfg.batch_size * cfg.n_features, dev)  # features, every step
        if cfg.estimator == "rff":
            rbuf = _FeatureBuffer(n_sel * cfg.real_batch * cfg.n_features, dev)
    for step in range(cfg.steps):
        sl = torch.randperm(m, generator=gen_t, device=dev)[:n_sel] if n_sel < m else all_sl
        zlat = torch.randn(cfg.batch_size, cfg.latent_dim, generator=gen_t, device=dev)
        x_syn = g(zlat)
        cols = (sl[:, None] * k + k_off).reshape(-1)
        p = (x_syn @ u[:, cols]).reshape(cfg.batch_size, n_sel, k)  # (b, S, k)
        if cfg.estimator == "kmm":
            assert h is not None
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
            mu_syn = mean_cos.apply(p, w[sl], b[sl], scale, step_s, zbuf, cbuf) * damp[sl]  # (S, D)
            loss = ((mu_syn - mu_real[sl]) ** 2).sum(-1).mean()
        elif cfg.estimator == "rff":
            assert chol is not None
            mu_syn = mean_cos.apply(p, w[sl], b[sl], scale, step_s, zbuf, cbuf) * damp[sl]  # (S, D)
            theta = torch.cholesky_solve(mu_syn[:, :, None], chol[sl]).squeeze(-1)  # (S, D)
            idx = torch.randint(0, n, (cfg.real_batch,), generator=gen_t, device=dev)
            with torch.no_grad():
                yr = y_all[idx][:, cols].reshape(cfg.real_batch, n_sel, k)
                ph_real = rbuf.view(cfg.real_batch, n_sel, cfg.n_features, k)
                _features_into(ph_real, yr, w[sl], b[sl], scale, step_s)
            ratio = torch.einsum("srd,sd->sr", ph_real, theta).clamp_min(0.0)
            loss = f(ratio).mean()
        else:  # swd
            ps = (p + sigma * torch.randn(p.shape, generator=gen_t, device=dev)).reshape(cfg.batch_size, -1)
            srt = torch.sort(ps, dim=0).values.T  # (S*k, b)
            loss = ((srt - q_real[cols]) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.detach())
        if progress is not None and (step % 50 == 0 or step == cfg.steps - 1):
            history.extend(float(x) for x in torch.stack(losses[len(history) :]).cpu().tolist())
            progress(step + 1, cfg.steps, f"slicing {cfg.estimator} loss {history[-1]:.4g}")
    if len(history) < len(losses):
        history.extend(float(x) for x in torch.stack(losses[len(history) :]).cpu().tolist())
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
    """Sample ``n`` encoded rows: one-hot categories and 0/1 indicators drawn from the heads.

    On the CPU the heads' draws are numpy's (float64, the same rows as before for the same seed); on
    any other device everything runs there (:func:`sample_rows_torch`) and only the rows come back.
    """
    import torch

    if str(device) != "cpu":
        return sample_rows_torch(spans, cfg, weights, n, seed, device)
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


def sample_rows_torch(
    spans: tuple[ColumnSpan, ...],
    cfg: TrainConfig,
    weights: dict[str, np.ndarray],
    n: int,
    seed: int,
    device: str = "cpu",
) -> np.ndarray:
    """:func:`sample_rows` wholly on ``device`` (float32), one copy to the host per 65,536 rows.

    The generator, the category and indicator draws (a torch generator on the device: public
    randomness) and the one-hot rows are all computed on ``device``.

    The latent draws are those of :func:`sample_rows` (same generator and seed); the heads' uniforms
    come from a second device generator, so the rows differ from the CPU path's for the same seed.
    """
    import torch

    from tabpriv._random import derive_seed

    dev = torch.device(device)
    g = build_generator(spans, cfg)
    g.load_state_dict({k: torch.as_tensor(v) for k, v in weights.items()})
    g.to(dev).eval()
    tg = torch.Generator(device=dev)
    tg.manual_seed(seed % (2**63 - 1))
    tu = torch.Generator(device=dev)
    tu.manual_seed(derive_seed(seed % (2**63), "slicing-sample-heads") % (2**63 - 1))
    blocks = [b for span in spans for b in span.blocks]
    out = np.empty((n, spans[-1].stop if spans else 0), dtype=np.float32)
    with torch.no_grad():
        for s0 in range(0, n, 65536):
            nb = min(n, s0 + 65536) - s0
            z = torch.randn(nb, cfg.latent_dim, generator=tg, device=dev)
            x = g(z, mode="sample")
            rows = torch.arange(nb, device=dev)
            for b in blocks:
                blk = x[:, b.start : b.stop]
                if b.activation == "softmax":
                    cum = torch.cumsum(blk / blk.sum(1, keepdim=True), dim=1)
                    u = torch.rand((nb, 1), generator=tu, device=dev)
                    pick = (u > cum).sum(1).clamp(0, b.width - 1)
                    oh = torch.zeros_like(blk)
                    oh[rows, pick] = 1.0
                    x[:, b.start : b.stop] = oh
                elif b.activation == "sigmoid":
                    u = torch.rand(blk.shape, generator=tu, device=dev)
                    x[:, b.start : b.stop] = (u < blk).to(x.dtype)
            out[s0 : s0 + nb] = x.cpu().numpy()
    return out
