"""Torch code of the ``lipschitz-vae`` backend (imported only when the backend is fitted or used).

The encoder mean is a ReLU MLP whose every linear layer is kept at spectral norm <= ``L ** (1/m)`` by an
exact projection after each optimiser step (``W <- W / max(1, sigma_max(W) / c)`` with ``sigma_max``
from an SVD in float64). Projection is post-processing of the parameters, so it composes with DP-SGD
(:mod:`tabpriv.backends.vae.dpsgd_loop`; opacus' GradSampleModule, which computes the per-record gradients,
does not need to know about it). The certified Lipschitz constant of the encoder mean is the product
of the exact spectral norms of the final weights (ReLU is 1-Lipschitz; biases do not matter).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from tabpriv.transformers.encoded import ColumnSpan, EncodedTable, clip_rows

if TYPE_CHECKING:
    from tabpriv.backends.vae.dpsgd_loop import DPSGDSchedule

# Multiplicative safety margin of the projection, so float32 rounding of the rescaled weights can never
# push an exact spectral norm above its target (the final weights are re-certified exactly anyway).
_MARGIN = 1.0 - 1e-5


@dataclass(frozen=True)
class Arch:
    """Architecture of the VAE (``out_width``: decoder outputs, ``None`` for ``width``)."""

    width: int
    hidden: int
    latent: int
    encoder_layers: int
    out_width: int | None = None


class LipschitzVAE(nn.Module):
    """VAE with a Lipschitz-constrained encoder mean and a fixed isotropic encoder noise scale."""

    def __init__(self, arch: Arch) -> None:
        super().__init__()
        self.arch = arch
        dims = [arch.width] + [arch.hidden] * (arch.encoder_layers - 1) + [arch.latent]
        self.enc = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(dims))
        self.dec = nn.Sequential(
            nn.Linear(arch.latent, arch.hidden),
            nn.ReLU(),
            nn.Linear(arch.hidden, arch.hidden),
            nn.ReLU(),
            nn.Linear(arch.hidden, arch.out_width or arch.width),
        )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Encoder mean mu(x) (works on any leading shape)."""
        h = x
        for i, layer in enumerate(self.enc):
            h = layer(h)
            if i < len(self.enc) - 1:
                h = torch.relu(h)
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - unused
        """Same as :meth:`encode` (``nn.Module`` protocol)."""
        return self.encode(x)


def linears(model: LipschitzVAE) -> list[nn.Linear]:
    """The encoder-mean linear layers, in order."""
    return [m for m in model.enc if isinstance(m, nn.Linear)]


def build_model(arch: Arch, seed: int) -> LipschitzVAE:
    """Build the model with a seeded initialisation (global RNG left untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed % (2**63 - 1))
        return LipschitzVAE(arch)


def spectral_norms(model: LipschitzVAE) -> list[float]:
    """Exact spectral norms (float64 SVD) of the encoder-mean weights."""
    with torch.no_grad():
        return [
            float(torch.linalg.matrix_norm(layer.weight.detach().double().cpu(), ord=2))
            for layer in linears(model)
        ]


def certified_lipschitz(model: LipschitzVAE) -> float:
    """Certified upper bound on the L2->L2 Lipschitz constant of the encoder mean."""
    return float(math.prod(spectral_norms(model)))


def project_(model: LipschitzVAE, lipschitz: float) -> None:
    """Divide each encoder weight by ``max(1, sigma_max / c)`` with ``c = lipschitz ** (1/m)``.

    ``sigma_max`` comes from a float64 SVD on the weight's device and the factor is applied there: no
    value is read back to the host (a factor of exactly 1 leaves a weight within its target unchanged).
    """
    c = lipschitz ** (1.0 / len(linears(model)))
    with torch.no_grad():
        for layer in linears(model):
            w = layer.weight
            s = torch.linalg.matrix_norm(w.detach().double(), ord=2)
            w.mul_(((c * _MARGIN) / s).clamp(max=1.0).to(w.dtype))


def enforce_certified_(model: LipschitzVAE, lipschitz: float) -> float:
    """Project, then verify the exact product bound; shrink the last layer until it holds."""
    project_(model, lipschitz)
    cert = certified_lipschitz(model)
    while cert > lipschitz:  # float32 rounding; practically never taken
        with torch.no_grad():
            linears(model)[-1].weight.mul_(_MARGIN)
        cert = certified_lipschitz(model)
    return cert


class Heads:
    """Per-block output activations and per-sample reconstruction losses.

    Numbers get the binned heads of :class:`tabpriv.backends.vae.common.SpanLayout` when ``numeric_bins > 0``
    (cross-entropy of the true bin, not counted where the value is missing; decoded by drawing a bin),
    else the regression head (squared error of tanh; decoded as the tanh mean). ``integer_levels``:
    see :meth:`SpanLayout.from_spans` (``None``: the shared default of :mod:`tabpriv.transformers.levels`).
    """

    def __init__(
        self, spans: tuple[ColumnSpan, ...], numeric_bins: int = 0, integer_levels: int | None = None
    ) -> None:
        from tabpriv.backends.vae.common import SpanLayout
        from tabpriv.transformers.levels import DEFAULT_MAX_LEVELS

        levels = DEFAULT_MAX_LEVELS if integer_levels is None else integer_levels
        layout = SpanLayout.from_spans(spans, None, numeric_bins, levels)
        self.width = layout.width
        self.out_width = layout.out_width
        self.numeric = layout.numeric
        self.softmax: list[tuple[int, int]] = [(a, a + w) for a, w in layout.softmax]
        self.tanh: list[int] = [] if layout.numeric else list(layout.tanh)
        self.sigmoid: list[int] = list(layout.sigmoid)

    def loss(self, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Per-sample reconstruction loss (cross-entropy, bins or squared error, binary cross-entropy)."""
        total = torch.zeros(logits.shape[0], device=logits.device)
        for a, b in self.softmax:
            total = total - (torch.log_softmax(logits[:, a:b], dim=1) * x[:, a:b]).sum(1)
        for h in self.numeric:
            total = total + h.nll(logits, x)
        if self.tanh:
            t = self.tanh
            total = total + ((torch.tanh(logits[:, t]) - x[:, t]) ** 2).sum(1)
        if self.sigmoid:
            g = self.sigmoid
            total = total + nn.functional.binary_cross_entropy_with_logits(
                logits[:, g], x[:, g], reduction="none"
            ).sum(1)
        return total

    def activate(self, logits: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
        """Encoded-width rows: category and indicator probabilities, numbers as values.

        A binned number is drawn (bin from its softmax, then its value) with ``gen``, a generator on
        the device of ``logits`` (the draws happen there); a regression number is the tanh mean.
        """
        out = logits[:, : self.width].clone()
        for a, b in self.softmax:
            out[:, a:b] = torch.softmax(logits[:, a:b], dim=1)
        if self.numeric:
            if gen is None:
                raise ValueError("binned number heads need a generator to draw from")
            lg = logits.detach().float()
            for h in self.numeric:
                out[:, h.index] = h.draw(lg, gen)
        if self.tanh:
            out[:, self.tanh] = torch.tanh(logits[:, self.tanh])
        if self.sigmoid:
            out[:, self.sigmoid] = torch.sigmoid(logits[:, self.sigmoid])
        return out


class ClippedRows:
    """The rows of an :class:`EncodedTable`, each clipped to L2 norm ``bound``, read on demand.

    ``ClippedRows(table).take(idx)`` equals ``table.clipped_rows()[idx]`` value for value (the clip
    acts row by row, with the same function), but only the rows asked for are encoded and clipped:
    the training and release code read the table through :meth:`take` (minibatches, opacus' Poisson
    batches) and :meth:`iter_chunks` (the release pass), never as a whole ``n × d`` matrix.

    Args:
        table: The encoded table (eager or lazy).
        bound: Clipping norm; ``None``: ``table.row_norm_bound`` (what ``clipped_rows()`` uses).

    """

    def __init__(self, table: EncodedTable, bound: float | None = None) -> None:
        self.table = table
        self.bound = table.row_norm_bound if bound is None else float(bound)
        self._resident: dict[str, torch.Tensor | None] = {}

    @property
    def n_rows(self) -> int:
        """Number of rows."""
        return self.table.n_rows

    @property
    def width(self) -> int:
        """Number of coordinates."""
        return self.table.width

    def clip(self, block: np.ndarray) -> np.ndarray:
        """Clip each row of ``block`` to norm :attr:`bound` (the function ``clipped_rows`` applies)."""
        return clip_rows(block, self.bound)

    def take(self, indices: np.ndarray) -> np.ndarray:
        """Clipped rows at ``indices``."""
        return self.clip(self.table.take(indices))

    def resident(self, device: str) -> torch.Tensor | None:
        """All clipped rows, encoded once (chunk by chunk) into one float32 tensor on ``device``.

        ``None`` when the table is larger than :data:`~tabpriv.backends.vae.common.RESIDENT_MAX_BYTES`
        (the rows are then read batch by batch with :meth:`take`). Row ``i`` equals ``take([i])[0]``.
        """
        from tabpriv.backends.vae.common import resident_rows

        if device not in self._resident:  # once per fit: training and the release pass share it
            self._resident[device] = resident_rows(self.table, device, self.bound)
        return self._resident[device]

    def iter_chunks(self, chunk_rows: int) -> Iterator[tuple[int, np.ndarray]]:
        """Clipped ``(start, block)`` chunks in row order."""
        for start, block in self.table.iter_chunks(chunk_rows):
            yield start, self.clip(block)

    def chunk_rows(self) -> int:
        """Rows per chunk of the release pass (the table's memory target)."""
        return self.table.chunk_rows_for()


class ArrayRows:
    """An in-memory float32 matrix behind the same interface as :class:`ClippedRows` (no clipping)."""

    def __init__(self, data: np.ndarray) -> None:
        self.data = np.asarray(data, dtype=np.float32)

    @property
    def n_rows(self) -> int:
        """Number of rows."""
        return int(self.data.shape[0])

    @property
    def width(self) -> int:
        """Number of coordinates."""
        return int(self.data.shape[1])

    def take(self, indices: np.ndarray) -> np.ndarray:
        """Rows at ``indices``."""
        return np.asarray(self.data[np.asarray(indices, dtype=np.int64)], dtype=np.float32)

    def iter_chunks(self, chunk_rows: int) -> Iterator[tuple[int, np.ndarray]]:
        """The whole matrix as one chunk."""
        yield 0, self.data

    def resident(self, device: str) -> torch.Tensor | None:
        """The matrix as a tensor on ``device``."""
        return torch.as_tensor(self.data, device=device)

    def chunk_rows(self) -> int:
        """All rows in one chunk."""
        return max(1, self.n_rows)


RowSource = ClippedRows | ArrayRows


def _rows(data: np.ndarray | RowSource) -> RowSource:
    return data if isinstance(data, ClippedRows | ArrayRows) else ArrayRows(data)


@dataclass
class TrainConfig:
    """Training settings."""

    lipschitz: float | None  # None: unconstrained
    encoder_noise: float
    prior_scale: float
    beta: float
    enforcement: str  # "spectral" | "penalty"
    penalty_weight: float
    epochs: int
    batch_size: int
    lr: float
    dp: bool
    noise_multiplier: float = 0.0
    max_grad_norm: float = 1.0
    grad_sample_mode: str = "ghost"


def _per_sample_loss(
    model: LipschitzVAE, heads: Heads, x: torch.Tensor, cfg: TrainConfig, gen: torch.Generator
) -> torch.Tensor:
    if cfg.enforcement == "penalty" and cfg.lipschitz is not None:
        # Finite-difference penalty on a random direction, evaluated inside the same sample (shape
        # (B, 2, d)), so that opacus' per-sample gradients stay per-sample. Certifies nothing.
        u = torch.randn(x.shape, generator=gen, device=x.device)
        u = u / u.norm(dim=1, keepdim=True).clamp_min(1e-12)
        r = 0.5
        pair = torch.stack([x, x + r * u], dim=1)
        mus = model.encode(pair)
        mu = mus[:, 0]
        ratio = (mus[:, 0] - mus[:, 1]).norm(dim=1) / r
        pen = cfg.penalty_weight * torch.relu(ratio - cfg.lipschitz) ** 2
    else:
        mu = model.encode(x)
        pen = torch.zeros(x.shape[0], device=x.device)
    z = mu + cfg.encoder_noise * torch.randn(mu.shape, generator=gen, device=x.device)
    logits = model.dec(z)
    rec = heads.loss(logits, x)
    kl = 0.5 * (mu**2).sum(1) / cfg.prior_scale**2
    return rec + cfg.beta * kl + pen


def train(
    model: LipschitzVAE,
    heads: Heads,
    data: np.ndarray | RowSource,
    cfg: TrainConfig,
    seed: int,
    device: str,
    progress: Any = None,
    *,
    schedule: DPSGDSchedule | None = None,
    sampler_rng: np.random.Generator | None = None,
    noise_rng: np.random.Generator | None = None,
) -> dict[str, Any]:
    """Train (DP-SGD of :mod:`tabpriv.backends.vae.dpsgd_loop` when ``cfg.dp``), projecting after every step.

    ``data``: a matrix of (already clipped) rows, or a :class:`ClippedRows` view of an encoded table.
    The rows are encoded (and clipped) once into a tensor on ``device`` and every batch is an index
    draw on it; a table above :data:`~tabpriv.backends.vae.common.RESIDENT_MAX_BYTES` is instead read
    one minibatch at a time (``take``), so that memory stays ``O(batch × d)``. Same rows either way.

    DP mode needs the accounted ``schedule`` and two secret generators (``sampler_rng`` for the
    Poisson batches, ``noise_rng`` for the gradient noise); it runs exactly ``schedule.steps`` steps.
    ``seed`` is public randomness: the reparameterisation noise of the encoder (and the penalty's
    random directions), which only feed the training and are no privacy mechanism, and the batch
    order of the non-private paper mode.

    Returns:
        ``{"steps": steps executed}``. No loss is returned: a training loss is a figure of the
        private rows without noise.

    """
    from tabpriv._random import derive_seed, torch_generator
    from tabpriv.backends.vae.common import row_reader

    model.to(device)
    source = _rows(data)
    n = source.n_rows
    read_rows = row_reader(source.resident(device), source.take, device)
    gen = torch_generator(derive_seed(seed, "encoder-noise"), device)  # public: reparameterisation
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, foreach=True)  # = single-tensor Adam, bit for bit
    spectral = cfg.enforcement == "spectral" and cfg.lipschitz is not None
    if spectral:
        assert cfg.lipschitz is not None
        project_(model, cfg.lipschitz)
    steps = 0
    if cfg.dp:
        from tabpriv.backends.vae import dpsgd_loop

        if schedule is None or sampler_rng is None or noise_rng is None:
            raise ValueError("DP training needs the accounted schedule and two secret generators.")
        if schedule.n_rows != n:
            raise ValueError(f"The schedule is for {schedule.n_rows} rows; the data has {n}.")

        def after_step() -> None:
            if spectral:
                assert cfg.lipschitz is not None
                project_(model, cfg.lipschitz)

        def on_epoch(step: int, total: int) -> None:
            if progress is not None:
                progress(step // schedule.steps_per_epoch, cfg.epochs, "DP-SGD epoch")

        steps = dpsgd_loop.run_dpsgd(
            model,
            opt,
            lambda xb: _per_sample_loss(model, heads, xb, cfg, gen),
            read_rows,
            schedule,
            noise_multiplier=cfg.noise_multiplier,
            clip=cfg.max_grad_norm,
            sampler_rng=sampler_rng,
            noise_rng=noise_rng,
            after_step=after_step,
            on_epoch=on_epoch,
            grad_sample_mode=cfg.grad_sample_mode,
        )
    else:
        rng = np.random.default_rng(derive_seed(seed, "batches"))
        for epoch in range(cfg.epochs):
            perm = rng.permutation(n)
            for i in range(0, n, cfg.batch_size):
                xb = read_rows(perm[i : i + cfg.batch_size])
                opt.zero_grad(set_to_none=True)
                loss = _per_sample_loss(model, heads, xb, cfg, gen).mean()
                loss.backward()
                opt.step()
                steps += 1
                if spectral:
                    assert cfg.lipschitz is not None
                    project_(model, cfg.lipschitz)
            if progress is not None:
                progress(epoch + 1, cfg.epochs, "epoch")
    model.eval()
    return {"steps": steps}


def release_noise(rng: np.random.Generator, shape: tuple[int, ...], std: float, device: str) -> torch.Tensor:
    """The per-record Gaussian mechanism's noise ``N(0, std^2)``, from the secret generator ``rng``."""
    from tabpriv._random import secret_normal_torch

    return secret_normal_torch(rng, shape, std=std, device=device)


def encode_noisy(
    model: LipschitzVAE,
    data: np.ndarray | RowSource,
    encoder_noise: float,
    k: int,
    rng: np.random.Generator | int,
    device: str,
) -> np.ndarray:
    """Noisy latent codes ``mu(x_i) + s * xi`` (K per row), the per-record Gaussian mechanism.

    The encoder means are computed chunk by chunk (``data.iter_chunks``) into an ``(n, latent)``
    array; the noise ``s * xi`` is then drawn in one call from ``rng``, a secret ChaCha20 generator
    (:meth:`FitContext.secret_rng`). An ``int`` is taken as the key of such a generator (research
    scripts only: whoever knows it can subtract the noise).
    """
    from tabpriv._random import secret_generator

    source = _rows(data)
    gen = secret_generator(rng, "lipschitz-vae-release") if isinstance(rng, int) else rng
    resident = source.resident(device)
    with torch.no_grad():
        if resident is not None:  # the rows training encoded, in the same chunks as the streaming pass
            step = source.chunk_rows()
            parts = [model.encode(resident[a : a + step]) for a in range(0, source.n_rows, step)]
        else:
            parts = [
                model.encode(torch.as_tensor(block, dtype=torch.float32, device=device))
                for _, block in source.iter_chunks(source.chunk_rows())
            ]
        mu = parts[0] if len(parts) == 1 else torch.cat(parts, dim=0)
        del parts
        mu = mu.repeat_interleave(k, dim=0)
        z = mu + release_noise(gen, tuple(mu.shape), float(encoder_noise), device)
    return z.cpu().numpy().astype(np.float32)


def decode(model: LipschitzVAE, heads: Heads, z: np.ndarray, device: str, seed: int = 0) -> np.ndarray:
    """Decode latents into encoded rows on ``device`` (activated; binned numbers drawn with ``seed``).

    The decoder and the draws run on ``device`` (the model must be there); the rows are copied to
    the host once. On the CPU the rows are those of earlier versions, bit for bit.
    """
    from tabpriv._random import torch_generator

    with torch.no_grad():
        logits = model.dec(torch.as_tensor(z, dtype=torch.float32, device=device))
        out = heads.activate(logits, torch_generator(seed, str(logits.device)))
    return out.cpu().numpy().astype(np.float32, copy=False)


def encoder_mean(model: LipschitzVAE, x: np.ndarray) -> np.ndarray:
    """mu(x) in float64 on the CPU (for tests of the certified bound)."""
    with torch.no_grad():
        enc = [(layer.weight.double().cpu(), layer.bias.double().cpu()) for layer in linears(model)]
        h = torch.as_tensor(x, dtype=torch.float64)
        for i, (w, b) in enumerate(enc):
            h = h @ w.T + b
            if i < len(enc) - 1:
                h = torch.relu(h)
    return h.numpy()


def state_arrays(model: LipschitzVAE) -> dict[str, np.ndarray]:
    """Model parameters as numpy arrays."""
    return {f"model.{k}": v.detach().cpu().numpy().copy() for k, v in model.state_dict().items()}


def load_arrays(model: LipschitzVAE, arrays: dict[str, np.ndarray]) -> None:
    """Inverse of :func:`state_arrays`."""
    sd = {k[len("model.") :]: torch.as_tensor(v) for k, v in arrays.items() if k.startswith("model.")}
    model.load_state_dict(sd)
