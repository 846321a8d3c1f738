"""The slicing mechanism (Greenewald et al., NeurIPS 2024): noisy random projections of the table.

Privacy is spent once, here: the encoded rows are bounded block by block, projected on a public random
matrix ``U`` and perturbed with Gaussian noise. Everything a generator learns afterwards is
post-processing of the :class:`SlicingRelease` (``U``, ``XU + V``, ``sigma`` and the accounting).

Sensitivity (replace-one adjacency). Each encoded block is *enforced* (not assumed) to lie in a set of
bounded diameter:

* a one-hot (softmax) block is clipped to non-negative entries and then to L2 norm <= 1, so two such
  blocks ``a, b`` satisfy ``||a - b||^2 = ||a||^2 + ||b||^2 - 2 a.b <= 2``;
* a number (tanh coordinate) is clipped to ``[-1, 1]``: squared difference <= 4;
* a missing indicator (sigmoid coordinate) is clipped to ``[0, 1]``: squared difference <= 1.

Hence two rows differ by at most ``Delta = sqrt(2 * n_softmax + 4 * n_tanh + n_sigmoid)`` in L2 norm.
(This is tighter than ``2 * sqrt(n_columns)``, twice the row-norm bound of
:attr:`EncodedTable.row_norm_bound`, which the enforced rows also satisfy.)

Accounting (:mod:`tabpriv.accounting.slicing`). ``U`` is public, so the release's privacy profile is
the average over ``U`` of Gaussian profiles: ``delta(eps) = E[delta_mu(eps)]`` with
``mu^2 = ||(x - x')U||^2 / sigma^2 ~ (Delta^2 / (d sigma^2)) chi^2_{m'}``, bounded above by an upper
Riemann sum (:func:`~tabpriv.accounting.slicing_profile_epsilon`, the default). The former route, the
exact RDP curve ``-m'/(2(alpha-1)) * ln(1 - alpha(alpha-1) Delta^2 / (d sigma^2))`` converted with
Canonne, Kamath & Steinke (2020), is kept (``method="rdp"``) and reported alongside; it is looser.

Subsampling (optional). A uniformly random subset of exactly ``n_s = round(gamma * n)`` rows is drawn
without replacement and only those rows are projected (in a random order). Under the substitution
(replace-one) relation, Balle, Barthe & Gaboardi (NeurIPS 2018, "Privacy amplification by subsampling:
tight analyses via couplings and divergences", Theorem 9) give: if ``M`` on ``n_s`` rows is
``(eps, delta)``-DP then ``M o WOR_{n_s/n}`` is ``(log(1 + (n_s/n)(e^eps - 1)), (n_s/n) delta)``-DP,
for every ``eps``. :func:`calibrate_sigma` therefore calibrates the base mechanism to
``(log(1 + (e^eps_target - 1) n/n_s), delta n/n_s)`` so that the release is ``(eps_target, delta)``-DP.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tabpriv.accounting.calibrate import calibrate
from tabpriv.accounting.interface import Adjacency, SlicingMechanism, check_adjacency
from tabpriv.accounting.slicing import (
    SLICING_EXACT_ACCOUNTANT,
    SLICING_RDP_ACCOUNTANT,
    rdp_to_dp,
    slicing_epsilon,
    slicing_profile_epsilon,
    slicing_rdp,
)
from tabpriv.accounting.subsampling import WOR_THEOREM, amplify_wor, deamplify_wor
from tabpriv.budget import check_delta, check_epsilon
from tabpriv.engine import map_chunks
from tabpriv.errors import PrivacyParameterError, SaveFileError
from tabpriv.transformers.encoded import ColumnSpan, EncodedTable

__all__ = [
    "ACCOUNTANT",
    "WOR_THEOREM",
    "SlicingCalibration",
    "SlicingRelease",
    "amplify_wor",
    "block_sensitivity",
    "calibrate_sigma",
    "deamplify_wor",
    "draw_noise",
    "draw_projection",
    "draw_sample",
    "enforce_blocks",
    "enforce_blocks_torch",
    "privatise",
    "rdp_to_dp",
    "slicing_epsilon",
    "slicing_rdp",
]

#: The accountant of the default (exact-profile) calibration, in words.
ACCOUNTANT = SLICING_EXACT_ACCOUNTANT

#: Accounting methods of :func:`calibrate_sigma`.
SLICING_METHODS = ("exact", "rdp")


# -- sensitivity ------------------------------------------------------------------------------------
def block_sensitivity(spans: tuple[ColumnSpan, ...]) -> float:
    """Replace-one L2 sensitivity ``Delta`` of a row after :func:`enforce_blocks`.

    Returns:
        ``sqrt(2 * #softmax blocks + 4 * #tanh coordinates + #sigmoid coordinates)``.

    """
    total = 0.0
    for span in spans:
        for b in span.blocks:
            if b.activation == "softmax":
                total += 2.0
            elif b.activation == "tanh":
                total += 4.0 * b.width
            else:
                total += 1.0 * b.width
    return math.sqrt(total)


def enforce_blocks(data: np.ndarray, spans: tuple[ColumnSpan, ...]) -> np.ndarray:
    """Return a float32 copy of ``data`` with every block clipped into its bounded set.

    This is what makes :func:`block_sensitivity` hold whatever the input (it is the identity on rows
    produced by the schema transformers).
    """
    out = np.array(data, dtype=np.float32, copy=True)
    for span in spans:
        for b in span.blocks:
            sl = slice(b.start, b.stop)
            if b.activation == "softmax":
                blk = np.clip(out[:, sl], 0.0, None)
                norm = np.linalg.norm(blk, axis=1, keepdims=True)
                out[:, sl] = blk * np.minimum(1.0, 1.0 / np.maximum(norm, 1e-12))
            elif b.activation == "tanh":
                out[:, sl] = np.clip(out[:, sl], -1.0, 1.0)
            else:
                out[:, sl] = np.clip(out[:, sl], 0.0, 1.0)
    return out


def enforce_blocks_torch(x: Any, spans: tuple[ColumnSpan, ...]) -> Any:
    """:func:`enforce_blocks` for a float32 torch tensor, on its device (returns a new tensor).

    The same clipping, block by block, in the same order: one-hot blocks to non-negative entries of L2
    norm <= 1, numbers to [-1, 1], missing indicators to [0, 1] (so :func:`block_sensitivity` holds).
    """
    import torch

    out = x.to(torch.float32, copy=True)
    for span in spans:
        for b in span.blocks:
            sl = slice(b.start, b.stop)
            if b.activation == "softmax":
                blk = out[:, sl].clamp(min=0.0)
                norm = torch.linalg.vector_norm(blk, dim=1, keepdim=True)
                out[:, sl] = blk * torch.clamp(1.0 / norm.clamp(min=1e-12), max=1.0)
            elif b.activation == "tanh":
                out[:, sl] = out[:, sl].clamp(-1.0, 1.0)
            else:
                out[:, sl] = out[:, sl].clamp(0.0, 1.0)
    return out


# -- accounting (the math lives in tabpriv.accounting.slicing / .subsampling) ------------------------
@dataclass(frozen=True)
class SlicingCalibration:
    """Noise calibrated to a target epsilon.

    Attributes:
        sigma: Standard deviation of the noise added to each projected coordinate.
        epsilon: Epsilon of the release at ``delta`` (<= target, within 1%); with subsampling, the
            amplified epsilon (the guarantee).
        delta: Delta of the release.
        alpha: Optimal Renyi order (of the base mechanism).
        sensitivity: Replace-one L2 sensitivity ``Delta``.
        d: Encoded width.
        n_projections: ``m' = m * k``.
        subsample: Sampling fraction ``gamma = m/n`` (``None``: every row is projected).
        epsilon_base: Epsilon of the base mechanism on the sample at ``delta_base``.
        delta_base: Delta of the base mechanism (``delta / gamma``).
        epsilon_unamplified: Epsilon at ``delta`` of the same ``sigma`` without subsampling (equals
            ``epsilon`` when ``subsample`` is ``None``).
        method: Accountant of ``epsilon``: ``"exact"`` (privacy profile) or ``"rdp"``.
        epsilon_rdp: The RDP route's figure for the same ``sigma`` (the guarantee, amplified when
            subsampling; ``>= epsilon`` up to the quadrature slack under ``"exact"``).
        evaluations: Accountant evaluations of the calibration.

    """

    sigma: float
    epsilon: float
    delta: float
    alpha: float
    sensitivity: float
    d: int
    n_projections: int
    subsample: float | None = None
    epsilon_base: float | None = None
    delta_base: float | None = None
    epsilon_unamplified: float | None = None
    method: str = "exact"
    epsilon_rdp: float | None = None
    evaluations: int = 0

    @property
    def accountant(self) -> str:
        """The accountant of ``epsilon``, in words."""
        return SLICING_EXACT_ACCOUNTANT if self.method == "exact" else SLICING_RDP_ACCOUNTANT

    @property
    def mechanism(self) -> SlicingMechanism:
        """The calibrated release as a typed value (``mechanism.accountant`` is an ``AccountantInfo``)."""
        return SlicingMechanism(
            self.sigma, self.d, self.n_projections, self.sensitivity, self.subsample,
            "rdp" if self.method == "rdp" else "exact",
        )  # fmt: skip


def calibrate_sigma(
    epsilon: float,
    delta: float,
    d: int,
    n_projections: int,
    sensitivity: float,
    subsample: float | None = None,
    method: str = "exact",
    *,
    adjacency: Adjacency = "replace-one",
) -> SlicingCalibration:
    """Smallest ``sigma`` (by bisection) whose epsilon at ``delta`` is <= ``epsilon`` (within 1e-7).

    Args:
        epsilon: Target epsilon of the release.
        delta: Target delta of the release.
        d: Encoded width.
        n_projections: ``m' = m * k``.
        sensitivity: Replace-one L2 sensitivity ``Delta``.
        subsample: Fraction ``gamma = m/n`` of rows sampled without replacement before the mechanism
            (``None``: all rows). The base mechanism is calibrated to :func:`deamplify_wor` of the
            target, so the amplified release meets the target (Theorem 9 holds for every point of the
            base mechanism's profile, so it applies to either accountant).
        method: ``"exact"`` (default): the exact privacy profile
            (:func:`tabpriv.accounting.slicing_profile_epsilon`); ``"rdp"``: the RDP curve
            (:func:`tabpriv.accounting.slicing_epsilon`), the accountant before issue 14.
        adjacency: The neighbouring relation; only ``"replace-one"`` (the sensitivity is that of
            replacing one row).

    Raises:
        PrivacyParameterError: Invalid arguments.

    """
    check_adjacency(adjacency)
    epsilon = check_epsilon(epsilon)
    delta = check_delta(delta)
    if method not in SLICING_METHODS:
        raise PrivacyParameterError(f"method must be one of {SLICING_METHODS}; got {method!r}.")
    if d < 1 or n_projections < 1 or not sensitivity > 0:
        raise PrivacyParameterError(
            f"Need d >= 1, m' >= 1 and sensitivity > 0; got d={d}, m'={n_projections}, "
            f"sensitivity={sensitivity}."
        )
    gamma = 1.0 if subsample is None else float(subsample)
    if not 0.0 < gamma <= 1.0:
        raise PrivacyParameterError(
            f"subsample must be a fraction in (0, 1] (or None for no subsampling); got {subsample!r}."
        )
    delta_base = delta / gamma
    if delta_base >= 1.0:
        raise PrivacyParameterError(
            f"With subsample={gamma:g} the base mechanism would need delta={delta_base:g} >= 1; "
            f"use a larger subsample fraction or a smaller delta (got delta={delta:g})."
        )

    def base_of(s: float, dl: float, how: str) -> float:
        if how == "exact":
            return slicing_profile_epsilon(s, d, n_projections, sensitivity, dl)
        return slicing_epsilon(s, d, n_projections, sensitivity, dl)[0]

    def release_of(s: float, how: str) -> float:
        base = base_of(s, delta_base, how)
        return amplify_wor(base, delta_base, gamma)[0] if subsample is not None else base

    # Double sigma from 1 until it fits, then bisect [lo, hi] to hi - lo <= 1e-7 hi (the rule of the
    # loop this replaced: bit-identical sigma under method="rdp").
    cal = calibrate(
        lambda s: release_of(s, method), epsilon, hi=1.0, lo=1e-6, rtol=1e-7, grow=2.0,
        on_unreachable=lambda _: PrivacyParameterError(f"Cannot reach epsilon={epsilon} with finite noise."),
    )  # fmt: skip
    hi = cal.noise
    rdp_base, alpha = slicing_epsilon(hi, d, n_projections, sensitivity, delta_base)
    base_eps = base_of(hi, delta_base, method) if method == "exact" else rdp_base
    if subsample is None:
        assert base_eps <= epsilon
        return SlicingCalibration(
            hi, base_eps, delta, alpha, sensitivity, d, n_projections, None, base_eps, delta, base_eps,
            method, rdp_base, cal.evaluations,
        )  # fmt: skip
    eps, delta_out = amplify_wor(base_eps, delta_base, gamma)
    assert eps <= epsilon
    unamp = base_of(hi, delta, method)
    return SlicingCalibration(
        hi, eps, min(delta, delta_out), alpha, sensitivity, d, n_projections, gamma, base_eps,
        delta_base, unamp, method, amplify_wor(rdp_base, delta_base, gamma)[0], cal.evaluations,
    )  # fmt: skip


# -- the release ------------------------------------------------------------------------------------
@dataclass
class SlicingRelease:
    """The only thing the generator ever sees: ``(U, XU + V)``, ``sigma`` and the accounting.

    Saving and loading it needs no private data; training on it again spends nothing.

    Attributes:
        projection: ``U``, ``(d, m')`` float32, entries ~ N(0, 1/d).
        noisy: ``XU + V``, ``(n, m')`` float32.
        sigma: Noise standard deviation of ``V``.
        k: Slice dimension (``m' = m * k``).
        spans: Spans of the encoded table (public, from the schema).
        accounting: JSON-ready accounting (epsilon, delta, alpha, sensitivity, adjacency, ...).
        device_tensors: Transient device copies (see :func:`privatise`'s ``device``).

    """

    projection: np.ndarray
    noisy: np.ndarray
    sigma: float
    k: int
    spans: tuple[ColumnSpan, ...]
    accounting: dict[str, Any] = field(default_factory=dict)
    #: ``{device: (U, XU + V)}`` as torch tensors where the release was computed on a GPU (transient:
    #: never saved, not part of equality; training uses it instead of copying the arrays back).
    device_tensors: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def n_slices(self) -> int:
        """Number of slices ``m``."""
        return int(self.projection.shape[1]) // self.k

    def to_arrays(self, prefix: str = "release.") -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Arrays and JSON metadata (no pickle)."""
        arrays = {f"{prefix}projection": self.projection, f"{prefix}noisy": self.noisy}
        meta = {
            "sigma": self.sigma,
            "k": self.k,
            "spans": [s.to_dict() for s in self.spans],
            "accounting": self.accounting,
        }
        return arrays, meta

    @classmethod
    def from_arrays(
        cls, arrays: dict[str, np.ndarray], meta: dict[str, Any], prefix: str = "release."
    ) -> SlicingRelease:
        """Inverse of :meth:`to_arrays`."""
        return cls(
            projection=np.asarray(arrays[f"{prefix}projection"], dtype=np.float32),
            noisy=np.asarray(arrays[f"{prefix}noisy"], dtype=np.float32),
            sigma=float(meta["sigma"]),
            k=int(meta["k"]),
            spans=tuple(ColumnSpan.from_dict(s) for s in meta["spans"]),
            accounting=dict(meta["accounting"]),
        )

    def save(self, path: str | Path) -> None:
        """Write the release to a safetensors file (metadata as JSON in its header)."""
        import json

        from safetensors.numpy import save_file

        arrays, meta = self.to_arrays()
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        save_file(
            {k: np.ascontiguousarray(v) for k, v in arrays.items()},
            str(tmp),
            metadata={"tabpriv_slicing_release": json.dumps(meta)},
        )
        tmp.replace(path)

    @classmethod
    def load(cls, path: str | Path) -> SlicingRelease:
        """Read a release written by :meth:`save`.

        Raises:
            SaveFileError: The file is not a slicing release.

        """
        import json

        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="numpy") as fh:
                meta_s = (fh.metadata() or {}).get("tabpriv_slicing_release")
                arrays = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118
        except Exception as exc:  # safetensors raises several types
            raise SaveFileError(f"Could not read a slicing release from {str(path)!r}: {exc}") from exc
        if meta_s is None:
            raise SaveFileError(
                f"{str(path)!r} is a safetensors file but not a tabpriv slicing release (no "
                "'tabpriv_slicing_release' metadata); save one with SlicingRelease.save()."
            )
        return cls.from_arrays(arrays, json.loads(meta_s))


def draw_projection(seed: int, d: int, m_prime: int) -> np.ndarray:
    """The released projection ``U`` (``(d, m')`` float32, entries ``N(0, 1/d)``): **public** randomness.

    ``U`` is published, so it comes from a public PCG64 stream seeded with ``seed``; it is the first draw
    of that stream, exactly as before the noise moved to the secret stream (same seed, same ``U``).
    """
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((d, m_prime), dtype=np.float32) / np.float32(math.sqrt(d))).astype(np.float32)


def draw_sample(secret_rng: np.random.Generator, n: int, sample_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The secret row subsample: sorted row indices (without replacement) and their output slots.

    Its amplification theorem assumes the sample is unknown to the adversary, so it is drawn from the
    secret stream, never from the public one that made ``U``.
    """
    chosen = np.sort(secret_rng.choice(n, size=sample_size, replace=False))
    # A random output order makes the release a function of the sampled multiset only, which is the
    # setting of the without-replacement amplification theorem.
    slots = secret_rng.permutation(sample_size)
    return chosen, slots


def draw_noise(secret_rng: np.random.Generator, rows: int, m_prime: int, sigma: float) -> np.ndarray:
    """``V`` for ``rows`` released rows: i.i.d. ``N(0, sigma^2)`` float32 from the secret stream."""
    noise = secret_rng.standard_normal((rows, m_prime), dtype=np.float32)
    noise *= np.float32(sigma)
    return noise


def privatise(
    table: EncodedTable,
    *,
    sigma: float,
    n_slices: int,
    k: int,
    seed: int,
    accounting: dict[str, Any],
    chunk_rows: int = 8192,
    sample_size: int | None = None,
    secret_rng: np.random.Generator | None = None,
    device: str = "cpu",
) -> SlicingRelease:
    """Run the mechanism: enforce the blocks, project on ``U ~ N(0, 1/d)`` and add ``N(0, sigma^2)``.

    The table is read only through the engine seam (:func:`tabpriv.engine.map_chunks`), one chunk at
    a time, so the working memory besides the output is ``O(chunk_rows * (d + m'))``; the output
    ``XU + V`` is ``4 n m'`` bytes (float32), ``4 m m'`` with a sample of ``m`` rows. The exact
    projection ``XU`` is computed first (on the Dask engine: on the workers, then sent to the
    client), then the noise ``V`` is added once, here, chunk by chunk in row order (the same draws
    whatever the engine).

    Randomness: ``U`` (released) from the **public** ``seed`` (:func:`draw_projection`); the row sample
    (:func:`draw_sample`) and the noise ``V`` (:func:`draw_noise`) from ``secret_rng``, a
    cryptographically secure ChaCha20 generator keyed independently of ``seed``. Recovering the public
    stream from the released ``U`` therefore says nothing about ``V`` (with ``m' >= d`` it would give
    ``X`` back).

    Args:
        table: Encoded private table (touched only here, through the engine seam).
        sigma: Noise standard deviation (from :func:`calibrate_sigma`).
        n_slices: ``m``.
        k: Slice dimension.
        seed: Public seed of the projection ``U``.
        accounting: Accounting figures stored with the release.
        chunk_rows: Rows per chunk.
        sample_size: Project only a uniformly random subset of exactly this many rows, drawn without
            replacement, released in a uniformly random order (``None``: every row, in table order).
        secret_rng: Secret generator of the sample and the noise (``FitContext.secret_rng(...)``);
            ``None``: a fresh one keyed with 256 bits of OS entropy.
        device: ``"cpu"`` (numpy, as before): the release is computed on the host. A torch device
            (``"cuda"``, ``"cuda:N"``): the rows are bounded and projected there (on a distributed
            engine: on the workers, then moved there), and ``XU + V`` is assembled there; the noise
            ``V`` is the same draw from ``secret_rng`` in either case (:func:`draw_noise`, on the host,
            same calls in the same order: same distribution, scale and stream), copied to the device
            and added. The release keeps a host copy (for saving) and its device tensors
            (:attr:`SlicingRelease.device_tensors`, for training). ``XU`` is then the device's float32
            product, which may differ from the host's in the last bits.

    """
    from tabpriv._random import fresh_secret_key, secret_generator

    n, d = table.n_rows, table.width
    m_prime = n_slices * k
    if secret_rng is None:
        secret_rng = secret_generator(fresh_secret_key(), "slicing-noise")
    projection = draw_projection(seed, d, m_prime)
    if sample_size is not None:
        if not 1 <= sample_size <= n:
            raise PrivacyParameterError(
                f"sample_size must be between 1 and the number of rows ({n}); got {sample_size}."
            )
        chosen, slots = draw_sample(secret_rng, n, sample_size)
    n_out = n if sample_size is None else sample_size
    if str(device) != "cpu":
        return _privatise_on_device(
            table, projection, sigma=sigma, k=k, accounting=accounting, chunk_rows=chunk_rows,
            sample=None if sample_size is None else (chosen, slots), secret_rng=secret_rng, device=device,
        )  # fmt: skip
    noisy = np.empty((n_out, m_prime), dtype=np.float32)
    spans, bound = table.spans, table.row_norm_bound

    def project(rows: np.ndarray) -> np.ndarray:
        x = enforce_blocks(rows, spans)
        # Row-norm clip to the data-independent bound as well (a no-op after the block enforcement).
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        x *= np.minimum(1.0, bound / np.maximum(norms, 1e-12)).astype(np.float32)
        if x.shape[0] == 1:  # BLAS takes another path (gemv) for one row: pad, so rows never depend
            return (np.repeat(x, 2, axis=0) @ projection)[:1]  # on how the table is chunked
        return x @ projection

    # 1. The exact projection XU, chunk by chunk through the engine seam (on a Dask table: on the
    #    workers). 2. The noise V, once, here, chunk by chunk in the table's row order.
    for start, proj in map_chunks(table, project, chunk_rows=chunk_rows):
        stop = start + proj.shape[0]
        if sample_size is None:
            noisy[start:stop] = proj
        else:
            i0, i1 = np.searchsorted(chosen, [start, stop])
            if i1 > i0:
                noisy[slots[i0:i1]] = proj[chosen[i0:i1] - start]
    for start in range(0, n, chunk_rows):
        stop = min(start + chunk_rows, n)
        if sample_size is None:
            noisy[start:stop] += draw_noise(secret_rng, stop - start, m_prime, sigma)
            continue
        i0, i1 = np.searchsorted(chosen, [start, stop])
        if i1 > i0:
            dest = slots[i0:i1]
            noisy[dest] += draw_noise(secret_rng, int(i1 - i0), m_prime, sigma)
    return SlicingRelease(projection, noisy, float(sigma), int(k), table.spans, dict(accounting))


def _privatise_on_device(
    table: EncodedTable,
    projection: np.ndarray,
    *,
    sigma: float,
    k: int,
    accounting: dict[str, Any],
    chunk_rows: int,
    sample: tuple[np.ndarray, np.ndarray] | None,
    secret_rng: np.random.Generator,
    device: str,
) -> SlicingRelease:
    """:func:`privatise` with the bounding, the projection and the sum ``XU + V`` on a torch ``device``.

    The steps and the randomness are those of the host path: the same ``U`` (drawn by the caller), the
    same secret sample (drawn by the caller), and :func:`draw_noise` called with the same arguments in
    the same order, so ``V`` is bit for bit the host path's; it is copied to the device and added there.
    """
    import torch

    from tabpriv.engine import PartitionedSource

    dev = torch.device(device)
    n = table.n_rows
    m_prime = projection.shape[1]
    n_out = n if sample is None else len(sample[0])
    u_t = torch.as_tensor(projection, device=dev)
    noisy = torch.empty((n_out, m_prime), dtype=torch.float32, device=dev)
    spans, bound = table.spans, table.row_norm_bound

    def bound_rows(x: torch.Tensor) -> torch.Tensor:
        x = enforce_blocks_torch(x, spans)
        # Row-norm clip to the data-independent bound as well (a no-op after the block enforcement).
        norms = torch.linalg.vector_norm(x, dim=1, keepdim=True)
        return x * torch.clamp(bound / norms.clamp(min=1e-12), max=1.0)

    def project_host(rows: np.ndarray) -> np.ndarray:  # on a distributed engine's workers
        x = bound_rows(torch.as_tensor(np.asarray(rows, dtype=np.float32)))
        return (x @ torch.as_tensor(projection)).numpy()

    def project_device(rows: np.ndarray) -> torch.Tensor:
        return bound_rows(torch.as_tensor(np.asarray(rows, dtype=np.float32)).to(dev)) @ u_t

    distributed = isinstance(getattr(table, "engine_source", None), PartitionedSource)
    func = project_host if distributed else project_device
    if sample is not None:
        chosen_t, slots_t = (torch.as_tensor(a, device=dev) for a in sample)
        chosen, _ = sample
    for start, proj in map_chunks(table, func, chunk_rows=chunk_rows):
        proj = torch.as_tensor(proj, device=dev)
        stop = start + proj.shape[0]
        if sample is None:
            noisy[start:stop] = proj
        else:
            i0, i1 = (int(i) for i in np.searchsorted(chosen, [start, stop]))
            if i1 > i0:
                noisy[slots_t[i0:i1]] = proj[chosen_t[i0:i1] - start]
    for start in range(0, n, chunk_rows):
        stop = min(start + chunk_rows, n)
        if sample is None:
            v = draw_noise(secret_rng, stop - start, m_prime, sigma)
            noisy[start:stop] += torch.from_numpy(v).to(dev, non_blocking=False)
            continue
        i0, i1 = (int(i) for i in np.searchsorted(chosen, [start, stop]))
        if i1 > i0:
            v = draw_noise(secret_rng, i1 - i0, m_prime, sigma)
            noisy[slots_t[i0:i1]] += torch.from_numpy(v).to(dev, non_blocking=False)
    release = SlicingRelease(
        projection, noisy.cpu().numpy(), float(sigma), int(k), table.spans, dict(accounting)
    )
    release.device_tensors[str(dev)] = (u_t, noisy)
    return release
