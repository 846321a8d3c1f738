"""Shared torch code of the VAE backends (dp2-vae, dpsgd-vae; the number heads also lipschitz-vae).

The VAE works on the encoded table (:class:`~tabpriv.transformers.encoded.EncodedTable`): the encoder
is an MLP ``d -> hidden -> 2 * latent`` (mean and log-variance), the decoder an MLP
``latent (+ condition) -> hidden -> d'`` whose raw outputs get one head per activation block: a
softmax for a categorical block, a head per number (below) and a sigmoid for a missing indicator. The
reconstruction loss matches the heads: cross-entropy, the number head's loss and binary cross-entropy.

Numbers (``numeric_bins > 0``, the default of the VAE backends): each number gets a softmax over
bins of its encoded range ``[-1, 1]``. An integer column with at most
:data:`~tabpriv.transformers.levels.DEFAULT_MAX_LEVELS` (100) values, or at most ``numeric_bins`` if
that is larger, has one bin per value and is sampled exactly on a value (the rule of the marginal
backends, :mod:`tabpriv.transformers.levels`); any other number has ``bins`` equal-width bins (the
schema's histogram hint, else ``numeric_bins``) and is sampled uniformly within the drawn bin (a
binned integer is then rounded by its transformer, so it stays a whole number within its bounds).
Files saved before this rule (exact bins only up to ``numeric_bins`` values) load with the old rule
(``integer_levels = 0``). The loss is the
cross-entropy of the true bin, left out where the value is missing. This is a discretised likelihood:
it can represent spikes and several modes (Adult's ``capital-gain`` is 0 for 92% of rows,
``hours-per-week`` 40 for 47%). ``numeric_bins = 0`` keeps the regression head of the first version
(``tanh`` of one output, squared error, sampled as the decoder mean with no observation noise), which
collapses every number toward its conditional mean (measured in ``docs/privacy.md``, "Number heads").

Conditional variant: when a target column is chosen, the decoder also receives that column's encoded
block (a one-hot vector for a categorical target), so samples can be drawn per target value.

This module imports torch at the top: only the private ``_*_torch`` modules import it.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from torch import nn

from tabpriv.transformers.encoded import ColumnSpan, EncodedTable
from tabpriv.transformers.levels import DEFAULT_MAX_LEVELS, keeps_values

__all__ = [
    "MLP",
    "RESIDENT_MAX_BYTES",
    "NumericHead",
    "RowTable",
    "SpanLayout",
    "TakeDataset",
    "column_sums",
    "decode_rows",
    "decode_rows_tensor",
    "init_linear_",
    "kl_divergence",
    "recon_loss",
    "resident_rows",
    "row_reader",
]

#: Largest encoded table (``n_rows × width × 4`` bytes) the VAE backends encode once and keep whole,
#: as one float32 tensor on the training device, for the whole fit (1 GiB; Adult is 15 MB). A larger
#: table is read batch by batch with ``table.take`` (memory ``O(batch × d)``), with the same rows.
RESIDENT_MAX_BYTES = 1 << 30


@dataclass(frozen=True)
class NumericHead:
    """A binned head for one encoded number.

    Attributes:
        index: The number's coordinate in the encoded row.
        offset: First decoder output of its bin logits.
        n_bins: Number of bins.
        exact: One bin per integer value (the bins' centres are the values); otherwise equal-width
            bins sampled uniformly within.
        missing: Coordinate of the number's missing indicator, or ``None``.

    """

    index: int
    offset: int
    n_bins: int
    exact: bool
    missing: int | None

    def target(self, x: torch.Tensor) -> torch.Tensor:
        """Bin of each encoded value ``x`` in ``[-1, 1]`` (int64, same shape)."""
        u = (x.clamp(-1.0, 1.0) + 1.0) * 0.5
        if self.exact:
            return torch.round(u * (self.n_bins - 1)).long()
        return torch.clamp(torch.floor(u * self.n_bins), 0, self.n_bins - 1).long()

    def nll(self, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the true bin of rows ``x`` (shape ``x.shape[:-1]``); 0 where missing."""
        return self.nll_block(logits[..., self.offset : self.offset + self.n_bins], x)

    def nll_block(self, block: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """:meth:`nll` from this head's own ``n_bins`` logits (``block``, e.g. one part of a split)."""
        logp = torch.log_softmax(block, dim=-1)
        out = -torch.gather(logp, -1, self.target(x[..., self.index]).unsqueeze(-1)).squeeze(-1)
        return out if self.missing is None else out * (1.0 - x[..., self.missing])

    def draw(self, logits: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """Encoded values drawn from ``logits`` of shape ``(n, out_width)``: a bin, then its value.

        ``gen`` lives on the device of ``logits`` (the draw happens there).
        """
        p = torch.softmax(logits[:, self.offset : self.offset + self.n_bins], dim=-1)
        return self.value(torch.multinomial(p, 1, generator=gen).squeeze(1), gen)

    def value(self, bins: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """Encoded values of drawn ``bins``: the value itself, or uniform within the bin."""
        b = bins.to(torch.float32)
        if self.exact:
            return b / max(self.n_bins - 1, 1) * 2.0 - 1.0
        u = torch.rand(b.shape, generator=gen, device=b.device)
        return (b + u) / self.n_bins * 2.0 - 1.0


@dataclass(frozen=True)
class SpanLayout:
    """Where each activation block of the encoded rows lies.

    Attributes:
        width: Encoded width d.
        softmax: ``(start, width)`` of each categorical block.
        tanh: Indices of the numeric coordinates.
        sigmoid: Indices of the missing indicators.
        cond: ``(start, width)`` of the conditioning column's span, or ``None``.
        numeric: Binned heads of the numbers (empty with the regression head). Their bin logits follow
            the ``width`` outputs that mirror the encoded row; the outputs at the numbers' own
            coordinates are then unused.

    """

    width: int
    softmax: tuple[tuple[int, int], ...]
    tanh: tuple[int, ...]
    sigmoid: tuple[int, ...]
    cond: tuple[int, int] | None = None
    numeric: tuple[NumericHead, ...] = ()

    @classmethod
    def from_spans(
        cls,
        spans: tuple[ColumnSpan, ...],
        condition_on: str | None = None,
        numeric_bins: int = 0,
        integer_levels: int = DEFAULT_MAX_LEVELS,
    ) -> SpanLayout:
        """Build the layout of ``spans``.

        Args:
            spans: The encoded table's column spans.
            condition_on: Name of the conditioning column, or ``None``.
            numeric_bins: Bins of a number's head (``0``: the regression head); see the module
                docstring.
            integer_levels: Integer columns with at most ``max(integer_levels, numeric_bins)``
                values get one bin per value (``0``: the rule of files saved before it existed).

        """
        softmax: list[tuple[int, int]] = []
        tanh: list[int] = []
        sigmoid: list[int] = []
        cond: tuple[int, int] | None = None
        for s in spans:
            if condition_on is not None and s.name == condition_on:
                cond = (s.start, s.width)
            for b in s.blocks:
                if b.activation == "softmax":
                    softmax.append((b.start, b.width))
                elif b.activation == "tanh":
                    tanh.extend(range(b.start, b.stop))
                else:
                    sigmoid.extend(range(b.start, b.stop))
        width = spans[-1].stop if spans else 0
        heads: list[NumericHead] = []
        if numeric_bins > 0:
            offset = width
            for s in spans:
                num = [b for b in s.blocks if b.activation == "tanh"]
                if not num:
                    continue
                miss = next((b.start for b in s.blocks if b.activation == "sigmoid"), None)
                exact = keeps_values(s, max(integer_levels, numeric_bins))
                k = (s.n_levels or 1) if exact else (s.bins or numeric_bins)
                heads.append(NumericHead(num[0].start, offset, int(k), exact, miss))
                offset += int(k)
        return cls(width, tuple(softmax), tuple(tanh), tuple(sigmoid), cond, tuple(heads))

    @property
    def out_width(self) -> int:
        """Number of decoder outputs."""
        return self.width + sum(h.n_bins for h in self.numeric)

    @functools.cached_property
    def split(self) -> tuple[tuple[int, ...], dict[int, int]]:
        """The decoder outputs cut into the consecutive parts the loss reads: ``(sizes, part of start)``.

        Every softmax block, bin block and indicator (and, with the regression head, number) is one
        part; the outputs nothing reads form parts of their own. :func:`recon_loss` splits the logits
        once (``torch.split``: views, whose backward is one concatenation) instead of slicing each
        block (each slice's backward fills a zero tensor of the whole logits' size).
        """
        used: list[tuple[int, int]] = list(self.softmax)
        used += [(h.offset, h.n_bins) for h in self.numeric]
        used += [(i, 1) for i in self.sigmoid]
        if not self.numeric:
            used += [(i, 1) for i in self.tanh]
        sizes: list[int] = []
        where: dict[int, int] = {}
        at = 0
        for start, w in sorted(used):
            if start < at:  # pragma: no cover - the blocks of an encoding never overlap
                raise ValueError(f"decoder output blocks overlap at {start}")
            if start > at:
                sizes.append(start - at)
            where[start] = len(sizes)
            sizes.append(w)
            at = start + w
        if self.out_width > at:
            sizes.append(self.out_width - at)
        return tuple(sizes), where

    @property
    def cond_width(self) -> int:
        """Width of the condition vector (0 when unconditional)."""
        return 0 if self.cond is None else self.cond[1]

    def condition(self, x: torch.Tensor) -> torch.Tensor:
        """The condition vector of encoded rows ``x`` (``(..., 0)`` when unconditional)."""
        if self.cond is None:
            return x[..., :0]
        a, w = self.cond
        return x[..., a : a + w]


class MLP(nn.Module):
    """``in -> hidden (ReLU) -> ... -> out`` (linear output)."""

    def __init__(self, sizes: list[int]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(len(sizes) - 1):
            layers.append(nn.Linear(sizes[i], sizes[i + 1]))
            if i < len(sizes) - 2:
                layers.append(nn.ReLU())
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the MLP."""
        out: torch.Tensor = self.net(x)
        return out


def init_linear_(module: nn.Module, gen: torch.Generator) -> None:
    """Re-initialise every ``nn.Linear`` of ``module`` from ``gen`` (PyTorch's default law)."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.Linear):
                bound = 1.0 / math.sqrt(m.in_features)
                w = torch.rand(m.weight.shape, generator=gen, device=m.weight.device)
                m.weight.copy_((w * 2 - 1) * bound)
                b = torch.rand(m.bias.shape, generator=gen, device=m.bias.device)
                m.bias.copy_((b * 2 - 1) * bound)


def encoder_sizes(width: int, hidden: int, latent: int) -> list[int]:
    """Layer sizes of the encoder."""
    return [width, hidden, hidden, 2 * latent]


def decoder_sizes(out_width: int, hidden: int, latent: int, cond_width: int) -> list[int]:
    """Layer sizes of the decoder (``out_width``: :attr:`SpanLayout.out_width`)."""
    return [latent + cond_width, hidden, hidden, out_width]


def recon_loss(logits: torch.Tensor, x: torch.Tensor, layout: SpanLayout) -> torch.Tensor:
    """Per-example reconstruction loss, summed over blocks: shape ``logits.shape[:-1]``.

    Softmax blocks: cross-entropy against the one-hot target; numbers: cross-entropy of the true bin
    (not counted where the value is missing), or with the regression head squared error of
    tanh(output); indicators: binary cross-entropy with the sigmoid of the output.
    """
    sizes, where = layout.split
    parts = torch.split(logits, list(sizes), dim=-1)  # views (the same values as slices), one backward

    def cols(idx: Sequence[int]) -> torch.Tensor:  # = logits[..., idx], from the parts
        return torch.cat([parts[where[i]] for i in idx], dim=-1)

    loss = torch.zeros(logits.shape[:-1], dtype=logits.dtype, device=logits.device)
    for a, w in layout.softmax:
        logp = torch.log_softmax(parts[where[a]], dim=-1)
        loss = loss - (logp * x[..., a : a + w]).sum(-1)
    for h in layout.numeric:
        loss = loss + h.nll_block(parts[where[h.offset]], x)
    if layout.tanh and not layout.numeric:
        idx = list(layout.tanh)
        loss = loss + ((torch.tanh(cols(idx)) - x[..., idx]) ** 2).sum(-1) * 4.0
    if layout.sigmoid:
        idx = list(layout.sigmoid)
        loss = loss + nn.functional.binary_cross_entropy_with_logits(
            cols(idx), x[..., idx], reduction="none"
        ).sum(-1)
    return loss


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Per-example KL(N(mu, exp(logvar)) || N(0, I))."""
    return 0.5 * (mu**2 + logvar.exp() - 1.0 - logvar).sum(-1)


def decode_rows(logits: torch.Tensor, layout: SpanLayout, gen: torch.Generator) -> np.ndarray:
    """Turn decoder outputs into encoded rows: categories and indicators are sampled.

    Categorical blocks become one-hot vectors drawn from the softmax; numbers are drawn from their
    bins (or, with the regression head, are ``tanh(output)``); a missing indicator is drawn from its
    sigmoid, and a missing number is set to 0 (the encoding of a missing value). The conditioning
    block, if any, is copied from ``cond`` by the caller.

    Everything is drawn on the device of ``logits`` with ``gen`` (a generator on that device); the
    rows are copied to the host once, at the end.
    """
    return decode_rows_tensor(logits, layout, gen).cpu().numpy()


def decode_rows_tensor(logits: torch.Tensor, layout: SpanLayout, gen: torch.Generator) -> torch.Tensor:
    """:func:`decode_rows` without the final copy: float32 rows on the device of ``logits``."""
    n = logits.shape[0]
    dev = logits.device
    lg = logits.detach().float()
    out = torch.zeros((n, layout.width), dtype=torch.float32, device=dev)
    rows = torch.arange(n, device=dev)
    for a, w in layout.softmax:
        p = torch.softmax(lg[:, a : a + w], dim=-1)
        codes = torch.multinomial(p, 1, generator=gen).squeeze(1)
        out[rows, a + codes] = 1.0
    for h in layout.numeric:
        out[:, h.index] = h.draw(lg, gen)
    if layout.tanh and not layout.numeric:
        idx = list(layout.tanh)
        out[:, idx] = torch.tanh(lg[:, idx])
    if layout.sigmoid:
        idx = list(layout.sigmoid)
        p = torch.sigmoid(lg[:, idx])
        miss = (torch.rand(p.shape, generator=gen, device=dev) < p).float()
        out[:, idx] = miss
        # A missing number is encoded as value 0; its value coordinate precedes its indicator.
        val_idx = [i - 1 for i in idx]
        out[:, val_idx] = out[:, val_idx] * (1.0 - miss)
    return out


def sample_condition(
    probs: np.ndarray, n: int, gen: torch.Generator, device: str | torch.device = "cpu"
) -> torch.Tensor:
    """Draw ``n`` one-hot condition vectors from a (released, noisy) distribution ``probs`` on ``device``."""
    p = torch.as_tensor(probs, dtype=torch.float32, device=device)
    codes = torch.multinomial(p, n, replacement=True, generator=gen)
    c = torch.zeros((n, p.shape[0]), dtype=torch.float32, device=p.device)
    c[torch.arange(n, device=p.device), codes] = 1.0
    return c


# -- reads of the encoded table ----------------------------------------------------------------------
def resident_rows(
    table: EncodedTable, device: str | torch.device, clip: float | None = None
) -> torch.Tensor | None:
    """All rows of ``table`` encoded once, chunk by chunk, into one float32 tensor on ``device``.

    Each chunk of ``table.iter_chunks`` is encoded (and, with ``clip``, clipped row by row with
    :func:`~tabpriv.transformers.encoded.clip_rows`, as ``ClippedRows.take`` does) and copied into
    place, so row ``i`` equals ``table.take([i])[0]`` value for value and the table stays lazy.
    ``None`` when the table is larger than :data:`RESIDENT_MAX_BYTES` (read it batch by batch).
    """
    from tabpriv.transformers.encoded import clip_rows

    if table.nbytes > RESIDENT_MAX_BYTES:
        return None
    dev = torch.device(device)
    out = torch.empty((table.n_rows, table.width), dtype=torch.float32, pin_memory=dev.type == "cuda")
    for start, block in table.iter_chunks(table.chunk_rows_for()):
        b = clip_rows(block, clip) if clip is not None else block
        out[start : start + b.shape[0]] = torch.from_numpy(np.ascontiguousarray(b, dtype=np.float32))
    return out if dev.type == "cpu" else out.to(dev, non_blocking=True)


def row_reader(
    resident: torch.Tensor | None,
    take: Callable[[np.ndarray], np.ndarray],
    device: str | torch.device,
) -> Callable[[np.ndarray], torch.Tensor]:
    """``idx -> rows (len(idx), d)`` on ``device``: an index draw on ``resident``, else ``take`` + copy."""
    dev = torch.device(device)
    if resident is not None:
        table = resident

        def read(idx: np.ndarray) -> torch.Tensor:
            i = torch.from_numpy(np.ascontiguousarray(idx, dtype=np.int64))
            return table.index_select(0, i if dev.type == "cpu" else i.to(dev, non_blocking=True))

        return read

    def read_taken(idx: np.ndarray) -> torch.Tensor:
        block = np.ascontiguousarray(take(np.asarray(idx, dtype=np.int64)), dtype=np.float32)
        return torch.from_numpy(block).to(dev)

    return read_taken


# -- streaming reads of the encoded table ------------------------------------------------------------
def column_sums(table: EncodedTable, start: int, width: int) -> np.ndarray:
    """Sums over all rows of the coordinates ``[start, start + width)``, read chunk by chunk (float64).

    Each chunk is summed in float32 (as ``table.data[:, a:b].sum(axis=0)`` would) and the chunk sums
    are added in float64. For the 0/1 coordinates of a one-hot block every partial sum is an integer
    below 2**24 per chunk, so the result equals the whole-matrix float32 sum exactly (for fewer than
    2**24 rows).
    """
    total = np.zeros(width, dtype=np.float64)
    for _, block in table.iter_chunks(table.chunk_rows_for()):
        total += block[:, start : start + width].sum(axis=0).astype(np.float64)
    return total


class RowTable(Protocol):
    """What :class:`TakeDataset` reads: an :class:`EncodedTable`, or a view of one (e.g. clipped rows)."""

    @property
    def n_rows(self) -> int:
        """Number of rows."""
        ...

    @property
    def width(self) -> int:
        """Number of coordinates."""
        ...

    def take(self, indices: np.ndarray) -> np.ndarray:
        """float32 rows at ``indices`` (in that order)."""
        ...


class TakeDataset(torch.utils.data.Dataset[tuple[torch.Tensor]]):
    """A map-style dataset over the rows of an :class:`EncodedTable` (or a :class:`RowTable`).

    It is what ``TensorDataset(torch.as_tensor(table.data))`` would be, without materialising the
    table: each batch the sampler asks for (opacus' Poisson batches included) is read on demand, in
    the sampler's order, through :meth:`__getitems__` (one ``take`` per batch). Items are 1-tuples of
    float32 CPU tensors, so ``default_collate`` stacks them exactly as it stacks rows of a tensor.

    Args:
        table: The rows to serve.

    """

    def __init__(self, table: EncodedTable | RowTable) -> None:
        self.table = table

    def __len__(self) -> int:
        return self.table.n_rows

    def rows(self, indices: Sequence[int] | np.ndarray) -> torch.Tensor:
        """Rows at ``indices`` (in that order) as one ``(len(indices), width)`` float32 tensor."""
        idx = np.asarray(indices, dtype=np.int64)
        if idx.size == 0:
            return torch.zeros((0, self.table.width), dtype=torch.float32)
        block = self.table.take(idx)
        return torch.from_numpy(np.ascontiguousarray(block, dtype=np.float32))

    def __getitem__(self, i: int) -> tuple[torch.Tensor]:
        return (self.rows([int(i)])[0],)

    def __getitems__(self, indices: list[int]) -> list[tuple[torch.Tensor]]:
        """One ``take`` for a whole batch (used by the DataLoader's fetcher)."""
        if len(indices) == 0:
            return []
        return [(row,) for row in self.rows(indices)]
