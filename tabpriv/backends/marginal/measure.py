"""The pass over the private rows, the noisy measurements and the private selections.

* :func:`exact_marginals` is the **only** place the marginal backends read rows: one pass through the
  engine seam (:func:`tabpriv.engine.map_sum`) that sums the exact int64 counts of every candidate
  marginal over the encoded chunks. On the default engine it streams
  :meth:`EncodedTable.iter_chunks <tabpriv.transformers.encoded.EncodedTable.iter_chunks>` (memory:
  one chunk plus the counts, never the table); on the Dask engine the workers count their partitions
  and the sums are reduced on the cluster. The exact counts never leave the backend's ``fit``: only
  their noisy versions are kept (the noise is added once, here, after the reduction).
* :func:`noisy_counts` adds the discrete Gaussian to integer counts: OpenDP's exact sampler (hardened
  against floating-point attacks) for a normal run; for a seeded research run the same distribution
  from :func:`tabpriv._random.sample_discrete_gaussian` on the seeded secret stream (not hardened).
* :func:`private_select` is the exponential mechanism as noisy max with Gumbel noise: OpenDP's
  ``make_noisy_max`` (hardened) for a normal run, Gumbel noise from the secret stream for a seeded one.

Audit seams: the backends import :func:`noisy_counts` and :func:`private_select` by name, so the audits
(``tabpriv.audit.marginal``) patch them where they are called: ``marginal.common:noisy_counts``,
``marginal.mst:private_select`` and ``marginal.aim:private_select`` (a test checks these are live).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from tabpriv._random import sample_discrete_gaussian
from tabpriv.accounting import OPENDP_VERSION
from tabpriv.backends.base import FitContext
from tabpriv.backends.independent import opendp_discrete_gaussian
from tabpriv.backends.marginal.domain import MarginalDomain
from tabpriv.engine import map_sum
from tabpriv.transformers.encoded import DEFAULT_CHUNK_BYTES, EncodedTable

__all__ = ["Clique", "exact_marginals", "noisy_counts", "private_select", "sampler_text", "selection_text"]

#: A marginal: the indices of its columns, increasing.
Clique = tuple[int, ...]

_NOISE_PURPOSE = "marginal-noise"
_SELECT_PURPOSE = "marginal-select"


def exact_marginals(
    table: EncodedTable,
    domain: MarginalDomain,
    cliques: Sequence[Clique],
    *,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    progress: Callable[[int, int], None] | None = None,
) -> dict[Clique, np.ndarray]:
    """Exact int64 counts of every marginal in ``cliques`` (flattened, C order), in one streaming pass.

    Args:
        table: The encoded private table (read only through the engine seam).
        domain: The public discretisation.
        cliques: The marginals to count (each a tuple of increasing column indices).
        chunk_bytes: Memory target of one encoded chunk (the counts do not depend on it).
        progress: Optional ``progress(rows_done, n_rows)``.

    """
    cliques = list(cliques)
    sizes = [domain.cells(cl) for cl in cliques]
    strides: list[np.ndarray] = []
    for cl in cliques:
        levels = [domain.sizes[i] for i in cl]
        strides.append(np.array([int(np.prod(levels[k + 1 :], dtype=np.int64)) for k in range(len(cl))]))

    def count(block: np.ndarray) -> list[np.ndarray]:
        codes = domain.codes(block)
        return [
            np.bincount(codes[:, list(cl)] @ st, minlength=size).astype(np.int64, copy=False)
            for cl, st, size in zip(cliques, strides, sizes, strict=True)
        ]

    totals = map_sum(table, count, chunk_rows=table.chunk_rows_for(chunk_bytes), progress=progress)
    return dict(zip(cliques, totals, strict=True))


def noisy_counts(counts: np.ndarray, sigma: float, context: FitContext, label: str) -> np.ndarray:
    """``counts + N_Z(0, sigma^2)`` on every cell (int64), from the run's secret sampler.

    ``label`` names the measurement uniquely within the fit (a seeded run derives one secret stream
    per label, so that no two measurements share noise).
    """
    counts = np.asarray(counts, dtype=np.int64)
    if context.seeded:
        noise = sample_discrete_gaussian(context.secret_rng(f"{_NOISE_PURPOSE}:{label}"), sigma, counts.size)
        return counts + np.asarray(noise, dtype=np.int64)
    out = opendp_discrete_gaussian(sigma)(counts.tolist())
    return np.asarray(out, dtype=np.int64)


def _opendp_noisy_max(scale: float) -> Any:
    import opendp.prelude as dp

    dp.enable_features("contrib")
    return dp.m.make_noisy_max(
        dp.vector_domain(dp.atom_domain(T="f64", nan=False)),
        dp.linf_distance(T="f64", monotonic=False),
        dp.zero_concentrated_divergence(),
        scale=float(scale),
    )


def private_select(scores: np.ndarray, scale: float, context: FitContext, label: str) -> int:
    """Index of the highest ``score + Gumbel(scale)`` (the exponential mechanism), secretly drawn.

    ``label`` names the selection uniquely within the fit (its own secret stream in a seeded run).
    """
    scores = np.asarray(scores, dtype=np.float64)
    if context.seeded:
        rng = context.secret_rng(f"{_SELECT_PURPOSE}:{label}")
        return int(np.argmax(scores + rng.gumbel(0.0, scale, scores.size)))
    return int(_opendp_noisy_max(scale)(scores.tolist()))


def sampler_text(seeded: bool) -> str:
    """The noise sampler, in words."""
    if seeded:
        return (
            "seeded research run: Canonne-Kamath-Steinke 2020 discrete Gaussian rejection sampler in "
            "float64 numpy on ChaCha20 keyed from the seed (not hardened)"
        )
    return f"OpenDP {OPENDP_VERSION} discrete Gaussian (exact integer sampler, OpenDP's OS-entropy CSPRNG)"


def selection_text(seeded: bool) -> str:
    """The selection sampler, in words."""
    if seeded:
        return "exponential mechanism as Gumbel noisy max on the seeded ChaCha20 stream (not hardened)"
    return f"exponential mechanism as OpenDP {OPENDP_VERSION} make_noisy_max (Gumbel noise, hardened)"
