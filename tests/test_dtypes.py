"""Synthetic tables come back with the schema's logical types (nullable pandas dtypes) and its precision."""

from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tabpriv.errors import SchemaError
from tabpriv.io import write_table_chunks
from tabpriv.schema import Column, Schema
from tabpriv.synthesizer import Synthesizer
from tabpriv.transformers import TableTransformer


@st.composite
def column_and_values(draw: st.DrawFn, name: str, n: int) -> tuple[Column, list[object]]:
    kind = draw(st.sampled_from(["text", "codes", "flags", "integer", "continuous"]))
    missing = draw(st.booleans())
    if kind in ("text", "codes", "flags"):
        if kind == "text":
            cats: list[object] = draw(
                st.lists(st.text(min_size=1, max_size=4), min_size=1, max_size=5, unique=True)
            )
        elif kind == "codes":
            cats = draw(st.lists(st.integers(-20, 20), min_size=1, max_size=5, unique=True))
        else:
            cats = draw(st.permutations([True, False]))
        col = Column(name, "categorical", categories=tuple(cats), missing=missing)
        pool = [*cats, *([None] if missing else [])]
        return col, draw(st.lists(st.sampled_from(pool), min_size=n, max_size=n))
    if kind == "integer":
        lo = draw(st.integers(-(10**6), 10**6))
        col = Column(name, "integer", lower=lo, upper=lo + draw(st.integers(1, 10**6)), missing=missing)
        elem: st.SearchStrategy[object] = st.integers(lo, int(col.upper or 0))
    else:
        precision = draw(st.one_of(st.none(), st.integers(0, 4)))
        lo_f = draw(st.integers(-1000, 1000)) / 4
        col = Column(
            name, "continuous", lower=lo_f, upper=lo_f + draw(st.integers(1, 4000)) / 4, missing=missing,
            precision=precision,
        )  # fmt: skip
        d = col.decimals or 0
        # values already at the column's precision survive the round trip (up to float32 encoding)
        elem = st.integers(0, 10**6).map(
            lambda k: float(np.clip(round(lo_f + k / 10**6 * (col.upper - lo_f), d), lo_f, col.upper))
        )
    return col, draw(st.lists(st.one_of(elem, st.none()) if missing else elem, min_size=n, max_size=n))


@st.composite
def schema_and_frame(draw: st.DrawFn) -> tuple[Schema, pd.DataFrame]:
    n = draw(st.integers(1, 25))
    columns, data = [], {}
    for i in range(draw(st.integers(1, 5))):
        col, values = draw(column_and_values(f"c{i}", n))
        columns.append(col)
        data[col.name] = pd.Series([np.nan if v is None else v for v in values], dtype=object)
    schema = Schema(tuple(columns))
    return schema, pd.DataFrame(data)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schema_and_frame())
def test_encode_decode_keeps_output_dtypes_values_and_missing(case: tuple[Schema, pd.DataFrame]) -> None:
    schema, raw = case
    tt = TableTransformer(schema).fit()
    back = tt.inverse_transform(tt.transform(raw).data)
    assert isinstance(back.index, pd.RangeIndex) and back.index.equals(pd.RangeIndex(len(raw)))
    for col in schema:
        got, want = back[col.name], raw[col.name]
        assert got.isna().tolist() == want.isna().tolist()
        if col.kind == "categorical":
            assert isinstance(got.dtype, pd.CategoricalDtype)
            assert list(got.cat.categories) == list(col.categories or ())  # declared order, all of them
            assert got.dropna().tolist() == want.dropna().tolist()
            assert all(type(a) is type(b) for a, b in zip(got.dropna(), want.dropna(), strict=True))
        elif col.kind == "integer":
            assert got.dtype == "Int64"
            assert got.dropna().tolist() == want.dropna().astype(int).tolist()
        else:
            assert got.dtype == np.float64
            d = col.decimals
            assert d is not None
            present = got.dropna().to_numpy()
            np.testing.assert_allclose(
                present, want.dropna().astype(float), rtol=0, atol=0.5 * 10.0**-d + 1e-9
            )
            # no float noise: every value is the float nearest to a d-decimal number (or a bound)
            assert all(v == round(v, d) or v in (col.lower, col.upper) for v in present)
    schema.validate(back)  # output dtypes are accepted back as input


def test_default_decimals_per_kind_and_declared_precision() -> None:
    assert Column("a", "integer", lower=0, upper=9).decimals == 0
    assert Column("a", "categorical", categories=("x",)).decimals is None
    assert Column("a", "continuous", lower=0, upper=1).decimals == 4
    assert Column("a", "continuous", lower=0, upper=99.5).decimals == 3
    assert Column("a", "continuous", lower=0, upper=100).decimals == 2
    assert Column("a", "continuous", lower=0, upper=250_000).decimals == 0
    assert Column("a", "continuous", lower=0, upper=1e-9).decimals == 13
    assert Column("a", "continuous", lower=0, upper=250_000, precision=2).decimals == 2


def test_precision_is_validated_and_round_trips_through_json() -> None:
    col = Column("inc", "continuous", lower=0, upper=1e6, precision=2)
    assert col.to_dict()["precision"] == 2
    assert Schema.from_dict({"columns": [col.to_dict()]})["inc"].precision == 2
    assert "precision" not in Column("x", "continuous", lower=0, upper=1).to_dict()
    with pytest.raises(SchemaError, match="continuous columns only"):
        Column("n", "integer", lower=0, upper=3, precision=1)
    for bad in (-1, 16, 1.5, True):
        with pytest.raises(SchemaError, match="from 0 to 15"):
            Column("x", "continuous", lower=0, upper=1, precision=bad)  # type: ignore[arg-type]


def test_category_dtype_falls_back_when_pandas_merges_categories() -> None:
    col = Column("x", "categorical", categories=(True, 1))  # distinct for tabpriv, equal for pandas
    assert col.output_dtype == np.dtype("object")


def _schema() -> Schema:
    return Schema(
        (
            Column("color", "categorical", categories=("red", "green", "blue"), missing=True),
            Column("code", "categorical", categories=(3, 1, 2)),
            Column("kids", "integer", lower=0, upper=9, missing=True),
            Column("income", "continuous", lower=0, upper=500_000),
            Column("rate", "continuous", lower=0, upper=1, precision=2),
        )
    )


def _frame(n: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "color": pd.Series(rng.choice(["red", "green", "blue", None], n), dtype="string"),
            "code": pd.Categorical(rng.choice([1, 2, 3], n), categories=[1, 2, 3]),
            "kids": pd.array(
                [None if i % 7 == 0 else int(v) for i, v in enumerate(rng.integers(0, 9, n))], dtype="Int64"
            ),
            "income": rng.uniform(0, 500_000, n),
            "rate": rng.uniform(0, 1, n).round(2),
        },
        index=pd.RangeIndex(100, 100 + n),  # not 0..n-1: the output has its own RangeIndex
    )


@pytest.fixture(scope="module")
def fitted() -> Synthesizer:
    return Synthesizer(backend="independent", epsilon=3.0, schema=_schema(), random_state=0).fit(_frame())


def test_synthesizer_returns_nullable_dtypes_from_nullable_inputs(fitted: Synthesizer) -> None:
    out = fitted.sample(300)
    assert out["color"].dtype == pd.CategoricalDtype(["red", "green", "blue"])
    assert out["code"].dtype == pd.CategoricalDtype([3, 1, 2])
    assert out["kids"].dtype == "Int64" and out["kids"].isna().any()
    assert out["income"].dtype == np.float64 and out["rate"].dtype == np.float64
    assert out.index.equals(pd.RangeIndex(300))
    inc = out["income"].to_numpy()
    assert np.array_equal(inc, np.rint(inc))  # [0, 500000] -> 0 decimals by default
    assert np.array_equal(out["rate"].to_numpy(), out["rate"].to_numpy().round(2))
    chunks = list(fitted.sample_chunks(300))
    assert [c.index[0] for c in chunks] == [0] and list(chunks[0].dtypes) == list(out.dtypes)


def test_written_csv_looks_like_the_input(fitted: Synthesizer, tmp_path) -> None:
    path = tmp_path / "out.csv"
    write_table_chunks(fitted.sample_chunks(200), path, schema=fitted.schema_)
    text = path.read_text(encoding="utf-8")
    back = pd.read_csv(io.StringIO(text), keep_default_na=False, na_values=[""])
    assert back["income"].dtype == np.int64  # "85109", not "85109.0" or "85109.11464691162"
    assert all(len(s.split(".")[-1]) <= 2 for s in back["rate"].astype(str) if "." in s)
    assert back["kids"].dropna().map(float.is_integer).all()
    assert set(back["color"].dropna()) <= {"red", "green", "blue"}
    assert "." not in ",".join(map(str, back["kids"].dropna().astype(int)))


def test_written_parquet_keeps_plain_values_and_int64(fitted: Synthesizer, tmp_path) -> None:
    path = tmp_path / "out.parquet"
    write_table_chunks(fitted.sample_chunks(200), path, schema=fitted.schema_)
    back = pd.read_parquet(path)
    assert back["kids"].dtype == "Int64"
    assert set(back["color"].dropna()) <= {"red", "green", "blue"}
    assert set(back["code"].unique()) <= {1, 2, 3}
    assert not math.isnan(float(back["income"].iloc[0]))
