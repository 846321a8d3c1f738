"""Reversible, schema-driven encoding of a whole table."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np

from tabpriv.errors import DataValidationError, NotFittedError
from tabpriv.transformers.categorical import OneHotTransformer
from tabpriv.transformers.encoded import ColumnSpan, EncodedTable
from tabpriv.transformers.numeric import ScaledNumericTransformer

if TYPE_CHECKING:
    import pandas as pd

    from tabpriv.schema import Schema

__all__ = ["TableTransformer"]

ColumnTransformer = OneHotTransformer | ScaledNumericTransformer


class TableTransformer:
    """Encode a table into an :class:`EncodedTable` and decode model output back into a DataFrame.

    The transformer is fitted on the **schema only**: ``fit`` never looks at data values, so encoding
    spends no privacy budget.

    Args:
        schema: The public schema.

    Example:
        >>> tt = TableTransformer(schema).fit()
        >>> enc = tt.transform(df)
        >>> back = tt.inverse_transform(enc.data)

    """

    def __init__(self, schema: Schema) -> None:
        self.schema = schema

    def fit(self, df: pd.DataFrame | None = None) -> TableTransformer:
        """Build the per-column transformers from the schema. ``df`` is accepted and ignored."""
        del df
        self.transformers_: list[ColumnTransformer] = []
        spans: list[ColumnSpan] = []
        pos = 0
        for col in self.schema:
            t: ColumnTransformer = (
                OneHotTransformer(col) if col.kind == "categorical" else ScaledNumericTransformer(col)
            )
            self.transformers_.append(t)
            spans.append(ColumnSpan(col.name, col.kind, pos, t.width, t.blocks(pos), col.n_levels, col.bins))
            pos += t.width
        self.spans_: tuple[ColumnSpan, ...] = tuple(spans)
        self.width_: int = pos
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "spans_"):
            raise NotFittedError("This TableTransformer is not fitted yet; call fit() first.")

    def transform(self, df: pd.DataFrame, *, clip: bool = False) -> EncodedTable:
        """Validate ``df`` against the schema and encode it.

        Raises:
            DataValidationError: The table does not conform to the schema (see ``Schema.validate``).

        """
        self._check_fitted()
        clean, _ = self.schema.validate(df, clip=clip)
        return self.transform_validated(clean)

    def transform_validated(self, clean: pd.DataFrame) -> EncodedTable:
        """Encode a table already returned by ``Schema.validate`` (no second validation pass).

        The whole ``len(clean) × width`` float32 matrix is built at once; :meth:`transform_lazy` encodes
        rows on demand instead.
        """
        self._check_fitted()
        return EncodedTable(self._encode_frame(clean), self.spans_)

    def transform_lazy(self, clean: pd.DataFrame) -> EncodedTable:
        """A lazy :class:`EncodedTable` over a table already returned by ``Schema.validate``.

        Rows are encoded only when a backend reads them (``iter_chunks``, ``take``, or ``data``, which
        materialises and caches the full matrix). The table keeps a reference to ``clean``, which must
        not be modified while the table is in use. Encoded rows equal those of
        :meth:`transform_validated`, value for value.
        """
        self._check_fitted()

        def encode_rows(rows: slice | np.ndarray) -> np.ndarray:
            return self._encode_frame(clean.iloc[rows])

        return EncodedTable.lazy(self.spans_, len(clean), encode_rows)

    def _encode_frame(self, clean: pd.DataFrame) -> np.ndarray:
        out = np.empty((len(clean), self.width_), dtype=np.float32)
        for t, span in zip(self.transformers_, self.spans_, strict=True):
            out[:, span.slice] = t.encode(clean[span.name])
        return out

    def inverse_transform(
        self,
        data: np.ndarray,
        *,
        categorical: Literal["sample", "argmax"] = "argmax",
        rng: np.random.Generator | None = None,
    ) -> pd.DataFrame:
        """Decode a matrix of encoded rows (or model output) into a DataFrame.

        Args:
            data: ``(n, width)`` matrix.
            categorical: ``"argmax"`` picks the highest score of each one-hot block and thresholds
                missing indicators at 0.5; ``"sample"`` draws from the normalised scores (and draws the
                missing indicator as a Bernoulli), which needs ``rng``.
            rng: Random generator for ``"sample"``.

        Returns:
            A DataFrame with the schema's columns and order, every value inside the domain, each column
            of the schema's :attr:`~tabpriv.schema.Column.output_dtype` (``category`` with the declared
            categories, ``Int64``, ``float64`` rounded to the column's decimals) and a ``RangeIndex``.

        """
        return self.schema.output_frame(self.decode_columns(data, categorical=categorical, rng=rng))

    def decode_columns(
        self,
        data: np.ndarray,
        *,
        categorical: Literal["sample", "argmax"] = "argmax",
        rng: np.random.Generator | None = None,
    ) -> dict[str, pd.Series]:
        """Like :meth:`inverse_transform`, but return one Series per column (schema order), unconsolidated.

        Same values and the same draws from ``rng`` as :meth:`inverse_transform`, but each Series has the
        decoder's :attr:`~tabpriv.schema.Column.pandas_dtype` (what :meth:`Schema.validate` gives);
        chunked sampling concatenates them and converts to the output dtypes once
        (:meth:`Schema.output_frame`).
        """
        self._check_fitted()
        arr = np.asarray(data)
        if arr.ndim != 2 or arr.shape[1] != self.width_:
            raise DataValidationError(
                f"Expected an (n, {self.width_}) matrix to decode; got shape {arr.shape}."
            )
        if categorical == "sample" and rng is None:
            rng = np.random.default_rng()
        use_rng = rng if categorical == "sample" else None
        return {
            span.name: t.decode(arr[:, span.slice], use_rng).reset_index(drop=True)
            for t, span in zip(self.transformers_, self.spans_, strict=True)
        }
