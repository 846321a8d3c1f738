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

Accounting. For one column ``u ~ N(0, I/d)`` of ``U`` and a changed row with ``||x - x'|| <= Delta``
the pair ``(u, Xu + v)`` has the exact Renyi divergence
``-1/(2(alpha-1)) * ln(1 - alpha(alpha-1) Delta^2 / (d sigma^2))`` (the other rows are the same
function of ``u`` under both tables); the ``m'`` columns are independent, so the curve is multiplied by
``m'``. It is converted to ``(epsilon, delta)`` with the improved conversion of Canonne, Kamath &
Steinke (2020) / Balle et al. (2020), optimising the order ``alpha`` numerically over the reals.

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

from tabpriv.budget import _check_delta, _check_epsilon
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
    "privatise",
    "rdp_to_dp",
    "slicing_epsilon",
    "slicing_rdp",
]

ACCOUNTANT = (
    "exact RDP curve of the slicing mechanism (Gaussian projection + Gaussian noise), converted to "
    "(epsilon, delta) with the Canonne-Kamath-Steinke / Balle et al. 2020 conversion, alpha optimised "
    "numerically"
)

WOR_THEOREM = (
    "Balle, Barthe & Gaboardi (NeurIPS 2018), 'Privacy amplification by subsampling: tight analyses via "
    "couplings and divergences', Theorem 9 (sampling without replacement, substitution relation): if M "
    "is (eps, delta)-DP on n_s rows, M o WOR(n -> n_s) is (log(1 + (n_s/n)(e^eps - 1)), (n_s/n) delta)-DP"
)


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


# -- accounting -------------------------------------------------------------------------------------
def _alpha_max(sigma: float, d: int, sensitivity: float) -> float:
    """Largest order for which the curve is finite: alpha(alpha-1) < d sigma^2 / Delta^2."""
    c = d * sigma * sigma / (sensitivity * sensitivity)
    return 0.5 + math.sqrt(0.25 + c)


def slicing_rdp(alpha: float, sigma: float, d: int, n_projections: int, sensitivity: float) -> float:
    """Exact Renyi-DP epsilon of the slicing mechanism at order ``alpha`` (``inf`` outside its domain).

    ``eps_alpha = -(m' / (2 (alpha - 1))) * ln(1 - alpha (alpha - 1) Delta^2 / (d sigma^2))``.
    """
    if alpha <= 1:
        raise PrivacyParameterError(f"The Renyi order must be > 1; got {alpha!r}.")
    t = alpha * (alpha - 1.0) * sensitivity**2 / (d * sigma * sigma)
    if t >= 1.0:
        return math.inf
    return -n_projections / (2.0 * (alpha - 1.0)) * math.log1p(-t)


def rdp_to_dp(alpha: float, rdp: float, delta: float) -> float:
    """Improved RDP -> (epsilon, delta) conversion (Canonne-Kamath-Steinke 2020, Prop. 12).

    ``eps = rdp + ln((alpha - 1) / alpha) - (ln delta + ln alpha) / (alpha - 1)``, floored at 0; this is
    the conversion dp-accounting's RDP accountant uses.
    """
    if not math.isfinite(rdp):
        return math.inf
    eps = rdp + math.log1p(-1.0 / alpha) - (math.log(delta) + math.log(alpha)) / (alpha - 1.0)
    return max(0.0, eps)


def slicing_epsilon(
    sigma: float, d: int, n_projections: int, sensitivity: float, delta: float
) -> tuple[float, float]:
    """Epsilon at ``delta`` of one run of the mechanism, minimised over real orders ``alpha``.

    Returns:
        ``(epsilon, alpha)`` at the optimum (a dense log grid refined by a bounded scalar search).

    """
    from scipy.optimize import minimize_scalar

    a_max = _alpha_max(sigma, d, sensitivity)
    hi = 1.0 + (a_max - 1.0) * (1.0 - 1e-9)
    grid = 1.0 + np.geomspace(1e-4, hi - 1.0, 400)

    def f(a: float) -> float:
        return rdp_to_dp(a, slicing_rdp(a, sigma, d, n_projections, sensitivity), delta)

    t = grid * (grid - 1.0) * sensitivity**2 / (d * sigma * sigma)
    with np.errstate(divide="ignore", invalid="ignore"):
        rdp = np.where(t < 1.0, -n_projections / (2.0 * (grid - 1.0)) * np.log1p(-np.minimum(t, 1.0)), np.inf)
        vals = rdp + np.log1p(-1.0 / grid) - (math.log(delta) + np.log(grid)) / (grid - 1.0)
    vals = np.where(np.isfinite(vals), np.maximum(vals, 0.0), np.inf)
    i = int(np.argmin(vals))
    lo_a = float(grid[max(i - 1, 0)])
    hi_a = float(grid[min(i + 1, len(grid) - 1)])
    best_a, best = float(grid[i]), float(vals[i])
    if hi_a > lo_a:
        res = minimize_scalar(f, bounds=(lo_a, hi_a), method="bounded", options={"xatol": 1e-10})
        if float(res.fun) < best:
            best_a, best = float(res.x), float(res.fun)
    return best, best_a


def amplify_wor(epsilon: float, delta: float, gamma: float) -> tuple[float, float]:
    """Privacy of ``M o WOR`` at sampling fraction ``gamma = m/n`` from that of ``M`` (replace-one).

    Balle, Barthe & Gaboardi 2018, Theorem 9: ``(log(1 + gamma (e^eps - 1)), gamma delta)``.
    """
    if not 0.0 < gamma <= 1.0:
        raise PrivacyParameterError(f"The sampling fraction must be in (0, 1]; got {gamma!r}.")
    if math.isinf(epsilon):
        return math.inf, gamma * delta
    # log(1 + gamma (e^eps - 1)) = eps + log(gamma + (1 - gamma) e^-eps): no overflow for large eps
    if epsilon > 1.0:
        return epsilon + math.log(gamma + (1.0 - gamma) * math.exp(-epsilon)), gamma * delta
    return math.log1p(gamma * math.expm1(epsilon)), gamma * delta


def deamplify_wor(epsilon: float, delta: float, gamma: float) -> tuple[float, float]:
    """Inverse of :func:`amplify_wor`: the base ``(eps, delta)`` that amplifies to the given pair."""
    if not 0.0 < gamma <= 1.0:
        raise PrivacyParameterError(f"The sampling fraction must be in (0, 1]; got {gamma!r}.")
    if epsilon > 1.0:
        return epsilon + math.log(math.exp(-epsilon) + -math.expm1(-epsilon) / gamma), delta / gamma
    return math.log1p(math.expm1(epsilon) / gamma), delta / gamma


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


def calibrate_sigma(
    epsilon: float,
    delta: float,
    d: int,
    n_projections: int,
    sensitivity: float,
    subsample: float | None = None,
) -> SlicingCalibration:
    """Smallest ``sigma`` (by bisection) whose epsilon at ``delta`` is <= ``epsilon`` (within 1e-6).

    Args:
        epsilon: Target epsilon of the release.
        delta: Target delta of the release.
        d: Encoded width.
        n_projections: ``m' = m * k``.
        sensitivity: Replace-one L2 sensitivity ``Delta``.
        subsample: Fraction ``gamma = m/n`` of rows sampled without replacement before the mechanism
            (``None``: all rows). The base mechanism is calibrated to :func:`deamplify_wor` of the
            target, so the amplified release meets the target.

    Raises:
        PrivacyParameterError: Invalid arguments.

    """
    epsilon = _check_epsilon(epsilon)
    delta = _check_delta(delta)
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

    def eps_of(s: float) -> float:
        base = slicing_epsilon(s, d, n_projections, sensitivity, delta_base)[0]
        return amplify_wor(base, delta_base, gamma)[0] if subsample is not None else base

    lo, hi = 1e-6, 1.0
    while eps_of(hi) > epsilon:
        lo, hi = hi, hi * 2.0
        if hi > 1e12:  # pragma: no cover - absurd request
            raise PrivacyParameterError(f"Cannot reach epsilon={epsilon} with finite noise.")
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if eps_of(mid) > epsilon:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-7 * hi:
            break
    base_eps, alpha = slicing_epsilon(hi, d, n_projections, sensitivity, delta_base)
    if subsample is None:
        assert base_eps <= epsilon
        return SlicingCalibration(
            hi, base_eps, delta, alpha, sensitivity, d, n_projections, None, base_eps, delta, base_eps
        )
    eps, delta_out = amplify_wor(base_eps, delta_base, gamma)
    assert eps <= epsilon
    unamp = slicing_epsilon(hi, d, n_projections, sensitivity, delta)[0]
    return SlicingCalibration(
        hi, eps, min(delta, delta_out), alpha, sensitivity, d, n_projections, gamma, base_eps,
        delta_base, unamp,
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

    """

    projection: np.ndarray
    noisy: np.ndarray
    sigma: float
    k: int
    spans: tuple[ColumnSpan, ...]
    accounting: dict[str, Any] = field(default_factory=dict)

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
) -> SlicingRelease:
    """Run the mechanism: enforce the blocks, project on ``U ~ N(0, 1/d)`` and add ``N(0, sigma^2)``.

    The table is read only through :meth:`EncodedTable.iter_chunks`, one chunk at a time, so the
    working memory besides the output is ``O(chunk_rows * (d + m'))``; the output ``XU + V`` is
    ``4 n m'`` bytes (float32), ``4 m m'`` with a sample of ``m`` rows.

    Randomness: ``U`` (released) from the **public** ``seed`` (:func:`draw_projection`); the row sample
    (:func:`draw_sample`) and the noise ``V`` (:func:`draw_noise`) from ``secret_rng``, a
    cryptographically secure ChaCha20 generator keyed independently of ``seed``. Recovering the public
    stream from the released ``U`` therefore says nothing about ``V`` (with ``m' >= d`` it would give
    ``X`` back).

    Args:
        table: Encoded private table (touched only here, through ``iter_chunks``).
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
    noisy = np.empty((n_out, m_prime), dtype=np.float32)
    bound = table.row_norm_bound
    dest: slice | np.ndarray
    for start, block in table.iter_chunks(chunk_rows):
        stop = start + block.shape[0]
        if sample_size is None:
            rows, dest = block, slice(start, stop)
        else:
            i0, i1 = np.searchsorted(chosen, [start, stop])
            if i1 == i0:
                continue
            rows, dest = block[chosen[i0:i1] - start], slots[i0:i1]
        x = enforce_blocks(rows, table.spans)
        # Row-norm clip to the data-independent bound as well (a no-op after the block enforcement).
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        x *= np.minimum(1.0, bound / np.maximum(norms, 1e-12)).astype(np.float32)
        noisy[dest] = x @ projection + draw_noise(secret_rng, x.shape[0], m_prime, sigma)
    return SlicingRelease(projection, noisy, float(sigma), int(k), table.spans, dict(accounting))
