"""The ``Synthesizer`` facade and the one-call :func:`synthesize` (``df.tabpriv``: tabpriv.accessor)."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from tabpriv import __version__
from tabpriv._device import resolve_device
from tabpriv._random import RandomSource, block_seed
from tabpriv.backends import get_backend_class
from tabpriv.backends.auto import AUTO, choose_backend
from tabpriv.backends.base import Backend, FitContext, ProgressCallback, spend_and_fit
from tabpriv.budget import (
    DEFAULT_DELTA,
    GUARANTEE_TEXT,
    PrivacyBudget,
    PrivacyLedger,
    PrivacyReport,
    check_delta_for_rows,
    weak_epsilon_warning,
)
from tabpriv.engine import check_engine
from tabpriv.errors import (
    DataValidationError,
    DeviceError,
    EngineError,
    NotFittedError,
    PrivacyParameterError,
    PrivacyWarning,
    ResourceLimitError,
    SaveFileError,
    SchemaError,
    TabprivError,
)
from tabpriv.schema import Schema, _frame_from_columns
from tabpriv.transformers.encoded import ColumnSpan
from tabpriv.transformers.table import TableTransformer

if TYPE_CHECKING:
    import pandas as pd

    from tabpriv.engine.dask_engine import DaskSession

__all__ = [
    "SAVE_FORMAT",
    "Synthesizer",
    "check_sample_memory",
    "sample_nbytes",
    "select_columns",
    "synthesize",
]

logger = logging.getLogger(__name__)

#: Name and version of the save-file format (a safetensors file with tabpriv metadata).
#: Version 2: no exact count of clipped values (version 1 files held one, which is not private).
SAVE_FORMAT = "tabpriv-synthesizer"
SAVE_FORMAT_VERSION = 2
_META_KEY = "tabpriv"
INFERRED_WARNING = "not end-to-end DP: domain inferred from the data"
SEEDED_WARNING = (
    "seeded run: the noise can be regenerated from the seed; keep the seed secret or the release is "
    "not private"
)
#: What the report says when ``columns=`` left out table columns the schema does not declare.
DROPPED_UNLISTED = (
    "columns of the table that the schema does not declare were left out too (not named: their names "
    "come from the data)"
)
#: What the report says about ``clip=True`` (the fact is public: the user asked for it; no count).
CLIP_COVERED = (
    "numbers outside the declared bounds were clipped to them (a per-record transformation before "
    "the mechanism; the count of clipped values is not released)"
)


def _resolve_schema(schema: Schema | str | Path | Mapping[str, Any] | None, df: Any) -> Schema:
    if isinstance(schema, Schema):
        return schema
    if isinstance(schema, str) and schema == "infer":
        return Schema.infer(df, warn=False)
    if isinstance(schema, str | Path):
        return Schema.load(schema)
    if isinstance(schema, Mapping):
        return Schema.from_dict(schema)
    raise SchemaError(
        "No schema given. Declare the table's domains from public knowledge "
        "(schema=Schema.load('table.schema.json')), or pass schema='infer' to read them off the data, "
        "which makes the release not end-to-end DP."
    )


class Synthesizer:
    """Fit a differentially private generative model to a table and sample synthetic rows.

    Args:
        backend: Registered backend name (see :func:`tabpriv.backends.available_backends`), or
            ``"auto"`` (the default): ``aim`` on tables of at most 20 columns, ``mst`` on wider ones,
            ``independent`` when a column alone exceeds the marginal model-size limit
            (:func:`tabpriv.backends.auto.choose_backend`; the report states the choice and why).
        epsilon: Privacy budget epsilon (> 0).
        delta: Privacy budget delta, a public constant (default 1e-5); must be below 1/n.
        schema: A :class:`Schema`, a path to a ``*.schema.json`` file, its dict form, or ``"infer"``
            (not end-to-end DP: the report says so and a :class:`PrivacyWarning` is emitted).
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        random_state: ``None`` (noise from OS entropy; the default and the private choice) or an integer
            seed for reproducibility (marked in the report; the seed must stay secret).
        backend_params: Keyword arguments for the backend's constructor.
        clip: Clip numbers outside their declared bounds instead of raising. The report says that
            clipping was applied; how many values were clipped is exact, private information and is
            never released (not in the report, the save file or the logs).
        progress: Optional callback ``progress(step, total, message)``: the backend's steps during
            :meth:`fit`, and the rows drawn so far (``total`` = rows asked for) while sampling.
        target: Optional public name of a column the release should serve as a classification target:
            backends that take a ``target`` parameter (``aim``, ``mst``) weight the marginals that touch
            it (stated in the report's mechanism); others ignore it. ``backend_params["target"]`` wins.
        ledger: Optional ledger shared by every release made from the same data. Each fit then spends at
            most (epsilon, delta) *and* at most what the shared ledger has left, records its spend there
            too, and its report shows the total spent on the data.
        engine: Where the pass over the private rows runs: ``"default"`` (this process, streaming) or
            ``"dask"`` (a ``dask.distributed`` cluster; needs the ``tabpriv[dask]`` extra). With
            ``"dask"``, :meth:`fit` takes the input file(s) (a path, glob, folder or list of CSV or
            Parquet files the workers can read) instead of a DataFrame; backends ``independent``,
            ``mst``, ``aim``, ``pgd`` and ``slicing``. Same release as the default engine for the
            same seed. Sampling runs in this process, or on the workers with :meth:`sample_to`
            (``engine="dask"``). See docs/engine.md.
        scheduler: With ``engine="dask"``: the address of a running scheduler
            (``"tcp://host:8786"``), or ``None`` for a LocalCluster on 127.0.0.1 started for the fit.
        columns: Optional names of the columns to synthesise (the rest of the table and of the schema
            is left out); see :func:`select_columns`. A public choice: the report lists the columns
            left out (``extra["columns_dropped"]``). With ``engine="dask"`` the table's names are the
            first file's and the workers read the kept columns only.
        drop: Optional names of columns to leave out (the complement of ``columns``; give one of the
            two).
        sep: With ``engine="dask"``: the delimiter of the CSV input files (one character), or
            ``None`` (the default) to detect each file's as :func:`tabpriv.io.read_table` does
            (comma, semicolon, tab or ``|``; one named in a ``DataWarning`` when not a comma).
            ``engine="default"`` takes a DataFrame, so ``sep`` is refused there.

    Attributes:
        schema_: The schema used.
        backend_: The fitted backend.
        backend_name_: Its registry name (what ``"auto"`` chose).
        backend_choice_: Why that backend was used, in one sentence (also in the report).
        ledger_: Every privacy spend on the data through this object (kept across refits).
        columns_dropped_: The columns ``columns``/``drop`` left out whose names are public (declared
            in the schema or named in ``drop``), also in the report's ``extra["columns_dropped"]``.
        columns_dropped_unlisted_: Whether other columns of the table were left out too (their names
            come from the data and are not released; the report says so in words).
        privacy_report: The :class:`PrivacyReport` of the latest release.

    """

    #: Memory target of one encoded block drawn by :meth:`sample` (bytes of ``rows × width`` float32).
    sample_chunk_bytes: int = 64 * 2**20
    #: Upper bound on the rows of one block drawn by :meth:`sample`.
    sample_chunk_max_rows: int = 65_536

    def __init__(
        self,
        backend: str = "auto",
        epsilon: float = 5.1,
        delta: float = DEFAULT_DELTA,
        schema: Schema | str | Path | Mapping[str, Any] | None = None,
        device: str = "auto",
        random_state: int | None = None,
        backend_params: Mapping[str, Any] | None = None,
        clip: bool = False,
        progress: ProgressCallback | None = None,
        ledger: PrivacyLedger | None = None,
        target: str | None = None,
        engine: str = "default",
        scheduler: str | None = None,
        columns: Sequence[str] | None = None,
        drop: Sequence[str] | None = None,
        sep: str | None = None,
    ) -> None:
        self.columns = columns
        self.drop = drop
        self.engine = engine
        self.scheduler = scheduler
        self.sep = sep
        self.target = target
        self.backend = backend
        self.epsilon = epsilon
        self.delta = delta
        self.schema = schema
        self.device = device
        self.random_state = random_state
        self.backend_params = backend_params
        self.clip = clip
        self.progress = progress
        self.ledger = ledger

    # -- fitting ---------------------------------------------------------------------------------
    def _make_backend(self, name: str | None = None) -> Backend:
        """The backend ``name`` (default: the one asked for; ``"auto"`` checks params against ``aim``)."""
        if name is None:
            name = "aim" if self.backend == AUTO else self.backend
        cls = get_backend_class(name)
        params = dict(self.backend_params or {})
        if self.target is not None and "target" not in params:
            import inspect

            if "target" in inspect.signature(cls.__init__).parameters:
                params["target"] = self.target
        try:
            return cls(**params)
        except TypeError as e:
            raise PrivacyParameterError(
                f"Invalid backend_params for backend {name!r}"
                + (" (chosen by backend='auto')" if self.backend == AUTO else "")
                + f": {e}. Check the backend's documented parameters, or name a backend."
            ) from e

    def fit(self, df: pd.DataFrame | str | Path | Sequence[str | Path]) -> Synthesizer:
        """Validate ``df`` against the schema, spend the budget and fit the backend.

        The flow: validate the budget, ``df`` and delta < 1/n (the one delta check) → the budget left
        (``ledger.available()``) → ``backend.plan(spans, n_rows, budget_left)`` (pure; a bad parameter
        raises here and nothing is spent) → ``ledger.spend_all(plan.spends)`` (all or nothing) →
        ``backend.fit(table, plan, context)``, which never sees the ledger. The budget is paid before
        any row is read, and stays paid if ``fit`` raises. Refitting the same object spends again on
        the same ledger, so the total is never hidden (and a second full-budget fit raises
        :class:`~tabpriv.errors.BudgetExceededError`).

        With ``engine="dask"``, ``df`` is the input file(s); the partitions are validated on the
        cluster before anything is spent, and the backend's data pass runs there (docs/engine.md).
        """
        if check_engine(self.engine) == "default":
            return self._fit(df, None)
        from tabpriv.engine.dask_engine import DaskSession

        with DaskSession(self.scheduler) as session:  # closed (and a LocalCluster stopped) after the fit
            return self._fit(df, session)

    def _fit(self, df: Any, session: DaskSession | None) -> Synthesizer:
        import pandas as pd

        if session is None and not isinstance(df, pd.DataFrame):
            raise DataValidationError(f"fit() expects a pandas DataFrame; got {type(df).__name__}.")
        if session is None and self.sep is not None:
            raise EngineError(
                "sep= applies to engine='dask' only (it reads the files); with engine='default' read "
                "the table with tabpriv.io.read_table(path, sep=...) and pass the DataFrame."
            )
        usecols: list[str] | None = None
        if session is not None:
            _check_engine_input(df, self.schema, self.backend)
        dropped: list[str] = []
        unlisted = False
        declared = self.schema if not (isinstance(self.schema, str) and self.schema == "infer") else None
        if self.columns is not None or self.drop is not None:
            # A public choice of columns, checked before anything is inferred, validated or spent.
            # On the Dask engine the table's names are the first file's header (read here, on the
            # client) and the workers read the kept columns only.
            if session is None:
                data_names = list(df.columns)
            else:
                from tabpriv.engine.dask_engine import input_columns

                data_names = input_columns(df, sep=self.sep)
            full = _resolve_schema(declared, df) if declared is not None else None
            kept, dropped = select_columns(
                full.names if full is not None else None, data_names, self.columns, self.drop
            )
            if session is None:  # a kept schema column the table lacks: validate names it below
                df = df[[c for c in kept if c in set(df.columns)]]
            else:
                usecols = kept
            if full is not None:
                declared = full.select([n for n in full.names if n in set(kept)])
            # The report names a dropped column only when its name is public: declared in the schema
            # or named by the user in drop=; other columns of the table are left out unnamed.
            public = set(full.names if full is not None else ())
            if self.drop is not None:
                public |= set(_names(self.drop, "drop="))
            unlisted = any(n not in public for n in dropped)
            dropped = [n for n in dropped if n in public]
        budget = PrivacyBudget(self.epsilon, self.delta)
        weak = weak_epsilon_warning(budget.epsilon)
        if weak is not None:
            warnings.warn(weak[0].upper() + weak[1:] + ".", PrivacyWarning, stacklevel=3)
        backend = self._make_backend()
        device = resolve_device(self.device, backend.devices, backend.framework)
        schema = _resolve_schema(self.schema if declared is None else declared, df)
        if schema.is_inferred:
            warnings.warn(
                "The schema was inferred from the private data: this release is not end-to-end "
                "differentially private. Declare bounds and categories from public knowledge.",
                PrivacyWarning,
                stacklevel=3,
            )
        transformer = TableTransformer(schema).fit()
        if session is None:
            # The clip counts (summary.clipped) are exact figures of the private data: never kept.
            clean, _ = schema.validate(df, clip=self.clip)
            # Rows are encoded on demand: a streaming backend reads them chunk by chunk; any other one
            # materialises the full n x width float32 matrix through table.data (logged at INFO).
            table = transformer.transform_lazy(clean)
            columns = [str(c) for c in df.columns]
        else:  # every partition is validated on the workers here, before anything is spent
            _check_engine_backend(self.backend, transformer.spans_, self.backend_params)
            table, columns = session.open_table(
                df, schema, transformer, clip=self.clip, sep=self.sep, usecols=usecols
            )
        check_delta_for_rows(budget.delta, table.n_rows)
        source = RandomSource.from_random_state(self.random_state)
        if self.backend == AUTO:  # the rule reads the public spans only
            name, choice = choose_backend(table.spans, self.backend_params)
            backend = self._make_backend(name)
            device = resolve_device(self.device, backend.devices, backend.framework)
        else:
            name, choice = self.backend, "named by the user"
        previous: PrivacyLedger | None = getattr(self, "ledger_", None)
        if self.ledger is not None:
            ledger = self.ledger.child(budget)  # raises if the data's budget is spent
        elif previous is None:
            ledger = PrivacyLedger(budget)
        elif previous.budget != budget:
            ledger = _carry_ledger(previous, budget)
        else:
            ledger = previous
        context = FitContext(
            device=device,
            seed=source.child("fit"),
            seeded=source.seeded,
            progress=self.progress,
            secret_key=source.secret_child("fit"),
        )
        logger.info(
            "fitting backend %r on %d rows x %d encoded columns (device %s; %s)",
            name, table.n_rows, table.width, device,
            "streaming: rows encoded chunk by chunk" if backend.streaming
            else f"not streaming: may materialise {table.nbytes / 2**30:.2f} GiB of encoded rows",
        )  # fmt: skip
        self.ledger_ = ledger
        # available budget -> backend.plan (pure, validates) -> ledger.spend_all (all or nothing) ->
        # backend.fit (never sees the ledger). The spends stay recorded if fit raises.
        spend_and_fit(backend, table, ledger, context)
        self.schema_ = schema
        self.transformer_ = transformer
        self.backend_ = backend
        self.backend_name_ = name
        self.backend_choice_ = choice
        self.random_source_ = source
        self.columns_ = columns
        self.columns_dropped_ = dropped
        self.columns_dropped_unlisted_ = unlisted
        self.n_rows_in_ = table.n_rows
        self.clipped_input_ = bool(self.clip)
        self.device_ = device
        self.rows_out_: int | None = None
        self._n_samples = 0
        self.privacy_report = self._build_report()
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "backend_"):
            raise NotFittedError("This Synthesizer is not fitted yet; call fit(df) before sample().")

    # -- sampling --------------------------------------------------------------------------------
    def sample(
        self, n: int | None = None, *, categorical: Literal["sample", "argmax"] = "sample"
    ) -> pd.DataFrame:
        """Draw ``n`` synthetic rows (default: as many as the private table). Spends no budget.

        Args:
            n: Number of rows (> 0).
            categorical: Decode categorical blocks by sampling from the model's scores (default) or
                by argmax.

        Rows are drawn and decoded in blocks of :meth:`sample_chunk_rows` rows (each block is checked
        against the schema), so the memory is that of one block (``O(block × width)``) plus the output
        DataFrame. A seeded synthesizer gives the same table for the same ``n`` and call order.

        The output must fit in memory. The rule (:func:`sample_nbytes`): ``n × (bytes of one row +
        bytes of the widest cell)`` (8 bytes a number or text cell, 1 a boolean; the second term is the
        peak of joining the blocks) must not exceed the memory available (``MemAvailable`` of
        ``/proc/meminfo``; where it cannot be read, nothing is checked). For more rows use
        :meth:`sample_chunks`, which yields the same rows block by block with bounded memory.

        Returns:
            A DataFrame with the original columns and order, every value inside the schema, each
            column of the schema's :attr:`~tabpriv.schema.Column.output_dtype` (``category`` with the
            declared categories, ``Int64``, or ``float64`` rounded to the column's decimals), and a
            ``RangeIndex`` ``0 .. n-1`` (synthetic rows correspond to no input row).

        Raises:
            DataValidationError: ``n`` is not a positive integer.
            ResourceLimitError: The output would not fit in the memory available.

        """
        self._check_fitted()
        n_rows = self._rows_to_sample(n)
        self._check_sample_memory(n_rows)
        columns: dict[str, list[np.ndarray]] = {name: [] for name in self.columns_}
        for part in self._sample_blocks(n_rows, categorical):
            for name in self.columns_:
                columns[name].append(part[name].to_numpy())
            del part
        # Concatenate column by column, dropping each column's blocks as soon as it is joined; the
        # columns stay unconsolidated unless the table is wide: the peak is the output plus one column.
        joined: dict[str, np.ndarray] = {}
        for name in self.columns_:
            blocks = columns.pop(name)
            joined[name] = blocks[0] if len(blocks) == 1 else np.concatenate(blocks)
            del blocks
        return self.schema_.output_frame(joined, consume=True)  # peak: the output plus one column

    def sample_chunks(
        self, n: int | None = None, *, categorical: Literal["sample", "argmax"] = "sample"
    ) -> Iterator[pd.DataFrame]:
        """Draw ``n`` synthetic rows as consecutive DataFrames of at most :meth:`sample_chunk_rows` rows.

        The streaming form of :meth:`sample`: the same rows in the same order (concatenated, the
        blocks equal ``sample(n)`` of a synthesizer in the same state), but only one block is held at a
        time, so any ``n`` works with memory ``O(block × width)``. Write them with
        :func:`tabpriv.io.write_table_chunks`. ``n`` is checked, and the call counted for a seeded
        synthesizer's stream, when this method is called, not when the first block is drawn. Each
        block's index continues the previous one (``0 .. n-1`` overall). The report's ``rows_out`` is
        set once the last block has been drawn.

        Raises:
            DataValidationError: ``n`` is not a positive integer.

        """
        import pandas as pd

        self._check_fitted()
        n_rows = self._rows_to_sample(n)
        blocks = self._sample_blocks(n_rows, categorical)

        def frames() -> Iterator[pd.DataFrame]:
            start = 0
            for part in blocks:
                m = len(next(iter(part.values())))
                yield self.schema_.output_frame(
                    {name: part[name].to_numpy() for name in self.columns_},
                    index=pd.RangeIndex(start, start + m),
                )
                start += m

        return frames()

    def _rows_to_sample(self, n: Any) -> int:
        n_rows = self.n_rows_in_ if n is None else n
        if isinstance(n_rows, bool) or not isinstance(n_rows, int | np.integer) or n_rows <= 0:
            raise DataValidationError(f"The number of rows to sample must be a positive integer; got {n!r}.")
        return int(n_rows)

    def _check_sample_memory(self, n_rows: int) -> None:
        check_sample_memory(self.schema_, n_rows)

    def _sample_blocks(
        self, n_rows: int, categorical: Literal["sample", "argmax"]
    ) -> Iterator[dict[str, pd.Series]]:
        """Count the call now and return the generator of its decoded, schema-checked blocks."""
        seed, decode_seed = self._sample_seeds()
        chunk_rows = self.sample_chunk_rows()
        backend = self.backend_
        progress = self.progress

        def blocks() -> Iterator[dict[str, pd.Series]]:
            got = 0
            if progress is not None:
                progress(0, n_rows, "rows")
            for i, encoded in enumerate(backend.sample_chunks(n_rows, seed, chunk_rows)):
                m = min(chunk_rows, n_rows - got)
                part = self._decode_block(encoded, i, m, decode_seed, categorical)
                del encoded
                got += m
                if progress is not None:  # synthetic row counts only: public
                    progress(got, n_rows, "rows")
                yield part
            if got != n_rows:
                raise TabprivError(
                    f"Backend {self.backend_name_!r} returned {got} rows; expected {n_rows}. This is a bug "
                    "in the backend."
                )
            self.rows_out_ = n_rows
            self.privacy_report = self._build_report()

        return blocks()

    def _sample_seeds(self) -> tuple[int, int]:
        """Count one sampling call; its public seeds for the backend's draw and for decoding."""
        self._n_samples += 1
        purpose = f"sample-{self._n_samples}"
        return self.random_source_.child(purpose), self.random_source_.child(purpose + "-decode")

    def _decode_block(
        self,
        encoded: np.ndarray,
        index: int,
        m: int,
        decode_seed: int,
        categorical: Literal["sample", "argmax"],
    ) -> dict[str, pd.Series]:
        """Decode encoded block ``index`` (``m`` rows) with its own seed; check it against the schema."""
        width = self.transformer_.width_
        if encoded.shape != (m, width):
            raise TabprivError(
                f"Backend {self.backend_name_!r} returned a block of shape {encoded.shape}; expected "
                f"({m}, {width}). This is a bug in the backend."
            )
        rng = np.random.default_rng(block_seed(decode_seed, index))
        part = self.transformer_.decode_columns(encoded, categorical=categorical, rng=rng)
        # Assurance: decoded rows always lie inside the schema (checked block by block).
        self.schema_.validate(_frame_from_columns(part))
        return part

    def sample_to(
        self,
        path: str | Path,
        n: int | None = None,
        *,
        engine: str = "default",
        scheduler: str | None = None,
        file_format: Literal["parquet", "csv"] = "parquet",
        part_rows: int | None = None,
        categorical: Literal["sample", "argmax"] = "sample",
    ) -> list[Path]:
        """Draw ``n`` synthetic rows into a folder of part files, here or on the Dask workers.

        Block ``i`` of the draw (:meth:`sample_chunk_rows` rows) comes from its own public seeds,
        derived from this call's sampling seed and ``i`` alone (:func:`tabpriv._random.block_seed`), so
        the rows do not depend on where the blocks are drawn or on the number of workers: the parts,
        read in order, are the rows :meth:`sample` would return for this call (same seed, same call
        order). Sampling is post-processing and spends nothing; with ``engine="dask"`` the workers get
        the released state only (what :meth:`save` writes), never private data. See docs/engine.md.

        Args:
            path: A new or empty folder (created; on a cluster it must be at the same place on every
                worker, i.e. shared storage). Parts are ``part-00000.parquet``, ``part-00001...``.
            n: Number of rows (default: as many as the private table).
            engine: ``"default"`` (this process, part after part) or ``"dask"`` (one task per part).
            scheduler: With ``engine="dask"``: a scheduler address; default this synthesizer's
                ``scheduler`` (``None``: a LocalCluster on 127.0.0.1 for the call).
            file_format: ``"parquet"`` (default) or ``"csv"`` (comma-separated, with a header per part).
            part_rows: Rows per part file, a multiple of :meth:`sample_chunk_rows` (default: 4 blocks).
            categorical: As in :meth:`sample`.

        Returns:
            The part files, in row order.

        Raises:
            DataValidationError: ``n`` or ``part_rows`` is not valid.
            EngineError: Unknown engine, or the backend draws its blocks jointly (its own
                ``sample_chunks``), so that they cannot be drawn apart.
            InputFileError: ``path`` is a file or a folder that is not empty, or cannot be written.

        """
        from tabpriv.engine.sampling import sample_parts

        self._check_fitted()
        n_rows = self._rows_to_sample(n)
        where = check_engine(engine)
        return sample_parts(
            self,
            Path(path),
            n_rows,
            engine=where,
            scheduler=scheduler if scheduler is not None else getattr(self, "scheduler", None),
            file_format=file_format,
            part_rows=part_rows,
            categorical=categorical,
        )

    def sample_chunk_rows(self) -> int:
        """Rows drawn and decoded per block by :meth:`sample`.

        At most :attr:`sample_chunk_max_rows`, and few enough that one encoded block takes at most
        :attr:`sample_chunk_bytes` (``rows × width × 4`` bytes). Depends on the fitted width only, so
        a seeded synthesizer (or its saved copy) always splits the same way.
        """
        self._check_fitted()
        by_memory = self.sample_chunk_bytes // max(1, 4 * self.transformer_.width_)
        return max(1, min(self.sample_chunk_max_rows, by_memory))

    # -- reporting --------------------------------------------------------------------------------
    @property
    def guarantee_(self) -> str:
        """``"dp"`` or ``"conditional"`` for the fitted backend (mode-aware)."""
        self._check_fitted()
        return str(getattr(self.backend_, "effective_guarantee", self.backend_.guarantee))

    def _build_report(self) -> PrivacyReport:
        details = self.backend_.privacy_details()
        guarantee = self.guarantee_
        warns = list(details.warnings)
        if guarantee != "dp" and not any(w.startswith("per-record guarantee conditional") for w in warns):
            warns.insert(0, GUARANTEE_TEXT["conditional"])
        if self.schema_.is_inferred:
            warns.append(INFERRED_WARNING)
        covered = list(details.covered)
        not_covered = list(details.not_covered)
        if self.schema_.is_inferred:
            not_covered.append("the column domains (bounds, categories), read off the private data")
        else:
            covered.append("column domains: declared public schema, no budget spent")
        if self.clipped_input_:  # whether clip=True was asked for (public), never whether any was clipped
            covered.append(CLIP_COVERED)
        if self.random_source_.seeded:
            warns.append(SEEDED_WARNING)
        led = self.ledger_
        weak = weak_epsilon_warning(led.epsilon_spent)
        if weak is not None:
            warns.append(weak)
        elif led.root is not led:
            total = weak_epsilon_warning(led.root.epsilon_spent)
            if total is not None:
                warns.append(f"every release from this data together: {total}")
        return PrivacyReport(
            backend=self.backend_name_,
            guarantee=guarantee,  # type: ignore[arg-type]
            guarantee_text=GUARANTEE_TEXT[guarantee],
            epsilon=led.epsilon_spent,
            delta=led.delta_spent,
            budget_epsilon=led.budget.epsilon,
            budget_delta=led.budget.delta,
            adjacency=details.adjacency,
            accountant=details.accountant,
            mechanism=details.mechanism,
            noise=dict(details.noise),
            covered=covered,
            not_covered=not_covered,
            end_to_end_dp=guarantee == "dp" and not self.schema_.is_inferred,
            schema_source=self.schema_.source,
            rows_in=self.n_rows_in_,
            rows_out=self.rows_out_,
            seeded=self.random_source_.seeded,
            spends=led.to_list(),
            warnings=warns,
            library_version=__version__,
            timestamp=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            extra={
                "backend_choice": self.backend_choice_,
                **details.extra,
                **self._data_totals(),
                **({"columns_dropped": list(self.columns_dropped_)} if self.columns_dropped_ else {}),
                **({"columns_dropped_unlisted": DROPPED_UNLISTED} if self.columns_dropped_unlisted_ else {}),
            },
        )

    def _data_totals(self) -> dict[str, Any]:
        """Totals of the shared ledger (every release from the same data), when one is used."""
        root = self.ledger_.root
        if root is self.ledger_:
            return {}
        return {
            "data_total_epsilon": root.epsilon_spent,
            "data_total_delta": root.delta_spent,
            "data_budget": {"epsilon": root.budget.epsilon, "delta": root.budget.delta},
            "data_spends": root.to_list(),
        }

    # -- persistence ------------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Save the fitted synthesizer to one file (safetensors arrays + JSON metadata; no pickle).

        The file holds only released, differentially private state (never the private rows), the
        schema, the ledger and the report. The random seed is never saved.
        """
        from tabpriv.io import atomic_write_bytes

        atomic_write_bytes(path, self._to_bytes())

    def _to_bytes(self) -> bytes:
        """The save file's content (released state only; see :meth:`save`)."""
        from safetensors.numpy import save

        self._check_fitted()
        arrays, backend_meta = self.backend_.get_state()
        arrays = {f"backend.{k}": np.ascontiguousarray(v) for k, v in arrays.items()}
        meta = {
            "format": SAVE_FORMAT,
            "format_version": SAVE_FORMAT_VERSION,
            "library_version": __version__,
            "backend": self.backend_name_,
            "backend_choice": self.backend_choice_,
            "backend_params": self.backend_.get_params(),
            "backend_state": backend_meta,
            "schema": self.schema_.to_dict(),
            "spans": [s.to_dict() for s in self.transformer_.spans_],
            "columns": self.columns_,
            "rows_in": self.n_rows_in_,
            "clip": self.clipped_input_,
            "budget": {"epsilon": self.ledger_.budget.epsilon, "delta": self.ledger_.budget.delta},
            "ledger": self.ledger_.to_list(),
            "seeded": self.random_source_.seeded,
            "device": self.device_,
        }
        if self.columns_dropped_:  # only when columns=/drop= left columns out (public names only)
            meta["columns_dropped"] = self.columns_dropped_
        if self.columns_dropped_unlisted_:
            meta["columns_dropped_unlisted"] = True
        meta_text = json.dumps(meta, sort_keys=True, default=_json_default)
        digest = _digest(arrays, meta_text)
        return bytes(save(arrays, metadata={_META_KEY: meta_text, "sha256": digest}))

    @classmethod
    def load(cls, path: str | Path, device: str | None = None) -> Synthesizer:
        """Load a synthesizer saved by :meth:`save`. Never executes code from the file.

        Sampling from a loaded synthesizer uses fresh OS entropy (the original seed is not saved).

        Args:
            path: The saved file.
            device: Where the loaded model samples: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"``
                (a GPU when the backend can sample on one and one is present). ``None`` (the
                default): the CPU. The torch backends (the VAEs, slicing) move their model there
                (``backend_.to(device)``); the others sample on the CPU only, so a GPU device is an
                error for them (``"auto"`` gives the CPU). Sampling is post-processing: the device
                changes where the draws run, never what they may reveal.

        Raises:
            DeviceError: ``device`` is not a device name (checked before the file is read), the
                backend cannot sample on it, or no GPU is present.
            SaveFileError: The file is missing, not a tabpriv file, corrupt, tampered with, or from an
                incompatible version.

        """
        if device is not None:
            _check_device_name(device)
        p = Path(path)
        try:
            blob = p.read_bytes()
        except OSError as e:
            raise SaveFileError(f"Cannot read saved synthesizer {str(p)!r}: {e.strerror}.") from e
        loaded = cls._from_bytes(blob, p)
        if device is not None:
            loaded._sample_on(device)
        return loaded

    @classmethod
    def _from_bytes(cls, blob: bytes, p: Path) -> Synthesizer:
        """A synthesizer from a save file's content (``p`` names it in the errors); see :meth:`load`."""
        from safetensors.numpy import load

        try:
            header_len = int.from_bytes(blob[:8], "little")
            if not 2 <= header_len <= len(blob) - 8:
                raise ValueError("bad header length")
            header = json.loads(blob[8 : 8 + header_len])
            file_meta = header.get("__metadata__") or {}
            meta_text = file_meta[_META_KEY]
            stored_digest = file_meta["sha256"]
            arrays = load(blob)
        except Exception as e:
            raise SaveFileError(
                f"{str(p)!r} is not a tabpriv synthesizer file (or it is corrupt): {e}."
            ) from e
        if _digest(arrays, meta_text) != stored_digest:
            raise SaveFileError(
                f"{str(p)!r} failed its integrity check: its content does not match its checksum "
                "(corrupted or tampered with)."
            )
        try:
            meta = json.loads(meta_text)
        except json.JSONDecodeError as e:
            raise SaveFileError(f"{str(p)!r} has unreadable metadata.") from e
        if not isinstance(meta, dict) or meta.get("format") != SAVE_FORMAT:
            raise SaveFileError(f"{str(p)!r} is not a tabpriv synthesizer file.")
        if meta.get("format_version") == 1:
            raise SaveFileError(
                f"{str(p)!r} is a format-1 file, which holds the exact count of clipped values (not "
                "private) and is no longer read; refit the synthesizer with this version and save it "
                "again."
            )
        if meta.get("format_version") != SAVE_FORMAT_VERSION or meta.get("library_version") != __version__:
            raise SaveFileError(
                f"{str(p)!r} was saved by tabpriv {meta.get('library_version')!r} (format "
                f"{meta.get('format_version')!r}); this is tabpriv {__version__} (format "
                f"{SAVE_FORMAT_VERSION}). Refit with this version."
            )
        try:
            return cls._from_meta(meta, arrays)
        except TabprivError:
            raise
        except Exception as e:
            raise SaveFileError(f"{str(p)!r} has invalid content: {e}.") from e

    def _sample_on(self, device: str) -> None:
        """Move a loaded backend to ``device`` for sampling (``backend_.to``); set ``device_``.

        Raises:
            DeviceError: The backend cannot sample on ``device`` or no GPU is present.

        """
        backend = self.backend_
        dev = resolve_device(device, backend.devices, backend.framework)
        move = getattr(backend, "to", None)
        if dev != "cpu" and move is None:
            if str(device).strip().lower() == "auto":
                dev = "cpu"
            else:
                raise DeviceError(
                    f"A loaded {self.backend_name_!r} synthesizer samples on the CPU only; got "
                    f"device={device!r}. Use device='cpu' (or 'auto')."
                )
        if move is not None:
            move(dev)
        self.device_ = dev

    @classmethod
    def _from_meta(cls, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> Synthesizer:
        schema = Schema.from_dict(meta["schema"])
        budget = meta["budget"]
        self = cls(
            backend=str(meta["backend"]),
            epsilon=float(budget["epsilon"]),
            delta=float(budget["delta"]),
            schema=schema,
            device="cpu",
            backend_params=dict(meta["backend_params"]),
        )
        transformer = TableTransformer(schema).fit()
        spans = tuple(ColumnSpan.from_dict(s) for s in meta["spans"])
        if spans != transformer.spans_:
            raise SaveFileError("The saved spans do not match the saved schema.")
        backend = self._make_backend()
        try:  # the parameters a fit would have refused are refused on load too, whether used or not
            backend.validate_params()
        except TabprivError as e:
            raise SaveFileError(
                f"The saved backend parameters {meta['backend_params']!r} are invalid: {e}"
            ) from e
        backend.set_spans(spans)
        backend_arrays = {k[len("backend.") :]: v for k, v in arrays.items() if k.startswith("backend.")}
        backend.set_state(backend_arrays, dict(meta["backend_state"]))
        try:  # a file whose parameters or state only fail when used must fail now, as a SaveFileError
            probe = backend.sample(2, seed=0)
            transformer.inverse_transform(probe)
        except Exception as e:
            raise SaveFileError(
                f"The saved backend parameters {meta['backend_params']!r} or state do not work "
                f"({type(e).__name__}: {e})."
            ) from e
        self.schema_ = schema
        self.transformer_ = transformer
        self.backend_ = backend
        self.backend_name_ = str(meta["backend"])
        self.backend_choice_ = str(meta.get("backend_choice", "named by the user"))
        self.ledger_ = PrivacyLedger.from_list(
            PrivacyBudget(budget["epsilon"], budget["delta"]), meta["ledger"]
        )
        fresh = RandomSource.from_random_state(None)
        # A seeded fit stays marked as seeded in the report of every later release.
        self.random_source_ = RandomSource(
            fresh.seed, seeded=bool(meta["seeded"]), secret_key=fresh.secret_key
        )
        self.columns_ = [str(c) for c in meta["columns"]]
        self.columns_dropped_ = [str(c) for c in meta.get("columns_dropped", [])]
        self.columns_dropped_unlisted_ = bool(meta.get("columns_dropped_unlisted", False))
        if sorted(self.columns_) != sorted(schema.names):
            raise SaveFileError("The saved column order does not match the saved schema.")
        self.n_rows_in_ = int(meta["rows_in"])
        self.clipped_input_ = bool(meta["clip"])
        self.device_ = "cpu"
        self.rows_out_ = None
        self._n_samples = 0
        self.privacy_report = self._build_report()
        return self


_DEVICE_NAME = re.compile(r"(auto|cpu|cuda(:[0-9]+)?)")


def _check_device_name(device: object) -> None:
    """Raise unless ``device`` names a device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.

    Raises:
        DeviceError: In one sentence naming the value and the accepted names.

    """
    if not isinstance(device, str) or _DEVICE_NAME.fullmatch(device.strip().lower()) is None:
        raise DeviceError(
            f"Unknown device {device!r}; use 'cpu', 'cuda', 'cuda:N' (N a GPU index) or 'auto'."
        )


def _names(value: Any, label: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    try:
        names = [str(v) for v in value]
    except TypeError:
        raise DataValidationError(f"{label} takes a list of column names; got {value!r}.") from None
    return list(dict.fromkeys(n.strip() for n in names if n.strip()))


def select_columns(
    schema_names: Sequence[str] | None,
    data_names: Sequence[Any] | None,
    columns: Sequence[str] | str | None = None,
    drop: Sequence[str] | str | None = None,
) -> tuple[list[str], list[str]]:
    """The columns kept and dropped by ``columns=`` (keep these) or ``drop=`` (leave these out).

    A name is known when it is a column of the schema or of the table; the kept columns come in the
    table's order (the schema's where no table is given), the dropped ones are every other known
    column. Names only, public (the user's choice): nothing is read off the rows.

    Returns:
        ``(kept, dropped)``; with neither ``columns`` nor ``drop``, every known column and ``[]``.

    Raises:
        DataValidationError: Both given, an unknown name (all of them named), or no column left.

    """
    order = [str(c) for c in data_names] if data_names is not None else []
    order += [n for n in schema_names or () if n not in set(order)]
    if columns is not None and drop is not None:
        raise DataValidationError(
            "Give either columns= (--columns, the columns to keep) or drop= (--drop, those to leave "
            "out), not both."
        )
    if columns is None and drop is None:
        return order, []
    label = "columns= (--columns)" if columns is not None else "drop= (--drop)"
    names = _names(columns if columns is not None else drop, label)
    unknown = [n for n in names if n not in set(order)]
    if unknown:
        raise DataValidationError(
            f"Unknown column(s) in {label}: {', '.join(map(repr, unknown))}; the columns are "
            f"{', '.join(order)}."
        )
    chosen = set(names)
    kept = [n for n in order if (n in chosen) == (columns is not None)]
    if not kept:
        raise DataValidationError(f"{label} leaves no column to synthesise; keep at least one.")
    return kept, [n for n in order if n not in set(kept)]


def sample_nbytes(schema: Schema, n_rows: int) -> int:
    """Peak bytes of :meth:`Synthesizer.sample` for ``n_rows`` rows of ``schema`` (its memory rule).

    ``n_rows × (bytes of one row + bytes of the widest cell)``: 8 bytes a number or text cell (text
    cells point to the schema's shared category strings), 1 a boolean; the second term is the peak of
    joining one column's blocks.
    """
    cells = [np.dtype(col.pandas_dtype).itemsize for col in schema]
    return int(n_rows) * (sum(cells) + max(cells))


def check_sample_memory(schema: Schema, n_rows: int) -> None:
    """Raise :class:`ResourceLimitError` when :func:`sample_nbytes` exceeds the memory available.

    The memory available is :func:`tabpriv.io.available_memory_bytes`; where it cannot be told,
    nothing is checked.
    """
    from tabpriv import io

    available = io.available_memory_bytes()
    need = sample_nbytes(schema, n_rows)
    if available is not None and need > available:
        raise ResourceLimitError(
            f"Sampling {n_rows:,} rows in memory needs about {need / 2**30:.3g} GiB but "
            f"{available / 2**30:.3g} GiB is available; draw them block by block with "
            "Synthesizer.sample_chunks(n) and tabpriv.io.write_table_chunks (the CLI does, unless "
            "--evaluate needs the table in memory), or ask for fewer rows."
        )


#: Backends whose data pass goes through the engine seam only (tabpriv.engine.map_sum / map_chunks).
ENGINE_BACKENDS = ("independent", "mst", "aim", "pgd", "slicing")


def _check_engine_input(data: Any, schema: Any, backend: str) -> None:
    """Refuse, before anything is read, what the Dask engine cannot take."""
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        raise DataValidationError(
            "engine='dask' reads the input files on the cluster: pass the path(s) of the CSV or Parquet "
            "file(s) to fit() (a path, glob, folder or list), or use engine='default' for a DataFrame."
        )
    if isinstance(schema, str) and schema == "infer":
        raise SchemaError(
            "engine='dask' needs a declared schema (Schema.load('table.schema.json')); inferring one "
            "would read the private data outside the engine and is not end-to-end DP."
        )
    if backend != AUTO and backend not in ENGINE_BACKENDS:
        raise EngineError(
            f"Backend {backend!r} reads rows by position, which engine='dask' does not provide; use one "
            f"of {', '.join(ENGINE_BACKENDS)} (or 'auto'), or engine='default'."
        )


def _check_engine_backend(backend: str, spans: tuple[ColumnSpan, ...], params: Any) -> None:
    """Refuse a backend ``"auto"`` would choose that the Dask engine cannot run (reads spans only)."""
    if backend == AUTO:
        name, _ = choose_backend(spans, params)
        if name not in ENGINE_BACKENDS:
            raise EngineError(
                f"backend='auto' chose {name!r}, which engine='dask' cannot run; name one of "
                f"{', '.join(ENGINE_BACKENDS)}, or use engine='default'."
            )


def _carry_ledger(old: PrivacyLedger, budget: PrivacyBudget) -> PrivacyLedger:
    """A ledger under a new budget that keeps every earlier spend on the same data."""
    new = PrivacyLedger(budget)
    new.spends = list(old.spends)
    return new


def _digest(arrays: Mapping[str, np.ndarray], meta_text: str) -> str:
    h = hashlib.sha256()
    h.update(meta_text.encode("utf-8"))
    for k in sorted(arrays):
        a = np.ascontiguousarray(arrays[k])
        h.update(k.encode("utf-8"))
        h.update(str(a.dtype).encode())
        h.update(repr(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"Object of type {type(o).__name__} is not JSON serialisable")


def synthesize(
    df: pd.DataFrame,
    *,
    epsilon: float,
    delta: float = DEFAULT_DELTA,
    schema: Schema | str | Path | Mapping[str, Any] | None = None,
    backend: str = "auto",
    n_rows: int | None = None,
    device: str = "auto",
    random_state: int | None = None,
    backend_params: Mapping[str, Any] | None = None,
    clip: bool = False,
    target: str | None = None,
    columns: Sequence[str] | None = None,
    drop: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Fit a :class:`Synthesizer` and return a synthetic table in one call.

    The privacy report is attached as ``result.attrs["privacy_report"]`` (a dict). ``columns`` /
    ``drop`` select the columns to synthesise (see :class:`Synthesizer`).
    """
    synth = Synthesizer(
        backend=backend,
        epsilon=epsilon,
        delta=delta,
        schema=schema,
        device=device,
        random_state=random_state,
        backend_params=backend_params,
        clip=clip,
        target=target,
        columns=columns,
        drop=drop,
    ).fit(df)
    out = synth.sample(n_rows)
    out.attrs["privacy_report"] = synth.privacy_report.to_dict()
    return out
