"""Reading and writing tables and files safely.

* Input files are only ever opened for reading, and no output may be one of them:
  :func:`check_output_paths` refuses an output that resolves to an input (or to another output),
  symbolic and hard links included, before anything is computed or written.
* Outputs are written to a temporary file in the same folder and renamed into place, so an interrupted
  run (Ctrl-C, a killed process) never leaves a partial output behind. A new file gets the mode the
  user's umask gives (``0o666 & ~umask``, as ``open()`` would); a file that is replaced keeps its
  mode. No tabpriv output holds a secret (the seed is never written), so none is made more private
  than the user's umask asks.
* Large synthetic tables are written block by block (:func:`write_table_chunks`), so the memory does
  not grow with the number of rows.
* In CSV files **an empty cell is a missing value, and nothing else is**: text such as ``NA`` or
  ``None`` stays text, so a category called "NA" is never silently turned into a missing value.
* The delimiter of a CSV file is detected (:func:`sniff_delimiter`: comma, semicolon, tab or ``|``)
  unless one is given; a detected delimiter other than a comma is named in a
  :class:`~tabpriv.errors.DataWarning`. A row with the wrong number of fields is refused in one
  sentence that names the line, not with the parser's message.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import math
import os
import re
import shutil
import stat
import tempfile
import warnings
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tabpriv.errors import DataValidationError, DataWarning, InputFileError

if TYPE_CHECKING:
    import pandas as pd

    from tabpriv.schema import Schema

__all__ = [
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "available_memory_bytes",
    "check_disk_space",
    "check_output_paths",
    "check_output_writable",
    "estimate_row_bytes",
    "read_table",
    "sniff_delimiter",
    "table_format",
    "valid_delimiter",
    "write_table",
    "write_table_chunks",
]

PathLike = str | Path

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


#: Delimiters :func:`sniff_delimiter` tries, in order of preference.
DELIMITERS = (",", ";", "\t", "|")
_DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "vertical bar"}
#: Bytes of the file's start that :func:`sniff_delimiter` reads.
_SNIFF_BYTES = 1 << 16


def _open_text(path: Path) -> Any:
    opener: Any = gzip.open if path.suffix.lower() == ".gz" else open
    return opener(path, "rt", encoding="utf-8", errors="replace", newline="")


def sniff_delimiter(path: str | Path) -> str:
    """The delimiter of a CSV file: the first of :data:`DELIMITERS` that splits its start consistently.

    The rule, on the complete records of the first 64 KiB (quotes respected): a delimiter fits when the
    header splits into two or more fields and every record into as many fields as the header. The
    first fitting delimiter in the order comma, semicolon, tab, ``|`` wins; when none fits (one
    column, or ragged rows) the answer is a comma, and the parser then says which line is wrong.

    Raises:
        InputFileError: The file cannot be read.

    """
    p = Path(path)
    try:
        with _open_text(p) as fh:
            text = fh.read(_SNIFF_BYTES)
            complete = fh.read(1) == ""
    except (OSError, EOFError) as e:
        raise InputFileError(f"Cannot read {str(p)!r}: {e}.") from e
    return delimiter_of(text, complete)


def delimiter_of(text: str, complete: bool) -> str:
    """The delimiter :func:`sniff_delimiter`'s rule picks for a file's first ``text``.

    ``complete``: whether ``text`` is the whole file; if not, its last (maybe cut) record is left out.
    The one rule for every reader (the default path and the Dask engine's, which reads through fsspec).
    """
    if not complete:  # the last record may be cut in the middle
        cut = text.rfind("\n")
        text = text[:cut] if cut > 0 else text
    for delim in DELIMITERS:
        try:
            records = [r for r in csv.reader(io.StringIO(text), delimiter=delim) if r]
        except csv.Error:
            continue
        if records and len(records[0]) > 1 and all(len(r) == len(records[0]) for r in records):
            return delim
    return ","


_TOKENIZE = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")


def _parse_error_message(path: Path, sep: str, error: Exception) -> str:
    """One sentence on a CSV that pandas could not split, without quoting any row."""
    name = _DELIMITER_NAMES.get(sep, repr(sep))
    m = _TOKENIZE.search(str(error))
    if m is not None:
        expected, line, saw = m.groups()
        return (
            f"Cannot read {str(path)!r} as CSV: line {line} has {saw} {name}-separated fields where the "
            f"earlier lines have {expected}; quote values that contain a {name}, fix that line, or give "
            "the right delimiter (sep=...)."
        )
    return (
        f"Cannot read {str(path)!r} as CSV with a {name} as delimiter ({type(error).__name__}); check "
        "that it is a UTF-8 CSV file with one header line, or give the right delimiter (sep=...)."
    )


def valid_delimiter(sep: object) -> bool:
    """Whether ``sep`` can be a CSV delimiter: one character other than a quote or a line end."""
    return isinstance(sep, str) and len(sep) == 1 and sep not in '"\r\n'


def read_table(path: str | Path, schema: Schema | None = None, *, sep: str | None = None) -> pd.DataFrame:
    """Read a CSV or Parquet table with clear errors.

    With a schema, categorical columns whose categories are all text are read as text, so codes such as
    ``"01"`` keep their leading zeros.

    Args:
        path: A ``.csv`` (optionally ``.gz``) or ``.parquet`` file.
        schema: The public schema, if known (see above).
        sep: The CSV delimiter. ``None`` (default) detects it with :func:`sniff_delimiter` and names a
            detected delimiter other than a comma in a :class:`~tabpriv.errors.DataWarning`.

    Raises:
        InputFileError: The file does not exist, cannot be read, or is not a table (a row with the
            wrong number of fields included).
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
    if sep is not None and not valid_delimiter(sep):
        raise InputFileError(
            f"The CSV delimiter must be one character other than a quote or a line end; got {sep!r}."
        )
    delim = ","
    if fmt == "csv":
        delim = sep if sep is not None else sniff_delimiter(p)
        if sep is None and delim != ",":
            warnings.warn(
                f"Read {str(p)!r} with a {_DELIMITER_NAMES[delim]} ({delim!r}) as delimiter: it splits "
                "every line of the file's start into the header's number of fields (a comma does not); "
                "pass sep=... to choose another.",
                DataWarning,
                stacklevel=2,
            )
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
                sep=delim,
                keep_default_na=False,
                na_values=[""],
                dtype=dtype or None,
                low_memory=False,
            )
    except pd.errors.EmptyDataError as e:
        raise DataValidationError(f"Input file {str(p)!r} holds no table (no header).") from e
    except pd.errors.ParserError as e:
        raise InputFileError(_parse_error_message(p, delim, e)) from e
    except UnicodeDecodeError as e:
        raise InputFileError(
            f"Cannot read {str(p)!r} as {fmt.upper()}: it is not UTF-8 text (byte {e.start}); save it as "
            "UTF-8."
        ) from e
    except OSError as e:
        raise InputFileError(f"Cannot read {str(p)!r}: {e}.") from e
    except Exception as e:  # pyarrow raises its own exception types for foreign files
        raise InputFileError(f"Cannot read {str(p)!r} as {fmt.upper()}: {e}.") from e
    if len(df.columns) == 0:
        raise DataValidationError(f"Input file {str(p)!r} has no columns.")
    if fmt == "csv":
        _check_raw_header(p, delim)
    if len(df) == 0:
        raise DataValidationError(f"Input file {str(p)!r} has a header but no rows; nothing to synthesise.")
    return df


def _check_raw_header(path: Path, delimiter: str = ",") -> None:
    """Refuse duplicate header names (pandas would silently rename the second ``a`` to ``a.1``)."""
    with _open_text(path) as fh:
        header = next(csv.reader(fh, delimiter=delimiter), [])
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
    tmp = Path(tmp_name)
    try:
        # mkstemp makes the file 0600; give it the mode the user's umask asks for (or the mode of the
        # file it replaces), as a plain open() would.
        os.fchmod(fd, _new_file_mode(dest))
    finally:
        os.close(fd)
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
                df.to_csv(tmp, index=False, na_rep="", lineterminator=_csv_line_terminator(df))
    except OSError as e:
        if isinstance(e, InputFileError):
            raise
        raise InputFileError(f"Cannot write {str(path)!r}: {e}.") from e


def _umask() -> int:
    """The process umask, read without changing it where the platform allows (Linux)."""
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)  # elsewhere: the classic read-and-restore
    os.umask(mask)
    return mask


def _new_file_mode(dest: Path) -> int:
    """Permission bits for ``dest``: those of the file it replaces, else ``0o666 & ~umask``."""
    with contextlib.suppress(OSError):
        st = dest.stat()
        if stat.S_ISREG(st.st_mode):
            return stat.S_IMODE(st.st_mode)
    return 0o666 & ~_umask()


def _same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` name the same file: same resolved path, or (both existing) same inode."""
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)  # hard links, case-insensitive file systems, bind mounts
    except OSError:
        return False


def check_output_paths(inputs: Mapping[str, PathLike | None], outputs: Mapping[str, PathLike | None]) -> None:
    """Refuse an output that is one of the inputs, or two outputs that are the same file.

    Paths are compared after resolving symbolic links and ``..``, and, where both exist, by device and
    inode (so a hard link to an input is refused too). Call it before anything is computed or written.

    Args:
        inputs: What each input is (e.g. ``{"the input table": path}``); ``None`` entries are skipped.
        outputs: What each output is (e.g. ``{"the output (--output)": path}``); ``None`` skipped.

    Raises:
        InputFileError: An output would overwrite an input or another output.

    """
    ins = [(label, Path(p)) for label, p in inputs.items() if p is not None]
    outs = [(label, Path(p)) for label, p in outputs.items() if p is not None]
    for i, (out_label, out) in enumerate(outs):
        for in_label, inp in ins:
            if _same_file(out, inp):
                raise InputFileError(
                    f"Refusing to write {out_label} to {str(out)!r}: it is {in_label} "
                    f"({str(inp)!r}), which would be overwritten; choose another output path "
                    "(nothing was written)."
                )
        for other_label, other in outs[:i]:
            if _same_file(out, other):
                raise InputFileError(
                    f"Refusing to write {out_label} to {str(out)!r}: it is also {other_label} "
                    f"({str(other)!r}); give each output its own path (nothing was written)."
                )


def check_output_writable(path: PathLike, label: str = "the output") -> None:
    """Raise unless ``path`` can be created or replaced: its folder exists, is writable, and it is no folder.

    Raises:
        InputFileError: The folder is missing or not writable, or ``path`` is a folder.

    """
    dest = Path(path)
    folder = dest.parent if str(dest.parent) else Path(".")
    if not folder.is_dir():
        raise InputFileError(f"Cannot write {label} {str(dest)!r}: folder {str(folder)!r} does not exist.")
    if dest.is_dir():
        raise InputFileError(f"Cannot write {label} {str(dest)!r}: it is a folder; give a file name.")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputFileError(
            f"Cannot write {label} {str(dest)!r}: folder {str(folder)!r} is not writable; choose another "
            "folder."
        )


def available_memory_bytes() -> int | None:
    """Memory the system can give without swapping, in bytes, or ``None`` where it cannot be told.

    Linux: ``MemAvailable`` of ``/proc/meminfo`` (free memory plus reclaimable caches); elsewhere the
    free physical pages (``os.sysconf("SC_AVPHYS_PAGES")``), which undercounts caches.
    """
    with contextlib.suppress(OSError, ValueError, IndexError), open("/proc/meminfo", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    with contextlib.suppress(OSError, ValueError, AttributeError):
        pages = os.sysconf("SC_AVPHYS_PAGES")
        size = os.sysconf("SC_PAGE_SIZE")
        if pages > 0 and size > 0:
            return int(pages) * int(size)
    return None


def estimate_row_bytes(schema: Schema) -> int:
    """An upper estimate of the bytes one synthetic row takes in a CSV file, from the schema alone.

    Integers: the digits of the wider bound plus a sign; continuous numbers: 24 characters (the
    longest shortest-repr of a float64); categories: the longest category as text, quoted; plus one
    separator or line end per column. Parquet files are usually smaller (compressed columns).
    """
    total = 0
    for col in schema:
        if col.kind == "integer":
            assert col.lower is not None and col.upper is not None
            width = max(len(str(int(col.lower))), len(str(int(col.upper)))) + 1
        elif col.kind == "continuous":
            width = 24
        else:
            width = max(len(str(c)) for c in col.categories or ("",)) + 2
        total += width + 1
    return total


def check_disk_space(path: PathLike, n_rows: int, schema: Schema, label: str = "the output") -> None:
    """Refuse to write ``n_rows`` rows to ``path`` when their estimated size exceeds the free space.

    The rule: ``n_rows × estimate_row_bytes(schema)`` must not exceed the free space of the output's
    folder (``shutil.disk_usage``). It depends on the public schema and the requested row count only.

    Raises:
        InputFileError: The estimate exceeds the free space.

    """
    dest = Path(path)
    folder = dest.parent if str(dest.parent) else Path(".")
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return
    need = n_rows * estimate_row_bytes(schema)
    if need > free:
        raise InputFileError(
            f"Writing {n_rows:,} rows to {label} {str(dest)!r} needs up to about {_fmt_bytes(need)} "
            f"(estimated from the schema) but its folder has {_fmt_bytes(free)} free; ask for fewer "
            "rows (--rows) or write to a larger disk."
        )


def _fmt_bytes(n: float) -> str:
    if n < 2**30:
        return f"{n / 2**20:.1f} MiB"
    if n < 2**40:
        return f"{n / 2**30:.1f} GiB"
    if n < 2**50:
        return f"{n / 2**40:.1f} TiB"
    exp = int(math.log10(n))
    return f"{n / 10**exp:.1f}e{exp} bytes"


def _csv_line_terminator(df: pd.DataFrame) -> str:
    # A bare "\r" inside a value is quoted only when it is part of the line terminator.
    has_cr = any(
        df[c].astype(str).str.contains("\r", regex=False).any() for c in df.columns if df[c].dtype == object
    )
    return "\r\n" if has_cr else "\n"


def write_table_chunks(
    chunks: Iterable[pd.DataFrame],
    path: PathLike,
    *,
    schema: Schema | None = None,
) -> int:
    r"""Write consecutive blocks of one table as CSV or Parquet (by suffix), atomically; return the rows.

    Only one block is held at a time, so any number of rows can be written with bounded memory. The
    file appears only once every block is written (an error or Ctrl-C leaves nothing behind). With one
    block the file is the one :func:`write_table` writes. With a schema, the CSV line terminator is
    ``"\r\n"`` as soon as one category holds a carriage return (so every block is written alike), and
    the Parquet column types come from the schema; without one, the first block decides both (a later
    block holding a bare carriage return where the first held none is then not quoted).

    Raises:
        InputFileError: The file cannot be written (folder missing, disk full, ...).

    """
    fmt = table_format(path)
    n = 0
    try:
        with atomic_path(path) as tmp:
            if fmt == "parquet":
                n = _write_parquet_chunks(chunks, tmp, schema)
            else:
                n = _write_csv_chunks(chunks, tmp, schema)
    except OSError as e:
        if isinstance(e, InputFileError):
            raise
        raise InputFileError(f"Cannot write {str(path)!r}: {e}.") from e
    return n


def _write_csv_chunks(chunks: Iterable[pd.DataFrame], tmp: Path, schema: Schema | None) -> int:
    terminator: str | None = None
    if schema is not None and any(
        isinstance(c, str) and "\r" in c
        for col in schema
        if col.kind == "categorical"
        for c in col.categories or ()
    ):
        terminator = "\r\n"
    n = 0
    whole = _whole_number_columns(schema)
    with open(tmp, "w", encoding="utf-8", newline="") as fh:
        for i, df in enumerate(chunks):
            if terminator is None:
                terminator = _csv_line_terminator(df)
            if whole:
                df = _as_whole_numbers(df, whole)
            df.to_csv(fh, index=False, header=i == 0, na_rep="", lineterminator=terminator)
            n += len(df)
    return n


def _whole_number_columns(schema: Schema | None) -> list[str]:
    """Continuous columns of ``schema`` rounded to 0 decimals: written ``85109``, not ``85109.0``."""
    if schema is None:
        return []
    return [col.name for col in schema if col.kind == "continuous" and col.decimals == 0]


def _as_whole_numbers(df: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    import numpy as np

    out = {}
    for name in names:
        if name in df.columns:
            x = df[name].to_numpy(dtype=np.float64, na_value=np.nan)
            x = x[~np.isnan(x)]
            if np.array_equal(x, np.rint(x)) and bool(np.all(np.abs(x) < 2.0**53)):  # exact as integers
                out[name] = df[name].astype("Int64")
    return df.assign(**out) if out else df


def _arrow_schema(df: pd.DataFrame, schema: Schema | None) -> Any:
    import pyarrow as pa

    inferred = pa.Schema.from_pandas(df, preserve_index=False)
    if schema is None:
        return inferred
    fields = []
    for f in inferred:
        col = schema[f.name] if f.name in schema.names else None
        cats = (col.categories or ()) if col is not None and col.kind == "categorical" else None
        if pa.types.is_dictionary(f.type):  # a pandas category column: store plain values
            f = f.with_type(f.type.value_type)
        if cats and all(isinstance(c, str) for c in cats):
            f = f.with_type(pa.string())
        elif cats and all(isinstance(c, bool) for c in cats):
            f = f.with_type(pa.bool_())
        fields.append(f)
    return pa.schema(fields, metadata=inferred.metadata)


def _arrow_table(df: pd.DataFrame, arrow_schema: Any) -> Any:
    """``df`` as a pyarrow table of ``arrow_schema``; category columns are decoded to their values."""
    import pandas as pd
    import pyarrow as pa

    arrays = []
    for f in arrow_schema:
        s = df[f.name]
        if isinstance(s.dtype, pd.CategoricalDtype):
            arrays.append(pa.array(s).dictionary_decode().cast(f.type))
        else:
            arrays.append(pa.array(s, type=f.type, from_pandas=True))
    return pa.Table.from_arrays(arrays, schema=arrow_schema)


def _write_parquet_chunks(chunks: Iterable[pd.DataFrame], tmp: Path, schema: Schema | None) -> int:
    import pyarrow.parquet as pq

    writer: Any = None
    n = 0
    try:
        for df in chunks:
            if writer is None:
                arrow_schema = _arrow_schema(df, schema)
                writer = pq.ParquetWriter(tmp, arrow_schema)
            writer.write_table(_arrow_table(df, arrow_schema))
            n += len(df)
    finally:
        if writer is not None:
            writer.close()
    return n
