"""Round-trip property tests of the schema-driven transformers (Hypothesis)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tabpriv.errors import DataValidationError, NotFittedError
from tabpriv.schema import Column, Schema
from tabpriv.transformers import TableTransformer

names = st.text(min_size=1, max_size=8).filter(lambda s: s.strip() != "" and not s.startswith("Unnamed: "))


@st.composite
def column_and_values(draw: st.DrawFn, name: str, n: int) -> tuple[Column, list[object]]:
    kind = draw(st.sampled_from(["categorical", "integer", "continuous"]))
    missing = draw(st.booleans())
    if kind == "categorical":
        cats = draw(
            st.one_of(
                st.lists(st.text(min_size=1, max_size=5), min_size=1, max_size=6, unique=True),
                st.lists(st.integers(-50, 50), min_size=1, max_size=6, unique=True),
            )
        )
        col = Column(name, "categorical", categories=tuple(cats), missing=missing)
        pool: list[object] = list(cats) + ([None] if missing else [])
        values = draw(st.lists(st.sampled_from(pool), min_size=n, max_size=n))
        return col, values
    if kind == "integer":
        lo = draw(st.integers(-(10**6), 10**6))
        hi = lo + draw(st.integers(1, 10**6))
        col = Column(name, "integer", lower=lo, upper=hi, missing=missing)
        elem = st.integers(lo, hi)
    else:
        lo = draw(st.floats(-1e6, 1e6, allow_nan=False))
        hi = lo + draw(st.floats(1e-3, 1e6, allow_nan=False))
        col = Column(name, "continuous", lower=lo, upper=hi, missing=missing)
        elem = st.floats(lo, hi, allow_nan=False)
    values = draw(st.lists(st.one_of(elem, st.none()) if missing else elem, min_size=n, max_size=n))
    return col, values


@st.composite
def schema_and_frame(draw: st.DrawFn) -> tuple[Schema, pd.DataFrame]:
    cols = draw(st.lists(names, min_size=1, max_size=5, unique=True))
    n = draw(st.integers(1, 30))
    columns, data = [], {}
    for c in cols:
        col, values = draw(column_and_values(c, n))
        columns.append(col)
        data[c] = pd.Series([np.nan if v is None else v for v in values], dtype=object)
    schema = Schema(tuple(columns))
    df = pd.DataFrame(data)
    return schema, schema.conform(df)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schema_and_frame())
def test_decode_encode_round_trip(case: tuple[Schema, pd.DataFrame]) -> None:
    schema, df = case
    tt = TableTransformer(schema).fit()
    enc = tt.transform(df)
    # spans are contiguous and cover the matrix; every row satisfies the documented norm bound
    assert sum(s.width for s in enc.spans) == enc.width
    assert [s.name for s in enc.spans] == schema.names
    assert np.all(np.linalg.norm(enc.data, axis=1) <= enc.row_norm_bound + 1e-5)
    back = tt.inverse_transform(enc.data)
    assert list(back.columns) == list(df.columns)
    assert list(back.dtypes) == [col.output_dtype for col in schema]
    assert isinstance(back.index, pd.RangeIndex)
    for col in schema:
        a, b = df[col.name].reset_index(drop=True), back[col.name]
        assert a.isna().tolist() == b.isna().tolist(), "missing values must be preserved"
        if col.kind == "continuous":
            assert col.lower is not None and col.upper is not None
            # decoded values are rounded to the column's decimals (half a step), up to float32 encoding
            assert col.decimals is not None
            tol = 1e-6 * (col.upper - col.lower) + 0.5 * 10.0**-col.decimals + 1e-9
            np.testing.assert_allclose(b.dropna(), a.dropna().astype(float), rtol=0, atol=tol)
        else:
            assert a.dropna().tolist() == b.dropna().tolist()


def test_sampling_decode_follows_probabilities(small_schema) -> None:
    tt = TableTransformer(small_schema).fit()
    n = 20000
    m = np.zeros((n, tt.width_), dtype=np.float32)
    span = tt.spans_[0]
    m[:, span.start : span.stop] = [0.2, 0.3, 0.5]
    out = tt.inverse_transform(m, categorical="sample", rng=np.random.default_rng(0))
    freq = out["color"].value_counts(normalize=True)
    # 3 standard errors of a proportion near 0.5 with n=20000 is 0.011
    assert abs(freq["blue"] - 0.5) < 0.011 and abs(freq["red"] - 0.2) < 0.011


def test_decode_clips_and_rounds(small_schema) -> None:
    tt = TableTransformer(small_schema).fit()
    m = np.zeros((2, tt.width_), dtype=np.float32)
    age = tt.spans_[2]
    m[:, age.start] = [5.0, -0.123]
    out = tt.inverse_transform(m)
    assert out["age"].tolist() == [99, round(0 + (1 - 0.123) / 2 * 99)]


def test_errors(small_schema) -> None:
    tt = TableTransformer(small_schema)
    with pytest.raises(NotFittedError):
        tt.transform(pd.DataFrame())
    tt.fit()
    with pytest.raises(DataValidationError, match="shape"):
        tt.inverse_transform(np.zeros((3, 2)))
