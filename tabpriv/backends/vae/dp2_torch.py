"""Torch implementation of DP²-VAE training and sampling (imported only by :mod:`.dp2`)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.func import functional_call, stack_module_state, vmap

from tabpriv._random import derive_seed, secret_normal_torch, torch_generator
from tabpriv.backends.base import FitContext
from tabpriv.backends.vae.common import (
    MLP,
    SpanLayout,
    column_sums,
    decode_rows_tensor,
    decoder_sizes,
    encoder_sizes,
    init_linear_,
    kl_divergence,
    recon_loss,
    resident_rows,
    sample_condition,
)
from tabpriv.transformers.encoded import EncodedTable
from tabpriv.transformers.levels import DEFAULT_MAX_LEVELS

if TYPE_CHECKING:
    from tabpriv.accounting.dp2vae import DP2VAECalibration
    from tabpriv.transformers.encoded import ColumnSpan

#: Per-encoder gradient-norm clip of stage 1 (stability only; stage 1 is not private).
_STAGE1_CLIP = 5.0


@dataclass(frozen=True)
class DecoderConfig:
    """What sampling a released VAE decoder needs (shared by dp2-vae and dpsgd-vae; no backend object).

    Attributes:
        spans: The fitted table's spans.
        condition_on: The conditioning column, if any.
        numeric_bins: Bins of each number's head (0: regression head).
        hidden: Width of the hidden layers.
        latent_dim: Latent size.
        integer_levels: Widest integer column with one bin per value (see
            :meth:`SpanLayout.from_spans`; 0 for files saved before the shared rule).
        device: Where the decoder runs and the rows are drawn (``"cpu"``, ``"cuda"``, ...).

    """

    spans: tuple[ColumnSpan, ...]
    condition_on: str | None
    numeric_bins: int
    hidden: int
    latent_dim: int
    integer_levels: int = DEFAULT_MAX_LEVELS
    device: str = "cpu"


@dataclass(frozen=True)
class DP2VAETrainConfig:
    """The dp2-vae hyper-parameters the torch code uses (built by the backend; no backend object).

    Attributes:
        n_subsets: K, the number of disjoint subsets (resolved for the table).
        steps: T, noisy decoder updates.
        clip: C, the clipping norm of the batch-mean decoder gradient.
        batch_size: Rows per step (capped by the subset size).
        latent_dim: Latent size.
        hidden: Width of the hidden layers.
        lr: Adam learning rate.
        pretrain_steps: Stage-1 steps.
        condition_on: Optional categorical column to condition on.
        numeric_bins: Bins of each number's head.
        integer_levels: Widest integer column with one bin per value.

    """

    n_subsets: int
    steps: int
    clip: float
    batch_size: int
    latent_dim: int
    hidden: int
    lr: float
    pretrain_steps: int
    condition_on: str | None
    numeric_bins: int
    integer_levels: int = DEFAULT_MAX_LEVELS


@dataclass
class DP2VAEResult:
    """What training returns: only released state (decoder, condition probabilities) and losses."""

    decoder_state: dict[str, np.ndarray]
    condition_probs: np.ndarray | None
    losses: list[float] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


def gradient_noise(
    rng: np.random.Generator, params: Sequence[torch.Tensor], std: float, device: torch.device
) -> list[torch.Tensor]:
    """One step's Gaussian noise ``N(0, std^2)`` for every decoder parameter, from the secret stream.

    One host draw (ChaCha20) of all coordinates, copied to ``device`` and split per parameter.
    """
    total = sum(int(p.numel()) for p in params)
    flat = secret_normal_torch(rng, (total,), std=std, device=device, dtype=params[0].dtype)
    out, at = [], 0
    for p in params:
        n = int(p.numel())
        out.append(flat[at : at + n].view(p.shape))
        at += n
    return out


def histogram_noise(rng: np.random.Generator, size: int, std: float) -> np.ndarray:
    """Gaussian noise ``N(0, std^2)`` (float64) of the condition histogram, from the secret stream."""
    return rng.normal(0.0, std, size=size)


def _partition(n: int, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random partition of ``range(n)`` into ``k`` near-equal subsets: (padded index matrix, sizes)."""
    parts = np.array_split(rng.permutation(n), k)
    sizes = np.array([len(p) for p in parts], dtype=np.int64)
    m = int(sizes.max())
    idx = np.zeros((k, m), dtype=np.int64)
    for i, p in enumerate(parts):
        idx[i, : len(p)] = p
        idx[i, len(p) :] = p[0]
    return idx, sizes


def train_dp2vae(
    config: DP2VAETrainConfig,
    table: EncodedTable,
    cal: DP2VAECalibration,
    context: FitContext,
    eps_total: float,
    delta: float,
    posterior_cols: int | None = None,
    epsilon_curve: Callable[[list[int]], Sequence[float]] | None = None,
) -> DP2VAEResult:
    """Run stage 1 (K vectorised encoders) and stage 2 (noisy decoder); return the release.

    Encode once: the rows are encoded chunk by chunk (``table.iter_chunks``) into one float32 tensor
    on the training device before stage 1 (:func:`~tabpriv.backends.vae.common.resident_rows`), and
    every minibatch of both stages and the posterior pass (in blocks of ``posterior_cols`` partition
    columns: ``chunk_rows_for() // K`` by default) is an index draw on it. A table above
    :data:`~tabpriv.backends.vae.common.RESIDENT_MAX_BYTES` is read through ``table.take`` instead
    (memory ``O(batch × d)`` per read; the same rows). Besides, memory holds the ``(K, n/K)``
    partition index and the ``(K, n/K, 2 × latent)`` frozen posterior parameters. The condition
    histogram is one more ``iter_chunks`` pass.

    No value is read back to the host inside either loop: the clip factor of a stage-2 step is
    computed on the device, and the (un-noised, never saved) stage-2 losses are kept in a device
    tensor and read once at the end (:attr:`DP2VAEResult.losses`).

    ``config`` is the typed :class:`DP2VAETrainConfig` (never the backend object); ``epsilon_curve``
    maps step counts to the epsilon spent after them, for progress messages only (``None``: the
    messages state the total).
    """
    dev = torch.device(context.device)
    layout = SpanLayout.from_spans(
        table.spans, config.condition_on, config.numeric_bins, config.integer_levels
    )
    k_sub, latent, hidden = config.n_subsets, config.latent_dim, config.hidden
    # Public randomness (context.seed): initialisation, stage 1, the partition, the rows of a batch and
    # the reparameterisation draws. Secret randomness (ChaCha20, context.secret_rng): the gradient and
    # histogram noise, and the subset each step uses. The accountant (1 of K units sampled without
    # replacement per step) amplifies by the secrecy of that choice, so it is secret. The partition need
    # not be: it is independent of the data and DP holds for every neighbouring pair (whichever subset
    # holds the changed row); the batch within the chosen subset need not be either, since the clipped
    # step has sensitivity 2C whichever rows it holds (the accountant claims no amplification from it).
    # Each stage-2 step's public draws come from their own (seed, t) stream (see the loop).
    gen_cpu = torch_generator(derive_seed(context.seed, "dp2vae-train"), "cpu")
    gen_dev = torch_generator(derive_seed(context.seed, "dp2vae-train-device"), str(dev))
    gen_step = torch.Generator(device=dev)
    step_root = derive_seed(context.seed, "dp2vae-stage2-steps")
    noise_rng = context.secret_rng("dp2vae-gradient-noise")
    subset_rng = context.secret_rng("dp2vae-subset-choice")
    rng = np.random.default_rng(derive_seed(context.seed, "dp2vae-partition"))

    width = table.width
    idx_np, sizes_np = _partition(table.n_rows, k_sub, rng)
    idx = torch.as_tensor(idx_np, device=dev)
    sizes = torch.as_tensor(sizes_np, device=dev, dtype=torch.float32)
    timings: dict[str, float] = {}
    resident = resident_rows(table, dev)  # encode once (None: too large, read batch by batch)

    def take(positions: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Encoded rows at ``positions`` (any shape), shaped ``(*positions.shape, d)`` on the device."""
        shape = tuple(positions.shape)
        if resident is not None:
            pos = torch.as_tensor(positions).reshape(-1)
            pos = pos.to(dev, non_blocking=True) if pos.device != resident.device else pos
            return resident.index_select(0, pos).reshape(*shape, width)
        flat = positions.cpu().numpy() if isinstance(positions, torch.Tensor) else positions
        flat = np.ascontiguousarray(flat, dtype=np.int64).reshape(-1)
        rows = torch.as_tensor(table.take(flat), dtype=torch.float32)
        return rows.reshape(*shape, width).to(dev)

    # -- condition histogram (Gaussian mechanism, accounted in cal) -------------------------------
    cond_probs: np.ndarray | None = None
    if layout.cond is not None and cal.hist_multiplier is not None:
        a, w = layout.cond
        counts = column_sums(table, a, w)  # one streaming pass
        hist_rng = context.secret_rng("dp2vae-histogram-noise")
        noisy = counts + histogram_noise(hist_rng, w, cal.hist_multiplier * math.sqrt(2.0))
        noisy = np.clip(noisy, 0.0, None)
        cond_probs = noisy / noisy.sum() if noisy.sum() > 0 else np.full(w, 1.0 / w)

    # -- stage 1: K encoders, each with a throwaway decoder, vectorised with vmap ---------------
    t0 = time.perf_counter()
    enc_sizes = encoder_sizes(layout.width, hidden, latent)
    dec_sizes = decoder_sizes(layout.out_width, hidden, latent, layout.cond_width)
    encs = [MLP(enc_sizes) for _ in range(k_sub)]
    decs = [MLP(dec_sizes) for _ in range(k_sub)]
    for m in (*encs, *decs):
        init_linear_(m, gen_cpu)
    enc_p, _ = stack_module_state(encs)
    dec_p, _ = stack_module_state(decs)
    enc_p = {n: p.detach().to(dev).requires_grad_(True) for n, p in enc_p.items()}
    dec_p = {n: p.detach().to(dev).requires_grad_(True) for n, p in dec_p.items()}
    base_enc = MLP(enc_sizes).to("meta")
    base_dec = MLP(dec_sizes).to("meta")
    del encs, decs

    def enc_fn(p: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = functional_call(base_enc, (p,), (x,))
        return out

    def dec_fn(p: dict[str, torch.Tensor], z: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = functional_call(base_dec, (p,), (z,))
        return out

    venc, vdec = vmap(enc_fn), vmap(dec_fn)
    opt1 = torch.optim.Adam(
        [*enc_p.values(), *dec_p.values()], lr=config.lr, foreach=True
    )  # = single-tensor Adam, bit for bit
    b1 = max(1, min(config.batch_size, int(sizes_np.min())))
    all_p = [*enc_p.values(), *dec_p.values()]
    for _ in range(config.pretrain_steps):
        r = (torch.rand((k_sub, b1), generator=gen_dev, device=dev) * sizes[:, None]).long()
        xb = take(torch.gather(idx, 1, r))  # (K, b1, d), drawn on the device
        h = venc(enc_p, xb)
        mu, logvar = h[..., :latent], h[..., latent:].clamp(-10.0, 10.0)
        z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=gen_dev, device=dev)
        logits = vdec(dec_p, torch.cat([z, layout.condition(xb)], dim=-1))
        loss = (recon_loss(logits, xb, layout) + kl_divergence(mu, logvar)).mean(dim=1).sum()
        opt1.zero_grad(set_to_none=True)
        loss.backward()
        with torch.no_grad():  # clip each encoder/decoder pair's gradient separately
            sq = sum(p.grad.pow(2).flatten(1).sum(1) for p in all_p if p.grad is not None)
            scale = (_STAGE1_CLIP / (torch.as_tensor(sq).sqrt() + 1e-12)).clamp(max=1.0)
            for p in all_p:
                if p.grad is not None:
                    p.grad.mul_(scale.view(-1, *([1] * (p.grad.dim() - 1))))
        opt1.step()
    with torch.no_grad():  # frozen encoders: posterior parameters of every row, once
        # Read in column blocks of the (K, m) partition: O(K * cols * d) memory per block.
        m_max = int(idx_np.shape[1])
        cols = max(1, table.chunk_rows_for() // k_sub) if posterior_cols is None else posterior_cols
        parts = [venc(enc_p, take(idx_np[:, j : j + cols])) for j in range(0, m_max, cols)]
        h = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
        post_mu, post_logvar = h[..., :latent], h[..., latent:].clamp(-10.0, 10.0)
        del parts
    del enc_p, dec_p, opt1, all_p
    timings["stage1_s"] = time.perf_counter() - t0

    # -- stage 2: fresh decoder, batch-mean gradient clipped to C plus N(0, sigma^2 C^2 I) -------
    t1 = time.perf_counter()
    dec = MLP(dec_sizes)
    init_linear_(dec, gen_cpu)
    dec = dec.to(dev)
    params = [p for p in dec.parameters()]
    opt2 = torch.optim.Adam(params, lr=config.lr, foreach=True)
    clip, std = float(config.clip), float(cal.noise) * float(config.clip)
    losses_dev = torch.empty(config.steps, dtype=torch.float32, device=dev)
    report_every = max(1, config.steps // 20)
    report_at = [t for t in range(1, config.steps + 1) if t % report_every == 0]
    curve = dict(
        zip(
            report_at,
            epsilon_curve(report_at) if epsilon_curve is not None else [eps_total] * len(report_at),
            strict=True,
        )
    )
    for t in range(config.steps):
        k = int(subset_rng.integers(k_sub))  # secret: the amplification rests on it
        # The step's public randomness is a function of (seed, t) only: how much of it a step uses
        # depends on the subset's size, so one shared stream would carry the secret k into later steps.
        step_rng = np.random.default_rng((step_root, t))
        gen_step.manual_seed(int(step_rng.integers(2**62)))
        m_k = int(sizes_np[k])
        rows_np = step_rng.permutation(m_k)[: min(config.batch_size, m_k)]
        rows = torch.as_tensor(rows_np, device=dev)
        xb = take(np.ascontiguousarray(idx_np[k, rows_np]))
        mu, lv = post_mu[k, rows], post_logvar[k, rows]
        z = mu + torch.exp(0.5 * lv) * torch.randn(mu.shape, generator=gen_step, device=dev)
        logits = dec(torch.cat([z, layout.condition(xb)], dim=-1))
        loss = recon_loss(logits, xb, layout).mean()
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            norm = torch.sqrt(sum(g.pow(2).sum() for g in grads))  # type: ignore[arg-type]
            # min(1, C / (norm + 1e-12)) on the device (float64, then the gradients' float32)
            factor = (clip / (norm.double() + 1e-12)).clamp(max=1.0).to(grads[0].dtype)
            for p, g, noise in zip(params, grads, gradient_noise(noise_rng, params, std, dev), strict=True):
                p.grad = g * factor + noise
        opt2.step()
        losses_dev[t] = loss.detach()
        if (t + 1) % report_every == 0 or t + 1 == config.steps:
            spent = eps_total if t + 1 == config.steps else curve[t + 1]
            context.report(t + 1, config.steps, f"dp2-vae decoder step {t + 1}: epsilon spent {spent:.3f}")
    losses = [float(v) for v in losses_dev.tolist()]  # one read after the loop
    timings["stage2_s"] = time.perf_counter() - t1
    state = {n: v.detach().cpu().numpy().copy() for n, v in dec.state_dict().items()}
    return DP2VAEResult(state, cond_probs, losses, timings)


def _decoder_from_state(
    config: DecoderConfig, decoder_state: dict[str, np.ndarray]
) -> tuple[MLP, SpanLayout]:
    layout = SpanLayout.from_spans(
        config.spans, config.condition_on, config.numeric_bins, config.integer_levels
    )
    dec = MLP(decoder_sizes(layout.out_width, config.hidden, config.latent_dim, layout.cond_width))
    dec.load_state_dict({k: torch.as_tensor(v) for k, v in decoder_state.items()})
    dec.eval()
    return dec.to(config.device), layout


def sample_decoder(
    config: DecoderConfig,
    decoder_state: dict[str, np.ndarray],
    condition_probs: np.ndarray | None,
    n: int,
    seed: int,
) -> np.ndarray:
    """Draw ``n`` encoded rows from a released decoder on ``config.device`` (pure post-processing).

    The latent draws, the decoder and every categorical, bin and indicator draw run on that device
    with one generator there (seeded by ``seed``); the rows are copied to the host once per chunk.
    On the CPU the rows are those of earlier versions, bit for bit.
    """
    dec, layout = _decoder_from_state(config, decoder_state)
    dev = torch.device(config.device)
    gen = torch_generator(seed, str(dev))
    out = np.zeros((n, layout.width), dtype=np.float32)
    chunk = 65536
    with torch.no_grad():
        for s in range(0, n, chunk):
            m = min(chunk, n - s)
            z = torch.randn((m, config.latent_dim), generator=gen, device=dev)
            c = (
                sample_condition(condition_probs, m, gen, dev)
                if layout.cond is not None and condition_probs is not None
                else torch.zeros((m, 0), device=dev)
            )
            rows = decode_rows_tensor(dec(torch.cat([z, c], dim=-1)), layout, gen)
            if layout.cond is not None:
                a, w = layout.cond
                rows[:, a : a + w] = c
            out[s : s + m] = rows.cpu().numpy()
    return out
