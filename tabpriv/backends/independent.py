"""The ``independent`` backend: noisy one-way marginals, sampled column by column.

Each column's histogram is released once with the Gaussian mechanism (categories as they are; numbers
in equal-width bins over the declared bounds; missing as one more bin). Synthetic rows draw each column
independently from its noisy marginal, so every dependency between columns is lost: this is the quality
floor every other backend must beat, and the test double of the pipeline.

Privacy: under **replace-one** adjacency, changing one row moves one count down and one count up in
every column's histogram, so the L2 sensitivity of all c histograms together is sqrt(2c). One Gaussian
mechanism with sigma calibrated exactly (analytic Gaussian mechanism, Balle & Wang 2018, from Google's
dp-accounting) gives (epsilon, delta)-DP. Pure numpy: no torch.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tabpriv.accounting import calibrate_gaussian
from tabpriv.backends.base import Backend, FitContext, PrivacyDetails
from tabpriv.budget import PrivacyLedger
from tabpriv.errors import PrivacyParameterError
from tabpriv.transformers.encoded import DEFAULT_CHUNK_BYTES, ColumnSpan, EncodedTable

__all__ = ["IndependentBackend", "histogram_layout"]


def histogram_layout(span: ColumnSpan, default_bins: int) -> tuple[int, bool]:
    """Number of value bins of a column and whether it has a trailing "missing" bin.

    Categorical: one bin per category (the one-hot block already holds the missing category).
    Integer: one bin per value when there are at most ``default_bins`` values, else the schema's
    ``bins`` hint or ``default_bins`` equal-width bins. Continuous: the hint or ``default_bins``.
    """
    if span.kind == "categorical":
        return span.width, False
    has_missing = span.width == 2
    if span.kind == "integer" and span.n_levels is not None and span.n_levels <= default_bins:
        return span.n_levels, has_missing
    return span.bins or default_bins, has_missing


def _bin_codes(block: np.ndarray, span: ColumnSpan, n_bins: int, has_missing: bool) -> np.ndarray:
    """Integer bin code per row for one encoded column."""
    if span.kind == "categorical":
        return np.asarray(block.argmax(axis=1), dtype=np.int64)
    v = np.clip(block[:, 0].astype(np.float64), -1.0, 1.0)
    codes = np.minimum(np.floor((v + 1.0) * 0.5 * n_bins), n_bins - 1).astype(np.int64)
    if has_missing:
        codes = np.where(block[:, 1] > 0.5, n_bins, codes)
    return codes


def _true_histograms(
    table: EncodedTable, layouts: list[tuple[int, bool]], chunk_bytes: int
) -> list[np.ndarray]:
    """Exact int64 histogram of every column, accumulated over row chunks of ``table``.

    Reads the table only through :meth:`EncodedTable.iter_chunks`; memory ``O(chunk × width)``.
    """
    counts = [np.zeros(nb + int(m), dtype=np.int64) for nb, m in layouts]
    for _, block in table.iter_chunks(table.chunk_rows_for(chunk_bytes)):
        for j, span in enumerate(table.spans):
            n_bins, has_missing = layouts[j]
            codes = _bin_codes(block[:, span.slice], span, n_bins, has_missing)
            counts[j] += np.bincount(codes, minlength=counts[j].size)
    return counts


class IndependentBackend(Backend):
    """Noisy one-way marginals (Gaussian mechanism), columns sampled independently.

    Args:
        bins: Default number of equal-width bins for numeric columns (the schema's ``bins`` wins).
        chunk_bytes: Memory target of one encoded chunk read during ``fit`` (the histograms are
            accumulated chunk by chunk; the result does not depend on it).

    """

    name = "independent"
    guarantee = "dp"
    devices = ("cpu",)
    summary = "Noisy one-way marginals (Gaussian mechanism); the quality floor. No correlations."
    streaming = True

    def __init__(self, *, bins: int = 32, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> None:
        self.bins = bins
        self.chunk_bytes = chunk_bytes

    def fit(self, table: EncodedTable, ledger: PrivacyLedger, context: FitContext) -> Backend:
        """Release every column's histogram once with calibrated Gaussian noise."""
        if isinstance(self.bins, bool) or not isinstance(self.bins, int) or self.bins < 1:
            raise PrivacyParameterError(f"bins must be a positive integer; got {self.bins!r}.")
        cb = self.chunk_bytes
        if isinstance(cb, bool) or not isinstance(cb, int) or cb < 1:
            raise PrivacyParameterError(
                f"chunk_bytes must be a positive integer (bytes per chunk read); got {cb!r}."
            )
        n_cols = table.n_columns
        sensitivity = math.sqrt(2.0 * n_cols)
        eps_left, delta_left = ledger.available()
        cal = calibrate_gaussian(eps_left, delta_left, sensitivity)
        layouts = [histogram_layout(s, self.bins) for s in table.spans]
        # Pay first: an over-budget request raises here, before the data is read.
        ledger.spend(
            mechanism="Gaussian mechanism on all one-way marginals (histograms)",
            epsilon=cal.epsilon,
            delta=cal.delta,
            accountant=cal.accountant,
            parameters={
                "sigma": cal.sigma,
                "l2_sensitivity": sensitivity,
                "noise_multiplier": cal.noise_multiplier,
                "adjacency": "replace-one",
                "n_histograms": n_cols,
                "n_cells": int(sum(nb + int(m) for nb, m in layouts)),
            },
        )
        counts = _true_histograms(table, layouts, self.chunk_bytes)
        rng = np.random.default_rng(context.seed)
        noisy: list[np.ndarray] = []
        for span, c in zip(table.spans, counts, strict=True):
            noisy.append(c.astype(np.float64) + rng.normal(0.0, cal.sigma, size=c.size))
            context.report(len(noisy), n_cols, f"released marginal of {span.name}")
        self.noisy_counts_ = noisy
        self.sigma_ = cal.sigma
        self.sensitivity_ = sensitivity
        self.epsilon_ = cal.epsilon
        self.delta_ = cal.delta
        self.accountant_ = cal.accountant
        self.spans_ = table.spans
        return self

    def _probabilities(self, counts: np.ndarray) -> np.ndarray:
        p = np.clip(counts, 0.0, None)
        total = p.sum()
        return p / total if total > 0 else np.full_like(p, 1.0 / len(p))

    def sample(self, n: int, seed: int) -> np.ndarray:
        """Draw ``n`` encoded rows, each column independently from its noisy marginal."""
        self.check_fitted()
        rng = np.random.default_rng(seed)
        out = np.zeros((n, self.width_), dtype=np.float32)
        for span, counts in zip(self.spans_, self.noisy_counts_, strict=True):
            n_bins, has_missing = histogram_layout(span, self.bins)
            codes = rng.choice(len(counts), size=n, p=self._probabilities(counts))
            if span.kind == "categorical":
                out[np.arange(n), span.start + codes] = 1.0
                continue
            is_missing = codes == n_bins if has_missing else np.zeros(n, dtype=bool)
            if span.kind == "integer" and span.n_levels is not None and n_bins == span.n_levels:
                # One bin per integer value: put the value exactly on its level.
                v = -1.0 + 2.0 * codes / max(span.n_levels - 1, 1)
            else:
                v = -1.0 + 2.0 * (codes + rng.random(n)) / n_bins
            out[:, span.start] = np.where(is_missing, 0.0, np.clip(v, -1.0, 1.0))
            if has_missing:
                out[:, span.start + 1] = is_missing
        return out

    def privacy_details(self) -> PrivacyDetails:
        """State the mechanism, accountant and noise."""
        self.check_fitted()
        return PrivacyDetails(
            mechanism="Gaussian mechanism on all one-way marginals (one release)",
            adjacency="replace-one",
            accountant=self.accountant_,
            noise={"sigma": self.sigma_, "l2_sensitivity": self.sensitivity_},
            covered=[
                "the released noisy histograms and every table sampled from them",
                "the encoding (the schema is public and costs nothing)",
            ],
            not_covered=[
                "the number of rows n, treated as public (replace-one adjacency)",
                "side channels: floating-point noise sampling (Mironov 2012) is not hardened",
            ],
        )

    def get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Noisy counts as arrays; figures as metadata."""
        self.check_fitted()
        arrays = {f"counts_{i}": c for i, c in enumerate(self.noisy_counts_)}
        meta = {
            "sigma": self.sigma_,
            "sensitivity": self.sensitivity_,
            "epsilon": self.epsilon_,
            "delta": self.delta_,
            "accountant": self.accountant_,
            "n_columns": len(self.noisy_counts_),
        }
        return arrays, meta

    def set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        """Restore from :meth:`get_state` output."""
        n = int(meta["n_columns"])
        self.noisy_counts_ = [np.asarray(arrays[f"counts_{i}"], dtype=np.float64) for i in range(n)]
        self.sigma_ = float(meta["sigma"])
        self.sensitivity_ = float(meta["sensitivity"])
        self.epsilon_ = float(meta["epsilon"])
        self.delta_ = float(meta["delta"])
        self.accountant_ = str(meta["accountant"])
