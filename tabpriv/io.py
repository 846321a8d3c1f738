"""Reading and writing tables and files safely.

* Input files are only ever opened for reading.
* Outputs are written to a temporary file in the same folder and renamed into place, so an interrupted
  run (Ctrl-C, a killed process) never leaves a partial output behind.
* In CSV files **an empty cell is a missing value, and nothing else is**: text such as ``NA`` or
  ``None`` stays text, so a category called "NA" is never silently turned into a missing value.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from tabpriv.errors import DataValidationError, InputFileError

if TYPE_CHECKING:
    import pandas as pd

    from tabpriv.schema import Schema

__all__ = [
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "read_table",
    "table_format",
    "write_table",
]

_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


def table_format(path: str | Path) -> str:
    """``"csv"`` or ``"parquet"`` from the file suffix (``.csv.gz`` counts as CSV).

    Raises:
        InputFileError: Unknown suffix.

    """
    p = Path(path)
    suffixes = [s.lower() for s in p.suffixes]
    for s in reversed(suffixes):
        if s in _FORMATS:
            return _FORMATS[s]
    raise InputFileError(f"Cannot tell the format of {str(p)!r} from its name; use a .csv or .parquet file.")


def read_table(path: str | Path, schema: Schema | None = None) -> pd.DataFrame:
    """Read a CSV or Parquet table with clear errors.

    With a schema, categorical columns whose categories are all text are read as text, so codes such as
    ``"01"`` keep their leading zeros.

    Raises:
        InputFileError: The file does not exist, cannot be read, or is not a table.
        DataValidationError: The file is empty or has only a header.

    """
    import pandas as pd

    p = Path(path)
    if not p.exists():
        raise InputFileError(f"Input file {str(p)!r} does not exist.")
    if p.is_dir():
        raise InputFileError(f"Input path {str(p)!r} is a folder; give a .csv or .parquet file.")
    fmt = table_format(p)
    if p.stat().st_size == 0:
        raise DataValidationError(f"Input file {str(p)!r} is empty; it needs a header and rows.")
    try:
        if fmt == "parquet":
            df = pd.read_parquet(p)
        else:
            dtype: dict[str, str] = {}
            if schema is not None:
                for col in schema:
                    if col.kind == "categorical" and all(isinstance(c, str) for c in (col.categories or ())):
                        dtype[col.name] = "str"
            df = pd.read_csv(
                p,
                keep_default_na=False,
                na_values=[""],
                dtype=dtype or None,
                low_memory=False,
            )
    except pd.errors.EmptyDataError as e:
        raise DataValidationError(f"Input file {str(p)!r} holds no table (no header).") from e
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise InputFileError(f"Cannot parse {str(p)!r} as {fmt.upper()}: {e}".rstrip(".") + ".") from e
    except OSError as e:
        raise InputFileError(f"Cannot read {str(p)!r}: {e}.") from e
    except Exception as e:  # pyarrow raises its own exception types for foreign files
        raise InputFileError(f"Cannot read {str(p)!r} as {fmt.upper()}: {e}.") from e
    if len(df.columns) == 0:
        raise DataValidationError(f"Input file {str(p)!r} has no columns.")
    if fmt == "csv":
        _check_raw_header(p)
    if len(df) == 0:
        raise DataValidationError(f"Input file {str(p)!r} has a header but no rows; nothing to synthesise.")
    return df


def _check_raw_header(path: Path) -> None:
    """Refuse duplicate header names (pandas would silently rename the second ``a`` to ``a.1``)."""
    import csv
    import gzip

    opener = gzip.open if path.suffix.lower() == ".gz" else open
    with opener(path, "rt", encoding="utf-8", errors="replace", newline="") as fh:
        header = next(csv.reader(fh), [])
    dups = sorted({h for h in header if header.count(h) > 1})
    if dups:
        raise DataValidationError(
            f"Duplicate column name(s) in the header of {str(path)!r}: {', '.join(map(repr, dups))}; "
            "rename them."
        )


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only if the block succeeds.

    Raises:
        InputFileError: The destination folder does not exist or is not writable.

    """
    dest = Path(path)
    folder = dest.parent if str(dest.parent) else Path(".")
    if not folder.is_dir():
        raise InputFileError(f"Cannot write {str(dest)!r}: folder {str(folder)!r} does not exist.")
    if dest.is_dir():
        raise InputFileError(f"Cannot write {str(dest)!r}: it is a folder.")
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=folder)
    except OSError as e:
        raise InputFileError(f"Cannot write to folder {str(folder)!r}: {e.strerror}.") from e
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write bytes to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write UTF-8 text to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def write_table(df: pd.DataFrame, path: str | Path) -> None:
    """Write ``df`` as CSV or Parquet (by suffix), atomically. Missing values become empty cells."""
    fmt = table_format(path)
    try:
        with atomic_path(path) as tmp:
            if fmt == "parquet":
                df.to_parquet(tmp, index=False)
            else:
                # A bare "\r" inside a value is quoted only when it is part of the line terminator.
                has_cr = any(
                    df[c].astype(str).str.contains("\r", regex=False).any()
                    for c in df.columns
                    if df[c].dtype == object
                )
                df.to_csv(tmp, index=False, na_rep="", lineterminator="\r\n" if has_cr else "\n")
    except OSError as e:
        if isinstance(e, InputFileError):
            raise
        raise InputFileError(f"Cannot write {str(path)!r}: {e}.") from e
