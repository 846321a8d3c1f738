"""Torch/opacus implementation of the DP-SGD VAE baseline (imported only by ``dpsgd_vae``)."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from tabpriv._random import derive_seed, torch_generator
from tabpriv.backends._vae import (
    MLP,
    SpanLayout,
    TakeDataset,
    column_sums,
    decoder_sizes,
    encoder_sizes,
    init_linear_,
    kl_divergence,
    recon_loss,
)
from tabpriv.backends.base import FitContext
from tabpriv.transformers.encoded import EncodedTable

if TYPE_CHECKING:
    from tabpriv.backends.dpsgd_vae import DPSGDVAEBackend


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
    """Released state: decoder weights only (the encoder is private too but not needed)."""

    decoder_state: dict[str, np.ndarray]
    condition_probs: np.ndarray | None
    losses: list[float] = field(default_factory=list)
    epsilon_add_remove_opacus: float = float("nan")


def train_dpsgd_vae(
    backend: DPSGDVAEBackend,
    table: EncodedTable,
    noise_multiplier: float,
    sample_rate: float,
    delta_add_remove: float,
    hist_sigma: float | None,
    context: FitContext,
) -> DPSGDVAEResult:
    """Train the VAE with opacus (Poisson sampling, per-example clipping, Gaussian noise).

    Streaming: the table is read through ``table.take`` (one call per Poisson batch) and
    ``table.iter_chunks`` (the condition histogram) only.
    """
    from opacus import PrivacyEngine

    from tabpriv.backends.dpsgd_vae import opacus_epsilon

    dev = torch.device(context.device)
    layout = SpanLayout.from_spans(table.spans, backend.condition_on, backend.numeric_bins)
    gen_cpu = torch_generator(derive_seed(context.seed, "dpsgd-vae-init"), "cpu")
    gen_dev = torch_generator(derive_seed(context.seed, "dpsgd-vae-eps"), str(dev))
    gen_noise = torch_generator(derive_seed(context.seed, "dpsgd-vae-noise"), str(dev))
    gen_loader = torch_generator(derive_seed(context.seed, "dpsgd-vae-sampling"), "cpu")

    cond_probs: np.ndarray | None = None
    if layout.cond is not None and hist_sigma is not None:
        a, w = layout.cond
        counts = column_sums(table, a, w)  # one streaming pass
        hist_rng = np.random.default_rng(derive_seed(context.seed, "dpsgd-vae-hist"))
        noisy = np.clip(counts + hist_rng.normal(0.0, hist_sigma, size=w), 0.0, None)
        cond_probs = noisy / noisy.sum() if noisy.sum() > 0 else np.full(w, 1.0 / w)

    model = VAE(layout, backend.hidden, backend.latent_dim)
    init_linear_(model, gen_cpu)
    model = model.to(dev)
    # Rows are read per Poisson batch with table.take (the batch indices come from opacus' sampler,
    # unchanged); nothing of size n x d is built.
    loader = torch.utils.data.DataLoader(
        TakeDataset(table),
        batch_size=backend.batch_size,
        generator=gen_loader,
    )
    opt = torch.optim.Adam(model.parameters(), lr=backend.lr)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # opacus warns about secure RNG being off (documented)
        engine = PrivacyEngine(accountant="rdp")
        model_p, opt_p, loader_p = engine.make_private(
            module=model,
            optimizer=opt,
            data_loader=loader,
            noise_multiplier=noise_multiplier,
            max_grad_norm=backend.clip,
            poisson_sampling=True,
            noise_generator=gen_noise,
        )
    losses: list[float] = []
    total = backend.epochs * len(loader_p)
    step = 0
    for epoch in range(backend.epochs):
        for (xb,) in loader_p:
            xb = xb.to(dev)
            eps = torch.randn((xb.shape[0], backend.latent_dim), generator=gen_dev, device=dev)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                # An empty Poisson batch gives a zero loss: opacus still adds the noise.
                per_ex = model_p(xb, eps)
                loss = per_ex.sum() / max(1, xb.shape[0])
                opt_p.zero_grad(set_to_none=True)
                loss.backward()
                opt_p.step()
                losses.append(float(loss.detach()))
            step += 1
        eps_ar = opacus_epsilon(noise_multiplier, sample_rate, step, delta_add_remove)
        context.report(
            step,
            total,
            f"dpsgd-vae epoch {epoch + 1}: epsilon spent {2 * eps_ar:.3f} (replace-one, "
            f"= 2 x {eps_ar:.3f} add/remove)",
        )
    eps_final = opacus_epsilon(noise_multiplier, sample_rate, step, delta_add_remove)
    dec = model.decoder
    state = {n.removeprefix("_module."): v.detach().cpu().numpy().copy() for n, v in dec.state_dict().items()}
    return DPSGDVAEResult(state, cond_probs, losses, eps_final)


def steps_per_epoch(n_rows: int, batch_size: int) -> int:
    """Steps opacus runs per epoch (one per batch of the original loader)."""
    return max(1, math.ceil(n_rows / batch_size))
