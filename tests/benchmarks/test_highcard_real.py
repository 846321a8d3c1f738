"""The public crossing of ``benchmarks/bench_highcard_real.py``: domain from the schema only, a bijection."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from benchmarks import bench_highcard_real as hc
from tabpriv.datasets import adult_schema, load_adult
from tabpriv.schema import Column, Schema


def test_crossed_domain_is_the_product_of_the_declared_categories() -> None:
    base = adult_schema()
    schema = hc.crossed_schema(base)
    assert schema.names == ["job", "origin", "family", "age", "hours-per-week", "income"]
    for name, factors in hc.CROSSINGS.items():
        levels = [[*map(str, base[f].categories or ()), *(["?"] if base[f].missing else [])] for f in factors]
        expected = ["|".join(t) for t in itertools.product(*levels)]
        assert list(schema[name].categories or ()) == expected
    assert hc.level_counts(schema) == {
        "job": 9 * 15 * 16,
        "origin": 42 * 5 * 2,
        "family": 7 * 6,
        "age": 74,
        "hours-per-week": 99,
        "income": 2,
    }
    assert next(iter(hc.pair_cells(schema).items())) == ("job x origin", 2160 * 420)


def test_crossed_domain_follows_the_schema_not_the_data() -> None:
    base = adult_schema()
    # a combination Adult never holds is a category all the same (the domain is not read off rows)
    assert "Never-worked|Armed-Forces|Doctorate" in (hc.crossed_schema(base)["job"].categories or ())
    # declaring one more category changes the domain by exactly its product share
    cols = [
        Column("sex", "categorical", categories=("Female", "Male", "X")) if c.name == "sex" else c
        for c in base.columns
    ]
    wider = hc.crossed_schema(Schema(tuple(cols)))
    assert hc.level_counts(wider)["origin"] == 42 * 5 * 3
    with pytest.raises(ValueError, match="clash"):
        hc.factor_levels(Column("x", "categorical", categories=("a|b", "c")))
    with pytest.raises(ValueError, match="clash"):
        hc.factor_levels(Column("x", "categorical", categories=("?", "c")))


def test_crossing_is_a_bijection_on_adult_rows() -> None:
    base = adult_schema()
    orig = hc.original_schema(base)
    df = orig.conform(load_adult()[orig.names])
    crossed = hc.cross(df, base)
    assert len(crossed) == len(df)
    back = hc.uncross(crossed, base)
    pd.testing.assert_frame_equal(back, df)
    assert df["workclass"].isna().any()  # the missing level is exercised
    assert (crossed["job"].astype(str).str.startswith("?|")).sum() == int(df["workclass"].isna().sum())


def test_crossing_is_a_bijection_on_every_level() -> None:
    base = adult_schema()
    schema = hc.crossed_schema(base)
    rng = np.random.default_rng(0)
    n = 3000
    frame = pd.DataFrame(
        {name: rng.choice(np.array(schema[name].categories, dtype=object), n) for name in hc.CROSSINGS}
    )
    frame["age"] = rng.integers(17, 91, n)
    frame["hours-per-week"] = rng.integers(1, 100, n)
    frame["income"] = rng.choice(["<=50K", ">50K"], n)
    frame = schema.conform(frame)
    back = hc.cross(hc.uncross(frame, base), base)
    pd.testing.assert_frame_equal(back, frame)
    # every level of job maps to a distinct original triple (injective on the whole domain)
    job = pd.DataFrame({"job": pd.Categorical(schema["job"].categories, categories=schema["job"].categories)})
    for k in ("origin", "family"):
        job[k] = schema[k].categories[0]
    job["age"], job["hours-per-week"], job["income"] = 40, 40, "<=50K"
    un = hc.uncross(schema.conform(job), base)
    triples = un[["workclass", "occupation", "education"]].astype(object).fillna("?")
    assert not triples.duplicated().any() and len(triples) == 2160
