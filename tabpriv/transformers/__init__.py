"""Schema-aware reversible transformers."""

from tabpriv.transformers.categorical import OneHotTransformer
from tabpriv.transformers.encoded import Block, ColumnSpan, EncodedTable
from tabpriv.transformers.numeric import ScaledNumericTransformer
from tabpriv.transformers.table import TableTransformer

__all__ = [
    "Block",
    "ColumnSpan",
    "EncodedTable",
    "OneHotTransformer",
    "ScaledNumericTransformer",
    "TableTransformer",
]
