"""The ``independent`` backend: noisy one-way marginals, sampled column by column.

Each column's histogram is released once with the discrete Gaussian mechanism on its integer counts
(categories as they are; numbers in equal-width bins over the declared bounds; missing as one more bin).
Synthetic rows draw each column independently from its noisy marginal, so every dependency between
columns is lost: this is the quality floor every other backend must beat, and the test double of the
pipeline.

Privacy: under **replace-one** adjacency, changing one row moves one count down and one count up in
every column's histogram, so the L2 sensitivity of all c histograms together is sqrt(2c). The
discrete Gaussian ``N_Z(0, sigma^2)`` on every count is ``rho = 2c / (2 sigma^2)``-zCDP (Canonne,
Kamath & Steinke 2020), converted to (epsilon, delta) with their tight conversion; sigma is the
smallest with epsilon <= the budget (:func:`tabpriv.accounting.calibrate_discrete_gaussian`).

Sampler. An unseeded release draws the noise with OpenDP's discrete Gaussian
(``make_gaussian`` on ``vector_domain(atom_domain(T="i64"))``): exact integer arithmetic and OpenDP's
own OS-entropy CSPRNG, hence **hardened against floating-point attacks** (Mironov 2012). OpenDP cannot be
seeded, so a seeded research run draws the same distribution with
:func:`tabpriv._random.sample_discrete_gaussian` (Canonne-Kamath-Steinke rejection sampling, float64
numpy arithmetic, on the run's seeded ChaCha20 secret stream): reproducible, not hardened.

Audit seams (module level, monkeypatched by the privacy audits): :func:`l2_sensitivity`,
:func:`noise_calibration` and :func:`draw_noise`. Pure numpy (and OpenDP): no torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from tabpriv._random import SECRET_GENERATOR, sample_discrete_gaussian
from tabpriv.accounting import OPENDP_VERSION, DiscreteGaussianCalibration, calibrate_discrete_gaussian
from tabpriv.backends._params import Constraint, Interval
from tabpriv.backends.base import Backend, FitContext, PlannedSpend, PrivacyDetails, PrivacyPlan
from tabpriv.budget import PrivacyBudget
from tabpriv.engine import map_sum
from tabpriv.errors import SaveFileError
from tabpriv.transformers.encoded import DEFAULT_CHUNK_BYTES, ColumnSpan, EncodedTable
from tabpriv.transformers.levels import DEFAULT_MAX_LEVELS, keeps_values

__all__ = [
    "IndependentBackend",
    "IndependentNoise",
    "draw_noise",
    "histogram_layout",
    "l2_sensitivity",
    "noise_calibration",
]

#: Secret-stream purpose of the seeded sampler's noise.
_NOISE_PURPOSE = "independent-noise"


def l2_sensitivity(n_columns: int) -> float:
    """Replace-one L2 sensitivity of all ``n_columns`` one-way histograms together: ``sqrt(2 c)``."""
    return math.sqrt(2.0 * n_columns)


def noise_calibration(epsilon: float, delta: float, sensitivity: float) -> DiscreteGaussianCalibration:
    """The discrete Gaussian scale for the budget: smallest sigma with epsilon(rho) <= ``epsilon``."""
    return calibrate_discrete_gaussian(epsilon, delta, sensitivity)


def opendp_discrete_gaussian(sigma: float) -> Any:
    """OpenDP's discrete Gaussian on an i64 count vector (L2 distance read as a real number).

    Shared by every count backend (``independent``, ``mst``, ``aim``).
    """
    import opendp.prelude as dp

    dp.enable_features("contrib")
    return dp.m.make_gaussian(dp.vector_domain(dp.atom_domain(T="i64")), dp.l2_distance(T="f64"), sigma)


def sampler_name(seeded: bool) -> str:
    """The sampler used for a seeded / unseeded run, in words (stated in the ledger and the report)."""
    if seeded:
        return (
            "seeded research run: Canonne-Kamath-Steinke 2020 rejection sampler in float64 numpy on "
            f"{SECRET_GENERATOR.split(' keyed')[0]} keyed from the seed (not hardened)"
        )
    return f"OpenDP {OPENDP_VERSION} discrete Gaussian (exact integer sampler, OpenDP's OS-entropy CSPRNG)"


def _mechanism(seeded: bool) -> str:
    if seeded:
        return "discrete Gaussian (seeded CKS sampler on ChaCha20, research run) on one-way counts"
    return f"discrete Gaussian (OpenDP {OPENDP_VERSION}) on one-way counts"


def draw_noise(size: int, sigma: float, context: FitContext) -> np.ndarray:
    """``size`` draws of ``N_Z(0, sigma^2)`` (int64) for one release.

    Unseeded: OpenDP's sampler (hardened). Seeded: :func:`sample_discrete_gaussian` on
    ``context.secret_rng("independent-noise")`` (reproducible, not hardened).
    """
    if context.seeded:
        return sample_discrete_gaussian(context.secret_rng(_NOISE_PURPOSE), sigma, size)
    noise = opendp_discrete_gaussian(sigma)(np.zeros(size, dtype=np.int64))
    return np.asarray(noise, dtype=np.int64)


def histogram_layout(span: ColumnSpan, default_bins: int) -> tuple[int, bool]:
    """Number of value bins of a column and whether it has a trailing "missing" bin.

    Categorical: one bin per category (the one-hot block already holds the missing category).
    Integer: one bin per value under tabpriv's shared rule
    (:func:`tabpriv.transformers.levels.keeps_values`: at most
    :data:`~tabpriv.transformers.levels.DEFAULT_MAX_LEVELS` values, or at most ``default_bins`` when
    that is larger), else the schema's ``bins`` hint or ``default_bins`` equal-width bins. Continuous:
    the hint or ``default_bins``. The layout reads only the schema's span (public).
    """
    return _layout(span, default_bins, max(DEFAULT_MAX_LEVELS, default_bins))


def _legacy_layout(span: ColumnSpan, default_bins: int) -> tuple[int, bool]:
    """The layout of files saved before the shared integer rule (one bin per value up to ``bins``)."""
    return _layout(span, default_bins, default_bins)


def _layout(span: ColumnSpan, default_bins: int, max_levels: int) -> tuple[int, bool]:
    """One bin per category; per integer value up to ``max_levels`` values; else equal-width bins."""
    if span.kind == "categorical":
        return span.width, False
    has_missing = span.width == 2
    if keeps_values(span, max_levels):
        assert span.n_levels is not None
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

    Reads the table only through the engine seam (:func:`tabpriv.engine.map_sum`): on the default
    engine a pass over :meth:`EncodedTable.iter_chunks`, memory ``O(chunk × width)``; on the Dask
    engine the workers count their partitions and the sums are reduced on the cluster.
    """
    spans = table.spans
    sizes = [nb + int(m) for nb, m in layouts]

    def count(block: np.ndarray) -> list[np.ndarray]:
        return [
            np.bincount(_bin_codes(block[:, span.slice], span, nb, m), minlength=size).astype(np.int64)
            for span, (nb, m), size in zip(spans, layouts, sizes, strict=True)
        ]

    return list(map_sum(table, count, chunk_rows=table.chunk_rows_for(chunk_bytes)))


@dataclass(frozen=True)
class IndependentNoise:
    """The noise parameters :meth:`IndependentBackend.fit` consumes (from the plan, public only).

    Attributes:
        sigma: Discrete Gaussian scale of every count.
        rho: zCDP cost of all histograms together.
        l2_sensitivity: Replace-one L2 sensitivity of all histograms together.
        epsilon: Epsilon at ``delta`` (the spend).
        delta: Delta of the spend.
        accountant: Accountant, in words.
        layouts: ``(n_bins, has_missing)`` of every column's histogram.
        sampler: The noise sampler, in words.
        mechanism: The mechanism, in words.

    """

    sigma: float
    rho: float
    l2_sensitivity: float
    epsilon: float
    delta: float
    accountant: str
    layouts: tuple[tuple[int, bool], ...]
    sampler: str
    mechanism: str


class IndependentBackend(Backend):
    """Noisy one-way marginals (discrete Gaussian on the counts), columns sampled independently.

    Args:
        bins: Default number of equal-width bins for numeric columns (the schema's ``bins`` wins). An
            integer column with at most max(100, ``bins``) values keeps one bin per value.
        chunk_bytes: Memory target of one encoded chunk read during ``fit`` (the histograms are
            accumulated chunk by chunk; the result does not depend on it).

    """

    name = "independent"
    guarantee = "dp"
    #: ``(n_bins, has_missing)`` of every released histogram (``None``: a file saved before they were
    #: recorded, read with the legacy layout).
    layouts_: list[tuple[int, bool]] | None
    devices = ("cpu",)
    summary = "Noisy one-way marginals (discrete Gaussian, OpenDP); the quality floor. No correlations."
    streaming = True
    _parameter_constraints: ClassVar[dict[str, list[Constraint | None]]] = {
        "bins": [Interval(int, 1, None, closed="left")],
        "chunk_bytes": [Interval(int, 1, None, closed="left")],
    }

    def __init__(self, *, bins: int = 32, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> None:
        self.bins = bins
        self.chunk_bytes = chunk_bytes

    def plan(
        self, spans: tuple[ColumnSpan, ...], n_rows: int, budget: PrivacyBudget, *, seeded: bool = False
    ) -> PrivacyPlan:
        """Calibrate the discrete Gaussian on all one-way histograms to ``budget`` (no data read)."""
        self.validate_params()
        n_cols = len(spans)
        sensitivity = l2_sensitivity(n_cols)
        cal = noise_calibration(budget.epsilon, budget.delta, sensitivity)
        layouts = tuple(histogram_layout(s, self.bins) for s in spans)
        sampler = sampler_name(seeded)
        noise = IndependentNoise(
            sigma=cal.sigma,
            rho=cal.rho,
            l2_sensitivity=sensitivity,
            epsilon=cal.epsilon,
            delta=cal.delta,
            accountant=cal.accountant,
            layouts=layouts,
            sampler=sampler,
            mechanism=_mechanism(seeded),
        )
        spend = PlannedSpend(
            mechanism=noise.mechanism,
            epsilon=cal.epsilon,
            delta=cal.delta,
            accountant=cal.accountant,
            parameters={
                "sigma": cal.sigma,
                "rho": cal.rho,
                "l2_sensitivity": sensitivity,
                "adjacency": "replace-one",
                "n_histograms": n_cols,
                "n_cells": int(sum(nb + int(m) for nb, m in layouts)),
                "sampler": sampler,
            },
        )
        return PrivacyPlan.build(self.name, (spend,), noise, spans=spans, n_rows=n_rows)

    def fit(self, table: EncodedTable, plan: PrivacyPlan, context: FitContext) -> Backend:
        """Release every column's integer histogram once with the planned discrete Gaussian noise."""
        self.check_plan(plan, table)
        cal: IndependentNoise = plan.noise
        n_cols = table.n_columns
        sensitivity = cal.l2_sensitivity
        layouts = list(cal.layouts)
        sampler = cal.sampler
        counts = _true_histograms(table, layouts, self.chunk_bytes)
        sizes = [c.size for c in counts]
        noise = draw_noise(int(sum(sizes)), cal.sigma, context)
        noisy: list[np.ndarray] = []
        for span, c, e in zip(table.spans, counts, np.split(noise, np.cumsum(sizes)[:-1]), strict=True):
            noisy.append(c + e)
            context.report(len(noisy), n_cols, f"released marginal of {span.name}")
        self.noisy_counts_ = noisy
        self.sigma_ = cal.sigma
        self.rho_ = cal.rho
        self.sensitivity_ = sensitivity
        self.epsilon_ = cal.epsilon
        self.delta_ = cal.delta
        self.accountant_ = cal.accountant
        self.sampler_ = sampler
        self.hardened_ = not context.seeded
        self.mechanism_ = cal.mechanism
        self.spans_ = table.spans
        self.layouts_ = [(int(nb), bool(m)) for nb, m in layouts]
        return self

    def _probabilities(self, counts: np.ndarray) -> np.ndarray:
        p = np.clip(np.asarray(counts, dtype=np.float64), 0.0, None)
        total = p.sum()
        return p / total if total > 0 else np.full_like(p, 1.0 / len(p))

    def sample(self, n: int, seed: int) -> np.ndarray:
        """Draw ``n`` encoded rows, each column independently from its noisy marginal."""
        self.check_fitted()
        rng = np.random.default_rng(seed)
        out = np.zeros((n, self.width_), dtype=np.float32)
        layouts = self._layouts()
        for span, counts, (n_bins, has_missing) in zip(self.spans_, self.noisy_counts_, layouts, strict=True):
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
        """State the mechanism, accountant, noise, sampler and whether it is hardened."""
        self.check_fitted()
        not_covered = ["the number of rows n, treated as public (replace-one adjacency)"]
        if self.hardened_:
            covered_extra = [
                "floating-point attacks on the noise sampler (Mironov 2012): the discrete Gaussian is "
                "sampled by OpenDP in exact integer arithmetic on integer counts (hardened)"
            ]
            not_covered.append("timing side channels of the sampler (OpenDP's sampler is not constant-time)")
        else:
            covered_extra = []
            not_covered.append(
                "side channels: floating-point noise sampling (Mironov 2012) is not hardened"
                + (" (seeded research run: float64 sampler on the seeded stream)" if self.rho_ else "")
            )
        return PrivacyDetails(
            mechanism=self.mechanism_ + " (one release)",
            adjacency="replace-one",
            accountant=self.accountant_,
            noise={
                "sigma": self.sigma_,
                "l2_sensitivity": self.sensitivity_,
                "rho": self.rho_,
                "sampler": self.sampler_,
            },
            covered=[
                "the released noisy histograms and every table sampled from them",
                "the encoding (the schema is public and costs nothing)",
                *covered_extra,
            ],
            not_covered=not_covered,
            extra={"hardened_against_floating_point_attacks": self.hardened_},
        )

    def get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Noisy counts as arrays; figures as metadata."""
        self.check_fitted()
        arrays = {f"counts_{i}": c for i, c in enumerate(self.noisy_counts_)}
        meta = {
            "sigma": self.sigma_,
            "rho": self.rho_,
            "sensitivity": self.sensitivity_,
            "epsilon": self.epsilon_,
            "delta": self.delta_,
            "accountant": self.accountant_,
            "mechanism": self.mechanism_,
            "sampler": self.sampler_,
            "hardened": self.hardened_,
            "n_columns": len(self.noisy_counts_),
            "layouts": [[nb, m] for nb, m in self._layouts()],
        }
        return arrays, meta

    def _layouts(self) -> list[tuple[int, bool]]:
        """``(n_bins, has_missing)`` of every released histogram.

        A fitted or loaded model records its layouts; a file saved before they were recorded used the
        legacy rule (one bin per integer value only up to ``bins``). Raises :class:`SaveFileError` when
        the counts do not match the layout (a corrupt file).
        """
        layouts = getattr(self, "layouts_", None)
        if layouts is None:
            layouts = [_legacy_layout(s, self.bins) for s in self.spans_]
        for span, counts, (nb, m) in zip(self.spans_, self.noisy_counts_, layouts, strict=True):
            if len(counts) != nb + int(m):
                raise SaveFileError(
                    f"The saved histogram of column {span.name!r} has {len(counts)} cells, but its layout "
                    f"has {nb + int(m)}: the file is corrupt or from an incompatible version. Refit."
                )
        return list(layouts)

    def set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        """Restore from :meth:`get_state` output (also files saved before the discrete Gaussian)."""
        n = int(meta["n_columns"])
        self.noisy_counts_ = [np.asarray(arrays[f"counts_{i}"]) for i in range(n)]
        self.sigma_ = float(meta["sigma"])
        self.rho_ = float(meta.get("rho", 0.0))
        self.sensitivity_ = float(meta["sensitivity"])
        self.epsilon_ = float(meta["epsilon"])
        self.delta_ = float(meta["delta"])
        self.accountant_ = str(meta["accountant"])
        self.mechanism_ = str(meta.get("mechanism", "Gaussian mechanism on all one-way marginals"))
        self.sampler_ = str(
            meta.get("sampler", "float Gaussian (numpy PCG64; a file saved before the discrete Gaussian)")
        )
        self.hardened_ = bool(meta.get("hardened", False))
        saved = meta.get("layouts")
        self.layouts_ = None if saved is None else [(int(nb), bool(m)) for nb, m in saved]
