from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from tabpriv.errors import DataValidationError, PrivacyWarning, SchemaError
from tabpriv.schema import Column, Schema


def test_json_round_trip(small_schema: Schema, tmp_path) -> None:
    path = tmp_path / "s.schema.json"
    small_schema.to_json(path)
    loaded = Schema.load(path)
    assert loaded == small_schema
    assert loaded.source == "declared"


def test_bundled_adult_schema_is_declared_and_fits_adult(adult_df, adult_schema) -> None:
    assert adult_schema.source == "declared"
    clean, summary = adult_schema.validate(adult_df)
    assert summary.n_clipped == 0
    assert list(clean.dtypes) == list(adult_df.dtypes)
    assert clean["workclass"].isna().sum() == 1836


@pytest.mark.parametrize(
    ("doc", "fragment"),
    [
        ({"columns": [{"name": "a", "kind": "numeric", "lower": 0, "upper": 1}]}, "unknown kind"),
        ({"columns": [{"name": "a", "kind": "integer", "lower": 0}]}, "'upper' bound"),
        ({"columns": [{"name": "a", "kind": "integer", "lower": 5, "upper": 1}]}, "smaller"),
        ({"columns": [{"name": "a", "kind": "categorical", "categories": []}]}, "non-empty"),
        (
            {"columns": [{"name": "a", "kind": "categorical", "categories": ["x", "x"]}]},
            "duplicate",
        ),
        ({"columns": [{"name": "a", "kind": "integer", "lower": 0.5, "upper": 2}]}, "whole-number"),
        (
            {"columns": [{"name": "a", "kind": "integer", "lower": 0, "upper": 1, "colour": 1}]},
            "unknown key",
        ),
        (
            {"columns": [{"name": "a", "kind": "continuous", "lower": 0, "upper": math.inf}]},
            "finite",
        ),
        ({"columns": [{"name": "a", "kind": "integer", "lower": 0, "upper": 1}] * 2}, "Duplicate"),
        ({"columns": []}, "at least one column"),
        ({"tabpriv_schema": 99, "columns": []}, "version"),
    ],
)
def test_invalid_schema_messages_name_column_and_problem(doc, fragment, tmp_path) -> None:
    path = tmp_path / "bad.schema.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(SchemaError, match=fragment):
        Schema.load(path)


def test_schema_not_json(tmp_path) -> None:
    path = tmp_path / "bad.schema.json"
    path.write_text("{not json")
    with pytest.raises(SchemaError, match="not valid JSON"):
        Schema.load(path)


def test_infer_marks_schema_and_warns(small_df) -> None:
    with pytest.warns(PrivacyWarning):
        s = Schema.infer(small_df)
    assert s.is_inferred
    assert s["age"].kind == "integer"
    assert s["score"].missing and s["score"].kind == "continuous"
    assert s["color"].categories == ("blue", "green", "red")
    assert '"source": "inferred"' in s.to_json()
    assert Schema.from_dict(json.loads(s.to_json())).is_inferred


def test_validate_errors(small_schema, small_df) -> None:
    bad = small_df.copy()
    bad.loc[3, "age"] = 150
    bad.loc[7, "age"] = 120
    with pytest.raises(DataValidationError, match=r"'age' has 2 value\(s\) outside .*150") as e:
        small_schema.validate(bad)
    assert "[0, 99]" in str(e.value)
    clean, summary = small_schema.validate(bad, clip=True)
    assert summary.clipped == {"age": 2}
    assert clean.loc[3, "age"] == 99
    assert bad.loc[3, "age"] == 150  # input untouched

    bad = small_df.copy()
    bad.loc[0, "color"] = "purple"
    with pytest.raises(DataValidationError, match="'purple'"):
        small_schema.validate(bad)

    bad = small_df.copy()
    bad.loc[5, "age"] = np.nan
    with pytest.raises(DataValidationError, match="missing value.*row 5"):
        small_schema.validate(bad)

    bad = small_df.copy().astype({"score": object})
    bad.loc[2, "score"] = "n/a"
    with pytest.raises(DataValidationError, match="not numbers.*'n/a'"):
        small_schema.validate(bad)

    bad = small_df.copy()
    bad.loc[2, "score"] = np.inf
    with pytest.raises(DataValidationError, match="infinite"):
        small_schema.validate(bad)

    bad = small_df.copy().astype({"age": float})
    bad.loc[2, "age"] = 2.5
    with pytest.raises(DataValidationError, match="fractional"):
        small_schema.validate(bad)

    with pytest.raises(DataValidationError, match="not in the data: 'flag'"):
        small_schema.validate(small_df.drop(columns="flag"))
    with pytest.raises(DataValidationError, match="not in the schema: 'extra'"):
        small_schema.validate(small_df.assign(extra=1))
    with pytest.raises(DataValidationError, match="no rows"):
        small_schema.validate(small_df.iloc[:0])
    dup = pd.concat([small_df, small_df[["age"]]], axis=1)
    with pytest.raises(DataValidationError, match="Duplicate column"):
        small_schema.validate(dup)


def test_numeric_codes_match_categories_from_text() -> None:
    s = Schema((Column("c", "categorical", categories=(1, 2)),))
    clean, _ = s.validate(pd.DataFrame({"c": ["1", "2", "2"]}))
    assert clean["c"].tolist() == [1, 2, 2]
    assert str(clean["c"].dtype) == "int64"


def test_column_dtypes_depend_on_schema_only() -> None:
    assert Column("a", "integer", lower=0, upper=3).pandas_dtype == "int64"
    assert Column("a", "integer", lower=0, upper=3, missing=True).pandas_dtype == "float64"
    assert Column("a", "continuous", lower=0, upper=3).pandas_dtype == "float64"
    assert Column("a", "categorical", categories=("x",)).pandas_dtype == "object"
    assert Column("a", "categorical", categories=(1, 2)).pandas_dtype == "int64"
