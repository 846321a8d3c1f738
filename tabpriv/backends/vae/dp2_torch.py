"""Torch implementation of DP²-VAE training and sampling (imported only by :mod:`.dp2`)."""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch

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

#: On the CPU, stage 1 trains the K encoder/decoder pairs in groups whose decoder outputs hold about
#: this many floats (8 MiB), one group after another within each step: a group's temporaries stay in
#: cache and are reused from the allocator instead of being fresh pages (one vectorised pass over all
#: K pairs allocated ~50 MB tensors many times a step). Every pair's values are those of the
#: vectorised pass over all K, bit for bit: the pairs are independent (the loss is a sum over pairs,
#: the clip is per pair, Adam is elementwise) and a batched matmul computes each pair's product alone.
#: On a GPU all K pairs form one group.
_STAGE1_GROUP_FLOATS = 1 << 21


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
    sizes = [int(p.numel()) for p in params]
    flat = secret_normal_torch(rng, (sum(sizes),), std=std, device=device, dtype=params[0].dtype)
    return [part.view(p.shape) for part, p in zip(torch.split(flat, sizes), params, strict=True)]


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


class ForeachAdam:
    """Adam over ``params`` with torch's multi-tensor (``foreach=True``) update, value for value.

    The same ``torch._foreach_*`` calls with the same scalars as ``torch.optim.Adam(params, lr,
    foreach=True)`` at its defaults (betas 0.9/0.999, eps 1e-8, no weight decay, no amsgrad; bias
    corrections from the step count as a float), so the parameters are equal bit for bit
    (``tests/backends/test_dp2vae.py``). Constructing ``torch.optim.Adam`` imports ``torch._dynamo``
    and sympy (about 1.7 CPU-s, a fifteenth of a dp2-vae fit on Adult); this does not.

    Args:
        params: The parameters (leaves); :meth:`step` reads their ``.grad``.
        lr: Learning rate.

    """

    def __init__(self, params: Sequence[torch.Tensor], lr: float) -> None:
        self.params = list(params)
        self.lr = float(lr)
        self.betas = (0.9, 0.999)
        self.eps = 1e-8
        self.t = 0
        self.exp_avgs = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]
        self.exp_avg_sqs = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]

    @torch.no_grad()
    def step(self) -> None:
        """One Adam update of every parameter from its ``.grad``."""
        beta1, beta2 = self.betas
        grads = [p.grad for p in self.params]
        if any(g is None for g in grads):  # pragma: no cover - every parameter is used
            raise RuntimeError("ForeachAdam.step: a parameter has no gradient")
        gs = [g for g in grads if g is not None]
        self.t += 1
        step = float(self.t)
        torch._foreach_lerp_(self.exp_avgs, gs, 1 - beta1)
        torch._foreach_mul_(self.exp_avg_sqs, beta2)
        torch._foreach_addcmul_(self.exp_avg_sqs, gs, gs, 1 - beta2)
        n = len(self.params)
        step_size = [(self.lr / (1 - beta1**step)) * -1] * n
        bias_correction2_sqrt = [(1 - beta2**step) ** 0.5] * n
        denom = torch._foreach_sqrt(self.exp_avg_sqs)
        torch._foreach_div_(denom, bias_correction2_sqrt)
        torch._foreach_add_(denom, self.eps)
        torch._foreach_addcdiv_(self.params, self.exp_avgs, denom, step_size)


def _stacked_init(k: int, sizes: list[int], gen: torch.Generator) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``k`` stacked MLPs of layer ``sizes``, initialised as :func:`init_linear_` initialises ``k`` MLPs.

    :func:`init_linear_` on MLP ``j`` draws ``torch.rand`` layer by layer, weight then bias; torch's
    CPU uniform draws are consumed one value after another, so one draw of ``(k, values per MLP)``
    holds the same values in the same order (and leaves ``gen`` where ``k`` calls would). They are
    scaled as :func:`init_linear_` scales them, into ``(k, out, in)`` / ``(k, out)`` tensors, without
    building ``k`` modules (whose own default initialisation was overwritten anyway).
    """
    layers = list(itertools.pairwise(sizes))
    per_mlp = sum(o * i + o for i, o in layers)
    u = torch.rand((k, per_mlp), generator=gen)
    stacked: list[tuple[torch.Tensor, torch.Tensor]] = []
    at = 0
    for i, o in layers:
        bound = 1.0 / math.sqrt(i)
        w = u[:, at : at + o * i].reshape(k, o, i)
        b = u[:, at + o * i : at + o * i + o]
        at += o * i + o
        stacked.append(((w * 2 - 1) * bound, (b * 2 - 1) * bound))
    return stacked


def _batched_mlp(layers: Sequence[tuple[torch.Tensor, torch.Tensor]], x: torch.Tensor) -> torch.Tensor:
    """``len(x)`` MLPs at once: ``x`` is ``(k, rows, in)``, each layer ``(k, out, in)`` and ``(k, out)``.

    What ``vmap(functional_call(MLP, ...))`` computes (a batched matmul plus the bias, ReLU between
    layers), with the same values and gradients, without vmap's per-call overhead.
    """
    h = x
    last = len(layers) - 1
    for j, (w, b) in enumerate(layers):
        h = torch.matmul(h, w.transpose(-1, -2)) + b.unsqueeze(-2)
        if j < last:
            h = torch.relu(h)
    return h


def _mlp(layers: Sequence[tuple[torch.Tensor, torch.Tensor]], x: torch.Tensor) -> torch.Tensor:
    """:class:`MLP`'s forward from its ``(weight, bias)`` pairs (``F.linear``, ReLU between): same values."""
    h = x
    last = len(layers) - 1
    for j, (w, b) in enumerate(layers):
        h = torch.nn.functional.linear(h, w, b)
        if j < last:
            h = torch.relu(h)
    return h


def loss_targets(x: torch.Tensor, layout: SpanLayout) -> torch.Tensor | None:
    """Integer targets of :func:`recon_loss` for rows ``x``: ``(*x.shape[:-1], blocks)`` int64, or ``None``.

    One column per softmax block (the position of its 1) and one per binned number (its bin, as
    :meth:`NumericHead.target` computes it). ``None`` when some row's softmax block is not exactly
    one-hot (then the loss needs the rows themselves). With these targets
    :func:`recon_loss_from_targets` equals :func:`recon_loss` bit for bit.
    """
    cols: list[torch.Tensor] = []
    for a, w in layout.softmax:
        blk = x[..., a : a + w]
        if not bool(((blk == 0) | (blk == 1)).all()) or not bool((blk.sum(-1) == 1).all()):
            return None
        cols.append(blk.argmax(-1))
    cols += [h.target(x[..., h.index]) for h in layout.numeric]
    if not cols:
        return torch.zeros((*x.shape[:-1], 0), dtype=torch.long, device=x.device)
    return torch.stack(cols, dim=-1)


def resident_targets(resident: torch.Tensor, layout: SpanLayout, chunk: int = 65536) -> torch.Tensor | None:
    """:func:`loss_targets` of every resident row, computed chunk by chunk (``None``: not one-hot)."""
    parts: list[torch.Tensor] = []
    for s in range(0, int(resident.shape[0]), chunk):
        t = loss_targets(resident[s : s + chunk], layout)
        if t is None:
            return None
        parts.append(t)
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else torch.cat(parts)


class _BlockCrossEntropy(torch.autograd.Function):
    """:func:`recon_loss_from_targets` for layouts of softmax blocks and binned numbers only, as one node.

    Forward: the same log-softmaxes, gathers and sequential sums (the same loss values). Backward:
    what autograd computes through those nodes, without them: for each block, the upstream gradient
    negated at the target (the sum's ``-1``), zeros elsewhere (the gather's scatter), then torch's own
    log-softmax backward kernel (on each block of that gradient), written at the block's place in a zero
    gradient (the split's cat). Used where no number has a missing indicator and no regression head.
    """

    @staticmethod
    def forward(
        ctx: torch.autograd.function.FunctionCtx,
        logits: torch.Tensor,
        targets: torch.Tensor,
        blocks: tuple[tuple[int, int], ...],
    ) -> torch.Tensor:
        loss = torch.zeros(logits.shape[:-1], dtype=logits.dtype, device=logits.device)
        logps = []
        for j, (a, w) in enumerate(blocks):
            logp = torch.log_softmax(logits[..., a : a + w], dim=-1)
            loss = loss - torch.gather(logp, -1, targets[..., j : j + 1]).squeeze(-1)
            logps.append(logp)
        ctx.save_for_backward(targets, *logps)
        ctx.blocks = blocks  # type: ignore[attr-defined]
        ctx.shape = logits.shape  # type: ignore[attr-defined]
        return loss

    @staticmethod
    def backward(
        ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor
    ) -> tuple[torch.Tensor, None, None]:
        targets, *logps = ctx.saved_tensors  # type: ignore[attr-defined]
        blocks = ctx.blocks  # type: ignore[attr-defined]
        starts = torch.tensor([a for a, _ in blocks], dtype=targets.dtype, device=targets.device)
        # Every block's gradient of the log-probabilities at once: -grad at its target, 0 elsewhere.
        go = torch.zeros(ctx.shape, dtype=grad.dtype, device=grad.device)  # type: ignore[attr-defined]
        go.scatter_(-1, targets + starts, (-grad).unsqueeze(-1).expand(targets.shape))
        out = torch.zeros_like(go)
        for (a, w), logp in zip(blocks, logps, strict=True):
            out[..., a : a + w] = torch._log_softmax_backward_data(go[..., a : a + w], logp, -1, logp.dtype)
        return out, None, None


def recon_loss_from_targets(
    logits: torch.Tensor, x: torch.Tensor, layout: SpanLayout, targets: torch.Tensor
) -> torch.Tensor:
    """:func:`recon_loss` with the categories and bins read from :func:`loss_targets` (same values).

    A softmax block's cross-entropy ``-(log_softmax * one_hot).sum()`` is the log-probability at the
    1 (every other product is a zero, and adding zeros is exact), so it is gathered; a number's true
    bin is looked up instead of recomputed. Missing indicators, the regression head and the missing
    mask read ``x`` as :func:`recon_loss` does. Fewer, smaller operations for the same loss and the
    same gradients.
    """
    if (
        not layout.sigmoid
        and (layout.numeric or not layout.tanh)
        and all(h.missing is None for h in layout.numeric)
    ):
        blocks = (*layout.softmax, *((h.offset, h.n_bins) for h in layout.numeric))
        out: torch.Tensor = _BlockCrossEntropy.apply(logits, targets, blocks)
        return out
    sizes, where = layout.split
    parts = torch.split(logits, list(sizes), dim=-1)

    def cols(idx: Sequence[int]) -> torch.Tensor:
        return torch.cat([parts[where[i]] for i in idx], dim=-1)

    loss = torch.zeros(logits.shape[:-1], dtype=logits.dtype, device=logits.device)
    j = 0
    for a, _ in layout.softmax:
        logp = torch.log_softmax(parts[where[a]], dim=-1)
        loss = loss - torch.gather(logp, -1, targets[..., j : j + 1]).squeeze(-1)
        j += 1
    for h in layout.numeric:
        logp = torch.log_softmax(parts[where[h.offset]], dim=-1)
        out = -torch.gather(logp, -1, targets[..., j : j + 1]).squeeze(-1)
        loss = loss + (out if h.missing is None else out * (1.0 - x[..., h.missing]))
        j += 1
    if layout.tanh and not layout.numeric:
        idx = list(layout.tanh)
        loss = loss + ((torch.tanh(cols(idx)) - x[..., idx]) ** 2).sum(-1) * 4.0
    if layout.sigmoid:
        idx = list(layout.sigmoid)
        loss = loss + torch.nn.functional.binary_cross_entropy_with_logits(
            cols(idx), x[..., idx], reduction="none"
        ).sum(-1)
    return loss


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

    # -- stage 1: K encoders, each with a throwaway decoder, trained as batched MLPs ---------------
    t0, c0 = time.perf_counter(), time.process_time()
    enc_sizes = encoder_sizes(layout.width, hidden, latent)
    dec_sizes = decoder_sizes(layout.out_width, hidden, latent, layout.cond_width)
    enc_all = _stacked_init(k_sub, enc_sizes, gen_cpu)  # all encoders' draws, then all decoders'
    dec_all = _stacked_init(k_sub, dec_sizes, gen_cpu)
    b1 = max(1, min(config.batch_size, int(sizes_np.min())))
    per_group = k_sub if dev.type != "cpu" else max(1, _STAGE1_GROUP_FLOATS // (b1 * layout.out_width))
    groups = [(g, min(g + per_group, k_sub)) for g in range(0, k_sub, per_group)]

    def leaves(stacked: list[tuple[torch.Tensor, torch.Tensor]], g0: int, g1: int) -> list[torch.Tensor]:
        return [t[g0:g1].detach().clone().to(dev).requires_grad_(True) for wb in stacked for t in wb]

    enc_g = [leaves(enc_all, g0, g1) for g0, g1 in groups]  # per group: [w0, b0, w1, b1, w2, b2]
    dec_g = [leaves(dec_all, g0, g1) for g0, g1 in groups]
    del enc_all, dec_all
    # Adam per group over (encoder, decoder) parameters: elementwise, so the values of one Adam over all.
    opts = [ForeachAdam([*e, *d], config.lr) for e, d in zip(enc_g, dec_g, strict=True)]

    def pairs(flat: list[torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return list(zip(flat[0::2], flat[1::2], strict=True))

    targets_all = resident_targets(resident, layout) if resident is not None else None

    def targets_of(positions: torch.Tensor, xb: torch.Tensor) -> torch.Tensor | None:
        if targets_all is not None:
            pos = positions.reshape(-1).to(targets_all.device)
            return targets_all.index_select(0, pos).reshape(*positions.shape, -1)
        return loss_targets(xb, layout) if resident is None else None

    def batch_loss(logits: torch.Tensor, xb: torch.Tensor, tg: torch.Tensor | None) -> torch.Tensor:
        if tg is None:
            return recon_loss(logits, xb, layout)
        return recon_loss_from_targets(logits, xb, layout, tg)

    def dec_input(z: torch.Tensor, xb: torch.Tensor) -> torch.Tensor:
        # torch.cat([z, x[..., :0]]) is a copy of z: skipped when there is no condition.
        return z if layout.cond is None else torch.cat([z, layout.condition(xb)], dim=-1)

    for _ in range(config.pretrain_steps):
        # The step's draws for all K pairs, in the order of the vectorised pass (rows, then latents).
        r = (torch.rand((k_sub, b1), generator=gen_dev, device=dev) * sizes[:, None]).long()
        pos_all = torch.gather(idx, 1, r)  # (K, b1), drawn on the device
        eps_all = torch.randn((k_sub, b1, latent), generator=gen_dev, device=dev)
        for (g0, g1), enc_p, dec_p, opt1 in zip(groups, enc_g, dec_g, opts, strict=True):
            pos = pos_all[g0:g1]
            xb = take(pos)
            h = _batched_mlp(pairs(enc_p), xb)
            mu, logvar = h[..., :latent], h[..., latent:].clamp(-10.0, 10.0)
            z = mu + torch.exp(0.5 * logvar) * eps_all[g0:g1]
            logits = _batched_mlp(pairs(dec_p), dec_input(z, xb))
            loss = (batch_loss(logits, xb, targets_of(pos, xb)) + kl_divergence(mu, logvar)).mean(dim=1).sum()
            all_p = [*enc_p, *dec_p]
            # The weights' gradients come out transposed in memory; Adam's elementwise passes and the
            # norm's flatten cost several times more on them than one copy into the weights' layout.
            grads = [gr.contiguous() for gr in torch.autograd.grad(loss, all_p)]
            with torch.no_grad():  # clip each encoder/decoder pair's gradient separately
                sq = sum(gr.pow(2).flatten(1).sum(1) for gr in grads)
                scale = (_STAGE1_CLIP / (torch.as_tensor(sq).sqrt() + 1e-12)).clamp(max=1.0)
                for p, gr in zip(all_p, grads, strict=True):
                    p.grad = gr.mul_(scale.view(-1, *([1] * (gr.dim() - 1))))
            opt1.step()
            for p in all_p:
                p.grad = None
    with torch.no_grad():  # frozen encoders: posterior parameters of every row, once
        # Read in column blocks of the (K, m) partition: O(K * cols * d) memory per block.
        m_max = int(idx_np.shape[1])
        cols = max(1, table.chunk_rows_for() // k_sub) if posterior_cols is None else posterior_cols
        blocks = []
        for j in range(0, m_max, cols):
            rows_j = take(idx_np[:, j : j + cols])
            per = [_batched_mlp(pairs(e), rows_j[g0:g1]) for (g0, g1), e in zip(groups, enc_g, strict=True)]
            blocks.append(torch.cat(per))
        h = blocks[0] if len(blocks) == 1 else torch.cat(blocks, dim=1)
        post_mu, post_logvar = h[..., :latent], h[..., latent:].clamp(-10.0, 10.0)
        del blocks
    del enc_g, dec_g, opts
    timings["stage1_s"] = time.perf_counter() - t0
    timings["stage1_cpu_s"] = time.process_time() - c0

    # -- stage 2: fresh decoder, batch-mean gradient clipped to C plus N(0, sigma^2 C^2 I) -------
    t1, c1 = time.perf_counter(), time.process_time()
    dec = MLP(dec_sizes)
    init_linear_(dec, gen_cpu)
    dec = dec.to(dev)
    params = [p for p in dec.parameters()]
    opt2 = ForeachAdam(params, config.lr)
    layers2 = list(zip(params[0::2], params[1::2], strict=True))  # (weight, bias) of dec's Linear layers
    clip, std = float(config.clip), float(cal.noise) * float(config.clip)
    step_losses: list[torch.Tensor] = []
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
        pos_np = np.ascontiguousarray(idx_np[k, rows_np])
        pos_t = torch.from_numpy(pos_np)
        xb = take(pos_t)
        mu, lv = post_mu[k, rows], post_logvar[k, rows]
        z = mu + torch.exp(0.5 * lv) * torch.randn(mu.shape, generator=gen_step, device=dev)
        logits = _mlp(layers2, dec_input(z, xb))
        loss = batch_loss(logits, xb, targets_of(pos_t, xb)).mean()
        grads = list(torch.autograd.grad(loss, params))
        with torch.no_grad():
            norm = torch.sqrt(sum(g.pow(2).sum() for g in grads))  # type: ignore[arg-type]
            # min(1, C / (norm + 1e-12)) on the device (float64, then the gradients' float32)
            factor = (clip / (norm.double() + 1e-12)).clamp(max=1.0).to(grads[0].dtype)
            noisy = torch._foreach_mul(grads, factor)  # g * factor + noise, parameter by parameter
            torch._foreach_add_(noisy, gradient_noise(noise_rng, params, std, dev))
            for p, g in zip(params, noisy, strict=True):
                p.grad = g
        opt2.step()
        step_losses.append(loss.detach())
        if (t + 1) % report_every == 0 or t + 1 == config.steps:
            spent = eps_total if t + 1 == config.steps else curve[t + 1]
            context.report(t + 1, config.steps, f"dp2-vae decoder step {t + 1}: epsilon spent {spent:.3f}")
    losses = [float(v) for v in torch.stack(step_losses).tolist()] if step_losses else []  # one read
    timings["stage2_s"] = time.perf_counter() - t1
    timings["stage2_cpu_s"] = time.process_time() - c1
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
