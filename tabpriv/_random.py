"""Randomness: operating-system entropy by default, a user seed only when asked for."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import numpy as np

from tabpriv.errors import PrivacyParameterError

__all__ = ["RandomSource", "block_seed", "derive_seed"]


@dataclass(frozen=True)
class RandomSource:
    """Where a run's randomness comes from.

    With ``random_state=None`` the seed is 128 bits from :func:`secrets.randbits` (the operating
    system's entropy) and is **never stored or reported**. A user seed makes the run reproducible, and
    the privacy report marks the release ``seeded``: anyone who knows the seed can regenerate and
    subtract the noise, so the seed must stay secret.

    Attributes:
        seed: The root seed (secret).
        seeded: True when the seed came from the user.

    """

    seed: int
    seeded: bool

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
        """An independent seed for one purpose (e.g. ``"noise"``, ``"train"``, ``"sample"``)."""
        return derive_seed(self.seed, purpose)

    def numpy(self, purpose: str) -> np.random.Generator:
        """A numpy generator for one purpose."""
        return np.random.default_rng(self.child(purpose))

    def __repr__(self) -> str:  # never print the seed
        return f"RandomSource(seeded={self.seeded})"


def derive_seed(seed: int, purpose: str) -> int:
    """Derive a 128-bit seed for ``purpose`` from ``seed`` (numpy SeedSequence with a purpose key)."""
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
    """A torch generator on ``device`` seeded from a (large) seed; imports torch lazily."""
    import torch

    g = torch.Generator(device=device)
    g.manual_seed(seed % (2**63 - 1))
    return g
