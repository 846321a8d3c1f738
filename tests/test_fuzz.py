"""Property-based fuzzing (Hypothesis) of the reader, the schema loader, the transformers and the CLI.

The only outcomes allowed: a correct result, or a :class:`TabprivError` subclass with a readable message.
Input files are never modified (hashed before and after); a failed run leaves no output and no temporary
file behind. Case counts are kept small so the file runs in well under a minute; raise them with
``HYPOTHESIS_PROFILE=thorough`` (see docs/assurance.md for the figures of a long run).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, event, example, given, settings
from hypothesis import strategies as st

from tabpriv.errors import TabprivError
from tabpriv.io import read_table
from tabpriv.schema import Column, Schema
from tabpriv.transformers import TableTransformer

settings.register_profile(
    "default-fuzz",
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    derandomize=True,
)
settings.register_profile(
    "thorough",
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
FUZZ = settings.get_profile(os.environ.get("HYPOTHESIS_PROFILE", "default-fuzz"))


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _readable(exc: BaseException) -> None:
    """A readable message: a sentence, not a bare repr or an empty string."""
    msg = str(exc)
    event(f"outcome: {type(exc).__name__}")
    assert isinstance(exc, TabprivError), f"{type(exc).__name__}: {msg}"
    assert len(msg) >= 15 and " " in msg, msg


# -- strategies ----------------------------------------------------------------------------------------
names = st.text(min_size=1, max_size=8).filter(lambda s: s.strip() == s and "\x00" not in s)
cell = st.one_of(
    st.none(),
    st.text(max_size=6),
    st.integers(min_value=-(2**62), max_value=2**62),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e308, -1e308, 5e-324, -5e-324, 0.0, -0.0, "", "NA", "None", "é", "名前"]),
)


@st.composite
def frames(draw: st.DrawFn) -> pd.DataFrame:
    n_cols = draw(st.integers(1, 4))
    cols = draw(st.lists(names, min_size=n_cols, max_size=n_cols, unique=True))
    n_rows = draw(st.integers(1, 8))
    kind = draw(st.sampled_from(["mixed", "float", "int", "text"]))
    data = {}
    for c in cols:
        if kind == "mixed":
            vals = draw(st.lists(cell, min_size=n_rows, max_size=n_rows))
        elif kind == "float":
            vals = draw(st.lists(st.floats(allow_nan=True), min_size=n_rows, max_size=n_rows))
        elif kind == "int":
            vals = draw(st.lists(st.integers(-1000, 1000), min_size=n_rows, max_size=n_rows))
        else:
            vals = draw(st.lists(st.text(max_size=5), min_size=n_rows, max_size=n_rows))
        data[c] = pd.Series(vals, dtype=object if kind in ("mixed", "text") else None)
    df = pd.DataFrame(data)
    if draw(st.booleans()):  # duplicate rows
        df = pd.concat([df, df], ignore_index=True)
    return df


# -- read_table ----------------------------------------------------------------------------------------
@FUZZ
@given(df=frames(), fmt=st.sampled_from(["csv", "parquet"]))
@example(df=pd.DataFrame({"only": [1.5]}), fmt="csv")  # 1 row, 1 column
@example(df=pd.DataFrame({"a": [math.inf, -math.inf, math.nan]}), fmt="parquet")
@example(df=pd.DataFrame({"ünï©ødé 名": ["", "x", "x"]}), fmt="csv")
def test_read_table_fuzz(tmp_path_factory: pytest.TempPathFactory, df: pd.DataFrame, fmt: str) -> None:
    folder = tmp_path_factory.mktemp("rt")
    path = folder / f"t.{fmt}"
    try:
        if fmt == "csv":  # RFC 4180 line ends: a value holding a bare CR is then quoted (see below)
            df.to_csv(path, index=False, na_rep="", lineterminator="\r\n")
        else:
            df.to_parquet(path, index=False)
    except Exception:
        assume(False)  # pandas/pyarrow cannot even write it: not a reader question
    before = _sha(path)
    try:
        out = read_table(path)
    except Exception as exc:
        _readable(exc)
    else:
        event("outcome: ok")
        assert list(map(str, out.columns)) == list(map(str, df.columns))
        # pandas quotes an all-empty one-column row (""), so no row is lost as a blank line
        assert len(out) == len(df)
    assert _sha(path) == before
    assert sorted(p.name for p in folder.iterdir()) == [path.name]


@FUZZ
@given(blob=st.binary(max_size=300), suffix=st.sampled_from([".csv", ".parquet", ".txt", ".csv.gz"]))
def test_read_table_random_bytes(tmp_path_factory: pytest.TempPathFactory, blob: bytes, suffix: str) -> None:
    path = tmp_path_factory.mktemp("rb") / f"x{suffix}"
    path.write_bytes(blob)
    try:
        out = read_table(path)
        event("outcome: ok")
        assert isinstance(out, pd.DataFrame) and len(out) >= 1
    except Exception as exc:
        _readable(exc)
    assert path.read_bytes() == blob


# -- schema loader ---------------------------------------------------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
column_like = st.fixed_dictionaries(
    {"name": st.one_of(names, st.integers(), st.none(), st.just(""))},
    optional={
        "kind": st.sampled_from(["categorical", "integer", "continuous", "text", "", 3]),
        "categories": st.one_of(
            st.lists(st.one_of(st.text(max_size=4), st.integers(), st.booleans(), st.none()), max_size=5),
            json_values,
        ),
        "lower": st.one_of(st.floats(), st.integers(), st.text(max_size=3)),
        "upper": st.one_of(st.floats(), st.integers(), st.text(max_size=3)),
        "missing": st.one_of(st.booleans(), st.integers(0, 2), st.text(max_size=2)),
        "bins": st.one_of(st.integers(-3, 300), st.floats(), st.none()),
        "extra": json_values,
    },
)
schema_like = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"columns": st.one_of(st.lists(column_like, max_size=4), json_values)},
        optional={"tabpriv_schema": st.one_of(st.integers(0, 3), st.text(max_size=2)), "source": json_values},
    ),
)


@FUZZ
@given(d=schema_like)
@example(d={"columns": [{"name": "ünï 名", "kind": "categorical", "categories": ["", "a", 1]}]})
@example(d={"columns": [{"name": "x", "kind": "continuous", "lower": -1e308, "upper": 1e308}]})
@example(
    d={"columns": [{"name": "x", "kind": "continuous", "lower": 5e-324, "upper": 1e-300, "missing": True}]}
)
@example(d={"columns": [{"name": "x", "kind": "continuous", "lower": float("-inf"), "upper": 0.0}]})
@example(d={"columns": [{"name": "x", "kind": "integer", "lower": 0, "upper": 2**70}]})
@example(
    d={"columns": [{"name": "x", "kind": "categorical", "categories": [f"c{i}" for i in range(10_000)]}]}
)
@example(d={"columns": [{"name": "x", "kind": "categorical", "categories": ["a", "a"]}]})
@example(
    d={
        "columns": [
            {"name": "x", "kind": "categorical", "categories": ["a"]},
            {"name": "x", "kind": "integer", "lower": 0, "upper": 1},
        ]
    }
)
def test_schema_from_dict_fuzz(d: object) -> None:
    try:
        s = Schema.from_dict(d)  # type: ignore[arg-type]
    except Exception as exc:
        _readable(exc)
        return
    event("outcome: ok")
    # a schema that loads round-trips through JSON exactly
    assert Schema.from_dict(json.loads(json.dumps(s.to_dict()))).to_dict() == s.to_dict()


@FUZZ
@given(text=st.one_of(st.text(max_size=200), schema_like.map(json.dumps)))
def test_schema_load_fuzz(tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    path = tmp_path_factory.mktemp("sl") / "s.schema.json"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    before = _sha(path)
    try:
        Schema.load(path)
        event("outcome: ok")
    except Exception as exc:
        _readable(exc)
    assert _sha(path) == before


# -- transformers ------------------------------------------------------------------------------------------
@st.composite
def schema_and_frame(draw: st.DrawFn) -> tuple[Schema, pd.DataFrame]:
    n_cols = draw(st.integers(1, 4))
    col_names = draw(st.lists(names, min_size=n_cols, max_size=n_cols, unique=True))
    n_rows = draw(st.integers(1, 6))
    cols, data = [], {}
    for name in col_names:
        kind = draw(st.sampled_from(["categorical", "integer", "continuous"]))
        missing = draw(st.booleans())
        if kind == "categorical":
            cats = draw(
                st.lists(
                    st.one_of(st.text(max_size=4), st.integers(-5, 5)), min_size=1, max_size=5, unique=True
                )
            )
            try:
                col = Column(name, kind, categories=tuple(cats), missing=missing)
            except TabprivError:
                assume(False)
            pool = [*cats, None, "zz-unknown", 99, 1.5]
            vals = draw(st.lists(st.sampled_from(pool), min_size=n_rows, max_size=n_rows))
        else:
            lo = draw(
                st.floats(-1e300, 1e300, allow_nan=False)
                if kind == "continuous"
                else st.integers(-(10**6), 10**6)
            )
            hi = draw(
                st.floats(-1e300, 1e300, allow_nan=False)
                if kind == "continuous"
                else st.integers(-(10**6), 10**6)
            )
            try:
                col = Column(name, kind, lower=min(lo, hi), upper=max(lo, hi), missing=missing)
            except TabprivError:
                assume(False)
            vals = draw(
                st.lists(
                    st.one_of(
                        st.floats(min(lo, hi), max(lo, hi)),
                        st.sampled_from([None, math.inf, -math.inf, math.nan, 1e308, "x"]),
                    ),
                    min_size=n_rows,
                    max_size=n_rows,
                )
            )
            if kind == "integer":
                vals = [round(v) if isinstance(v, float) and math.isfinite(v) else v for v in vals]
        cols.append(col)
        data[name] = pd.Series(vals, dtype=object)
    return Schema(tuple(cols)), pd.DataFrame(data)


@FUZZ
@given(sf=schema_and_frame())
def test_table_transformer_fuzz(sf: tuple[Schema, pd.DataFrame]) -> None:
    schema, df = sf
    tt = TableTransformer(schema).fit()
    try:
        enc = tt.transform(df)
    except Exception as exc:
        _readable(exc)
        return
    event("outcome: ok")
    assert enc.data.shape == (len(df), tt.width_)
    assert np.isfinite(enc.data).all()
    assert (np.linalg.norm(enc.data, axis=1) <= enc.row_norm_bound + 1e-5).all()
    back = tt.inverse_transform(enc.data)
    assert list(back.columns) == schema.names and len(back) == len(df)
    for col in schema:  # categories survive the round trip exactly
        if col.kind == "categorical":
            orig = [
                None if v is None or (isinstance(v, float) and math.isnan(v)) else v for v in df[col.name]
            ]
            got = [
                None if v is None or (isinstance(v, float) and math.isnan(v)) else v for v in back[col.name]
            ]
            # equal values (an integer category of a column with missing values comes back as a float,
            # by the schema's dtype rule: 0 -> 0.0)
            assert all((a is None and b is None) or a == b for a, b in zip(got, orig, strict=True)), (
                got,
                orig,
            )


def test_ten_thousand_categories() -> None:
    cats = tuple(f"c{i}" for i in range(10_000))
    schema = Schema((Column("big", "categorical", categories=cats), Column("x", "integer", lower=0, upper=3)))
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"big": rng.choice(cats, 500), "x": rng.integers(0, 4, 500)})
    tt = TableTransformer(schema).fit()
    enc = tt.transform(df)
    assert enc.width == 10_001
    back = tt.inverse_transform(enc.data)
    assert (back["big"].to_numpy() == df["big"].to_numpy()).all()


# -- CLI ----------------------------------------------------------------------------------------------------
@FUZZ
@given(df=frames(), fmt=st.sampled_from(["csv", "parquet"]), eps=st.sampled_from([1.0, 0.0, -1.0, math.inf]))
@example(df=pd.DataFrame({"ünï": ["a"]}), fmt="csv", eps=1.0)  # 1 row, 1 column
@example(df=pd.DataFrame({"a": ["x", "x", "y"], "b": [1, 1, 2]}), fmt="csv", eps=1.0)  # duplicates
def test_cli_fuzz(tmp_path_factory: pytest.TempPathFactory, df: pd.DataFrame, fmt: str, eps: float) -> None:
    from typer.testing import CliRunner

    from tabpriv.cli.app import app

    folder = tmp_path_factory.mktemp("cli")
    inp = folder / f"in.{fmt}"
    # Text holding a bare carriage return is excluded here: write_table cannot write it yet (known gap,
    # test_write_table_round_trips_carriage_returns below).
    assume(not any("\r" in str(v) for v in [*df.columns, *df.to_numpy().ravel()]))
    try:
        if fmt == "csv":
            df.to_csv(inp, index=False, na_rep="", lineterminator="\r\n")
        else:
            df.to_parquet(inp, index=False)
    except Exception:
        assume(False)
    before = _sha(inp)
    out = folder / "out.csv"
    args = ["synthesize", str(inp), "--infer-schema", "-o", str(out), "--eps", str(eps), "--rows", "5",
            "--delta", "1e-9"]  # fmt: skip
    res = CliRunner().invoke(app, args)
    assert res.exit_code in (0, 1), (res.exit_code, res.output)  # 2 = internal error (a bug)
    assert _sha(inp) == before
    leftovers = [p.name for p in folder.iterdir() if p.name.endswith(".part") or p.name.startswith(".")]
    assert not leftovers, leftovers
    event(f"exit code {res.exit_code}")
    if res.exit_code == 0:
        got = read_table(out)
        assert len(got) == 5
        assert (folder / "out.csv.privacy.json").exists()
    else:
        assert "Error" in res.output and len(res.output.strip()) > 20
        assert not out.exists()


def test_write_table_round_trips_carriage_returns(tmp_path: Path) -> None:
    from tabpriv.io import write_table

    df = pd.DataFrame({"a": ["x\ry", "z"], "b": [1, 2]})
    path = tmp_path / "o.csv"
    write_table(df, path)
    back = read_table(path)
    assert back.shape == (2, 2) and back["a"].tolist() == ["x\ry", "z"]


# -- chunked writer ---------------------------------------------------------------------------------------
@FUZZ
@given(df=frames(), cuts=st.lists(st.integers(0, 16), max_size=4))
def test_chunked_csv_is_the_one_shot_csv(
    tmp_path_factory: pytest.TempPathFactory, df: pd.DataFrame, cuts: list[int]
) -> None:
    """Writing a table block by block gives the bytes of writing it at once (any split)."""
    from tabpriv.io import write_table, write_table_chunks

    # A block without "\r" is written with "\n" even where a later block holds one (the writer takes the
    # line end from the schema, or else from the first block): excluded here.
    assume(not any("\r" in str(v) for v in df.to_numpy().ravel()))
    folder = tmp_path_factory.mktemp("chunks")
    bounds = sorted({0, len(df), *(min(c, len(df)) for c in cuts)})
    blocks = [df.iloc[a:b] for a, b in itertools.pairwise(bounds)]
    write_table(df, folder / "one.csv")
    assert write_table_chunks(blocks, folder / "many.csv") == len(df)
    assert (folder / "many.csv").read_bytes() == (folder / "one.csv").read_bytes()
