"""Sampling split into part files by blocks, in this process or on Dask workers.

Sampling is post-processing of the release. :meth:`tabpriv.Synthesizer.sample` draws block ``i``
(:meth:`~tabpriv.Synthesizer.sample_chunk_rows` rows) with the public seeds
``block_seed(seed, i)`` and ``block_seed(decode_seed, i)`` of the call (:func:`tabpriv._random.block_seed`:
a numpy ``SeedSequence`` keyed by the block index), so block ``i`` depends on the call's seeds and
``i`` alone. :func:`sample_parts` groups consecutive blocks into part files and draws each part on
its own, here or as one Dask task: the rows do not depend on the engine, the number of workers or the
part size, and the parts read in order are the rows ``sample(n)`` returns for the same call.

What a worker receives: the synthesizer's save-file content (:meth:`Synthesizer.save
<tabpriv.Synthesizer.save>`: released state, the public schema and the report; never private rows
or exact statistics, and no secret key or root seed), the call's two public sampling seeds, and where
to write. Each worker loads it once (integrity-checked as :meth:`Synthesizer.load
<tabpriv.Synthesizer.load>` does) and writes its parts with :func:`tabpriv.io.write_table_chunks`
(one block in memory at a time; each part appears atomically).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from tabpriv._random import block_seed
from tabpriv.errors import DataValidationError, EngineError, InputFileError

if TYPE_CHECKING:
    import pandas as pd

    from tabpriv.synthesizer import Synthesizer

__all__ = ["PartSpec", "draw_part", "plan_parts", "sample_parts"]

logger = logging.getLogger(__name__)

#: Blocks per part file when ``part_rows`` is not given.
DEFAULT_PART_BLOCKS = 4

_SUFFIX = {"parquet": ".parquet", "csv": ".csv"}


@dataclass(frozen=True)
class PartSpec:
    """One part file of a split draw (public: row counts, seeds of public randomness, a path).

    Attributes:
        index: Position of the part.
        path: Where the part is written.
        first_block: Index of its first block in the whole draw.
        n_blocks: Number of blocks.
        first_row: Row of the whole draw its first row is.
        n_rows: Rows of the whole draw (all parts).
        chunk_rows: Rows per block.
        seed: The call's public seed for the backend's draw.
        decode_seed: The call's public seed for decoding.
        categorical: ``"sample"`` or ``"argmax"``.

    """

    index: int
    path: str
    first_block: int
    n_blocks: int
    first_row: int
    n_rows: int
    chunk_rows: int
    seed: int
    decode_seed: int
    categorical: Literal["sample", "argmax"]

    @property
    def rows(self) -> int:
        """Rows of this part."""
        return min(self.n_blocks * self.chunk_rows, self.n_rows - self.first_row)


def plan_parts(
    folder: Path,
    n_rows: int,
    chunk_rows: int,
    part_rows: int,
    seed: int,
    decode_seed: int,
    file_format: str,
    categorical: Literal["sample", "argmax"],
) -> list[PartSpec]:
    """The parts of a draw of ``n_rows``: ``part_rows`` rows each (a multiple of ``chunk_rows``)."""
    per = part_rows // chunk_rows
    n_blocks = -(-n_rows // chunk_rows)
    suffix = _SUFFIX[file_format]
    return [
        PartSpec(
            index=i,
            path=str(folder / f"part-{i:05d}{suffix}"),
            first_block=b,
            n_blocks=min(per, n_blocks - b),
            first_row=b * chunk_rows,
            n_rows=n_rows,
            chunk_rows=chunk_rows,
            seed=seed,
            decode_seed=decode_seed,
            categorical=categorical,
        )
        for i, b in enumerate(range(0, n_blocks, per))
    ]


def _frames(synth: Synthesizer, spec: PartSpec) -> Iterator[pd.DataFrame]:
    """The part's blocks as output DataFrames (index: the rows' positions in the whole draw)."""
    import pandas as pd

    backend = synth.backend_
    for j in range(spec.first_block, spec.first_block + spec.n_blocks):
        start = j * spec.chunk_rows
        m = min(spec.chunk_rows, spec.n_rows - start)
        encoded = backend.sample(m, block_seed(spec.seed, j))  # = block j of backend.sample_chunks
        part = synth._decode_block(encoded, j, m, spec.decode_seed, spec.categorical)
        del encoded
        yield synth.schema_.output_frame(
            {name: part[name].to_numpy() for name in synth.columns_}, index=pd.RangeIndex(start, start + m)
        )


def draw_part(synth: Synthesizer, spec: PartSpec) -> int:
    """Draw one part and write it (atomically); return its rows."""
    from tabpriv.io import write_table_chunks

    os.makedirs(os.path.dirname(spec.path) or ".", exist_ok=True)
    n = write_table_chunks(_frames(synth, spec), spec.path, schema=synth.schema_)
    if n != spec.rows:
        raise EngineError(f"Part {spec.path!r} got {n} rows; expected {spec.rows}. This is a bug.")
    return n


#: Synthesizers loaded on this worker, by the SHA-256 of their save-file content.
_LOADED: dict[str, Synthesizer] = {}


def _draw_part_task(key: str, blob: bytes, spec: PartSpec) -> int:
    """Runs on a worker: load the released synthesizer once per worker, draw and write one part."""
    synth = _LOADED.get(key)
    if synth is None:
        from tabpriv.synthesizer import Synthesizer

        if hashlib.sha256(blob).hexdigest() != key:
            raise EngineError("The synthesizer sent to this worker does not match its checksum.")
        synth = Synthesizer._from_bytes(blob, Path("<the synthesizer sent by the client>"))
        _LOADED.clear()  # one release at a time per worker: memory stays that of one model
        _LOADED[key] = synth
    return draw_part(synth, spec)


def _check_folder(folder: Path) -> None:
    if folder.exists() and not folder.is_dir():
        raise InputFileError(f"Cannot write the parts to {str(folder)!r}: it is a file; give a folder.")
    if folder.is_dir() and any(folder.iterdir()):
        raise InputFileError(
            f"Refusing to write the parts to {str(folder)!r}: the folder is not empty; give a new or "
            "empty folder (nothing was written)."
        )
    parent = folder.parent if str(folder.parent) else Path(".")
    if not parent.is_dir():
        raise InputFileError(
            f"Cannot write the parts to {str(folder)!r}: folder {str(parent)!r} does not exist."
        )


def sample_parts(
    synth: Synthesizer,
    folder: Path,
    n_rows: int,
    *,
    engine: str = "default",
    scheduler: str | None = None,
    file_format: str = "parquet",
    part_rows: int | None = None,
    categorical: Literal["sample", "argmax"] = "sample",
) -> list[Path]:
    """:meth:`tabpriv.Synthesizer.sample_to`: check, plan the parts, draw them here or on the cluster."""
    from tabpriv.backends.base import Backend
    from tabpriv.io import check_disk_space

    if file_format not in _SUFFIX:
        raise DataValidationError(f"file_format must be 'parquet' or 'csv'; got {file_format!r}.")
    if categorical not in ("sample", "argmax"):
        raise DataValidationError(f"categorical must be 'sample' or 'argmax'; got {categorical!r}.")
    chunk_rows = synth.sample_chunk_rows()
    per = DEFAULT_PART_BLOCKS * chunk_rows if part_rows is None else part_rows
    if isinstance(per, bool) or not isinstance(per, int) or per <= 0 or per % chunk_rows:
        raise DataValidationError(
            f"part_rows must be a positive multiple of the sampling block ({chunk_rows:,} rows, "
            f"sample_chunk_rows()); got {part_rows!r}."
        )
    if type(synth.backend_).sample_chunks is not Backend.sample_chunks:
        raise EngineError(
            f"Backend {synth.backend_name_!r} draws the blocks of one sample jointly (its own "
            "sample_chunks), so they cannot be drawn apart; use sample_chunks() and "
            "tabpriv.io.write_table_chunks."
        )
    _check_folder(folder)
    check_disk_space(folder / "part", n_rows, synth.schema_, "the synthetic parts")
    folder.mkdir(exist_ok=True)
    seed, decode_seed = synth._sample_seeds()  # counted now, as sample() counts its call
    specs = plan_parts(folder, n_rows, chunk_rows, per, seed, decode_seed, file_format, categorical)
    progress = synth.progress
    if progress is not None:
        progress(0, n_rows, "rows")
    try:
        if engine == "default":
            done = 0
            for spec in specs:
                done += draw_part(synth, spec)
                if progress is not None:
                    progress(done, n_rows, "rows")
        else:
            _draw_on_cluster(synth, specs, scheduler, n_rows)
    except BaseException:
        for spec in specs:  # no partial output: the parts written so far are removed
            with contextlib.suppress(OSError):
                Path(spec.path).unlink()
        raise
    synth.rows_out_ = n_rows
    synth.privacy_report = synth._build_report()
    logger.info("sampled %d rows into %d part(s) on the %s engine", n_rows, len(specs), engine)
    return [Path(s.path) for s in specs]


def _draw_on_cluster(synth: Synthesizer, specs: list[PartSpec], scheduler: str | None, n_rows: int) -> None:
    from tabpriv.engine.dask_engine import DaskSession, import_distributed

    import_distributed()  # a clear error when Dask is not installed
    blob = synth._to_bytes()  # released state only: what save() writes
    key = hashlib.sha256(blob).hexdigest()
    with DaskSession(scheduler) as session:
        client: Any = session.client
        shared = client.scatter(blob, broadcast=True, hash=False)
        # pure=False: a fresh task key per part and call (two calls never share a result)
        futures = [client.submit(_draw_part_task, key, shared, spec, pure=False) for spec in specs]
        done = 0
        try:
            for fut in futures:  # in part order (they run in parallel; progress counts finished parts)
                done += int(fut.result())
                if synth.progress is not None:
                    synth.progress(done, n_rows, "rows")
        finally:
            for fut in futures:
                fut.cancel()
