from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tabpriv.evaluation.discretize import discretize
from tabpriv.evaluation.marginals import marginal_tvds, tvd
from tabpriv.schema import Column, Schema


def test_tvd_hand_computed() -> None:
    assert tvd(np.array([1, 1, 2]), np.array([2, 1, 1])) == pytest.approx(0.25)
    assert tvd(np.array([1, 0]), np.array([0, 1])) == pytest.approx(1.0)


def test_hand_computed_one_two_three_way() -> None:
    schema = Schema(
        (
            Column("a", "categorical", categories=("x", "y")),
            Column("b", "categorical", categories=("u", "v")),
            Column("n", "integer", lower=0, upper=1),
        )
    )
    real = pd.DataFrame({"a": ["x", "x", "y", "y"], "b": ["u", "v", "u", "v"], "n": [0, 0, 1, 1]})
    syn = pd.DataFrame({"a": ["x", "x", "x", "y"], "b": ["u", "u", "u", "v"], "n": [0, 0, 0, 0]})
    res = marginal_tvds(discretize(real, schema), discretize(syn, schema))
    one = res["one_way"]["per_column"]
    # a: real (.5, .5) vs syn (.75, .25) -> .25; b: same -> .25; n: (.5,.5) vs (1,0) -> .5
    assert one == pytest.approx({"a": 0.25, "b": 0.25, "n": 0.5})
    assert res["one_way"]["mean"] == pytest.approx(1 / 3)
    assert res["one_way"]["max"] == pytest.approx(0.5)
    # a x b: real (xu .25, xv .25, yu .25, yv .25); syn (xu .75, yv .25) -> .5*(.5+.25+.25+0) = .5
    m = np.array(res["two_way"]["matrix"])
    assert m[0, 1] == pytest.approx(0.5)
    # a x n: real (x0 .5, y1 .5); syn (x0 .75, y0 .25) -> .5*(.25+.5+.25) = .5
    assert m[0, 2] == pytest.approx(0.5)
    # b x n: real (u0 .25, v0 .25, u1 .25, v1 .25); syn (u0 .75, v0 .25) -> .5*(.5+0+.25+.25) = .5
    assert m[1, 2] == pytest.approx(0.5)
    # a x b x n: real 4 cells of .25 (x u 0, x v 0, y u 1, y v 1); syn (x u 0 .75, y v 0 .25)
    # -> .5*(.5 + .25 + .25 + .25 + .25) = .75
    assert res["three_way"]["count"] == 1
    assert res["three_way"]["mean"] == pytest.approx(0.75)
    assert res["two_way"]["worst"][0]["tvd"] == pytest.approx(0.5)


def test_real_vs_itself_is_zero(small_schema: Schema, tables) -> None:  # type: ignore[no-untyped-def]
    train, _, _ = tables
    c = discretize(train, small_schema)
    res = marginal_tvds(c, c)
    for key in ("one_way", "two_way", "three_way"):
        assert res[key]["max"] == 0.0
        assert res[key]["mean"] == 0.0


def test_binning_follows_schema_not_data(small_schema: Schema) -> None:
    df = pd.DataFrame({"colour": ["red"], "age": [90], "income": [99.99], "label": ["no"]})
    c = discretize(df, small_schema, bins=20)
    lv = {x.name: x for x in c.levels}
    assert lv["income"].n_values == 20
    assert lv["age"].n_values == 73  # 73 integer values <= 100: one level per value (shared rule)
    assert c.codes[0, 2] == 19
    assert c.codes[0, 1] == 72
    c5 = discretize(df, small_schema, bins=5)
    assert c5.levels[1].n_values == 73  # the evaluation's bins do not cut such a column
    assert c5.levels[2].n_values == 5


def test_out_of_schema_counted_not_dropped(small_schema: Schema) -> None:
    df = pd.DataFrame(
        {
            "colour": ["red", "purple", None, "blue"],
            "age": [17, 30, 40, 50.5],
            "income": [-1.0, 50.0, 200.0, 10.0],
            "label": ["no", "yes", "maybe", None],
        }
    )
    c = discretize(df, small_schema)
    assert c.out_of_schema == {"colour": 1, "age": 2, "income": 2, "label": 2}
    assert len(c.codes) == 4
    out_codes = [lv.out_code for lv in c.levels]
    assert c.codes[1, 0] == out_codes[0]
    assert c.codes[2, 0] == c.levels[0].missing_code


def test_triples_are_sampled_when_many() -> None:
    cols = tuple(Column(f"c{i}", "categorical", categories=("a", "b")) for i in range(12))
    schema = Schema(cols)
    rng = np.random.default_rng(0)
    df = pd.DataFrame({f"c{i}": rng.choice(["a", "b"], 50) for i in range(12)})
    c = discretize(df, schema)
    res = marginal_tvds(c, c, max_triples=30, random_state=1)
    assert res["three_way"]["total_triples"] == 220
    assert res["three_way"]["count"] == 30
    assert res["three_way"]["sampled"] is True
    assert res["two_way"]["count"] == 66
