"""Randomness: two kinds of stream that never share state.

* **Public randomness** (random projections that are released, weight initialisation, minibatch order
  of a post-processing step, the draw of synthetic rows): numpy ``PCG64`` / torch generators seeded from
  a 128-bit root seed. Recovering such a stream's state reveals nothing about the private data.
* **Secret randomness** (every noise sample that a privacy guarantee rests on, and every sampler whose
  secrecy the accountant assumes, e.g. Poisson subsampling): ``ChaCha20`` (randomgen), a
  cryptographically secure counter generator, keyed with 256 bits. Its key is independent of the public
  seed: with ``random_state=None`` both come from the operating system's entropy
  (:func:`secrets.randbits`) separately, so recovering the public stream from a release (e.g. the
  released projection ``U`` of ``slicing``) says nothing about the noise.

A user seed (``random_state=int``) is for reproducible research runs only: both keys are then derived
from it (with different domain-separation labels, so the streams stay separate), anyone who knows the
seed can regenerate and subtract the noise, and the privacy report marks the release ``seeded``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from tabpriv.errors import PrivacyParameterError

if TYPE_CHECKING:
    import torch

__all__ = [
    "SECRET_GENERATOR",
    "RandomSource",
    "block_seed",
    "derive_key",
    "derive_seed",
    "fresh_secret_key",
    "sample_discrete_gaussian",
    "secret_generator",
    "secret_normal_torch",
]

#: How secret noise is generated, in words (stated in privacy reports and docs).
SECRET_GENERATOR = "ChaCha20 (randomgen) keyed with 256 bits of operating-system entropy"

_KEY_BITS = 256


def fresh_secret_key() -> int:
    """256 bits from the operating system's entropy (:func:`secrets.randbits`)."""
    return secrets.randbits(_KEY_BITS)


def derive_key(key: int, purpose: str) -> int:
    """A 256-bit key for ``purpose`` from ``key``: HMAC-SHA256(key, purpose), a standard PRF.

    Keys for different purposes are computationally independent, and no key reveals its parent.
    """
    if key < 0:
        raise PrivacyParameterError(f"A key must be a non-negative integer; got {key}.")
    raw = key.to_bytes(max(32, (key.bit_length() + 7) // 8), "little")
    digest = hmac.new(raw, b"tabpriv-secret:" + purpose.encode("utf-8"), hashlib.sha256).digest()
    return int.from_bytes(digest, "little")


def secret_generator(key: int, purpose: str) -> np.random.Generator:
    """A numpy ``Generator`` on ChaCha20 (20 rounds) keyed with ``derive_key(key, purpose)``.

    Use it for every draw that a privacy guarantee rests on (noise, secret subsampling). Each purpose
    gets its own key, so two mechanisms never share a stream.
    """
    from randomgen import ChaCha

    return np.random.Generator(ChaCha(key=derive_key(key, purpose), rounds=20))


def secret_normal_torch(
    rng: np.random.Generator,
    shape: tuple[int, ...] | Any,
    *,
    std: float = 1.0,
    device: Any = "cpu",
    dtype: Any = None,
) -> torch.Tensor:
    """Gaussian noise ``N(0, std²)`` of ``shape`` drawn from a secret numpy generator, as a tensor.

    The draw happens on the host (ChaCha20, about 45M float32 normals per second per core) and is
    copied to ``device``; torch's own generators (Mersenne Twister, Philox) are not cryptographically
    secure, so secret noise never comes from them.
    """
    import torch

    dt = torch.float32 if dtype is None else dtype
    np_dtype = np.float64 if dt == torch.float64 else np.float32
    z = rng.standard_normal(tuple(int(s) for s in shape), dtype=np_dtype)
    if std != 1.0:
        z *= np_dtype(std)
    t = torch.from_numpy(z)
    if t.dtype != dt:
        t = t.to(dt)
    return t.to(device, non_blocking=True) if str(device) != "cpu" else t


def sample_discrete_gaussian(rng: np.random.Generator, sigma: float, size: int) -> np.ndarray:
    """``size`` i.i.d. draws of the discrete Gaussian ``N_Z(0, sigma^2)`` as int64, from ``rng``.

    The rejection sampler of Canonne, Kamath & Steinke (2020, Algorithm 3), vectorised: propose
    ``Y ~ Lap_Z(t)`` with ``t = floor(sigma) + 1`` (the difference of two geometric variables with
    success probability ``1 - exp(-1/t)``) and accept with probability
    ``exp(-(|Y| - sigma^2/t)^2 / (2 sigma^2))``. The algorithm is exact; this implementation evaluates the
    geometric draws and the acceptance test in float64 (numpy), so its distribution is exact only up to
    floating-point rounding and it is **not** hardened against floating-point attacks. tabpriv uses it
    only for seeded research runs (on the seeded ChaCha20 stream); unseeded releases use OpenDP's
    sampler (exact integer arithmetic, its own OS-entropy CSPRNG).

    Raises:
        PrivacyParameterError: ``sigma`` not finite and > 0, or ``size`` negative.

    """
    if not (np.isfinite(sigma) and sigma > 0):
        raise PrivacyParameterError(f"sigma must be finite and > 0; got {sigma!r}.")
    if size < 0:
        raise PrivacyParameterError(f"size must be >= 0; got {size!r}.")
    sigma = float(sigma)
    t = float(np.floor(sigma) + 1.0)
    p = -np.expm1(-1.0 / t)  # success probability of each geometric: 1 - e^(-1/t)
    out = np.empty(size, dtype=np.int64)
    todo = np.arange(size)
    while todo.size:
        m = todo.size
        y = (rng.geometric(p, size=m) - rng.geometric(p, size=m)).astype(np.int64)
        accept_p = np.exp(-((np.abs(y) - sigma * sigma / t) ** 2) / (2.0 * sigma * sigma))
        ok = rng.random(m) < accept_p
        out[todo[ok]] = y[ok]
        todo = todo[~ok]
    return out


@dataclass(frozen=True)
class RandomSource:
    """Where a run's randomness comes from.

    With ``random_state=None`` the public seed (128 bits) and the secret key (256 bits) are drawn
    **separately** from the operating system's entropy and are **never stored or reported**. A user
    seed makes the run reproducible: both are then derived from it, still as separate streams, and the
    privacy report marks the release ``seeded`` (anyone who knows the seed can regenerate and subtract
    the noise, so the seed must stay secret).

    Attributes:
        seed: The root seed of public randomness (secret all the same: never log it).
        seeded: True when the seed came from the user.
        secret_key: The root key of secret randomness (ChaCha20); never stored, logged or reported.

    """

    seed: int
    seeded: bool
    secret_key: int = field(default=-1, repr=False)

    def __post_init__(self) -> None:
        if self.secret_key < 0:
            key = derive_key(self.seed, "root") if self.seeded else fresh_secret_key()
            object.__setattr__(self, "secret_key", key)

    @classmethod
    def from_random_state(cls, random_state: int | None) -> RandomSource:
        """Build from a user seed (``int``) or from OS entropy (``None``)."""
        if random_state is None:
            return cls(secrets.randbits(128), seeded=False)
        if isinstance(random_state, bool) or not isinstance(random_state, int | np.integer):
            raise PrivacyParameterError(
                f"random_state must be an integer seed or None; got {random_state!r}."
            )
        if random_state < 0:
            raise PrivacyParameterError(f"random_state must be >= 0; got {random_state}.")
        return cls(int(random_state), seeded=True)

    def child(self, purpose: str) -> int:
        """An independent public seed for one purpose (e.g. ``"fit"``, ``"sample"``)."""
        return derive_seed(self.seed, purpose)

    def secret_child(self, purpose: str) -> int:
        """An independent secret key for one purpose (derived from the secret key, never the seed)."""
        return derive_key(self.secret_key, purpose)

    def numpy(self, purpose: str) -> np.random.Generator:
        """A numpy generator of public randomness for one purpose."""
        return np.random.default_rng(self.child(purpose))

    def __repr__(self) -> str:  # never print the seed or the key
        return f"RandomSource(seeded={self.seeded})"


def derive_seed(seed: int, purpose: str) -> int:
    """Derive a 128-bit public seed for ``purpose`` from ``seed`` (numpy SeedSequence with a key)."""
    key = [b for b in purpose.encode("utf-8")]
    ss = np.random.SeedSequence(entropy=seed, spawn_key=tuple(key))
    words = ss.generate_state(4, dtype=np.uint32)
    return int(sum(int(w) << (32 * i) for i, w in enumerate(words)))


def block_seed(seed: int, index: int) -> int:
    """Seed of block ``index`` of a draw split into blocks.

    Block 0 uses ``seed`` itself (so a draw that fits in one block is exactly the unsplit draw); block
    ``i >= 1`` uses ``derive_seed(seed, f"chunk-{i}")``.
    """
    return seed if index == 0 else derive_seed(seed, f"chunk-{index}")


def torch_generator(seed: int, device: str = "cpu"):  # type: ignore[no-untyped-def]
    """A torch generator of **public** randomness on ``device``; imports torch lazily.

    Never use it for privacy noise (see :func:`secret_generator`).
    """
    import torch

    g = torch.Generator(device=device)
    g.manual_seed(seed % (2**63 - 1))
    return g
