"""One-hot encoding of a categorical column (missing is its own category when allowed)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tabpriv.transformers.encoded import Block

if TYPE_CHECKING:
    import pandas as pd

    from tabpriv.schema import Column

__all__ = ["OneHotTransformer", "sample_categorical"]


def sample_categorical(scores: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
    """Pick one index per row: argmax (``rng=None``) or a draw from the normalised non-negative scores.

    Rows whose scores are all non-positive fall back to the uniform distribution when sampling.
    """
    if rng is None:
        return np.asarray(scores.argmax(axis=1), dtype=np.int64)
    p = np.clip(np.nan_to_num(scores.astype(np.float64), nan=0.0), 0.0, None)
    tot = p.sum(axis=1, keepdims=True)
    zero = tot[:, 0] <= 0
    if zero.any():
        p[zero] = 1.0
        tot[zero] = p.shape[1]
    cdf = np.cumsum(p / tot, axis=1)
    u = rng.random((p.shape[0], 1))
    return np.minimum((cdf < u).sum(axis=1), p.shape[1] - 1).astype(np.int64)


class OneHotTransformer:
    """Encode a categorical column as a one-hot block over the schema's categories.

    When the column may be missing, a last coordinate stands for "missing".
    """

    def __init__(self, column: Column) -> None:
        self.column = column

    @property
    def width(self) -> int:
        """Number of encoded coordinates."""
        cats = self.column.categories or ()
        return len(cats) + (1 if self.column.missing else 0)

    def blocks(self, start: int) -> tuple[Block, ...]:
        """Activation blocks of the span starting at ``start``."""
        return (Block("softmax", start, self.width),)

    def encode(self, s: pd.Series) -> np.ndarray:
        """Encode a validated series (values are schema categories or NaN)."""
        import pandas as pd

        cats = list(self.column.categories or ())
        codes = pd.Categorical(s, categories=cats).codes.astype(np.int64)
        na = s.isna().to_numpy()
        codes = np.where(na, len(cats), codes)
        if (codes < 0).any():  # defensive: validation guarantees membership
            raise ValueError(f"Column {self.column.name!r} holds values outside its categories.")
        out = np.zeros((len(s), self.width), dtype=np.float32)
        out[np.arange(len(s)), codes] = 1.0
        return out

    def decode(self, block: np.ndarray, rng: np.random.Generator | None) -> pd.Series:
        """Turn scores (one-hot, probabilities or logits-after-softmax) back into categories."""
        import pandas as pd

        cats = list(self.column.categories or ())
        idx = sample_categorical(block, rng)
        values = np.empty(len(idx), dtype=object)
        lookup = np.array([*cats, np.nan], dtype=object)
        values[:] = lookup[np.minimum(idx, len(cats))]
        return pd.Series(values, name=self.column.name).astype(np.dtype(self.column.pandas_dtype))
