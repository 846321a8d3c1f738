"""The public Synthesizer path streams: lazy encoded table into the backend, chunked sampling out."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tabpriv import Synthesizer
from tabpriv.backends import available_backends, get_backend_class
from tabpriv.errors import DataValidationError
from tabpriv.schema import Column, Schema
from tabpriv.transformers import EncodedTable

from ._helpers import quick_synthesizer
from .conftest import make_small_df, make_small_schema

STREAMING = [b for b in available_backends() if get_backend_class(b).streaming]


def _raise(self: EncodedTable) -> np.ndarray:
    raise AssertionError("a streaming backend materialised table.data")


def test_independent_is_streaming() -> None:
    assert "independent" in STREAMING


def test_vae_backends_are_streaming() -> None:
    assert {"dp2-vae", "dpsgd-vae", "lipschitz-vae"} <= set(STREAMING)


#: Variants whose fit reads the table through other code paths (histograms, release passes).
_VARIANTS = [
    ("dp2-vae", {"condition_on": "color"}),
    ("dpsgd-vae", {"condition_on": "color"}),
    ("lipschitz-vae", {"release": "reconstruction"}),
    ("lipschitz-vae", {"mode": "paper", "allow_paper_mode": True, "release": "reconstruction"}),
]


@pytest.mark.parametrize(
    ("backend", "params"),
    [(b, {}) for b in STREAMING] + [v for v in _VARIANTS if v[0] in STREAMING],
    ids=lambda v: v if isinstance(v, str) else "-".join(f"{k}={x}" for k, x in v.items()) or "default",
)
def test_streaming_fit_never_materialises(
    backend: str, params: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(EncodedTable, "data", property(_raise))
    monkeypatch.setattr(EncodedTable, "clipped_rows", _raise)
    seen: list[EncodedTable] = []
    cls = get_backend_class(backend)
    real_fit = cls.fit

    def spy(self, table, plan, context):  # type: ignore[no-untyped-def]
        seen.append(table)
        return real_fit(self, table, plan, context)

    monkeypatch.setattr(cls, "fit", spy)
    reads: list[str] = []
    real_take, real_chunks = EncodedTable.take, EncodedTable.iter_chunks

    def take(self, indices):  # type: ignore[no-untyped-def]
        reads.append("take")
        return real_take(self, indices)

    def iter_chunks(self, chunk_rows=65_536):  # type: ignore[no-untyped-def]
        reads.append("iter_chunks")
        return real_chunks(self, chunk_rows)

    monkeypatch.setattr(EncodedTable, "take", take)
    monkeypatch.setattr(EncodedTable, "iter_chunks", iter_chunks)
    synth = quick_synthesizer(backend, **params).fit(make_small_df(300))
    assert len(seen) == 1 and seen[0].is_lazy  # the backend got a lazy table and left it lazy
    assert reads  # and it did read rows, through the streaming methods
    assert seen[0].n_rows == 300
    assert synth.privacy_report.epsilon <= 3.0


def test_fit_logs_that_the_backend_streams(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        quick_synthesizer().fit(make_small_df(100))
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "streaming: rows encoded chunk by chunk" in text
    assert "materialising" not in text


def _schema_dtypes() -> pd.Series:
    schema = make_small_schema()
    return pd.Series({c.name: c.output_dtype for c in schema}, dtype=object)


@pytest.fixture(scope="module")
def fitted() -> Synthesizer:
    df = make_small_df(300)
    return quick_synthesizer().fit(df[list(reversed(df.columns))])  # a column order other than the schema's


def test_sample_chunk_rows_from_the_memory_target(fitted: Synthesizer) -> None:
    w = fitted.transformer_.width_
    assert fitted.sample_chunk_rows() == min(65_536, (64 * 2**20) // (4 * w))
    fitted.sample_chunk_bytes = 4 * w * 10
    try:
        assert fitted.sample_chunk_rows() == 10
    finally:
        del fitted.sample_chunk_bytes


def test_chunked_sample_schema_columns_dtypes_and_block_sizes(fitted: Synthesizer) -> None:
    requested: list[int] = []
    backend = fitted.backend_
    real = type(backend).sample

    def spy(n: int, seed: int) -> np.ndarray:
        requested.append(n)
        return real(backend, n, seed)

    object.__setattr__(backend, "sample", spy)
    fitted.sample_chunk_max_rows = 64
    try:
        out = fitted.sample(1000)
    finally:
        del fitted.sample_chunk_max_rows
        del backend.sample
    assert requested == [64] * 15 + [40]  # never more than one block at a time
    whole = fitted.sample(1000)  # one block
    assert list(out.columns) == list(whole.columns) == fitted.columns_
    assert list(out.columns) == list(reversed(make_small_df(5).columns))
    pd.testing.assert_series_equal(out.dtypes, whole.dtypes)
    pd.testing.assert_series_equal(out.dtypes, _schema_dtypes()[fitted.columns_])
    assert isinstance(out.index, pd.RangeIndex) and len(out) == 1000
    make_small_schema().validate(out)  # every value inside the schema
    # the blocks are not copies of one another
    assert not out.iloc[:64].reset_index(drop=True).equals(out.iloc[64:128].reset_index(drop=True))


@pytest.mark.parametrize("chunk", [1, 37, 10_000])
def test_chunked_sample_is_reproducible_from_the_seed(chunk: int) -> None:
    df = make_small_df(200)
    outs = []
    for _ in range(2):
        s = quick_synthesizer(seed=11).fit(df)
        s.sample_chunk_max_rows = chunk
        outs.append((s.sample(250), s.sample(30, categorical="argmax")))
    pd.testing.assert_frame_equal(outs[0][0], outs[1][0])
    pd.testing.assert_frame_equal(outs[0][1], outs[1][1])
    assert not outs[0][0].iloc[:30].equals(outs[0][1])


def test_single_block_sample_equals_one_backend_draw(fitted: Synthesizer) -> None:
    """With one block, sample() is exactly backend.sample(n, seed) decoded (the pre-chunking output)."""
    from tabpriv._random import RandomSource

    source = RandomSource(12345, seeded=True)
    fitted.random_source_ = source
    fitted._n_samples = 0
    got = fitted.sample(500)
    encoded = fitted.backend_.sample(500, source.child("sample-1"))
    rng = np.random.default_rng(source.child("sample-1-decode"))
    want = fitted.transformer_.inverse_transform(encoded, categorical="sample", rng=rng)[fitted.columns_]
    pd.testing.assert_frame_equal(got, want)


# -- validation at scale: the per-distinct-value path equals the row-by-row path ----------------------
_NA = st.one_of(st.none(), st.just(float("nan")))
_TEXT = st.one_of(st.sampled_from(["a", "b", "é", ""]), _NA)
_CODES = st.one_of(st.sampled_from(["1", "2", "2.0", "3"]), _NA)  # numeric codes as text
_ROW = st.tuples(
    st.one_of(_TEXT, st.sampled_from(["x", "B"])),  # an occasional value outside the categories
    st.one_of(_CODES, st.sampled_from(["7", "a"])),
    st.integers(0, 3),
    st.booleans(),
)


def _validate_both(schema: Schema, df: pd.DataFrame) -> tuple[object, object]:
    import tabpriv.schema as schema_mod

    def run() -> object:
        try:
            clean, summary = schema.validate(df)
        except DataValidationError as e:
            return ("error", str(e))
        return clean, summary

    fast = run()
    real = schema_mod._factorize_exact
    schema_mod._factorize_exact = lambda *a: None  # type: ignore[assignment]
    try:
        slow = run()
    finally:
        schema_mod._factorize_exact = real
    return fast, slow


def _assert_same(fast: object, slow: object) -> None:
    if isinstance(fast, tuple) and isinstance(fast[0], str):
        assert fast == slow
        return
    assert isinstance(fast, tuple) and isinstance(slow, tuple)
    pd.testing.assert_frame_equal(fast[0], slow[0])
    assert fast[1] == slow[1]


@settings(max_examples=80, deadline=None)
@given(rows=st.lists(_ROW, min_size=1, max_size=30))
def test_fast_categorical_validation_equals_row_by_row(rows: list[tuple[object, object, int, bool]]) -> None:
    schema = Schema(
        (
            Column("s", "categorical", categories=("a", "b", "é", ""), missing=True),
            Column("num", "categorical", categories=(1, 2, 3), missing=True),
            Column("i", "categorical", categories=(0, 1, 2, 3)),
            Column("b", "categorical", categories=(True, False)),
        )
    )
    s, num, i, b = zip(*rows, strict=True)
    df = pd.DataFrame(
        {
            "s": pd.Series(s, dtype=object),
            "num": pd.Series(num, dtype=object),
            "i": np.asarray(i, dtype=np.int64),
            "b": np.asarray(b, dtype=bool),
        }
    )
    _assert_same(*_validate_both(schema, df))
    _assert_same(*_validate_both(schema, df.astype({"s": "string"})))


@pytest.mark.parametrize("n_cols", [5, 120])
def test_outputs_accept_new_columns_without_fragmentation_warnings(n_cols: int) -> None:
    # Narrow outputs keep one block per column (no consolidation copy); wide ones are consolidated,
    # so adding columns never triggers pandas' PerformanceWarning (warnings are errors here).
    schema = Schema(tuple(Column(f"c{j}", "categorical", categories=("a", "b")) for j in range(n_cols)))
    rng = np.random.default_rng(0)
    df = pd.DataFrame({f"c{j}": rng.choice(["a", "b"], size=60) for j in range(n_cols)})
    clean = schema.conform(df)
    out = Synthesizer(epsilon=2.0, schema=schema, random_state=0).fit(df).sample(40)
    for frame in (clean, out):
        for k in range(40):
            frame[f"extra{k}"] = k
    assert list(out.columns[:n_cols]) == schema.names and out.shape == (40, n_cols + 40)
    assert (out[schema.names].isin(["a", "b"])).all().all()
