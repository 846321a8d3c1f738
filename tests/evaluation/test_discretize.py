"""The evaluation's levels and their labels: the shared integer rule, round bin edges, readable labels.

Properties (Hypothesis, random numeric columns): one unique label per level; an integer column's bins
cover its whole numbers without gap or overlap and every value codes to the bin its label names; a
continuous column's labels read back as its bin edges; the per-value rule is the one of
``tabpriv.transformers.levels`` (that of the marginal and VAE backends).
"""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tabpriv.evaluation.discretize import (
    MISSING_LABEL,
    OUT_OF_SCHEMA_LABEL,
    _levels,
    bin_edges,
    discretize,
    format_number,
    level_labels,
)
from tabpriv.schema import Column, Schema
from tabpriv.transformers.levels import DEFAULT_MAX_LEVELS, keeps_values
from tabpriv.transformers.table import TableTransformer

ADULT_SCHEMA = Path(__file__).resolve().parents[2] / "datasets" / "adult.schema.json"
_SUFFIX = {"k": 1e3, "M": 1e6}


def _number(text: str) -> float:
    """Read back a :func:`format_number` label (``75k``, ``1.5M``, ``12,285``, ``-2.5``)."""
    text = text.replace(",", "")
    if text[-1] in _SUFFIX:
        return float(text[:-1]) * _SUFFIX[text[-1]]
    return float(text)


def _range(label: str) -> tuple[float, float]:
    """``30–34`` / ``-5 to -1`` / ``40`` -> (first, last)."""
    parts = re.split(r"–| to ", label)
    assert 1 <= len(parts) <= 2, label
    return _number(parts[0]), _number(parts[-1])


@st.composite
def numeric_column(draw: st.DrawFn) -> Column:
    kind = draw(st.sampled_from(["integer", "continuous"]))
    bins = draw(st.none() | st.integers(1, 60))
    missing = draw(st.booleans())
    if kind == "integer":
        lo = draw(st.integers(-3_000_000, 3_000_000))
        hi = lo + draw(st.integers(1, 10) | st.integers(1, 300) | st.integers(1, 5_000_000))
        return Column("x", "integer", lower=lo, upper=hi, bins=bins, missing=missing)
    lo_f = draw(st.floats(-1e7, 1e7, allow_nan=False, allow_infinity=False))
    width = draw(st.floats(1e-4, 1e7, allow_nan=False, allow_infinity=False))
    hi_f = lo_f + width
    if not hi_f > lo_f:
        hi_f = lo_f + 1.0
    return Column("x", "continuous", lower=lo_f, upper=hi_f, bins=bins, missing=missing)


@settings(max_examples=300, deadline=None)
@given(numeric_column(), st.integers(1, 60))
def test_labels_unique_one_per_level(col: Column, bins: int) -> None:
    lv = _levels(col, bins)
    labels = level_labels(col, lv)
    assert len(labels) == lv.n_levels
    assert len(set(labels)) == len(labels)
    assert labels[lv.missing_code] == MISSING_LABEL and labels[lv.out_code] == OUT_OF_SCHEMA_LABEL
    b = col.bins if col.bins is not None else bins
    assert lv.n_values <= max(b, DEFAULT_MAX_LEVELS)
    assert all("e" not in lab.lower() for lab in labels[: lv.n_values])  # no scientific notation


@settings(max_examples=300, deadline=None)
@given(numeric_column().filter(lambda c: c.kind == "integer"), st.integers(1, 60), st.randoms())
def test_integer_bins_cover_the_lattice_without_overlap(col: Column, bins: int, rnd: object) -> None:
    assert col.lower is not None and col.upper is not None
    lo, hi = int(col.lower), int(col.upper)
    lv = _levels(col, bins)
    ranges = [_range(lab) for lab in level_labels(col, lv)[: lv.n_values]]
    # consecutive whole-number ranges from lower to upper: no gap, no overlap
    assert ranges[0][0] == lo and ranges[-1][1] == hi
    for (a, z), (a2, _) in itertools.pairwise(ranges):
        assert a <= z and a2 == z + 1
    if lv.edges is not None:
        assert np.array_equal(lv.edges, np.floor(lv.edges))  # whole-number edges
    # every value codes to the level whose label names it (both ends of every bin, and random ones)
    values = sorted({v for a, z in ranges for v in (a, z)} | {rnd.randint(lo, hi) for _ in range(20)})  # type: ignore[attr-defined]
    codes = discretize(pd.DataFrame({"x": values}), Schema((col,)), bins).codes[:, 0]
    for v, c in zip(values, codes, strict=True):
        a, z = ranges[c]
        assert a <= v <= z, (v, ranges[c])


@settings(max_examples=300, deadline=None)
@given(numeric_column().filter(lambda c: c.kind == "continuous"), st.integers(1, 60))
def test_continuous_labels_read_back_as_edges(col: Column, bins: int) -> None:
    assert col.lower is not None and col.upper is not None
    lv = _levels(col, bins)
    assert lv.edges is not None
    e = lv.edges
    assert e[0] == col.lower and e[-1] == col.upper and (np.diff(e) > 0).all()
    for i, lab in enumerate(level_labels(col, lv)[: lv.n_values]):
        a, z = _range(lab)
        assert a == pytest.approx(e[i], rel=1e-12, abs=0) and z == pytest.approx(e[i + 1], rel=1e-12, abs=0)
    values = np.r_[e, 0.5 * (e[:-1] + e[1:])]
    codes = discretize(pd.DataFrame({"x": values}), Schema((col,)), bins).codes[:, 0]
    for v, c in zip(values, codes, strict=True):
        assert e[c] <= v and (v < e[c + 1] or (c == lv.n_values - 1 and v == e[-1]))


@pytest.mark.parametrize("n_values", [2, 21, 74, 99, 100, 101, 1_000])
def test_integer_rule_is_the_backends_rule(n_values: int) -> None:
    """One level per value exactly where the VAE heads and marginal backends keep one."""
    col = Column("n", "integer", lower=0, upper=n_values - 1)
    schema = Schema((col,))
    span = TableTransformer(schema).fit().spans_[0]
    lv = discretize(pd.DataFrame({"n": [0]}), schema, 20).levels[0]
    assert (lv.edges is None) == keeps_values(span) == (n_values <= DEFAULT_MAX_LEVELS)


def test_round_edges() -> None:
    np.testing.assert_array_equal(bin_edges(0, 99_999, 20, integer=True), np.arange(0, 100_001, 5_000))
    # exact decimals (0.15, not 3 * 0.05 = 0.15000000000000002), so labels and codes agree
    np.testing.assert_array_equal(bin_edges(0.0, 1.0, 20, integer=False), np.arange(21) * 5 / 100)
    # bounds that are not round: inner edges round, outer edges the bounds, narrow end bins merged
    np.testing.assert_array_equal(bin_edges(-3.3, 7.1, 7, False), [-3.3, -1.5, 0, 1.5, 3, 4.5, 6, 7.1])


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (40, "40"),
        (0.05, "0.05"),
        (1e-7, "0.0000001"),
        (-2.5, "-2.5"),
        (9_999.5, "9999.5"),
        (10_000, "10k"),
        (75_000, "75k"),
        (-75_000, "-75k"),
        (12_285, "12,285"),
        (1_500_000, "1.5M"),
        (1_255_000, "1,255,000"),
        (123_456_789, "123,456,789"),
    ],
)
def test_format_number(value: float, text: str) -> None:
    assert format_number(value) == text
    assert _number(text) == pytest.approx(value)


def test_category_labels_unique_even_when_names_clash() -> None:
    col = Column("c", "categorical", categories=(1, "1", "(missing)", "Married-civ-spouse"))
    labels = level_labels(col, _levels(col, 20))
    assert len(set(labels)) == len(labels) == 6
    assert labels[3] == "Married-civ-spouse"


def test_adult_labels_are_the_schema_s_values_and_ranges() -> None:
    schema = Schema.from_dict(json.loads(ADULT_SCHEMA.read_text()))
    levels = discretize(pd.DataFrame({c.name: [] for c in schema.columns}), schema, 20).levels
    labels = {c.name: level_labels(c, lv) for c, lv in zip(schema.columns, levels, strict=True)}
    assert labels["hours-per-week"][39] == "40"  # 99 values: one level each (was 20 fractional bins)
    assert labels["age"][:2] == ["17", "18"]
    assert labels["capital-gain"][:2] == ["0–4,999", "5,000–9,999"]
    assert labels["capital-loss"][:2] == ["0–249", "250–499"]
    assert labels["fnlwgt"][-3] == "1,450,000–1,500,000"
    assert not any("." in lab for c in ("age", "fnlwgt", "capital-gain") for lab in labels[c])
