"""The public description of a table: column kinds, domains and whether values may be missing.

A schema is *public knowledge*: it is what lets tabpriv encode a table without looking at it. Bounds and
category lists written by a person from a data dictionary cost no privacy budget. A schema obtained with
:meth:`Schema.infer` is read off the private data and is therefore marked ``source="inferred"``: every
release made with it carries a :class:`~tabpriv.errors.PrivacyWarning` and a report that says it is not
end-to-end differentially private.

The JSON form (``*.schema.json``) is meant to be written by hand::

    {
      "tabpriv_schema": 1,
      "columns": [
        {"name": "age", "kind": "integer", "lower": 17, "upper": 90},
        {"name": "workclass", "kind": "categorical", "categories": ["Private", "State-gov"],
         "missing": true},
        {"name": "hours", "kind": "continuous", "lower": 0, "upper": 99.5, "bins": 20,
         "precision": 1}
      ]
    }

Synthetic tables come back with the schema's logical types as pandas dtypes (:attr:`Column.output_dtype`,
:meth:`Schema.output_frame`): categorical columns as ``category`` with the declared categories in the
declared order, integer columns as the nullable ``Int64`` (missing values are ``<NA>``, with or without
``"missing": true``), continuous columns as ``float64`` (``NaN`` where missing) rounded to
:attr:`Column.decimals` decimal places (the column's ``precision``, or by default the fewest decimals that
resolve 1/10,000 of the declared range). The index is a fresh ``RangeIndex`` (``0 .. n-1``): synthetic
rows correspond to no input row.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from tabpriv.errors import DataValidationError, DataWarning, PrivacyWarning, SchemaError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Column", "ColumnKind", "Schema", "SchemaSource", "ValidationSummary"]

ColumnKind = Literal["categorical", "integer", "continuous"]
SchemaSource = Literal["declared", "inferred"]
Category = str | int | float | bool

SCHEMA_FORMAT_VERSION = 1
_KINDS: tuple[str, ...] = ("categorical", "integer", "continuous")
_COLUMN_KEYS = {"name", "kind", "categories", "lower", "upper", "missing", "bins", "precision", "description"}
#: Largest ``precision`` (decimal places) a continuous column may declare (float64 holds ~15-17 digits).
MAX_PRECISION = 15
#: Default resolution of a continuous column: the fewest decimals that resolve this share of its range.
DEFAULT_RESOLUTION = 1e-4
#: Largest number of categories accepted in one column (guards against a column of free text).
MAX_CATEGORIES = 100_000


@dataclass(frozen=True)
class Column:
    """One column of a schema.

    Attributes:
        name: Column name, exactly as in the table.
        kind: ``"categorical"``, ``"integer"`` or ``"continuous"``.
        categories: The category list (categorical columns only), in a fixed public order.
        lower: Lower bound (numeric columns only), inclusive.
        upper: Upper bound (numeric columns only), inclusive.
        missing: Whether the column may hold missing values.
        bins: Optional number of equal-width bins used where numbers are discretised (histograms,
            marginals). ``None`` lets the consumer choose.
        precision: Decimal places synthetic values of a continuous column are rounded to (0 to
            :data:`MAX_PRECISION`; continuous columns only). ``None`` (default): see :attr:`decimals`.
        description: Free text for people; ignored by the code.

    """

    name: str
    kind: ColumnKind
    categories: tuple[Category, ...] | None = None
    lower: float | None = None
    upper: float | None = None
    missing: bool = False
    bins: int | None = None
    precision: int | None = None
    description: str = ""

    def __post_init__(self) -> None:
        where = f"column {self.name!r}"
        if not isinstance(self.name, str) or self.name == "":
            raise SchemaError(f"Column names must be non-empty strings; got {self.name!r}.")
        if self.kind not in _KINDS:
            raise SchemaError(f"{where}: unknown kind {self.kind!r}; use one of {', '.join(_KINDS)}.")
        if not isinstance(self.missing, bool):
            raise SchemaError(f"{where}: 'missing' must be true or false; got {self.missing!r}.")
        if self.bins is not None and (
            isinstance(self.bins, bool) or not isinstance(self.bins, int) or self.bins < 1
        ):
            raise SchemaError(f"{where}: 'bins' must be a positive integer; got {self.bins!r}.")
        if self.precision is not None:
            if self.kind != "continuous":
                raise SchemaError(
                    f"{where}: 'precision' (decimal places) applies to continuous columns only; a "
                    f"{self.kind} column has none, remove the key."
                )
            if (
                isinstance(self.precision, bool)
                or not isinstance(self.precision, int)
                or not 0 <= self.precision <= MAX_PRECISION
            ):
                raise SchemaError(
                    f"{where}: 'precision' must be a whole number of decimal places from 0 to "
                    f"{MAX_PRECISION}; got {self.precision!r}."
                )
        if self.kind == "categorical":
            self._check_categorical(where)
        else:
            self._check_numeric(where)

    def _check_categorical(self, where: str) -> None:
        if self.lower is not None or self.upper is not None:
            raise SchemaError(f"{where}: a categorical column takes 'categories', not bounds.")
        cats = self.categories
        if cats is None or len(cats) == 0:
            raise SchemaError(
                f"{where}: a categorical column needs a non-empty 'categories' list; got {cats!r}."
            )
        if len(cats) > MAX_CATEGORIES:
            raise SchemaError(
                f"{where}: {len(cats)} categories exceed the limit of {MAX_CATEGORIES}; "
                "declare the column as numeric or coarsen it."
            )
        for c in cats:
            if not isinstance(c, str | int | float | bool) or (isinstance(c, float) and not math.isfinite(c)):
                raise SchemaError(
                    f"{where}: categories must be strings or finite numbers; got {c!r}. "
                    'Declare missing values with "missing": true instead of listing them.'
                )
        keys = [_category_key(c) for c in cats]
        if len(set(keys)) != len(keys):
            dup = sorted({repr(c) for c, k in zip(cats, keys, strict=True) if keys.count(k) > 1})
            raise SchemaError(f"{where}: duplicate categories {', '.join(dup)}.")

    def _check_numeric(self, where: str) -> None:
        if self.categories is not None:
            raise SchemaError(f"{where}: a {self.kind} column takes bounds, not 'categories'.")
        for label, value in (("lower", self.lower), ("upper", self.upper)):
            if value is None:
                raise SchemaError(
                    f"{where}: a {self.kind} column needs a '{label}' bound (public knowledge, "
                    "e.g. from a data dictionary)."
                )
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise SchemaError(f"{where}: '{label}' must be a number; got {value!r}.")
            if not math.isfinite(value):
                raise SchemaError(f"{where}: '{label}' must be finite; got {value!r}.")
        assert self.lower is not None and self.upper is not None
        if not self.lower < self.upper:
            raise SchemaError(
                f"{where}: 'lower' must be smaller than 'upper'; got lower={self.lower}, upper={self.upper}."
            )
        if self.kind == "integer" and (
            float(self.lower) != math.floor(self.lower) or float(self.upper) != math.floor(self.upper)
        ):
            raise SchemaError(
                f"{where}: an integer column needs whole-number bounds; got [{self.lower}, {self.upper}]."
            )

    @property
    def is_numeric(self) -> bool:
        """Whether the column is integer or continuous."""
        return self.kind != "categorical"

    @property
    def n_levels(self) -> int | None:
        """Number of distinct values an integer column can take (``None`` for other kinds)."""
        if self.kind != "integer":
            return None
        assert self.lower is not None and self.upper is not None
        return int(self.upper) - int(self.lower) + 1

    @property
    def decimals(self) -> int | None:
        """Decimal places synthetic values are rounded to: 0 for integers, ``None`` for categories.

        A continuous column uses its ``precision`` when declared, else the fewest decimal places ``d``
        (0 to :data:`MAX_PRECISION`) with ``10**-d <= (upper - lower) * DEFAULT_RESOLUTION``, i.e. the
        rounding step is at most 1/10,000 of the declared range: ``[0, 1]`` -> 4, ``[0, 99.5]`` -> 3,
        ``[0, 100000]`` and wider -> 0. It depends on the schema only.
        """
        if self.kind == "integer":
            return 0
        if self.kind != "continuous":
            return None
        if self.precision is not None:
            return self.precision
        assert self.lower is not None and self.upper is not None
        step = (float(self.upper) - float(self.lower)) * DEFAULT_RESOLUTION
        d = math.ceil(-math.log10(step) - 1e-9)
        return min(MAX_PRECISION, max(0, d))

    @property
    def output_dtype(self) -> Any:
        """The pandas dtype of this column in a synthetic table (see the module docstring).

        ``category`` with the declared categories (in their order) for categorical columns, ``Int64``
        for integers (``float64`` where a bound lies beyond the int64 range), ``float64`` for
        continuous columns. A category list pandas cannot hold as
        distinct categories (``True`` beside ``1``, which pandas takes as equal) keeps
        :attr:`pandas_dtype`. Depends on the schema only, never on the data.
        """
        import pandas as pd

        if self.kind == "integer":
            assert self.lower is not None and self.upper is not None
            if float(self.lower) >= -(2.0**63) and float(self.upper) < 2.0**63:
                return pd.Int64Dtype()
            return np_dtype("float64")  # bounds beyond int64: whole numbers as floats
        if self.kind == "continuous":
            return np_dtype("float64")
        cats = list(self.categories or ())
        try:
            return pd.CategoricalDtype(categories=pd.Index(cats), ordered=False)
        except (ValueError, TypeError):
            return np_dtype(self.pandas_dtype)

    def to_output(self, values: Any) -> Any:
        """Values of this column (as decoded, :attr:`pandas_dtype`) as an array of :attr:`output_dtype`."""
        import pandas as pd

        dtype = self.output_dtype
        if isinstance(dtype, pd.CategoricalDtype):
            return pd.Categorical(values, dtype=dtype)
        if isinstance(dtype, pd.Int64Dtype):
            return pd.array(values, dtype=dtype)
        return values

    @property
    def pandas_dtype(self) -> str:
        """The dtype a column of this kind has when pandas reads it from CSV (and tabpriv validates it).

        Integers that may be missing are ``float64`` (NaN marks the missing ones), as ``read_csv``
        gives them. This is the dtype of :meth:`Schema.validate`'s copy and of the decoder; synthetic
        tables are returned with :attr:`output_dtype`. The dtype depends on the schema only, never on
        the data.
        """
        if self.kind == "continuous":
            return "float64"
        if self.kind == "integer":
            return "float64" if self.missing else "int64"
        cats = self.categories or ()
        if all(isinstance(c, bool) for c in cats):
            return "object" if self.missing else "bool"
        if all(isinstance(c, int) and not isinstance(c, bool) for c in cats):
            return "float64" if self.missing else "int64"
        if all(isinstance(c, int | float) and not isinstance(c, bool) for c in cats):
            return "float64"
        return "object"

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-ready form of the column (keys with default values are left out)."""
        out: dict[str, Any] = {"name": self.name, "kind": self.kind}
        if self.categories is not None:
            out["categories"] = list(self.categories)
        if self.lower is not None:
            out["lower"] = self.lower
            out["upper"] = self.upper
        if self.missing:
            out["missing"] = True
        if self.bins is not None:
            out["bins"] = self.bins
        if self.precision is not None:
            out["precision"] = self.precision
        if self.description:
            out["description"] = self.description
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], position: int = 0) -> Column:
        """Build a column from its JSON form, with messages that name the column and the problem."""
        if not isinstance(d, Mapping):
            raise SchemaError(f"Schema column #{position + 1} must be an object; got {d!r}.")
        name = d.get("name")
        where = f"column {name!r}" if name is not None else f"column #{position + 1}"
        unknown = set(d) - _COLUMN_KEYS
        if unknown:
            raise SchemaError(
                f"{where}: unknown key(s) {', '.join(sorted(unknown))}; allowed keys are "
                f"{', '.join(sorted(_COLUMN_KEYS))}."
            )
        if "kind" not in d:
            raise SchemaError(f"{where}: missing 'kind' (one of {', '.join(_KINDS)}).")
        cats = d.get("categories")
        if cats is not None and not isinstance(cats, list):
            raise SchemaError(f"{where}: 'categories' must be a list; got {cats!r}.")
        return cls(
            name=cast(str, name),
            kind=cast(ColumnKind, d["kind"]),
            categories=tuple(cats) if cats is not None else None,
            lower=d.get("lower"),
            upper=d.get("upper"),
            missing=d.get("missing", False),
            bins=d.get("bins"),
            precision=d.get("precision"),
            description=str(d.get("description", "")),
        )


def _category_key(value: Any) -> Any:
    """Key under which a category is matched: numbers by value (1 == 1.0), strings as they are."""
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, int | float):
        return ("n", float(value))
    return ("s", str(value))


@dataclass(frozen=True)
class ValidationSummary:
    """What :meth:`Schema.validate` did besides checking: clipped counts per column.

    The counts are **exact figures of the table, not differentially private**: they are for the data
    owner checking their bounds, in-process. tabpriv never releases them (not in a privacy report, a
    save file, the CLI or a log); do not publish them.
    """

    clipped: dict[str, int] = field(default_factory=dict)

    @property
    def n_clipped(self) -> int:
        """Total number of values clipped into their bounds."""
        return sum(self.clipped.values())


@dataclass(frozen=True)
class Schema:
    """An ordered collection of :class:`Column` descriptions.

    Attributes:
        columns: The columns, in table order.
        source: ``"declared"`` (written from public knowledge) or ``"inferred"`` (read off the data;
            releases made with it are not end-to-end DP).

    """

    columns: tuple[Column, ...]
    source: SchemaSource = "declared"

    def __post_init__(self) -> None:
        if len(self.columns) == 0:
            raise SchemaError("A schema needs at least one column; got none.")
        names = [c.name for c in self.columns]
        dups = sorted({n for n in names if names.count(n) > 1})
        if dups:
            raise SchemaError(f"Duplicate column names in schema: {', '.join(map(repr, dups))}.")
        if self.source not in ("declared", "inferred"):
            raise SchemaError(f"Schema source must be 'declared' or 'inferred'; got {self.source!r}.")

    # -- container protocol -------------------------------------------------------------------
    def __iter__(self) -> Iterator[Column]:
        return iter(self.columns)

    def __len__(self) -> int:
        return len(self.columns)

    def __getitem__(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise SchemaError(f"Column {name!r} is not in the schema; columns are {self.names}.")

    @property
    def names(self) -> list[str]:
        """Column names in schema order."""
        return [c.name for c in self.columns]

    @property
    def is_inferred(self) -> bool:
        """Whether the schema was read off the data (not end-to-end DP)."""
        return self.source == "inferred"

    def select(self, names: Sequence[str]) -> Schema:
        """Return the schema of a subset of columns, in the given order."""
        return Schema(tuple(self[n] for n in names), source=self.source)

    def column_mismatch(self, columns: Iterable[Any]) -> tuple[list[str], list[str]]:
        """Schema columns absent from ``columns``, and ``columns`` absent from the schema (in order)."""
        given = [str(c) for c in columns]
        names = set(self.names)
        present = set(given)
        return [n for n in self.names if n not in present], [c for c in given if c not in names]

    # -- JSON ---------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-ready form of the schema."""
        out: dict[str, Any] = {"tabpriv_schema": SCHEMA_FORMAT_VERSION}
        if self.is_inferred:
            out["source"] = "inferred"
            out["note"] = (
                "Domains were read off the private data: releases made with this schema are not "
                "end-to-end differentially private. Replace the bounds and categories with public "
                "knowledge and delete the 'source' key to declare it."
            )
        out["columns"] = [c.to_dict() for c in self.columns]
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Schema:
        """Build and validate a schema from its JSON form."""
        if not isinstance(d, Mapping):
            raise SchemaError(f"A schema must be a JSON object; got {type(d).__name__}.")
        version = d.get("tabpriv_schema", SCHEMA_FORMAT_VERSION)
        if version != SCHEMA_FORMAT_VERSION:
            raise SchemaError(
                f"Unsupported schema format version {version!r}; this tabpriv reads version "
                f"{SCHEMA_FORMAT_VERSION}."
            )
        unknown = set(d) - {"tabpriv_schema", "columns", "source", "note", "description"}
        if unknown:
            raise SchemaError(f"Unknown top-level schema key(s): {', '.join(sorted(unknown))}.")
        cols = d.get("columns")
        if not isinstance(cols, list):
            raise SchemaError("A schema needs a 'columns' list of column objects.")
        source = d.get("source", "declared")
        return cls(tuple(Column.from_dict(c, i) for i, c in enumerate(cols)), source=source)

    def to_json(self, path: str | Path | None = None) -> str:
        """Serialise to JSON; write it to ``path`` (atomically) when given."""
        text = json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"
        if path is not None:
            from tabpriv.io import atomic_write_text

            atomic_write_text(Path(path), text)
        return text

    @classmethod
    def load(cls, path: str | Path) -> Schema:
        """Read and validate a ``*.schema.json`` file."""
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError as e:
            raise SchemaError(f"Schema file {str(p)!r} does not exist.") from e
        except (OSError, UnicodeDecodeError) as e:
            raise SchemaError(f"Cannot read schema file {str(p)!r}: {e}.") from e
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise SchemaError(
                f"Schema file {str(p)!r} is not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})."
            ) from e
        try:
            return cls.from_dict(data)
        except SchemaError as e:
            raise SchemaError(f"Schema file {str(p)!r}: {e}") from e

    # -- inference (non-private) --------------------------------------------------------------
    @classmethod
    def infer(cls, df: pd.DataFrame, *, max_categories: int = 1000, warn: bool = True) -> Schema:
        """Read a schema off a table. **Not private**: the result is marked ``source="inferred"``.

        Object, string, boolean and pandas-categorical columns become categorical (sorted categories);
        integer columns become ``integer`` with the observed min/max; float columns ``continuous``,
        unless every value is a whole number, in which case ``integer``.

        Columns the data owner should look at get a :class:`~tabpriv.errors.DataWarning` (whatever
        ``warn`` says), each naming the column and what to do (rules in :func:`_inference_notes`):
        an ID-like column (every value distinct, and either consecutive whole numbers or a name such
        as ``id``), a text column whose values are mostly numbers with a few stray words (``"N/A"``),
        and a column of dates (tabpriv has no date kind). A column holding whole lines of a misparsed
        file (its name and most values contain a delimiter) is refused, so no row's text ever lands
        in the draft as a category name.

        Args:
            df: The table.
            max_categories: Text columns with more distinct values raise (a free-text column cannot
                be synthesised as categorical).
            warn: Emit a :class:`PrivacyWarning` (default).

        Raises:
            DataValidationError: The table is empty, a column is entirely missing, has too many
                categories, or holds whole lines of a file read with the wrong delimiter.

        """
        import numpy as np
        import pandas as pd

        if df.shape[0] == 0 or df.shape[1] == 0:
            raise DataValidationError(
                f"Cannot infer a schema from an empty table ({df.shape[0]} rows, {df.shape[1]} columns)."
            )
        _check_column_names(df.columns)
        if warn:
            warnings.warn(
                "Schema inferred from the private data: releases made with it are not end-to-end "
                "differentially private. Declare bounds and categories from public knowledge.",
                PrivacyWarning,
                stacklevel=2,
            )
        cols: list[Column] = []
        for name in df.columns:
            s = df[name]
            missing = bool(s.isna().any())
            values = s.dropna()
            if len(values) == 0:
                raise DataValidationError(
                    f"Column {name!r} holds only missing values; a schema cannot be inferred for it."
                )
            for note in _inference_notes(str(name), s, values, n_columns=df.shape[1]):
                warnings.warn(note, DataWarning, stacklevel=2)
            if pd.api.types.is_bool_dtype(s) or not pd.api.types.is_numeric_dtype(s):
                uniq = values.unique()
                if len(uniq) > max_categories:
                    raise DataValidationError(
                        f"Column {name!r} has {len(uniq)} distinct values, more than "
                        f"max_categories={max_categories}; declare its schema by hand."
                    )
                cats = sorted((_to_python(v) for v in uniq), key=lambda v: (str(type(v)), v))
                cols.append(Column(str(name), "categorical", categories=tuple(cats), missing=missing))
                continue
            arr = values.to_numpy(dtype=float)
            if not np.all(np.isfinite(arr)):
                raise DataValidationError(
                    f"Column {name!r} holds infinite values; a schema cannot be inferred for it."
                )
            lo, hi = float(arr.min()), float(arr.max())
            whole = bool(np.all(arr == np.floor(arr)))
            if whole:
                lo_i, hi_i = int(lo), int(hi)
                if lo_i == hi_i:
                    hi_i = lo_i + 1
                cols.append(Column(str(name), "integer", lower=lo_i, upper=hi_i, missing=missing))
            else:
                if lo == hi:
                    hi = lo + 1.0
                cols.append(Column(str(name), "continuous", lower=lo, upper=hi, missing=missing))
        return cls(tuple(cols), source="inferred")

    # -- validation ---------------------------------------------------------------------------
    def validate(self, df: pd.DataFrame, *, clip: bool = False) -> tuple[pd.DataFrame, ValidationSummary]:
        """Check a table against the schema and return a normalised copy.

        The copy has the schema's column order and dtypes (:attr:`Column.pandas_dtype`). The input is
        never modified. Values are never dropped or altered silently: an out-of-domain value raises,
        unless ``clip=True``, in which case numbers are clipped into their bounds and the count is
        returned (categories outside the list always raise). The count is exact and private (see
        :class:`ValidationSummary`).

        Raises:
            DataValidationError: Empty table, duplicate/unknown/missing columns, a missing value in a
                column not declared ``missing``, non-numeric text in a numeric column, a non-integer in
                an integer column, infinities, or a value outside the declared domain.

        """
        import numpy as np
        import pandas as pd

        if not isinstance(df, pd.DataFrame):
            raise DataValidationError(f"Expected a pandas DataFrame; got {type(df).__name__}.")
        _check_column_names(df.columns)
        if df.shape[0] == 0:
            raise DataValidationError("The table has no rows (header only or empty); nothing to synthesise.")
        missing_cols, extra_cols = self.column_mismatch(df.columns)
        if missing_cols or extra_cols:
            parts = []
            if missing_cols:
                parts.append(f"in the schema but not in the data: {', '.join(map(repr, missing_cols))}")
            if extra_cols:
                parts.append(f"in the data but not in the schema: {', '.join(map(repr, extra_cols))}")
            raise DataValidationError(
                "The table's columns do not match the schema (" + "; ".join(parts) + "). Fix the "
                "schema, or select the schema's columns from the table (--columns or --drop on the command "
                "line; columns= or drop= of Synthesizer)."
            )
        out: dict[str, Any] = {}
        clipped: dict[str, int] = {}
        for col in self.columns:
            s = df[col.name]
            isna = s.isna().to_numpy()
            n_missing = int(isna.sum())
            if n_missing and not col.missing:
                first = s.index[np.flatnonzero(isna)[0]]
                raise DataValidationError(
                    f"Column {col.name!r} has {n_missing} missing value(s) (first at row {first!r}) "
                    'but the schema does not allow missing values; set "missing": true or '
                    "remove those rows before synthesis."
                )
            if col.kind == "categorical":
                out[col.name] = _validate_categorical(col, s, isna)
            else:
                values, n_clip = _validate_numeric(col, s, isna, clip)
                out[col.name] = values
                if n_clip:
                    clipped[col.name] = n_clip
        result = _frame_from_columns(out, index=df.index)
        return result, ValidationSummary(clipped)

    def output_frame(
        self, columns: Mapping[str, Any], index: Any = None, *, consume: bool = False
    ) -> pd.DataFrame:
        """A DataFrame of decoded columns (mapping order), each of its :attr:`Column.output_dtype`.

        ``index`` defaults to a ``RangeIndex``. Columns are converted one at a time; with
        ``consume=True`` (``columns`` must then be a mutable mapping) each input column is removed
        from ``columns`` once converted, so the peak memory is the output plus one column.
        """
        out: dict[str, Any] = {}
        for name in list(columns):
            values = columns[name]
            out[name] = self[name].to_output(values.to_numpy() if hasattr(values, "to_numpy") else values)
            if consume:
                del cast(dict[str, Any], columns)[name]
            del values
        return _frame_from_columns(out, index=index)

    def conform(self, df: pd.DataFrame) -> pd.DataFrame:
        """Validate ``df`` and return only the normalised copy (see :meth:`validate`)."""
        return self.validate(df)[0]


#: Rows a column needs before :meth:`Schema.infer` calls it ID-like for having only distinct values.
ID_MIN_ROWS = 20
#: Share of numbers among a text column's values from which stray words are pointed out.
MOSTLY_NUMERIC = 0.8
#: Share of date-like values from which a text column is taken for a date column.
MOSTLY_DATES = 0.9
#: Share of values holding a delimiter from which a column is taken for whole lines of a file.
MOSTLY_LINES = 0.5
_LINE_DELIMITERS = {";": "semicolon", "\t": "tab", "|": "vertical bar", ",": "comma"}
_ID_NAME = re.compile(r"(^|[^a-z])(id|idx|index|key|uuid|row|rownum|serial)([^a-z]|$)|(id|_no|number)$", re.I)
_DATE = re.compile(
    r"^\s*(\d{4}-\d{1,2}-\d{1,2}|\d{4}/\d{1,2}/\d{1,2}|\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4})"
    r"([ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?\s*(Z|[+-]\d{2}:?\d{2})?)?\s*$"
)
#: Most values of a column :func:`_inference_notes` reads for its shares.
_NOTE_SAMPLE = 20_000
#: Longest stray word quoted in a warning (longer ones are counted, not quoted).
_STRAY_QUOTE_CHARS = 12


def _inference_notes(name: str, s: pd.Series, values: pd.Series, n_columns: int) -> list[str]:
    """Warnings of :meth:`Schema.infer` on one column; raises on a column holding whole lines.

    The rules (``values`` are the present values of ``s``):

    * whole lines: a text column where at least :data:`MOSTLY_LINES` of the values contain the same
      delimiter (semicolon, tab, ``|``, or comma) that its name also contains (or the table has one
      column): refused with a :class:`DataValidationError` that quotes no value;
    * ID-like: at least :data:`ID_MIN_ROWS` rows, no missing value, every value distinct, and either
      consecutive whole numbers or a name like ``id``, ``row``, ``key``, ``*_no``;
    * mostly numeric: a text column where at least :data:`MOSTLY_NUMERIC` (but not all) of the values
      are numbers; the few other words are quoted when short (at most 3, 12 characters each);
    * dates: a datetime column, or a text column where at least :data:`MOSTLY_DATES` of the values
      look like dates (``2024-05-01``, ``01/05/2024``, with an optional time).
    """
    import numpy as np
    import pandas as pd

    notes: list[str] = []
    n = len(values)
    shown = name if len(name) <= 40 else name[:37] + "..."
    is_text = not pd.api.types.is_bool_dtype(s) and not pd.api.types.is_numeric_dtype(s)
    is_datetime = pd.api.types.is_datetime64_any_dtype(s)
    # shares are read off evenly spaced values (at most _NOTE_SAMPLE), so wide text columns stay cheap
    step = max(1, n // _NOTE_SAMPLE)
    text = values.iloc[::step].astype(str) if is_text and not is_datetime else None
    if text is not None:
        for delim, label in _LINE_DELIMITERS.items():
            if (delim in name or n_columns == 1) and text.str.contains(
                delim, regex=False
            ).mean() >= MOSTLY_LINES:
                raise DataValidationError(
                    f"Column {shown!r} holds whole lines of the file (most of its values contain a {label}"
                    f"{', as its name does' if delim in name else ''}), so the file was read with the "
                    f"wrong delimiter; read it with sep={delim!r} and infer again (no draft was written, "
                    "so no row's text became a category name)."
                )
    distinct = int(values.nunique())
    if n >= ID_MIN_ROWS and len(s) == n and distinct == n:
        consecutive = False
        if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
            arr = values.to_numpy(dtype=float)
            consecutive = bool(np.all(arr == np.floor(arr))) and float(arr.max() - arr.min()) == n - 1
        if consecutive or _ID_NAME.search(name):
            why = "consecutive whole numbers" if consecutive else "a name like an identifier"
            notes.append(
                f"Column {shown!r} looks like a row identifier (every value distinct, {why}): synthetic "
                "identifiers carry no information and its draft domain lists or bounds the private "
                "values; drop the column before synthesis."
            )
    if is_datetime or (text is not None and text.str.match(_DATE).mean() >= MOSTLY_DATES):
        notes.append(
            f"Column {shown!r} holds dates, and tabpriv has no date kind (the draft lists each date as a "
            "category); before synthesis convert it to a number declared integer with public bounds "
            "(e.g. the year, or days since 1970-01-01) or to coarse categories (e.g. year-month)."
        )
    elif text is not None:
        num = pd.to_numeric(text, errors="coerce")
        share = float(num.notna().mean())
        if MOSTLY_NUMERIC <= share < 1.0:
            stray = text[num.isna()].unique()
            quoted = [repr(w) for w in stray[:3] if len(w) <= _STRAY_QUOTE_CHARS]
            what = ", ".join(quoted) if quoted else f"{len(stray)} distinct word(s)"
            if quoted and len(stray) > len(quoted):
                what += f" and {len(stray) - len(quoted)} more"
            notes.append(
                f"Column {shown!r} holds mostly numbers but also text ({what}), so the draft "
                "declares it categorical with every number as a category; if the text marks missing "
                "values, make those cells empty (tabpriv reads only empty cells as missing) and infer "
                "again to get an integer or continuous column."
            )
    return notes


#: pandas warns (PerformanceWarning) when a column is inserted into a frame of more than 100 blocks.
_MAX_UNCONSOLIDATED_COLUMNS = 64


def _frame_from_columns(columns: Mapping[str, Any], index: Any = None) -> pd.DataFrame:
    """A DataFrame of the given columns, keeping each column's array as it is when there are few.

    ``pd.DataFrame(dict)`` copies same-dtype columns into one consolidated block, so the table is
    briefly held twice; with at most :data:`_MAX_UNCONSOLIDATED_COLUMNS` columns the arrays are kept
    (``copy=False``, one block per column). Wider tables are consolidated, so that a caller who adds
    columns does not get pandas' "highly fragmented" warning.
    """
    import pandas as pd

    copy = len(columns) > _MAX_UNCONSOLIDATED_COLUMNS
    return pd.DataFrame(columns, index=index, copy=copy)


def np_dtype(name: str) -> Any:
    """``numpy.dtype(name)`` (numpy imported on use)."""
    import numpy as np

    return np.dtype(name)


def _to_python(v: Any) -> Category:
    """Turn numpy scalars into the plain Python values JSON can hold."""
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, str | int | float | bool):
        return v
    return str(v)


def _check_column_names(columns: Iterable[Any]) -> None:
    names = [str(c) for c in columns]
    dups = sorted({n for n in names if names.count(n) > 1})
    if dups:
        raise DataValidationError(
            f"Duplicate column name(s) in the table: {', '.join(map(repr, dups))}; rename them."
        )
    empty = [i for i, n in enumerate(names) if n.strip() == "" or n.startswith("Unnamed: ")]
    if empty:
        raise DataValidationError(
            f"Column(s) at position {', '.join(str(i + 1) for i in empty)} have no name; every "
            "column needs a header."
        )


def _validate_categorical(col: Column, s: pd.Series, isna: Any) -> pd.Series:
    import numpy as np
    import pandas as pd

    cats = col.categories or ()
    lookup = {_category_key(c): c for c in cats}

    def resolve(v: Any) -> Any:
        key = _category_key(_to_python(v))
        hit = lookup.get(key)
        if hit is None and isinstance(v, str):
            # A CSV may hold numeric codes as text ("1") where the schema lists numbers.
            try:
                hit = lookup.get(_category_key(float(v)))
            except ValueError:
                hit = None
        return hit

    raw = s.to_numpy(dtype=object)
    bad: dict[str, int] = {}
    fast = _factorize_exact(s, raw, isna)
    if fast is not None:
        # Equal values map alike: resolve each distinct value once (first-appearance order, so the
        # error lists the same values in the same order as the row-by-row loop below).
        codes, uniques = fast
        hits = np.empty(len(uniques) + 1, dtype=object)
        hits[-1] = np.nan
        counts = np.bincount(codes[~isna], minlength=len(uniques))
        for j, v in enumerate(uniques):
            hits[j] = resolve(v)
            if hits[j] is None:
                bad[repr(v)] = int(counts[j])
        mapped = hits[np.where(isna, len(uniques), codes)]
    else:
        mapped = np.empty(len(raw), dtype=object)
        for i, v in enumerate(raw):
            if isna[i]:
                mapped[i] = np.nan
                continue
            hit = resolve(v)
            if hit is None:
                bad[repr(v)] = bad.get(repr(v), 0) + 1
            mapped[i] = hit
    if bad:
        n_bad = sum(bad.values())
        shown = ", ".join(f"{k} ({n} rows)" for k, n in list(bad.items())[:5])
        raise DataValidationError(
            f"Column {col.name!r} has {n_bad} value(s) outside the declared categories: {shown}"
            f"{' ...' if len(bad) > 5 else ''}. Add them to the schema's 'categories' or fix the data."
        )
    return pd.Series(mapped, index=s.index, name=col.name).astype(np.dtype(col.pandas_dtype))


def _factorize_exact(s: pd.Series, raw: Any, isna: Any) -> tuple[Any, Any] | None:
    """``(codes, uniques)`` of the present values when equal values are also of the same type, else None.

    That holds when every present value is a ``str``, or the column has an integer or boolean numpy
    dtype. (Elsewhere ``1 == 1.0 == True`` would merge values that validate differently or print
    differently in an error message, so the caller checks value by value.)
    """
    import numpy as np
    import pandas as pd

    kind = getattr(s.dtype, "kind", "O")
    if kind not in "iub" and pd.api.types.infer_dtype(raw, skipna=True) != "string":
        return None
    codes, uniques = pd.factorize(raw, use_na_sentinel=True)
    if ((codes < 0) & ~isna).any():  # defensive: a value factorize calls missing but isna does not
        return None
    return np.asarray(codes, dtype=np.int64), np.asarray(uniques, dtype=object)


def _validate_numeric(col: Column, s: pd.Series, isna: Any, clip: bool) -> tuple[Any, int]:
    import numpy as np
    import pandas as pd

    if pd.api.types.is_bool_dtype(s):
        raise DataValidationError(
            f"Column {col.name!r} is declared {col.kind} but holds true/false values; declare it categorical."
        )
    num = pd.to_numeric(s, errors="coerce")
    bad_text = (~isna) & num.isna().to_numpy()
    if bad_text.any():
        examples = s[bad_text].astype(str).unique()[:3]
        raise DataValidationError(
            f"Column {col.name!r} is declared {col.kind} but {int(bad_text.sum())} value(s) are not "
            f"numbers (e.g. {', '.join(map(repr, examples))}); fix the data or declare the column "
            "categorical."
        )
    arr = num.to_numpy(dtype=float, na_value=np.nan)
    present = ~np.isnan(arr)
    if np.isinf(arr[present]).any():
        n_inf = int(np.isinf(arr).sum())
        raise DataValidationError(
            f"Column {col.name!r} has {n_inf} infinite value(s); tabpriv needs finite numbers."
        )
    if col.kind == "integer":
        frac = present & (arr != np.floor(np.where(present, arr, 0.0)))
        if frac.any():
            ex = arr[frac][:3]
            raise DataValidationError(
                f"Column {col.name!r} is declared integer but {int(frac.sum())} value(s) have a "
                f"fractional part (e.g. {', '.join(map(str, ex))}); declare it continuous."
            )
    assert col.lower is not None and col.upper is not None
    lo, hi = float(col.lower), float(col.upper)
    out_mask = present & ((arr < lo) | (arr > hi))
    n_out = int(out_mask.sum())
    if n_out and not clip:
        ex = np.unique(arr[out_mask])[:3]
        raise DataValidationError(
            f"Column {col.name!r} has {n_out} value(s) outside the declared bounds [{col.lower}, "
            f"{col.upper}] (e.g. {', '.join(f'{v:g}' for v in ex)}); widen the bounds in the schema "
            "or pass clip=True (--clip) to clip them (the privacy report says clipping was applied, "
            "never how many values)."
        )
    if n_out:
        arr = np.where(out_mask, np.clip(arr, lo, hi), arr)
    return pd.Series(arr, index=s.index, name=col.name).astype(np.dtype(col.pandas_dtype)), n_out
