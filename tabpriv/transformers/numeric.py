"""Scaling of integer and continuous columns to [-1, 1] by their declared bounds."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tabpriv.transformers.encoded import Block

if TYPE_CHECKING:
    import pandas as pd

    from tabpriv.schema import Column

__all__ = ["ScaledNumericTransformer"]


class ScaledNumericTransformer:
    """Map ``[lower, upper]`` linearly onto ``[-1, 1]``; add a 0/1 missing indicator when allowed.

    A missing value is encoded as value 0 with indicator 1, so each row of the block has L2 norm at most
    1 whatever the value.
    """

    def __init__(self, column: Column) -> None:
        self.column = column
        assert column.lower is not None and column.upper is not None
        self._lo = float(column.lower)
        self._hi = float(column.upper)
        self._decimals = int(column.decimals or 0)

    @property
    def width(self) -> int:
        """Number of encoded coordinates."""
        return 2 if self.column.missing else 1

    def blocks(self, start: int) -> tuple[Block, ...]:
        """Activation blocks of the span starting at ``start``."""
        if self.column.missing:
            return (Block("tanh", start, 1), Block("sigmoid", start + 1, 1))
        return (Block("tanh", start, 1),)

    def encode(self, s: pd.Series) -> np.ndarray:
        """Encode a validated series (values inside the bounds, or NaN where allowed)."""
        x = s.to_numpy(dtype=np.float64, na_value=np.nan)
        na = np.isnan(x)
        scaled = 2.0 * (np.where(na, self._lo, x) - self._lo) / (self._hi - self._lo) - 1.0
        scaled = np.where(na, 0.0, np.clip(scaled, -1.0, 1.0))
        out = np.empty((len(x), self.width), dtype=np.float32)
        out[:, 0] = scaled
        if self.column.missing:
            out[:, 1] = na
        return out

    def decode(self, block: np.ndarray, rng: np.random.Generator | None) -> pd.Series:
        """Turn model output back into numbers inside the bounds, rounded to the column's ``decimals``.

        Integers are rounded to whole numbers; continuous values to :attr:`Column.decimals` places (the
        schema's ``precision`` or its default), then clipped into the bounds again (a rounded value
        never leaves them; a declared bound itself may have more decimals).
        """
        import pandas as pd

        v = np.clip(np.nan_to_num(block[:, 0].astype(np.float64), nan=0.0), -1.0, 1.0)
        x = self._lo + (v + 1.0) * 0.5 * (self._hi - self._lo)
        if self.column.kind == "integer":
            x = np.clip(np.rint(x), self._lo, self._hi)
        else:
            x = np.clip(np.round(x, self._decimals), self._lo, self._hi)
        if self.column.missing:
            ind = np.clip(np.nan_to_num(block[:, 1].astype(np.float64), nan=0.0), 0.0, 1.0)
            na = rng.random(len(ind)) < ind if rng is not None else ind > 0.5
            x = np.where(na, np.nan, x)
        return pd.Series(x, name=self.column.name).astype(np.dtype(self.column.pandas_dtype))
