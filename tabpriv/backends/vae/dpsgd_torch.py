"""Torch code of the DP-SGD VAE baseline (imported only by :mod:`.dpsgd`; DP-SGD in :mod:`.dpsgd_loop`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from tabpriv._random import derive_seed, torch_generator
from tabpriv.backends.base import FitContext
from tabpriv.backends.vae.common import (
    MLP,
    SpanLayout,
    column_sums,
    decoder_sizes,
    encoder_sizes,
    init_linear_,
    kl_divergence,
    recon_loss,
    resident_rows,
    row_reader,
)
from tabpriv.transformers.encoded import EncodedTable
from tabpriv.transformers.levels import DEFAULT_MAX_LEVELS

if TYPE_CHECKING:
    from tabpriv.backends.vae.dpsgd_loop import DPSGDSchedule


class VAE(nn.Module):
    """Encoder + decoder over encoded rows; ``forward`` returns the per-example ELBO loss."""

    def __init__(self, layout: SpanLayout, hidden: int, latent: int) -> None:
        super().__init__()
        self.layout = layout
        self.latent = latent
        self.encoder = MLP(encoder_sizes(layout.width, hidden, latent))
        self.decoder = MLP(decoder_sizes(layout.out_width, hidden, latent, layout.cond_width))

    def forward(self, x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """Per-example negative ELBO of rows ``x`` with reparameterisation noise ``eps``."""
        h = self.encoder(x)
        mu, logvar = h[:, : self.latent], h[:, self.latent :].clamp(-10.0, 10.0)
        z = mu + torch.exp(0.5 * logvar) * eps
        logits = self.decoder(torch.cat([z, self.layout.condition(x)], dim=-1))
        out: torch.Tensor = recon_loss(logits, x, self.layout) + kl_divergence(mu, logvar)
        return out


@dataclass
class DPSGDVAEResult:
    """Released state: decoder weights only (the encoder is private too but not needed).

    ``steps_executed`` is the number of DP-SGD steps the loop ran (public: it equals the accounted
    ``T``). No training loss is kept: it is a figure of the private rows without noise.
    """

    decoder_state: dict[str, np.ndarray]
    condition_probs: np.ndarray | None
    steps_executed: int = 0


@dataclass(frozen=True)
class DPSGDVAETrainConfig:
    """The dpsgd-vae hyper-parameters the torch code uses (built by the backend; no backend object).

    Attributes:
        condition_on: Optional categorical column to condition the decoder on.
        numeric_bins: Bins of each number's head (0: regression head).
        hidden: Width of the hidden layers.
        latent_dim: Latent size.
        lr: Adam learning rate.
        clip: Per-example clipping norm.
        integer_levels: Widest integer column with one bin per value (see :meth:`SpanLayout.from_spans`).
        grad_sample_mode: ``"ghost"`` (ghost clipping) or ``"hooks"``; see :mod:`.dpsgd_loop`.

    """

    condition_on: str | None
    numeric_bins: int
    hidden: int
    latent_dim: int
    lr: float
    clip: float
    integer_levels: int = DEFAULT_MAX_LEVELS
    grad_sample_mode: str = "ghost"


def noisy_condition_histogram(counts: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Condition probabilities from ``counts + N(0, sigma^2)`` (secret ``rng``), clipped at 0, normalised."""
    noisy = np.clip(counts + rng.normal(0.0, sigma, size=counts.shape), 0.0, None)
    total = float(noisy.sum())
    return noisy / total if total > 0 else np.full(counts.shape, 1.0 / counts.size)


def train_dpsgd_vae(
    config: DPSGDVAETrainConfig,
    table: EncodedTable,
    noise_multiplier: float,
    schedule: DPSGDSchedule,
    hist_sigma: float | None,
    context: FitContext,
    progress: Callable[[int, int], None] | None = None,
) -> DPSGDVAEResult:
    """Train the VAE with DP-SGD: the Poisson sampler, clipping and noise of :mod:`.dpsgd_loop`.

    Secret randomness (ChaCha20, :meth:`FitContext.secret_rng`): the Poisson batches, the gradient
    noise and the condition histogram's noise. Public randomness (seeded torch generators): the
    weight initialisation and the encoder's reparameterisation noise, which only feeds the training
    and is no privacy mechanism (the guarantee rests on the clipped, noised gradients alone).

    Encode once: the rows are encoded chunk by chunk (``table.iter_chunks``) into one float32 tensor
    on the training device before the first step, and every Poisson batch is an index draw on it
    (:func:`~tabpriv.backends.vae.common.resident_rows`); a table above
    :data:`~tabpriv.backends.vae.common.RESIDENT_MAX_BYTES` is read with one ``table.take`` per
    batch instead (same rows). The condition histogram is one more ``iter_chunks`` pass.
    """
    from tabpriv.backends.vae import dpsgd_loop

    dev = torch.device(context.device)
    layout = SpanLayout.from_spans(
        table.spans, config.condition_on, config.numeric_bins, config.integer_levels
    )
    gen_cpu = torch_generator(derive_seed(context.seed, "dpsgd-vae-init"), "cpu")
    gen_dev = torch_generator(derive_seed(context.seed, "dpsgd-vae-eps"), str(dev))  # public: reparam.

    cond_probs: np.ndarray | None = None
    if layout.cond is not None and hist_sigma is not None:
        a, w = layout.cond
        counts = column_sums(table, a, w)  # one streaming pass
        cond_probs = noisy_condition_histogram(
            counts, hist_sigma, context.secret_rng("dpsgd-vae-condition-histogram")
        )

    model = VAE(layout, config.hidden, config.latent_dim)
    init_linear_(model, gen_cpu)
    model = model.to(dev)
    read_rows = row_reader(resident_rows(table, dev), table.take, dev)
    opt = torch.optim.Adam(
        model.parameters(), lr=config.lr, foreach=True
    )  # = single-tensor Adam, bit for bit

    def per_record_loss(xb: torch.Tensor) -> torch.Tensor:
        eps = torch.randn((xb.shape[0], config.latent_dim), generator=gen_dev, device=dev)
        out: torch.Tensor = model(xb, eps)
        return out

    executed = dpsgd_loop.run_dpsgd(
        model,
        opt,
        per_record_loss,
        read_rows,
        schedule,
        noise_multiplier=noise_multiplier,
        clip=float(config.clip),
        sampler_rng=context.secret_rng("dpsgd-vae-poisson"),
        noise_rng=context.secret_rng("dpsgd-vae-gradient-noise"),
        on_epoch=progress,
        grad_sample_mode=config.grad_sample_mode,
    )
    dec = model.decoder
    state = {n.removeprefix("_module."): v.detach().cpu().numpy().copy() for n, v in dec.state_dict().items()}
    return DPSGDVAEResult(state, cond_probs, executed)
