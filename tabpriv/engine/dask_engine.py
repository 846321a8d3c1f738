"""The Dask engine: the pass over the private rows on a ``dask.distributed`` cluster.

What runs where:

* **client** (the process that calls :meth:`tabpriv.Synthesizer.fit`): lists the files, reads each
  CSV header, splits the files into partitions (:class:`Piece`: a byte range of a CSV file cut at line
  ends, or one Parquet row group), builds the task graph, and receives the **reduced** exact results.
  The backends then add the noise once, here, fit their model and sample;
* **workers**: read their partitions with ``dask.dataframe`` (:func:`dask.dataframe.from_map`),
  validate each against the public schema (the same :meth:`Schema.validate
  <tabpriv.schema.Schema.validate>` as the default path), encode it with the fitted public
  transformer, run the backend's function on every chunk and sum the partial results on the cluster
  (a binary tree of additions).

Exact partial counts (and, for ``slicing``, exact projected rows) travel between workers and the
client: the cluster must be trusted like the machine that holds the data.

CSV files are read as in :func:`tabpriv.io.read_table`: an empty cell is a missing value and nothing
else is, text categories stay text, and pandas types every other column (here: in each partition).
When an error is rebuilt from several partitions, a column is typed as pandas types it in the whole
file (:func:`combine_kinds`: float as soon as one partition holds a decimal or an empty cell, text
as soon as one holds text). A CSV file is split at newlines, so a quoted field holding a newline is
not supported (Dask's ``read_csv`` has the same limit); a compressed file is one partition.

Bad input is refused before any budget is spent: :meth:`DaskSource.validate` (called by the facade
before the plan and the spend) validates every partition on the workers and, when one fails,
rebuilds on the client the error the default path raises on the whole table (same sentence, same
counts, same first row), from the failing rows only.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np

from tabpriv.engine import add_results
from tabpriv.errors import DataValidationError, EngineError, InputFileError
from tabpriv.io import table_format
from tabpriv.transformers.encoded import ColumnSpan, EncodedTable

if TYPE_CHECKING:
    import pandas as pd

    from tabpriv.schema import Schema
    from tabpriv.transformers.table import TableTransformer

__all__ = [
    "DEFAULT_BLOCKSIZE",
    "DaskSession",
    "DaskSource",
    "PartitionedTable",
    "Piece",
    "import_distributed",
    "input_columns",
    "list_pieces",
    "sniff_delimiter",
]

logger = logging.getLogger(__name__)

#: Bytes of CSV text per partition (Dask's own ``read_csv`` default is 64 MB).
DEFAULT_BLOCKSIZE = 64 * 2**20

_TRUE = frozenset({"True", "TRUE", "true"})


def import_distributed() -> Any:
    """Import ``dask.distributed`` or raise :class:`EngineError` saying how to install it."""
    try:
        import dask.dataframe  # noqa: F401
        import distributed
    except ImportError as e:
        raise EngineError(
            f"engine='dask' needs Dask, which is not installed ({e}); install the extra with "
            "`pip install 'tabpriv[dask]'` (dask[dataframe] and distributed), or use engine='default'."
        ) from e
    return distributed


# -- partitions ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Piece:
    """One partition of the input: a byte range of a CSV file, or one row group of a Parquet file.

    Attributes:
        index: Position of the partition in the table (row order).
        fmt: ``"csv"`` or ``"parquet"``.
        path: File path or URL (read on a worker with fsspec).
        start: CSV: first byte (the partition starts after the first newline at or after it, unless 0).
        length: CSV: bytes to cover (``None``: to the end of the file).
        header: CSV: the file's header line, put in front of every partition but the first.
        row_group: Parquet: the row group.
        text_columns: Columns read as text whatever they hold (categoricals with text categories).
        sep: CSV: the file's delimiter (given, or detected by :func:`sniff_delimiter` on the client).
        usecols: The columns to keep (``columns=``/``drop=``), or ``None`` for all of them. Parquet:
            column projection (only these are read); CSV: every field is parsed (a line with too
            many fields must fail as in :func:`tabpriv.io.read_table`) and the others are dropped
            at once. A selected column the partition lacks is not asked for, so the partition fails
            validation with the schema's column sentence.

    """

    index: int
    fmt: str
    path: str
    start: int = 0
    length: int | None = None
    header: bytes = b""
    row_group: int = 0
    text_columns: tuple[str, ...] = ()
    sep: str = ","
    usecols: tuple[str, ...] | None = None


def _expand(inputs: str | Path | Sequence[str | Path]) -> list[str]:
    import fsspec

    specs = [inputs] if isinstance(inputs, str | Path) else list(inputs)
    if not specs:
        raise InputFileError("No input files given; pass a path, a glob or a list of paths.")
    out: list[str] = []
    for spec in specs:
        fs, _, paths = fsspec.core.get_fs_token_paths(str(spec), mode="rb")
        if not paths:
            raise InputFileError(f"Input file {str(spec)!r} does not exist.")
        for p in sorted(paths):
            if fs.isdir(p):
                found = sorted(q for q in fs.ls(p, detail=False) if _has_table_suffix(q) and not fs.isdir(q))
                if not found:
                    raise InputFileError(f"Input folder {str(spec)!r} holds no .csv or .parquet file.")
                out.extend(_unstrip(fs, q) for q in found)
            elif not fs.exists(p):
                raise InputFileError(f"Input file {str(spec)!r} does not exist.")
            else:
                out.append(_unstrip(fs, p))
    return out


def _unstrip(fs: Any, path: str) -> str:
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return path if protocol in ("file", "local") else f"{protocol}://{path}"


def _has_table_suffix(path: str) -> bool:
    try:
        table_format(path)
    except InputFileError:
        return False
    return True


def list_pieces(
    inputs: str | Path | Sequence[str | Path],
    schema: Schema,
    blocksize: int = DEFAULT_BLOCKSIZE,
    n_workers: int = 1,
    *,
    sep: str | None = None,
    usecols: Sequence[str] | None = None,
) -> tuple[list[Piece], list[str]]:
    """The partitions of the input files, and the columns of the first file (in file order).

    CSV byte ranges are at most ``blocksize`` bytes, and (above 1 MiB) small enough that the number
    of partitions is a multiple of ``n_workers``, so that every worker gets a share.

    Args:
        inputs: A path, glob, folder or list of them.
        schema: The public schema (the columns to synthesise).
        blocksize: Bytes of CSV text per partition.
        n_workers: Workers of the cluster.
        sep: CSV delimiter of every file, or ``None``: each file's own, detected on the client with
            :func:`sniff_delimiter` (the rule of :func:`tabpriv.io.sniff_delimiter`); a detected
            delimiter other than a comma is named in one :class:`~tabpriv.errors.DataWarning`.
        usecols: Read only these columns (``None``: all); the returned columns are then the first
            file's columns among them, in file order.

    Raises:
        InputFileError: A file is missing, unreadable, of another format than the first, or a CSV
            header is not readable; ``sep`` is not a valid delimiter.
        DataValidationError: A file is empty, or a CSV header repeats a name.

    """
    import fsspec

    from tabpriv.io import valid_delimiter

    if sep is not None and not valid_delimiter(sep):
        raise InputFileError(
            f"The CSV delimiter must be one character other than a quote or a line end; got {sep!r}."
        )
    keep = tuple(str(c) for c in usecols) if usecols is not None else None
    paths = _expand(inputs)
    formats = {table_format(p) for p in paths}
    if len(formats) > 1:
        raise InputFileError(
            f"The input files mix formats ({', '.join(sorted(formats))}); give CSV files or Parquet files."
        )
    fmt = formats.pop()
    text_cols = tuple(
        c.name
        for c in schema
        if c.kind == "categorical" and all(isinstance(x, str) for x in (c.categories or ()))
    )
    if fmt == "csv" and n_workers > 1:
        total = 0
        for path in paths:
            with contextlib.suppress(OSError):
                fs, _, (local,) = fsspec.core.get_fs_token_paths(path, mode="rb")
                total += int(fs.size(local))
        parts = math.ceil(max(1, math.ceil(total / blocksize)) / n_workers) * n_workers
        blocksize = min(int(blocksize), max(2**20, math.ceil(total / parts)))
    pieces: list[Piece] = []
    columns: list[str] | None = None
    sniffed: dict[str, list[str]] = {}  # detected delimiter other than a comma -> files
    for path in paths:
        fs, local, size = _nonempty_file(path)
        if fmt == "parquet":
            import pyarrow.parquet as pq

            try:
                with fs.open(local, "rb") as fh:
                    meta = pq.ParquetFile(fh).metadata
                    names = [meta.schema.column(i).name for i in range(meta.num_columns)]
                    groups = meta.num_row_groups
            except Exception as e:  # pyarrow raises its own types for foreign files
                raise InputFileError(f"Cannot read {path!r} as PARQUET: {e}.") from e
            columns = columns if columns is not None else names
            for g in range(max(groups, 1)):
                pieces.append(
                    Piece(len(pieces), fmt, path, row_group=g, text_columns=text_cols, usecols=keep)
                )
            continue
        delim = sep if sep is not None else sniff_delimiter(path)
        if sep is None and delim != ",":
            sniffed.setdefault(delim, []).append(path)
        compressed = fsspec.utils.infer_compression(local) is not None
        try:
            with fsspec.open(path, "rb", compression="infer") as fh:
                header = fh.readline()
        except OSError as e:
            raise InputFileError(f"Cannot read {path!r}: {e}.") from e
        names = _header_names(path, header, delim)
        columns = columns if columns is not None else names
        common = {"header": header, "text_columns": text_cols, "sep": delim, "usecols": keep}
        if compressed:
            pieces.append(Piece(len(pieces), fmt, path, **common))
            continue
        for start in range(0, size, max(1, int(blocksize))):
            length = min(int(blocksize), size - start)
            pieces.append(Piece(len(pieces), fmt, path, start, length, **common))
    assert columns is not None
    _warn_sniffed(sniffed, len(paths))
    if keep is not None:
        columns = [c for c in columns if c in set(keep)]
    return pieces, columns


def _warn_sniffed(sniffed: dict[str, list[str]], n_files: int) -> None:
    """One :class:`DataWarning` naming each detected delimiter other than a comma (as read_table does)."""
    import warnings

    from tabpriv.errors import DataWarning
    from tabpriv.io import _DELIMITER_NAMES

    for delim, files in sniffed.items():
        which = (
            repr(files[0])
            if n_files == 1
            else f"{len(files)} of the {n_files} input files ({files[0]!r}, ...)"
        )
        warnings.warn(
            f"Read {which} with a {_DELIMITER_NAMES[delim]} ({delim!r}) as delimiter: it splits every "
            "line of the file's start into the header's number of fields (a comma does not); pass "
            "sep=... to choose another.",
            DataWarning,
            stacklevel=4,
        )


def sniff_delimiter(path: str) -> str:
    """:func:`tabpriv.io.sniff_delimiter` for a path or URL the client opens with fsspec.

    The same rule on the same text (the complete records of the file's first 64 KiB, decompressed,
    quotes respected): the first of comma, semicolon, tab, ``|`` that splits the header into two or
    more fields and every record into as many; a comma when none does.

    Raises:
        InputFileError: The file cannot be read.

    """
    import fsspec

    from tabpriv.io import _SNIFF_BYTES, delimiter_of

    try:
        with fsspec.open(
            path, "rt", compression="infer", encoding="utf-8", errors="replace", newline=""
        ) as fh:
            text = fh.read(_SNIFF_BYTES)
            complete = fh.read(1) == ""
    except (OSError, EOFError) as e:
        raise InputFileError(f"Cannot read {path!r}: {e}.") from e
    return delimiter_of(text, complete)


def _nonempty_file(path: str) -> tuple[Any, str, int]:
    """``(filesystem, local path, size)`` of an input file that exists and is not empty.

    Raises:
        InputFileError: The file is missing or unreadable.
        DataValidationError: The file is empty.

    """
    import fsspec

    try:
        fs, _, (local,) = fsspec.core.get_fs_token_paths(path, mode="rb")
        size = int(fs.size(local))
    except OSError as e:
        raise InputFileError(f"Cannot read {path!r}: {e}.") from e
    if size == 0:
        raise DataValidationError(f"Input file {path!r} is empty; it needs a header and rows.")
    return fs, local, size


def input_columns(inputs: str | Path | Sequence[str | Path], *, sep: str | None = None) -> list[str]:
    """The columns of the first input file, in file order (its CSV header or Parquet schema).

    Read on the client, before any cluster work: names only (public once the user selects among
    them), for ``columns=``/``drop=``.

    Raises:
        InputFileError: The file is missing or unreadable.
        DataValidationError: The file is empty, or its CSV header repeats a name.

    """
    import fsspec

    first = _expand(inputs)[0]
    fs, local, _size = _nonempty_file(first)
    if table_format(first) == "parquet":
        import pyarrow.parquet as pq

        try:
            with fs.open(local, "rb") as fh:
                return [str(n) for n in pq.ParquetFile(fh).schema_arrow.names]
        except Exception as e:  # pyarrow raises its own types for foreign files
            raise InputFileError(f"Cannot read {first!r} as PARQUET: {e}.") from e
    delim = sep if sep is not None else sniff_delimiter(first)
    try:
        with fsspec.open(first, "rb", compression="infer") as fh:
            header = fh.readline()
    except OSError as e:
        raise InputFileError(f"Cannot read {first!r}: {e}.") from e
    return _header_names(first, header, delim)


def _header_names(path: str, header: bytes, delimiter: str = ",") -> list[str]:
    """The names of a CSV header line; duplicates refused as :func:`tabpriv.io.read_table` does."""
    text = header.decode("utf-8", errors="replace").rstrip("\r\n")
    names = next(csv.reader([text], delimiter=delimiter), [])
    dups = sorted({h for h in names if names.count(h) > 1})
    if dups:
        raise DataValidationError(
            f"Duplicate column name(s) in the header of {path!r}: {', '.join(map(repr, dups))}; rename them."
        )
    return names


def read_piece(piece: Piece) -> pd.DataFrame:
    """Read one partition as raw text columns (CSV) or typed columns (Parquet). Runs on a worker.

    Only the partition's columns among ``piece.usecols`` are kept (all when ``None``): Parquet reads
    only those, CSV parses every field and drops the others at once.
    """
    import fsspec
    import pandas as pd

    keep = set(piece.usecols) if piece.usecols is not None else None
    try:
        if piece.fmt == "parquet":
            import pyarrow.parquet as pq

            with fsspec.open(piece.path, "rb") as fh:
                pf = pq.ParquetFile(fh)
                names = [str(n) for n in pf.schema_arrow.names]
                cols = None if keep is None else [n for n in names if n in keep]
                if pf.metadata.num_row_groups == 0:
                    empty = pf.schema_arrow.empty_table()
                    return (empty if cols is None else empty.select(cols)).to_pandas()
                return pf.read_row_group(piece.row_group, columns=cols).to_pandas()
        with fsspec.open(piece.path, "rb", compression="infer") as fh:
            if piece.length is None:
                data = fh.read()
            else:
                data = fsspec.utils.read_block(fh, piece.start, piece.length, delimiter=b"\n")
        if piece.start > 0:
            data = piece.header + data
        import io

        # exactly as tabpriv.io.read_table reads a whole file: pandas' own typing of each column
        # (here of each partition; see combine_kinds), text categories kept as text
        header = pd.read_csv(io.BytesIO(piece.header), nrows=0, sep=piece.sep).columns
        text = {c: "str" for c in piece.text_columns if c in header}
        # Every column is parsed, not usecols: with usecols pandas silently accepts a line with more
        # fields than the header, which read_table refuses. The left-out columns are dropped at once.
        raw = pd.read_csv(
            io.BytesIO(data),
            sep=piece.sep,
            dtype=text or None,
            keep_default_na=False,
            na_values=[""],
            low_memory=False,
        )
        if keep is not None:
            raw = raw[[c for c in raw.columns if str(c) in keep]]
        return raw
    except pd.errors.EmptyDataError as e:
        raise DataValidationError(f"Input file {piece.path!r} holds no table (no header).") from e
    except pd.errors.ParserError as e:
        raise InputFileError(_parse_error(piece, e)) from e
    except UnicodeDecodeError as e:
        raise InputFileError(
            f"Cannot parse {piece.path!r} as {piece.fmt.upper()}: {e}".rstrip(".") + "."
        ) from e
    except OSError as e:
        raise InputFileError(f"Cannot read {piece.path!r}: {e}.") from e


def _parse_error(piece: Piece, error: Exception) -> str:
    """The default path's sentence on a CSV line with the wrong number of fields.

    In the file's first partition the line number is the file's (as :func:`tabpriv.io.read_table`
    says); in a later one it is counted from the partition's first byte (counting the lines before it
    would read the whole file up to there).
    """
    import re

    from tabpriv.io import _DELIMITER_NAMES, _parse_error_message

    if piece.start == 0:
        return _parse_error_message(Path(piece.path), piece.sep, error)
    m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(error))
    name = _DELIMITER_NAMES.get(piece.sep, repr(piece.sep))
    if m is None:
        return (
            f"Cannot read {piece.path!r} as CSV with a {name} as delimiter ({type(error).__name__}); "
            "check that it is a UTF-8 CSV file with one header line, or give the right delimiter (sep=...)."
        )
    expected, line, saw = m.groups()
    return (
        f"Cannot read {piece.path!r} as CSV: line {int(line) - 1} after byte {piece.start} has {saw} "
        f"{name}-separated fields where the earlier lines have {expected}; quote values that contain a "
        f"{name}, fix that line, or give the right delimiter (sep=...)."
    )


# -- the types pandas would give the whole file ------------------------------------------------------
#: How pandas' CSV reader would type a column: (kind, has missing values).
Kind = tuple[str, bool]


def _kind(s: pd.Series) -> Kind:
    """The type pandas gave a column of one partition."""
    import pandas as pd

    isna = s.isna()
    has_nan = bool(isna.any())
    if bool(isna.all()):
        return "empty", True
    if pd.api.types.is_bool_dtype(s):
        return "bool", has_nan
    if pd.api.types.is_integer_dtype(s):
        return "int", has_nan
    if pd.api.types.is_float_dtype(s):
        return "float", has_nan
    if all(isinstance(v, bool | np.bool_) for v in s[~isna].unique()):
        return "bool", has_nan  # true/false with empty cells: pandas keeps them as objects
    return "text", has_nan


def combine_kinds(kinds: Sequence[Kind]) -> Kind:
    """The type pandas gives a column read whole, from the types of its partitions."""
    has_nan = any(h for _, h in kinds)
    present = {k for k, _ in kinds if k != "empty"}
    if not present:
        return "float", True
    if present == {"int"}:
        return ("float" if has_nan else "int"), has_nan
    if present <= {"int", "float"}:
        return "float", has_nan
    if present == {"bool"}:
        return "bool", has_nan
    return "text", has_nan


def cast_column(s: pd.Series, kind: Kind) -> pd.Series:
    """Convert a text column as pandas' CSV reader converts a column of that type."""
    import pandas as pd

    k, has_nan = kind
    if k in ("int", "float", "empty"):
        num = pd.to_numeric(s, errors="coerce")
        return num.astype("int64") if k == "int" and not has_nan else num.astype("float64")
    if k == "bool":
        mapped = s.map(lambda v: v in _TRUE if isinstance(v, str) else v)
        return mapped.astype(bool) if not has_nan else mapped.astype(object)
    # text: values a partition typed as numbers are written back as text (the whole file keeps text)
    return s.map(lambda v: v if isinstance(v, str) or v is None or v != v else _as_text(v)).astype(object)


def _as_text(v: Any) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v)) if not isinstance(v, bool) else str(v)
    return str(v)


# -- diagnosis of a failing partition ------------------------------------------------------------------
def _bad_rows(col: Any, s: pd.Series, clip: bool) -> np.ndarray:
    """Positions of the rows of ``s`` that :meth:`Schema.validate` refuses for column ``col``."""
    import pandas as pd

    from tabpriv.schema import Schema

    isna = s.isna().to_numpy()
    bad = isna & (not col.missing)
    present = ~isna
    if col.kind == "categorical":
        one = Schema((col,))
        for v in pd.unique(s[present].to_numpy(dtype=object)):
            try:
                one.validate(pd.DataFrame({col.name: pd.Series([v], dtype=s.dtype)}))
            except DataValidationError:
                bad |= present & (s.to_numpy(dtype=object) == v)
        return np.flatnonzero(bad)
    if pd.api.types.is_bool_dtype(s):
        return np.flatnonzero(present | bad)
    num = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    bad |= present & np.isnan(num)
    ok = present & ~np.isnan(num)
    arr = np.where(ok, num, 0.0)
    bad |= ok & np.isinf(arr)
    finite = ok & ~np.isinf(arr)
    if col.kind == "integer":
        bad |= finite & (arr != np.floor(arr))
    if not clip:
        bad |= finite & ((arr < float(col.lower)) | (arr > float(col.upper)))
    return np.flatnonzero(bad)


@dataclass(frozen=True)
class _Job:
    """What every task needs (public): the schema, the transformer, the clip flag."""

    schema: Schema
    transformer: TableTransformer
    clip: bool


def _validate_piece(raw: pd.DataFrame, piece: Piece, job: _Job) -> dict[str, Any]:
    """Validate one partition on a worker; report its size, column types and what fails, if anything."""
    kinds = {str(c): _kind(raw[c]) for c in raw.columns} if piece.fmt == "csv" else {}
    out: dict[str, Any] = {"index": piece.index, "n": len(raw), "kinds": kinds, "error": None}
    missing, extra = job.schema.column_mismatch(raw.columns)
    if len(raw) == 0 and not (missing or extra):
        return out
    df = raw
    try:
        job.schema.validate(df, clip=job.clip)
    except DataValidationError as e:
        names = [str(c) for c in raw.columns]
        if missing or extra or len(set(names)) != len(names) or len(raw) == 0:
            out["error"] = ("message", str(e))
            return out
        for j, col in enumerate(job.schema):
            rows = _bad_rows(col, df[col.name], job.clip)
            if rows.size:
                out["error"] = ("values", j, rows, raw[col.name].iloc[rows].to_numpy(dtype=object), str(e))
                return out
        out["error"] = ("message", str(e))  # the diagnosis found nothing: say what validate said
    return out


def _cuts(offset: int, n: int, chunk_rows: int) -> list[tuple[int, int]]:
    """Local ``(start, stop)`` of rows ``[offset, offset + n)`` cut at multiples of ``chunk_rows``."""
    out: list[tuple[int, int]] = []
    pos = offset
    end = offset + n
    while pos < end:
        stop = min(end, (pos // chunk_rows + 1) * chunk_rows)
        out.append((pos - offset, stop - offset))
        pos = stop
    return out


def _run_piece(
    raw: pd.DataFrame,
    piece: Piece,
    offset: int,
    job: _Job,
    func: Callable[[np.ndarray], Any],
    chunk_rows: int,
) -> list[tuple[int, Any]]:
    """Validate and encode one partition on a worker, and apply ``func`` to its chunks."""
    if len(raw) == 0:
        return []
    clean = job.schema.validate(raw, clip=job.clip)[0]
    results = []
    for a, b in _cuts(offset, len(clean), chunk_rows):
        block = job.transformer.transform_validated(clean.iloc[a:b]).data
        results.append((offset + a, func(block)))
    return results


def _sum_piece(
    raw: pd.DataFrame,
    piece: Piece,
    offset: int,
    job: _Job,
    func: Callable[[np.ndarray], Any],
    chunk_rows: int,
) -> Any:
    total: Any = None
    for _, r in _run_piece(raw, piece, offset, job, func, chunk_rows):
        total = r if total is None else add_results(total, r)
    return total


def _add_or_none(a: Any, b: Any) -> Any:
    if a is None:
        return b
    if b is None:
        return a
    return add_results(a, b)


# -- session and source ---------------------------------------------------------------------------
class DaskSession:
    """A connection to a Dask scheduler, or a LocalCluster on loopback started for the fit.

    Args:
        scheduler: Address of a running scheduler (``"tcp://host:8786"``), or ``None`` for a
            ``LocalCluster`` on 127.0.0.1 without a dashboard (one single-threaded worker process per
            CPU core, at most 8), closed with the session.

    """

    def __init__(self, scheduler: str | None = None) -> None:
        self.scheduler = scheduler
        self.client: Any = None
        self._cluster: Any = None

    def __enter__(self) -> DaskSession:
        distributed = import_distributed()
        if self.scheduler is None:
            n = max(1, min(8, os.cpu_count() or 1))
            self._cluster = distributed.LocalCluster(
                n_workers=n,
                threads_per_worker=1,
                host="127.0.0.1",
                dashboard_address=None,
                # no dashboard; the scheduler's HTTP endpoints (health, metrics) on a free loopback
                # port rather than on 0.0.0.0:8787
                scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                processes=True,
                silence_logs=logging.WARNING,
            )
            self.client = distributed.Client(self._cluster, set_as_default=False)
        else:
            try:
                self.client = distributed.Client(self.scheduler, set_as_default=False, timeout="10s")
            except (OSError, TimeoutError) as e:
                raise EngineError(
                    f"Cannot reach the Dask scheduler at {self.scheduler!r} ({type(e).__name__}: {e}); "
                    "check the address (tcp://host:port) and that the scheduler is running."
                ) from e
        return self

    def open_table(
        self,
        inputs: str | Path | Sequence[str | Path],
        schema: Schema,
        transformer: TableTransformer,
        *,
        clip: bool = False,
        blocksize: int | None = None,
        sep: str | None = None,
        usecols: Sequence[str] | None = None,
    ) -> tuple[PartitionedTable, list[str]]:
        """Validate the input's partitions on the cluster; return the table and the columns (file order).

        ``sep`` and ``usecols`` are those of :func:`list_pieces` (the CSV delimiter, detected per file
        when ``None``; the columns the workers read).

        Raises:
            EngineError: The session is not open.
            DataValidationError: A partition does not conform to the schema (nothing is spent).

        """
        if self.client is None:
            raise EngineError("The Dask session is not open; use it as a context manager.")
        size = DEFAULT_BLOCKSIZE if blocksize is None else int(blocksize)  # read now: tests may lower it
        source = DaskSource(
            self.client, inputs, schema, transformer, clip=clip, blocksize=size, sep=sep, usecols=usecols
        )
        source.validate()
        return source.table(), list(source.columns)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.client is not None:
            self.client.close()
        if self._cluster is not None:
            self._cluster.close()


class DaskSource:
    """The input files as partitions on a cluster, validated and encoded on the workers.

    Args:
        client: A ``distributed.Client``.
        inputs: A path, a glob, a folder of files, or a list of them (local paths or fsspec URLs the
            workers can read).
        schema: The public schema.
        transformer: The fitted (public) transformer.
        clip: Clip numbers into their bounds (as ``Synthesizer(clip=True)``).
        blocksize: Bytes of CSV text per partition.
        sep: CSV delimiter (``None``: detected per file, see :func:`list_pieces`).
        usecols: The columns the workers read (``None``: all).

    """

    def __init__(
        self,
        client: Any,
        inputs: str | Path | Sequence[str | Path],
        schema: Schema,
        transformer: TableTransformer,
        *,
        clip: bool = False,
        blocksize: int = DEFAULT_BLOCKSIZE,
        sep: str | None = None,
        usecols: Sequence[str] | None = None,
    ) -> None:
        import dask.dataframe as dd
        import pandas as pd

        self.client = client
        self.schema = schema
        n_workers = len(client.scheduler_info().get("workers", {})) or 1
        self.pieces, self.columns = list_pieces(
            inputs, schema, blocksize, n_workers, sep=sep, usecols=usecols
        )
        self._job = _Job(schema, transformer, bool(clip))
        self._job_future: Any = None
        meta = pd.DataFrame({c: pd.Series([], dtype=object) for c in self.columns})
        frame = dd.from_map(read_piece, self.pieces, meta=meta, enforce_metadata=False, label="tabpriv-read")
        self._parts = frame.to_delayed()
        self.spans: tuple[ColumnSpan, ...] = transformer.spans_
        self.offsets: list[int] | None = None
        self.n_rows: int | None = None

    def _scattered_job(self) -> Any:
        """The job on every worker, sent once (a unique key: a hashed one could be released under us)."""
        if self._job_future is None:
            self._job_future = self.client.scatter(self._job, broadcast=True, hash=False)
        return self._job_future

    @property
    def n_partitions(self) -> int:
        """Number of partitions."""
        return len(self.pieces)

    def validate(self) -> int:
        """Validate every partition on the workers; return the number of rows. Spends nothing.

        Raises:
            DataValidationError: A partition does not conform to the schema (the message is the one
                the default path gives for the whole table), or the files hold no rows.

        """
        import dask

        job = self._scattered_job()
        tasks = [
            dask.delayed(_validate_piece)(part, piece, job)
            for part, piece in zip(self._parts, self.pieces, strict=True)
        ]
        reports = self.client.gather(self.client.compute(tasks))
        reports.sort(key=lambda r: r["index"])
        sizes = [int(r["n"]) for r in reports]
        offsets = [0, *np.cumsum(sizes).tolist()]
        for r in reports:
            if r["error"] is not None and r["error"][0] == "message":
                raise DataValidationError(r["error"][1])
        failed = [r for r in reports if r["error"] is not None]
        if failed:
            self._raise_values(failed, offsets, reports)
        n = int(offsets[-1])
        if n == 0:
            raise DataValidationError(
                f"Input file {self.pieces[0].path!r} has a header but no rows; nothing to synthesise."
            )
        self.offsets = [int(o) for o in offsets[:-1]]
        self.n_rows = n
        logger.info("dask engine: %d rows in %d partitions validated", n, len(self.pieces))
        return n

    def _raise_values(
        self, failed: list[dict[str, Any]], offsets: list[int], reports: list[dict[str, Any]]
    ) -> None:
        """Rebuild, from the failing rows only, the error the default path raises on the whole table."""
        import pandas as pd

        from tabpriv.schema import Schema

        first = min(r["error"][1] for r in failed)
        col = self.schema.columns[first]
        positions: list[int] = []
        values: list[Any] = []
        for r in failed:
            _, j, rows, vals, _msg = r["error"]
            if j == first:
                positions.extend(int(offsets[r["index"]]) + int(p) for p in rows)
                values.extend(vals)
        s = pd.Series(values, index=pd.Index(positions, dtype=object), name=col.name, dtype=object)
        if self.pieces[0].fmt == "csv" and col.name not in self.pieces[0].text_columns:
            # typed as pandas types the column of the whole file (e.g. float when any cell is empty)
            kinds = [r["kinds"][col.name] for r in reports if col.name in r["kinds"]]
            s = cast_column(s, combine_kinds(kinds))
        try:
            Schema((col,)).validate(pd.DataFrame({col.name: s}), clip=self._job.clip)
        except DataValidationError as e:
            raise DataValidationError(str(e)) from None
        raise DataValidationError(next(r for r in failed if r["error"][1] == first)["error"][4])

    # -- PartitionedSource -----------------------------------------------------------------------
    def _check_validated(self) -> list[int]:
        if self.offsets is None:
            raise EngineError("The Dask source is not validated yet; call validate() first.")
        return self.offsets

    def map_sum(self, func: Callable[[np.ndarray], Any], chunk_rows: int) -> Any:
        """Sum of ``func(chunk)`` over every chunk: per partition on the workers, reduced on the cluster."""
        import dask

        offsets = self._check_validated()
        job = self._scattered_job()
        level = [
            dask.delayed(_sum_piece)(part, piece, off, job, func, int(chunk_rows))
            for part, piece, off in zip(self._parts, self.pieces, offsets, strict=True)
        ]
        while len(level) > 1:
            level = [
                dask.delayed(_add_or_none)(level[i], level[i + 1]) if i + 1 < len(level) else level[i]
                for i in range(0, len(level), 2)
            ]
        total = self.client.compute(level[0]).result()
        if total is None:
            total = func(np.zeros((0, self.spans[-1].stop), dtype=np.float32))
        return total

    def map_chunks(self, func: Callable[[np.ndarray], Any], chunk_rows: int) -> Iterator[tuple[int, Any]]:
        """``(start_row, func(chunk))`` in row order: computed on the workers, fetched partition-wise."""
        import dask

        offsets = self._check_validated()
        job = self._scattered_job()
        tasks = [
            dask.delayed(_run_piece)(part, piece, off, job, func, int(chunk_rows))
            for part, piece, off in zip(self._parts, self.pieces, offsets, strict=True)
        ]
        futures = self.client.compute(tasks)
        try:
            for i in range(len(futures)):
                results = futures[i].result()
                futures[i] = None
                yield from results
        finally:
            for f in futures:
                if f is not None:
                    f.cancel()

    def table(self) -> PartitionedTable:
        """The validated partitions as an :class:`EncodedTable` the engine seam runs on the cluster."""
        if self.n_rows is None:
            self.validate()
        assert self.n_rows is not None
        return PartitionedTable.over(self, self.spans, self.n_rows)


def _no_random_access(rows: slice | np.ndarray) -> np.ndarray:
    raise EngineError(
        "This backend reads rows by position (random access), which the dask engine does not provide; "
        "use engine='default', or a backend whose data pass is a count or a projection (independent, "
        "mst, aim, slicing)."
    )


class PartitionedTable(EncodedTable):
    """A lazy :class:`EncodedTable` whose rows live in partitions on a Dask cluster.

    :func:`tabpriv.engine.map_sum` and :func:`tabpriv.engine.map_chunks` run on the workers.
    :meth:`iter_chunks` still works (the workers encode, the client receives the encoded chunks);
    :meth:`take` and :attr:`data` raise :class:`EngineError`.
    """

    engine_source: DaskSource

    @classmethod
    def over(cls, source: DaskSource, spans: tuple[ColumnSpan, ...], n_rows: int) -> PartitionedTable:
        """The table of a validated :class:`DaskSource`."""
        table = cls.lazy(spans, n_rows, _no_random_access)
        assert isinstance(table, PartitionedTable)
        object.__setattr__(table, "engine_source", source)
        return table

    def iter_chunks(self, chunk_rows: int = 65_536) -> Iterator[tuple[int, np.ndarray]]:
        """``(start_row, block)`` of exactly ``chunk_rows`` rows (the last may be shorter), in order."""
        if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int | np.integer) or chunk_rows <= 0:
            raise ValueError(f"chunk_rows must be a positive integer; got {chunk_rows!r}.")
        pending: list[np.ndarray] = []
        start = 0
        for pos, block in self.engine_source.map_chunks(_identity, int(chunk_rows)):
            if not pending:
                start = pos
            pending.append(block)
            rows = sum(b.shape[0] for b in pending)
            if rows == chunk_rows or pos + block.shape[0] == self.n_rows:
                yield start, pending[0] if len(pending) == 1 else np.concatenate(pending)
                pending = []
        if pending:
            yield start, np.concatenate(pending)


def _identity(block: np.ndarray) -> np.ndarray:
    return block
